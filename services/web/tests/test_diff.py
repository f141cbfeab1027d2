"""The revision diff reads as a person would describe the change."""

from __future__ import annotations

from srcflask.documents.diff import diff_texts, summary, word_segments


def kinds(lines):
    return [line.kind for line in lines]


def test_changed_words_are_marked_inside_a_line():
    segments = word_segments("Chop two onions.", "Chop three onions.")
    assert [(s.kind, s.text) for s in segments] == [
        ("same", "Chop "),
        ("removed", "two"),
        ("added", "three"),
        ("same", " onions."),
    ]


def test_text_appended_to_a_line_and_new_lines_after_it():
    old = "It was cold,"
    new = "It was cold, and it rained.\n\nThe end."
    lines = diff_texts(old, new)
    assert kinds(lines) == ["changed", "added", "added"]
    assert [(s.kind, s.text) for s in lines[0].segments] == [
        ("same", "It was cold,"),
        ("added", " and it rained."),
    ]
    assert summary(lines) == {"added": 2, "removed": 0, "changed": 1}


def test_unrelated_lines_are_removed_and_added():
    lines = diff_texts("Alpha beta gamma.", "Completely different words here.")
    assert kinds(lines) == ["removed", "added"]


def test_long_unchanged_stretches_fold_away():
    old = "\n".join(f"line {i}" for i in range(20))
    new = old.replace("line 10", "line ten")
    lines = diff_texts(old, new)
    assert kinds(lines) == ["skipped", "same", "same", "changed", "same", "same", "skipped"]
    assert lines[0].skipped == 8 and lines[-1].skipped == 7


def test_a_first_revision_is_all_added():
    assert kinds(diff_texts("", "One\nTwo")) == ["added", "added"]
