"""What the review page shows inside a machine text: where it may be cut, and what to check.

An editor keeps a machine text up to any of its sentence ends (`sentence_ends`);
the specifics and contact details the document does not contain are marked
for them to check (`check_marks`, from the quality benchmark's own detector,
`ml.usefulness`). Both are character offsets into the machine text, so the
page and the API agree; the page escapes every piece it shows.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ml.continuation import split_sentences
from ..ml.engine import document_prompt
from ..ml.usefulness import Span, check_marks
from ..models import MachineText, MachineTextStatus

# What each mark means, as the page's legend says it.
MARK_KINDS = {
    "number": "a number",
    "date": "a date or day",
    "name": "a name",
    "phone": "a phone number",
    "e-mail": "an e-mail address",
    "web-address": "a web address",
}


def sentence_ends(text: str | None) -> list[int]:
    """Where each sentence of the text ends (after its punctuation), the last one included."""
    ends, at = [], 0
    for piece in split_sentences(text or ""):
        at += len(piece)
        end = at - (len(piece) - len(piece.rstrip()))
        if piece.strip() and (not ends or end > ends[-1]):
            ends.append(end)
    return ends


def marks_for(machine_text: MachineText, text: str | None = None) -> list[Span]:
    """The check marks of a finished machine text (or of `text`, one of its choices),
    against the revision it continues."""
    text = machine_text.text if text is None else text
    if machine_text.status is not MachineTextStatus.DONE or not text:
        return []
    revision = machine_text.revision
    return check_marks(text, document_prompt(revision.title, revision.body))


@dataclass(frozen=True)
class Piece:
    text: str
    mark: str | None = None  # the kind of check mark, when this piece is one


@dataclass(frozen=True)
class Sentence:
    """One sentence of a machine text, in marked pieces, and the offset it ends at."""

    pieces: list[Piece]
    end: int
    last: bool


def marked_sentences(machine_text: MachineText, text: str | None = None) -> list[Sentence]:
    """The machine text (or `text`, one of its choices) sentence by sentence, each split
    into plain and marked pieces."""
    text = (machine_text.text if text is None else text) or ""
    marks = marks_for(machine_text, text)
    ends = sentence_ends(text)
    sentences, start = [], 0
    for number, end in enumerate(ends):
        stop = len(text) if number == len(ends) - 1 else end
        while start < stop and text[start].isspace():  # each sentence on the page starts at
            start += 1  # its first word, not at the blank lines between paragraphs
        pieces, at = [], start
        for mark in marks:
            if mark.end <= start or mark.start >= stop:
                continue
            left, right = max(mark.start, start), min(mark.end, stop)
            if left > at:
                pieces.append(Piece(text[at:left]))
            pieces.append(Piece(text[left:right], mark.kind))
            at = right
        if at < stop:
            pieces.append(Piece(text[at:stop]))
        sentences.append(Sentence(pieces, end, number == len(ends) - 1))
        start = stop
    return sentences
