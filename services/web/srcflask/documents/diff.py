"""A readable diff between two revisions: changed lines, with the changed words marked."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

CONTEXT_LINES = 2
# Lines at least this similar count as one line edited, not one removed and one added.
SIMILAR = 0.5
_WORDS = re.compile(r"\s+|\w+|[^\w\s]")


@dataclass
class Segment:
    kind: str  # same, added or removed
    text: str


@dataclass
class DiffLine:
    kind: str  # same, added, removed, changed or skipped
    old_number: int | None = None
    new_number: int | None = None
    segments: list[Segment] = field(default_factory=list)
    skipped: int = 0  # for `skipped`: how many unchanged lines are folded away


def word_segments(old: str, new: str) -> list[Segment]:
    """Mark the words that differ between two versions of one line."""
    old_words, new_words = _WORDS.findall(old), _WORDS.findall(new)
    segments: list[Segment] = []
    matcher = difflib.SequenceMatcher(a=old_words, b=new_words, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            segments.append(Segment("same", "".join(old_words[i1:i2])))
            continue
        if i2 > i1:
            segments.append(Segment("removed", "".join(old_words[i1:i2])))
        if j2 > j1:
            segments.append(Segment("added", "".join(new_words[j1:j2])))
    return segments


def diff_texts(old: str, new: str, context: int = CONTEXT_LINES) -> list[DiffLine]:
    """Lines of `new` against `old`; long unchanged stretches fold into one `skipped` line."""
    old_lines, new_lines = old.splitlines(), new.splitlines()
    lines: list[DiffLine] = []
    matcher = difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            lines.extend(
                DiffLine("same", i + 1, j + 1, [Segment("same", old_lines[i])])
                for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
            )
        else:
            lines.extend(_replaced(old_lines, new_lines, i1, i2, j1, j2))
    return fold_unchanged(lines, context)


def _replaced(old_lines, new_lines, i1, i2, j1, j2) -> list[DiffLine]:
    """Pair each old line with the most similar later new line: edits read as edits."""
    lines: list[DiffLine] = []
    j = j1
    for i in range(i1, i2):
        match, best = None, SIMILAR
        for candidate in range(j, j2):
            ratio = difflib.SequenceMatcher(
                a=old_lines[i], b=new_lines[candidate], autojunk=False
            ).ratio()
            if ratio > best:
                match, best = candidate, ratio
        if match is None:
            lines.append(DiffLine("removed", i + 1, None, [Segment("removed", old_lines[i])]))
            continue
        lines.extend(
            DiffLine("added", None, k + 1, [Segment("added", new_lines[k])])
            for k in range(j, match)
        )
        lines.append(
            DiffLine("changed", i + 1, match + 1, word_segments(old_lines[i], new_lines[match]))
        )
        j = match + 1
    lines.extend(
        DiffLine("added", None, k + 1, [Segment("added", new_lines[k])]) for k in range(j, j2)
    )
    return lines


def fold_unchanged(lines: list[DiffLine], context: int) -> list[DiffLine]:
    near_change = [False] * len(lines)
    for index, line in enumerate(lines):
        if line.kind != "same":
            for near in range(max(0, index - context), min(len(lines), index + context + 1)):
                near_change[near] = True
    folded: list[DiffLine] = []
    for index, line in enumerate(lines):
        if line.kind != "same" or near_change[index]:
            folded.append(line)
        elif folded and folded[-1].kind == "skipped":
            folded[-1].skipped += 1
        else:
            folded.append(DiffLine("skipped", skipped=1))
    return folded


def summary(lines: list[DiffLine]) -> dict[str, int]:
    """How many lines were added, removed and changed."""
    counts = {"added": 0, "removed": 0, "changed": 0}
    for line in lines:
        if line.kind in counts:
            counts[line.kind] += 1
    return counts
