"""What an editor would keep: per-text checks of machine text against its document.

Each check is a named rule with labelled examples in the tests (texts the
model wrote, and true next paragraphs that must pass):

- **degenerate**: the text repeats itself. `loop_start()` finds where a
  repetition begins: a sentence said twice ("repeated-sentence"), a third
  sentence or line on the same skeleton (its first three words, numbers and
  number words alike: "Day four in Lisbon. Day five in Lisbon. Day six…";
  "repeated-skeleton"), or a run of words said three times back to back
  ("looping-words"). Decoding stops a document there; the benchmark counts
  texts that hold one.
- **markup** the document does not use: HTML tags and entities, Markdown
  headings, emphasis, code and links (`unused_markup`).
- **invented contact details**: e-mail addresses, web addresses and phone
  numbers that are not in the document (`invented_contacts`).
- **invented specifics**: numbers, dates and names that are not in the
  document (`invented_specifics`): reported and marked for the editor to
  check, never refused, since a continuation must sometimes say new things.

Everything works on characters, so the review page can mark what a check
found (`check_marks`) as spans of the machine text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# -- sentences and words ------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# A sentence ends at . ! ? or … (with closing quotes or brackets) before a space, or at a
# line break. A list number ("4.", "b)") is part of the sentence it opens.
_PIECE_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*(?=\s|$)|\n+")
_LIST_MARKER = re.compile(r"(?:\(?\d{1,3}|\(?[a-z])[.)]", re.I)
_WORD = re.compile(r"[^\W_]+(?:['\u2019.,-][^\W_]+)*")
_NUMBER_WORDS = _words(
    "one two three four five six seven eight nine ten eleven twelve first second third "
    "fourth fifth sixth seventh eighth ninth tenth eleventh twelfth"
)


@dataclass(frozen=True)
class Piece:
    """A sentence or line of a text, where it starts, and its words normalised."""

    start: int
    end: int
    words: tuple[str, ...]


def _normal(word: str) -> str:
    word = word.lower().replace("\u2019", "'")
    if word in _NUMBER_WORDS or re.fullmatch(r"\d+(?:[.,:]\d+)*(?:st|nd|rd|th)?", word):
        return "#"
    return word


def pieces(text: str) -> list[Piece]:
    """The text's sentences and lines, a list number joined to the sentence it opens."""
    found: list[Piece] = []
    start = 0
    held: int | None = None  # where a lone list number began
    for match in [*_PIECE_END.finditer(text), None]:
        end = match.end() if match else len(text)
        chunk = text[start:end]
        lead = len(chunk) - len(chunk.lstrip())
        if _LIST_MARKER.fullmatch(chunk.strip()):
            held = start + lead if held is None else held
        elif chunk.strip():
            words = tuple(_normal(w) for w in _WORD.findall(chunk))
            first = held if held is not None else start + lead
            if held is not None:
                words = ("#", *words)
            if words:
                found.append(Piece(first, start + len(chunk.rstrip()), words))
            held = None
        start = end
        if match is None:
            break
    return found


# -- degenerate ---------------------------------------------------------------

SKELETON_WORDS = 3  # a sentence's skeleton: its first three words
SKELETON_REPEATS = 3  # the same skeleton this often is a loop
MIN_REPEATED_SENTENCE_WORDS = 4  # shorter sentences ("Thank you.") may honestly recur
LOOP_RUN_REPEATS = 3  # a run of words said this often back to back


@dataclass(frozen=True)
class Loop:
    """Where a text starts to repeat itself, and the rule that saw it."""

    start: int
    rule: str


def loop_start(text: str) -> Loop | None:
    """The first place the text repeats itself, or None when it does not."""
    found: list[Loop] = []
    sentences: dict[tuple[str, ...], int] = {}
    skeletons: dict[tuple[str, ...], list[int]] = {}
    for piece in pieces(text):
        if len(piece.words) >= MIN_REPEATED_SENTENCE_WORDS:
            if piece.words in sentences:
                found.append(Loop(piece.start, "repeated-sentence"))
            sentences.setdefault(piece.words, piece.start)
        if len(piece.words) >= SKELETON_WORDS:
            starts = skeletons.setdefault(piece.words[:SKELETON_WORDS], [])
            starts.append(piece.start)
            if len(starts) == SKELETON_REPEATS:
                # The loop began at the second: the first said it once, honestly.
                found.append(Loop(starts[1], "repeated-skeleton"))
    run = _looping_run(text)
    if run is not None:
        found.append(run)
    return min(found, key=lambda loop: loop.start) if found else None


def _looping_run(text: str) -> Loop | None:
    """A run of one to six words said LOOP_RUN_REPEATS times back to back ("very very very")."""
    words = [(m.start(), _normal(m.group())) for m in _WORD.finditer(text)]
    tokens = [w for _, w in words]
    for size in range(1, 7):
        for i in range(len(tokens) - size * LOOP_RUN_REPEATS + 1):
            run = tokens[i : i + size]
            if run == ["#"] * size:
                continue  # "1 2 3", "10, 20, 30": counting, not looping
            if all(
                tokens[i + k * size : i + (k + 1) * size] == run for k in range(LOOP_RUN_REPEATS)
            ):
                return Loop(words[i + size][0], "looping-words")
    return None


def is_degenerate(text: str) -> bool:
    """Whether the text repeats itself anywhere (see `loop_start`)."""
    return loop_start(text) is not None


# -- markup -------------------------------------------------------------------

MARKUP_KINDS: dict[str, re.Pattern[str]] = {
    "html-tag": re.compile(r"</?[a-zA-Z][a-zA-Z0-9-]*(?:\s[^<>\n]*)?/?>"),
    "html-entity": re.compile(r"&(?:[a-zA-Z]{2,8}|#\d{2,5});"),
    "markdown-heading": re.compile(r"^[ \t]*#{1,6}[ \t]+\S", re.M),
    "markdown-emphasis": re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__"),
    "markdown-code": re.compile(r"```|`[^`\n]+`"),
    "markdown-link": re.compile(r"\[[^\]\n]+\]\([^)\s]+\)"),
}


@dataclass(frozen=True)
class Span:
    """A stretch of a machine text that a check found: characters [start, end)."""

    start: int
    end: int
    kind: str
    text: str

    def to_dict(self) -> dict[str, object]:
        return {"start": self.start, "end": self.end, "kind": self.kind, "text": self.text}


def markup_kinds(text: str) -> set[str]:
    """The kinds of markup a text uses."""
    return {kind for kind, rule in MARKUP_KINDS.items() if rule.search(text)}


def unused_markup(text: str, document: str) -> list[Span]:
    """Markup in the text of a kind the document does not use."""
    used = markup_kinds(document)
    return sorted(
        (
            Span(m.start(), m.end(), kind, m.group())
            for kind, rule in MARKUP_KINDS.items()
            if kind not in used
            for m in rule.finditer(text)
        ),
        key=lambda span: span.start,
    )


# -- contact details ----------------------------------------------------------

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(
    r"\b(?:https?://|www\.)[^\s<>\"')\]]+[^\s<>\"')\].,;:!?]"
    r"|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|org|net|io|gov|edu|info|co\.uk|org\.uk|ac\.uk)\b"
    r"(?:/[^\s<>\"')\]]*[^\s<>\"')\].,;:!?])?",
    re.I,
)
# Three groups ("206-222-2200", "+44 20 7946 0958", "(555) 014 2233") or a local 3-4
# ("555-0134"); a year range ("1990-2000") or a date ("2024-03-14") is neither.
_PHONE = re.compile(
    r"(?<![\w.-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,5}\)|\d{2,5})[ .-]\d{3,4}[ .-]\d{3,4}(?![\w-])"
    r"|(?<![\w.-])\d{3}[ .-]\d{4}(?![\w-])"
)


def _contact_key(kind: str, value: str) -> str:
    if kind == "phone":
        return re.sub(r"\D", "", value)[-7:]  # the same number with or without its area code
    value = value.lower().rstrip("/")
    if kind == "web-address":
        value = re.sub(r"^(?:https?://)?(?:www\.)?", "", value)
    return value


def contacts(text: str) -> list[Span]:
    """E-mail addresses, web addresses and phone numbers in a text."""
    found = [Span(m.start(), m.end(), "e-mail", m.group()) for m in _EMAIL.finditer(text)]
    taken = [(s.start, s.end) for s in found]
    for m in _URL.finditer(text):
        if not any(a <= m.start() < b for a, b in taken):  # the domain of an e-mail address
            found.append(Span(m.start(), m.end(), "web-address", m.group()))
    found += [Span(m.start(), m.end(), "phone", m.group()) for m in _PHONE.finditer(text)]
    return sorted(found, key=lambda span: span.start)


def invented_contacts(text: str, document: str) -> list[Span]:
    """Contact details in the text that the document does not hold."""
    known = {(s.kind, _contact_key(s.kind, s.text)) for s in contacts(document)}
    return [s for s in contacts(text) if (s.kind, _contact_key(s.kind, s.text)) not in known]


# -- specifics ------------------------------------------------------------------

MONTHS = _words(
    "January February March April May June July August September October November "
    "December Jan Feb Mar Apr Jun Jul Aug Sep Sept Oct Nov Dec"
)
WEEKDAYS = _words("Monday Tuesday Wednesday Thursday Friday Saturday Sunday")
_NUMBER = re.compile(r"(?<![\w.,])[$\u00a3\u20ac]?\d+(?:[.,:/]\d+)*%?(?![\w])")
_CAPITALISED = re.compile(r"\b[A-Z][a-zA-Z'\u2019-]*[a-zA-Z]\b|\b[A-Z]\b")
# Capitalised words that are not names wherever they stand.
_NOT_NAMES = _words("I I'm I've I'd I'll OK Mr Mrs Ms Dr St Prof A An The This That These Those It")


def _number_key(value: str) -> str:
    return value.lstrip("$\u00a3\u20ac").rstrip("%").replace(",", "")


def _sentence_starts(text: str) -> set[int]:
    """Where sentences, lines, headings and list items begin (after a list marker, a
    Markdown heading's hashes and opening quotes)."""
    return {
        m.end()
        for m in re.finditer(
            r"(?:^|[.!?:\u2026][\"'\u201d\u2019)\]]*\s+|\n)\s*"
            r"(?:[-*\u2022]\s+|\(?\w{1,3}[.)]\s+|#{1,6}\s+|>\s*)?"
            r"[\"'\u201c\u2018(]*",
            text,
        )
    }


def invented_specifics(text: str, document: str) -> list[Span]:
    """Numbers, dates and names in the text that the document does not hold.

    Numbers count when the document has no such number (list numbers are not
    facts); months and weekdays, and capitalised words that do not open a
    sentence, when the document never uses that word. A run of such words
    ("Helen Marsh") is one name.
    """
    found: list[Span] = []
    known_numbers = {_number_key(m.group()) for m in _NUMBER.finditer(document)}
    line_starts = {m.end() for m in re.finditer(r"(?:^|\n)[ \t]*(?:\()?", text)}
    for m in _NUMBER.finditer(text):
        after = text[m.end() : m.end() + 1]
        if m.start() in line_starts and after in (".", ")"):
            continue  # "4." opening a list item
        if _number_key(m.group()) not in known_numbers:
            found.append(Span(m.start(), m.end(), "number", m.group()))
    document_words = set(re.findall(r"[\w'\u2019-]+", document))
    starts = _sentence_starts(text)
    name: list[re.Match[str]] = []

    def close() -> None:
        if name:
            kinds = {
                "date" if w.group() in MONTHS or w.group() in WEEKDAYS else "name" for w in name
            }
            kind = "date" if kinds == {"date"} else "name"
            found.append(
                Span(name[0].start(), name[-1].end(), kind, text[name[0].start() : name[-1].end()])
            )
            name.clear()

    for m in _CAPITALISED.finditer(text):
        word = m.group()
        new = (
            word not in document_words
            and word not in _NOT_NAMES
            and not (word.isupper() and len(word) > 1)  # an acronym: HR, URL, POST
            and (m.start() not in starts or word in MONTHS or word in WEEKDAYS)
        )
        if new and name and text[name[-1].end() : m.start()] == " ":
            name.append(m)
        else:
            close()
            if new:
                name.append(m)
    close()
    return sorted(found, key=lambda span: span.start)


# -- all of it --------------------------------------------------------------------


def check_marks(text: str, document: str) -> list[Span]:
    """What an editor should check in a machine text: contact details and specifics the
    document does not hold, in order, none overlapping (a contact wins over a number)."""
    marks: list[Span] = []
    for span in sorted(
        invented_contacts(text, document) + invented_specifics(text, document),
        key=lambda s: (s.start, -(s.end - s.start)),
    ):
        if marks and span.start < marks[-1].end:
            continue
        marks.append(span)
    return marks


@dataclass(frozen=True)
class Usefulness:
    """The checks' findings for one machine text."""

    loop: Loop | None
    markup: tuple[Span, ...]
    contacts: tuple[Span, ...]
    specifics: tuple[Span, ...]

    @property
    def degenerate(self) -> bool:
        return self.loop is not None

    def to_dict(self) -> dict[str, object]:
        return {
            "degenerate": self.degenerate,
            "loop_rule": self.loop.rule if self.loop else None,
            "markup": [s.text for s in self.markup],
            "invented_contacts": [s.text for s in self.contacts],
            "invented_specifics": [s.text for s in self.specifics],
        }


def assess(text: str, document: str) -> Usefulness:
    """Run every check on a machine text written for `document`."""
    return Usefulness(
        loop=loop_start(text),
        markup=tuple(unused_markup(text, document)),
        contacts=tuple(invented_contacts(text, document)),
        specifics=tuple(invented_specifics(text, document)),
    )


# -- alternatives -------------------------------------------------------------------

MOST_ALTERNATIVES = 2  # besides the text itself: up to three to choose from
MIN_ALTERNATIVE_WORDS = 5
# Texts whose words match this much (difflib's ratio, 0 to 1) differ by a word or two.
MOST_SIMILAR = 0.6


def word_similarity(first: str, second: str) -> float:
    """How alike two texts are, word by word (1: the same words in the same order)."""
    import difflib

    return difflib.SequenceMatcher(
        None, first.lower().split(), second.lower().split(), autojunk=False
    ).ratio()


def distinct_alternatives(text: str, candidates: list[str], document: str) -> list[str]:
    """Up to MOST_ALTERNATIVES of `candidates`, in order, that differ clearly from `text` and
    from each other and pass the editor's checks (no loop, markup or invented contacts)."""
    chosen: list[str] = []
    for candidate in candidates:
        if len(chosen) == MOST_ALTERNATIVES:
            break
        if len(candidate.split()) < MIN_ALTERNATIVE_WORDS:
            continue
        if any(word_similarity(candidate, kept) > MOST_SIMILAR for kept in [text, *chosen]):
            continue
        found = assess(candidate, document)
        if found.degenerate or found.markup or found.contacts:
            continue
        chosen.append(candidate)
    return chosen
