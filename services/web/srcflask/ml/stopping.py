"""Where machine text stops, and what it may never write: the editor's rules for decoding.

With `stop_at="paragraph"` a text ends where an editor would cut it:

- at the end of the paragraph in progress (or of the list item in progress,
  when the document ends in a list), once it holds MIN_WORDS words, so that a
  heading line alone does not count as a paragraph, and not after a paragraph
  that ends in a colon (it introduces what follows);
- earlier, where it starts to repeat itself (`usefulness.loop_start`): the
  document stops there, and the looping tail is cut.

With `ban_markup` the tokens that would write markup or contact details the
document does not use (HTML, Markdown headings, emphasis, code and links;
e-mail and web addresses) get no probability while decoding. Phone numbers
have no token of their own: beam search drops a beam as soon as it writes one
the document does not hold, and in any text that still holds one (a sampled
one), the sentence holding it is cut with the rest of the text after it.

`VocabularyRules` reads the tokenizer's vocabulary once per loaded model;
`DocumentRules` applies them to one document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import usefulness
from .continuation import trim_to_sentence_end

# A paragraph shorter than this is a heading or a label: the text goes on past it.
MIN_WORDS = 12

# What a document must contain for the tokens of each kind to stay allowed: a kind is
# banned when its test finds nothing in the document. Each kind's tokens are those
# whose text contains one of its characters or strings.
BANNED_KINDS: dict[str, tuple[tuple[str, ...], re.Pattern[str]]] = {
    "html": (("<", ">"), re.compile(r"[<>]")),
    "markdown-heading": (("#",), re.compile(r"#")),
    "markdown-emphasis": (("*", "__"), re.compile(r"\*|__")),
    "markdown-code": (("`",), re.compile(r"`")),
    "markdown-link": (("[", "]("), re.compile(r"\[")),
    "e-mail": (("@",), re.compile(r"@")),
    "web-address": (
        ("http", "www", "://", ".com", ".org", ".net", ".io"),
        re.compile(r"https?:|www\.|\.(?:com|org|net|io)\b", re.I),
    ),
}
# Tokens after which a stop is possible: they end a sentence or a line.
_BOUNDARY = re.compile(r"[.!?\u2026\n]")
# A sentence that asks for a phone number ("call the office on", "contact us at +44 20"):
# the cue, then the text's end at a place a number would come, or inside one.
_CONTACT_CUE = re.compile(
    r"\b(?:call|phone|telephone|tel|ring|text|fax|contact|reach|dial|number)\b[^.!?\n]*$", re.I
)
_ASKS_FOR_NUMBER = re.compile(
    r"(?:\bon|\bat|\bnumber|\bis|\bcall|\bring|\bphone|\bdial|\btext|:|\+|\(|\d)[\d ().+-]*$", re.I
)
_CONTACT_PIECE = re.compile(r"\d|@|^\.?(?:com|org|net|io|uk|gov|edu|info)\b", re.I)
_LIST_ITEM = re.compile(r"^\s*(?:[-*\u2022]|\(?\d{1,3}[.)]|\(?[a-zA-Z][.)])\s+\S")


class VocabularyRules:
    """The vocabulary's tokens by what they write, read once from a tokenizer."""

    def __init__(self, tokenizer, vocabulary_size: int | None = None):
        size = vocabulary_size or len(tokenizer)
        texts = tokenizer.batch_decode([[i] for i in range(size)])
        self.size = size
        self.boundary = frozenset(i for i, text in enumerate(texts) if _BOUNDARY.search(text))
        # Tokens after which a text may hold new contact details though the bans hold:
        # digits (a phone number), and an address pieced together ("name" "." "org").
        self.digits = frozenset(i for i, text in enumerate(texts) if _CONTACT_PIECE.search(text))
        self.kind_tokens: dict[str, list[int]] = {
            kind: [i for i, text in enumerate(texts) if any(part in text for part in parts)]
            for kind, (parts, _) in BANNED_KINDS.items()
        }

    def for_document(self, document: str, *, stop_at: str, ban_markup: bool) -> DocumentRules:
        banned: list[int] = []
        if ban_markup:
            for kind, (_, used) in BANNED_KINDS.items():
                if not used.search(document):
                    banned.extend(self.kind_tokens[kind])
        return DocumentRules(
            document=document,
            stop_at=stop_at,
            list_item=ends_in_list(document),
            banned=tuple(sorted(set(banned))),
            boundary=self.boundary,
            digits=self.digits if ban_markup else frozenset(),
        )


def ends_in_list(document: str) -> bool:
    """Whether the document's last paragraph is a list (its last line a list item)."""
    last = document.rstrip().rsplit("\n\n", 1)[-1].splitlines()
    return bool(last) and bool(_LIST_ITEM.match(last[-1]))


@dataclass(frozen=True)
class DocumentRules:
    """The stopping and banning rules for one document's machine text."""

    document: str
    stop_at: str = "length"
    list_item: bool = False
    banned: tuple[int, ...] = ()
    boundary: frozenset[int] = frozenset()
    digits: frozenset[int] = frozenset()

    @property
    def watches(self) -> bool:
        """Whether decoding must look at the text as it grows (to stop it early)."""
        return self.stop_at == "paragraph"

    def guards_digits(self, text: str) -> bool:
        """Whether the text is about to write a phone number the document does not hold
        (it asks for one, or has begun one), so its next token may not hold a digit."""
        if not _CONTACT_CUE.search(text) or not _ASKS_FOR_NUMBER.search(text):
            return False
        begun = re.sub(r"\D", "", _ASKS_FOR_NUMBER.search(text).group())
        known = [
            re.sub(r"\D", "", span.text)
            for span in usefulness.contacts(self.document)
            if span.kind == "phone"
        ]
        return not any(number.startswith(begun) for number in known)

    def invents_contact(self, text: str) -> bool:
        """Whether the text holds contact details the document does not (a phone number:
        the bans keep out the rest), so decoding drops it where it can."""
        return bool(usefulness.invented_contacts(text, self.document))

    def may_stop_after(self, token: int) -> bool:
        """Whether a stop can come after `token` (it ends a sentence or a line)."""
        return token in self.boundary

    def stop(self, text: str) -> int | None:
        """Where the text written so far should end, if it should: a character count."""
        if self.stop_at != "paragraph":
            return None
        ends = [end for end in (self._paragraph_end(text), self._loop(text)) if end is not None]
        return min(ends) if ends else None

    def _paragraph_end(self, text: str) -> int | None:
        breaks = re.finditer(r"\n[ \t]*\n" if not self.list_item else r"\n", text)
        for found in breaks:
            before = text[: found.start()]
            # A paragraph ending in a colon introduces the next one (a list): go on.
            if len(re.findall(r"\w+", before)) >= MIN_WORDS and not before.rstrip().endswith(":"):
                return found.start()
        return None

    @staticmethod
    def _loop(text: str) -> int | None:
        loop = usefulness.loop_start(text)
        return loop.start if loop else None

    def finish(self, text: str) -> tuple[str, str | None]:
        """The machine text as the rules leave it, and why it was cut (None: not cut).

        Cuts at the stop, then before the first sentence holding contact details
        the document does not hold, and ends at a sentence end after either cut.
        """
        reason = None
        end = self.stop(text)
        if end is not None:
            reason = "loop" if end == self._loop(text) else "paragraph"
            text = trim_to_sentence_end(text[:end])
        if self.stop_at == "paragraph" or self.banned:
            invented = usefulness.invented_contacts(text, self.document)
            if invented:
                text = trim_to_sentence_end(_before_sentence(text, invented[0].start))
                reason = "contact"
        return text.rstrip(), reason


def _before_sentence(text: str, position: int) -> str:
    """The text before the sentence (or line) that holds `position`."""
    head = text[:position]
    cut = max(head.rfind("\n"), *(m.end() for m in re.finditer(r"[.!?]\s", head)), 0)
    return text[:cut]
