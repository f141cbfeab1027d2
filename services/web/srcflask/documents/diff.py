"""A readable diff between two revisions: changed lines, with the changed words marked.

Matching costs grow with the product of the sizes compared, and a body of
20,000 characters can hold 10,000 lines or one line of 20,000 characters. So
each diff has a work budget, counted in difflib's inner-loop steps. Whole
lines are matched exactly while that fits, else as difflib matches long
inputs (a frequent line cannot anchor a match), else by their common
beginning and end only. Similar lines are then paired and their changed
words marked until the budget runs out; the lines left are listed as
removed, then added. The diff is always correct, at worst less fine-grained.
"""

from __future__ import annotations

import difflib
import re
import sys
import threading
from collections import Counter, OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

CONTEXT_LINES = 2
# Lines at least this similar count as one line edited, not one removed and one added.
SIMILAR = 0.5
# About a third of a second of matching on one core; past it the diff is plain.
WORK_LIMIT = 1_000_000
# The fixed cost of comparing two lines, in the same steps (setting up a matcher).
COMPARISON_COST = 16
# What a process keeps of rendered diffs (see DiffCache): entries, and their characters
# (the largest diff a body allows renders to about 3.5 million).
CACHED_DIFFS = 256
CACHED_DIFF_CHARS = 8_000_000
# Words as a reader counts them: "d)" and "onions." are one word each, with their spaces between.
_WORDS = re.compile(r"\s+|\S+")


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


@dataclass
class WorkBudget:
    """How much matching one diff may do, counted as difflib's inner-loop steps."""

    limit: int = field(default_factory=lambda: WORK_LIMIT)
    spent: int = 0
    fallback: bool = False  # part of the diff was matched less finely to stay within it
    exhausted: bool = False  # it ran out: the rest of the diff pairs no lines

    def spend(self, cost: int) -> bool:
        """Take `cost` from the budget if it is there; say whether it was."""
        if self.spent + cost > self.limit:
            return False
        self.spent += cost
        return True

    def run_out(self) -> None:
        self.exhausted = self.fallback = True


class OutOfBudget(Exception):
    """A match stopped because its diff's work budget could not pay for the next step."""


class BoundedMatcher(difflib.SequenceMatcher):
    """A `SequenceMatcher` that pays for every search out of a budget, and stops when it cannot.

    Nearly all of difflib's time goes to `find_longest_match`, which visits,
    for every element of `a` in the range, each place where it occurs in `b`:
    that count is the search's cost, known before it runs.
    """

    def __init__(self, budget: WorkBudget, a: Sequence = "", b: Sequence = "", **options):
        self.budget = budget
        self._steps: list[int] | None = None
        super().__init__(None, a, b, **options)

    def set_seq1(self, a: Sequence) -> None:
        super().set_seq1(a)
        self._steps = None

    def set_seq2(self, b: Sequence) -> None:
        super().set_seq2(b)
        self._steps = None

    def find_longest_match(self, alo=0, ahi=None, blo=0, bhi=None):
        if self._steps is None:  # steps[i]: the cost of searching a[:i]
            places = (1 + len(self.b2j.get(item, ())) for item in self.a)
            self._steps = list(accumulate(places, initial=0))
        ahi = len(self.a) if ahi is None else ahi
        bhi = len(self.b) if bhi is None else bhi
        if not self.budget.spend(self._steps[ahi] - self._steps[alo]):
            raise OutOfBudget
        return super().find_longest_match(alo, ahi, blo, bhi)


def search_cost(a: Sequence, b: Sequence, autojunk: bool = False) -> int:
    """What one search over the whole of `a` and `b` costs (see BoundedMatcher).

    A whole match costs at least this; with `autojunk`, elements filling over
    1% of a `b` of 200 or more are ignored, as difflib does.
    """
    in_b = Counter(b)
    if autojunk and len(b) >= 200:
        popular = len(b) // 100 + 1
        in_b = Counter({item: count for item, count in in_b.items() if count <= popular})
    return sum(1 + in_b[item] for item in a)


def word_segments(old: str, new: str, budget: WorkBudget | None = None) -> list[Segment]:
    """Mark the words that differ between two versions of one line."""
    old_words, new_words = _WORDS.findall(old), _WORDS.findall(new)
    matcher = BoundedMatcher(budget or WorkBudget(limit=sys.maxsize), autojunk=False)
    matcher.set_seqs(old_words, new_words)
    try:
        opcodes = matcher.get_opcodes()
    except OutOfBudget:
        matcher.budget.run_out()
        return [Segment("removed", old), Segment("added", new)]
    segments: list[Segment] = []
    for tag, i1, i2, j1, j2 in joined_changes(opcodes, old_words):
        if tag == "equal":
            segments.append(Segment("same", "".join(old_words[i1:i2])))
            continue
        if i2 > i1:
            segments.append(Segment("removed", "".join(old_words[i1:i2])))
        if j2 > j1:
            segments.append(Segment("added", "".join(new_words[j1:j2])))
    return segments


def joined_changes(opcodes: list[tuple], old_words: list[str]) -> list[tuple]:
    """Join changes that only spaces keep apart: "two red" to "three blue" reads as one change.

    Without this, a line rewritten word by word alternates removed and added words.
    """
    joined: list[tuple] = []
    for index, (tag, i1, i2, j1, j2) in enumerate(opcodes):
        between_changes = 0 < index < len(opcodes) - 1
        if tag == "equal" and between_changes and "".join(old_words[i1:i2]).isspace():
            tag = "replace"
        if tag != "equal" and joined and joined[-1][0] != "equal":
            _, first_i, _, first_j, _ = joined.pop()
            joined.append(("replace", first_i, i2, first_j, j2))
        else:
            joined.append((tag, i1, i2, j1, j2))
    return joined


def diff_texts(
    old: str, new: str, context: int = CONTEXT_LINES, budget: WorkBudget | None = None
) -> list[DiffLine]:
    """Lines of `new` against `old`; long unchanged stretches fold into one `skipped` line."""
    budget = budget if budget is not None else WorkBudget()
    old_lines, new_lines = old.splitlines(), new.splitlines()
    lines: list[DiffLine] = []
    for tag, i1, i2, j1, j2 in line_opcodes(old_lines, new_lines, budget):
        if tag == "equal":
            lines.extend(
                DiffLine("same", i + 1, j + 1, [Segment("same", old_lines[i])])
                for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
            )
        else:
            lines.extend(_replaced(old_lines, new_lines, i1, i2, j1, j2, budget))
    return fold_unchanged(lines, context)


def line_opcodes(
    old_lines: list[str], new_lines: list[str], budget: WorkBudget
) -> list[tuple[str, int, int, int, int]]:
    """Match whole lines: exactly when affordable, else as difflib does for long inputs.

    Lines that repeat (blank lines, one-letter lines) are what make exact
    matching expensive. The cheaper way lets no frequent line anchor a match;
    past both, only the common beginning and end are matched.
    """
    start = 0
    for old_line, new_line in zip(old_lines, new_lines, strict=False):
        if old_line != new_line:
            break
        start += 1
    end_old, end_new = len(old_lines), len(new_lines)
    while end_old > start and end_new > start and old_lines[end_old - 1] == new_lines[end_new - 1]:
        end_old, end_new = end_old - 1, end_new - 1
    middle_old, middle_new = old_lines[start:end_old], new_lines[start:end_new]
    middle = [("replace", 0, len(middle_old), 0, len(middle_new))]
    for autojunk in (False, True):
        if search_cost(middle_old, middle_new, autojunk) > budget.limit - budget.spent:
            budget.fallback = True
            continue  # not worth starting
        matcher = BoundedMatcher(budget, middle_old, middle_new, autojunk=autojunk)
        try:
            middle = matcher.get_opcodes()
            break
        except OutOfBudget:
            budget.fallback = True
    opcodes = [("equal", 0, start, 0, start)] if start else []
    opcodes.extend(
        (tag, i1 + start, i2 + start, j1 + start, j2 + start)
        for tag, i1, i2, j1, j2 in middle
        if i2 > i1 or j2 > j1
    )
    if end_old < len(old_lines):
        opcodes.append(("equal", end_old, len(old_lines), end_new, len(new_lines)))
    return opcodes


def _replaced(old_lines, new_lines, i1, i2, j1, j2, budget: WorkBudget) -> list[DiffLine]:
    """Pair each old line with the most similar later new line: edits read as edits.

    Once the budget is spent the remaining lines are listed as removed, then added.
    """
    lines: list[DiffLine] = []
    j = j1
    matcher = BoundedMatcher(budget, autojunk=False)
    for i in range(i1, i2):
        match = None
        if not budget.exhausted:
            try:
                match = _most_similar(matcher, old_lines[i], new_lines, j, j2)
            except OutOfBudget:
                budget.run_out()
        if budget.exhausted:
            lines.extend(
                DiffLine("removed", k + 1, None, [Segment("removed", old_lines[k])])
                for k in range(i, i2)
            )
            break
        if match is None:
            lines.append(DiffLine("removed", i + 1, None, [Segment("removed", old_lines[i])]))
            continue
        lines.extend(
            DiffLine("added", None, k + 1, [Segment("added", new_lines[k])])
            for k in range(j, match)
        )
        segments = word_segments(old_lines[i], new_lines[match], budget)
        lines.append(DiffLine("changed", i + 1, match + 1, segments))
        j = match + 1
    lines.extend(
        DiffLine("added", None, k + 1, [Segment("added", new_lines[k])]) for k in range(j, j2)
    )
    return lines


def _most_similar(
    matcher: BoundedMatcher, old_line: str, new_lines: list[str], start: int, stop: int
) -> int | None:
    """The index of the new line most similar to `old_line`, if one is similar enough.

    Cheap upper bounds (lengths, then `quick_ratio`) rule most candidates
    out before the costly `ratio`, as `difflib.ndiff` does.
    """
    budget = matcher.budget
    match, best = None, SIMILAR
    matcher.set_seq1(old_line)
    for candidate in range(start, stop):
        new_line = new_lines[candidate]
        if not budget.spend(1):
            raise OutOfBudget
        if _length_ratio(old_line, new_line) <= best:
            continue  # as `real_quick_ratio`, before paying for a matcher
        if not budget.spend(COMPARISON_COST + len(old_line) + len(new_line)):
            raise OutOfBudget
        matcher.set_seq2(new_line)
        if matcher.quick_ratio() <= best:
            continue
        ratio = matcher.ratio()
        if ratio > best:
            match, best = candidate, ratio
            if ratio == 1.0:
                break  # the same line: nothing later can be more similar
    return match


def _length_ratio(a: str, b: str) -> float:
    """The most similar two lines of these lengths can be (difflib's `real_quick_ratio`)."""
    total = len(a) + len(b)
    return 2 * min(len(a), len(b)) / total if total else 1.0


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


class DiffCache:
    """Rendered diffs, least recently used forgotten first, within a count and a size.

    A diff is keyed by the ids of the two revisions it compares. Revisions
    are never changed once saved, so an entry never goes stale and nothing
    needs to invalidate it; each process keeps its own.
    """

    def __init__(self, max_entries: int = CACHED_DIFFS, max_chars: int = CACHED_DIFF_CHARS):
        self.max_entries = max_entries
        self.max_chars = max_chars
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            if key not in self._entries:
                return None
            self._entries.move_to_end(key)
            return self._entries[key][0]

    def put(self, key: Hashable, value: Any, size: int) -> None:
        """Keep `value` (about `size` characters) unless it alone is over the size bound."""
        if size > self.max_chars:
            return
        with self._lock:
            if key in self._entries:
                self._chars -= self._entries.pop(key)[1]
            self._entries[key] = (value, size)
            self._chars += size
            while len(self._entries) > self.max_entries or self._chars > self.max_chars:
                self._chars -= self._entries.popitem(last=False)[1][1]


def kept_word_share(machine: str | None, final: str | None) -> float | None:
    """The share (0 to 1) of the machine text's words that survive, in order, into the
    editor's final text; None when the machine text has no words."""
    words = re.findall(r"\S+", machine or "")
    if not words:
        return None
    finals = re.findall(r"\S+", final or "")
    matcher = difflib.SequenceMatcher(None, words, finals, autojunk=False)
    return sum(block.size for block in matcher.get_matching_blocks()) / len(words)
