"""Machine text must continue the document: a detector of replies, and the clean-up of outputs.

A small instruct model, shown a document, often answers it instead of
continuing it ("Here's a revised version of your text…"). `judge()` tells the
two apart with named rules, so the quality benchmark can count them and a
test can pin each rule to labelled examples:

- **Opening rules** look only at the first sentence: a reply opens with an
  interjection ("Sure!", "Certainly,"), presents a text about the document
  ("Here's the continuation of…", "Here is a revised version…"), reacts to the
  writer ("I'm glad to hear…", "It sounds like you…"), talks about the document
  ("This document describes…") or offers help ("I'd be happy to help").
- **Anywhere rules** catch what an assistant says about its own work at any
  point ("as a writing assistant", "I made a few tweaks", "I hope this helps",
  "if you'd like me to…") and chat-template markers that leaked into the text.
- An empty output is not a continuation either.

The rules are deliberately narrow: ordinary document sentences such as "Thank
you for your order", "Please let me know if you have any questions" or "Here
are the three options:" must pass, and the tests hold examples of each.

The clean-up turns a raw model output into machine text: it removes broken
and control characters, a leading assistant preamble and trailing assistant
remarks, and, when the token cap cut the last sentence, ends the text at its
last sentence end (the whole text stays when it has none).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BROKEN_CHARACTER = "\ufffd"

_OPENING_RULES: dict[str, str] = {
    "interjection": r"(sure|certainly|of course|absolutely|okay|ok|alright|got it|great|gladly)"
    r"\s*[!,.:]",
    "presents-a-version": r"(here'?s|here is|here are|below is|below are|this is)\b[^.!?\n]{0,60}?"
    r"\b(continuation|continued|revised|revision|rewrite|rewritten|version|polished|improved|"
    r"edited|draft|breakdown|summary|next (part|paragraph|section)|rest of)\b",
    "reacts-to-writer": r"(i'?m|i am) (so )?(glad|happy|sorry|thrilled|excited) (to hear|that you|"
    r"you)|(it sounds|it seems|it looks) like you|what a (great|lovely|wonderful)|"
    r"(great|good|excellent|interesting) (question|start|point|draft|idea)\b",
    "thanks-for-sharing": r"(thank you|thanks) for (sharing|providing|sending|writing)\b",
    "talks-about-document": r"(this|the|your) (document|text|draft|passage|excerpt|piece|writing)"
    r" (is|seems|appears|looks|reads|describes|discusses|outlines|provides|contains|has|"
    r"concludes|continues|ends|begins|starts)\b",
    "offers-help": r"(i'?d|i would|i'?ll|i will|i can|i'?m|i am|let me) (be )?(happy|glad|ready|"
    r"here)? ?(to )?(help|assist|continue|rewrite|revise|summari[sz]e|improve)\b",
    "names-the-task": r"(continuation|continued text|revised version|rewritten version|"
    r"next paragraph)\s*:",
}

_ANYWHERE_RULES: dict[str, str] = {
    "speaks-as-assistant": r"\b(as|you'?re|you are|i'?m|i am) (an ai|a (writing|language|virtual|"
    r"helpful) (assistant|model))\b|\byou'?re an ai\b",
    "describes-its-edits": r"\bi(?:'ve| have)? (made|tweaked|revised|rewrote|edited|adjusted|"
    r"corrected|polished|improved) (a few|some|several|minor|the following|your)\b|"
    r"\bi(?: would)? (suggest|recommend) (a few|some|several|minor) (tweaks|changes|edits|"
    r"improvements)\b",
    "judges-the-writing": r"\b(your|the) (document|text|draft|writing|cover letter|letter|email|"
    r"story|essay|notes|report) (is|are|looks|reads|sounds) (very |really )?(well[- ]written|"
    r"well[- ]structured|clear and concise|engaging|professional|great|excellent)\b",
    "hopes-it-helps": r"\bi hope (this|that) helps\b|\bhappy writing\b",
    "offers-more": r"\bif you(?:'d| would) like me to\b|\bwould you like me to\b|"
    r"\bfeel free to (ask|let me know)\b|\blet me know if you need (any )?(more|further) "
    r"(help|changes|edits)\b",
    "asks-for-document": r"\bwhat'?s your (document|text)\b|\bplease (go ahead and )?(share|"
    r"provide|paste|send) (it|your|the) ?(document|text|draft)?\b|\bshare it with me\b",
    "offers-to-edit": r"\b(help|assist) you (to )?(refine|improve|polish|edit|rewrite|revise)\b|"
    r"\b(help|assist) you with your (writing|creative writing|document|text|draft)\b",
    "template-leak": r"<\|[a-z_]+\|>|<(start|end)_of_turn>|^\s*(assistant|user|system)\s*$",
}

_OPENING = {name: re.compile(pattern, re.I) for name, pattern in _OPENING_RULES.items()}
_ANYWHERE = {name: re.compile(pattern, re.I | re.M) for name, pattern in _ANYWHERE_RULES.items()}

# A sentence ends at . ! ? or … with optional closing quotes or brackets, before a space or the
# end; "3." at the start of a line (a list number) and "4.5" (a decimal) do not end one.
_SENTENCE_END = re.compile(r"(?<!^\d)(?<!^\d\d)[.!?\u2026]+[\"'\u201d\u2019)\]]*(?=\s|$)", re.M)
_LEADING_NOISE = re.compile(r"^[\s\"'*_#>\u201c\u2018-]+")
_PREAMBLE_RULES = ("interjection", "presents-a-version", "names-the-task", "offers-help")


@dataclass(frozen=True)
class Verdict:
    """Whether a text continues the document, and the rules it broke when it does not."""

    continues: bool
    reasons: tuple[str, ...] = ()


def first_sentence(text: str) -> str:
    """The text up to its first sentence end, colon or line break."""
    body = _LEADING_NOISE.sub("", text)
    match = re.search(r"[.!?:\n]", body)
    return body[: match.end()] if match else body


def judge(text: str) -> Verdict:
    """Tell a continuation of the document from a reply to it."""
    if not text or not text.strip():
        return Verdict(False, ("empty",))
    opening = first_sentence(text)
    reasons = [name for name, rule in _OPENING.items() if rule.match(opening)]
    reasons += [name for name, rule in _ANYWHERE.items() if rule.search(text)]
    return Verdict(not reasons, tuple(reasons))


def strip_preamble(text: str) -> str:
    """Remove a leading assistant preamble ("Sure! Here's the continuation:") and return the rest.

    Only an opening sentence matched by a preamble rule goes, and only when
    text follows it: a reply with nothing else in it is left for `judge` to flag.
    """
    for _ in range(3):  # "Sure! Here's the next part: ..." holds two
        body = _LEADING_NOISE.sub("", text)
        opening = first_sentence(body)
        if not any(_OPENING[name].match(opening) for name in _PREAMBLE_RULES):
            break
        rest = body[len(opening) :].lstrip(" \t\r\n*_\"'")
        if not rest.strip():
            break
        text = rest
    return text


def strip_assistant_remarks(text: str) -> str:
    """Drop trailing sentences in which the model talks about its own work."""
    sentences = split_sentences(text)
    while sentences and any(rule.search(sentences[-1]) for rule in _ANYWHERE.values()):
        sentences.pop()
    kept = "".join(sentences).rstrip()
    return kept if kept else text


def split_sentences(text: str) -> list[str]:
    """Split after each sentence end, keeping all characters (joining gives the text back)."""
    pieces, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        pieces.append(text[start : match.end()])
        start = match.end()
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def trim_to_sentence_end(text: str) -> str:
    """End the text at its last sentence end; keep it whole when it has none."""
    ends = list(_SENTENCE_END.finditer(text))
    if not ends:
        return text.rstrip()
    return text[: ends[-1].end()].rstrip()


def ends_cleanly(text: str) -> bool:
    """Whether the text ends at a sentence end."""
    stripped = text.rstrip()
    ends = list(_SENTENCE_END.finditer(stripped))
    return bool(ends) and ends[-1].end() == len(stripped)


# Control characters a model can write through its byte tokens: NUL, which Postgres cannot
# store, and others no document holds. Tabs and line breaks stay.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def without_broken_characters(text: str) -> str:
    """Remove replacement characters left by bytes that do not form a whole character,
    and control characters (NUL among them) that are no part of a document's text."""
    return _CONTROL_CHARACTERS.sub("", text.replace(BROKEN_CHARACTER, ""))


def clean_output(text: str, *, cut_by_length: bool, strip_replies: bool) -> str:
    """Turn a raw model output into machine text (see the module docstring)."""
    text = without_broken_characters(text)
    if strip_replies:
        text = strip_preamble(text)
    if cut_by_length:
        text = trim_to_sentence_end(text)
    if strip_replies:
        text = strip_assistant_remarks(text)
    return text.strip()


def distinct_ngram_rate(text: str, n: int = 4) -> float | None:
    """Distinct word n-grams over all word n-grams (1.0: no repetition); None if too short."""
    words = re.findall(r"\w+", text.lower())
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else None
