"""The revision diff reads as a person would describe the change."""

from __future__ import annotations

import difflib
import random
import re

from srcflask.documents import diff, pages
from srcflask.documents.diff import WorkBudget, diff_texts, summary, word_segments


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


def test_a_one_character_change_shows_the_whole_word_removed_and_added():
    lines = diff_texts("a) pears\nc) apples", "a) pears\nd) apples")
    assert kinds(lines) == ["same", "changed"]
    assert [(s.kind, s.text) for s in lines[1].segments] == [
        ("removed", "c)"),
        ("added", "d)"),
        ("same", " apples"),
    ]


def test_words_rewritten_one_after_another_read_as_one_change():
    segments = word_segments("Buy two red apples today.", "Buy three green apples today.")
    assert [(s.kind, s.text) for s in segments] == [
        ("same", "Buy "),
        ("removed", "two red"),
        ("added", "three green"),
        ("same", " apples today."),
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


# -- bounded work ------------------------------------------------------------------


def sides(line) -> tuple[str, str]:
    """The old and the new text of a diff line, from its segments."""
    old = "".join(s.text for s in line.segments if s.kind in ("same", "removed"))
    new = "".join(s.text for s in line.segments if s.kind in ("same", "added"))
    return old, new


def apply(old: str, lines) -> str:
    """Rebuild the new text from the old one and the diff, checking every line it names."""
    old_lines, new_lines, at = old.splitlines(), [], 0
    for line in lines:
        if line.kind == "skipped":
            new_lines.extend(old_lines[at : at + line.skipped])
            at += line.skipped
            continue
        before, after = sides(line)
        if line.kind != "added":
            assert (line.old_number, before) == (at + 1, old_lines[at])
            at += 1
        if line.kind != "removed":
            assert line.new_number == len(new_lines) + 1
            new_lines.append(after)
    assert at == len(old_lines)
    return "\n".join(new_lines)


def one_letter_lines(seed: int = 3, count: int = 10_000) -> tuple[str, str]:
    """A 20,000-character body of 10,000 one-letter lines, and a copy with a tenth changed."""
    rng = random.Random(seed)
    old = [rng.choice("abcdefghij") for _ in range(count)]
    new = [rng.choice("abcdefghij") if rng.random() < 0.1 else line for line in old]
    return "\n".join(old), "\n".join(new)


def test_a_small_edit_rebuilds_the_new_text():
    old = "\n".join(f"Paragraph {i} about the spring launch." for i in range(60))
    new = old.replace("Paragraph 7 about", "Paragraph 7, rewritten, about").replace(
        "Paragraph 40 about the spring launch.\n", ""
    )
    budget = WorkBudget()
    lines = diff_texts(old, new, budget=budget)
    assert apply(old, lines) == new
    assert summary(lines) == {"added": 0, "removed": 1, "changed": 1}
    assert not budget.fallback


def test_past_the_work_budget_the_diff_is_plain_and_still_correct():
    old, new = one_letter_lines()
    assert len(old) == 19_999 and len(old.splitlines()) == 10_000

    budget = WorkBudget()
    lines = diff_texts(old, new, budget=budget)

    assert budget.fallback and budget.spent <= budget.limit
    assert apply(old, lines) == new


def test_without_any_budget_the_diff_is_coarse_but_correct():
    old = "Title\nChop two onions.\nAdd salt.\nServe hot."
    new = "Title\nChop three onions.\nAdd salt.\nServe hot.\nEnjoy!"
    budget = WorkBudget(limit=0)
    lines = diff_texts(old, new, budget=budget)
    # Only the common beginning is matched; no line is paired with another.
    assert kinds(lines) == ["same"] + ["removed"] * 3 + ["added"] * 4
    assert budget.exhausted and budget.spent == 0
    assert apply(old, lines) == new


def test_a_budget_for_whole_lines_only_gives_a_plain_line_diff():
    old = "Title\nChop two onions.\nAdd salt.\nServe hot."
    new = "Title\nChop three onions.\nAdd salt.\nServe hot.\nEnjoy!"
    budget = WorkBudget(limit=diff.search_cost(old.splitlines(), new.splitlines()))
    lines = diff_texts(old, new, budget=budget)
    assert kinds(lines) == ["same", "removed", "added", "same", "same", "added"]
    assert budget.exhausted and budget.spent <= budget.limit
    assert apply(old, lines) == new


def test_line_comparisons_stay_within_the_budget(monkeypatch):
    """Two unrelated 3,000-line texts: nine million line pairs, compared only up to the budget."""
    compared = 0
    set_seq2 = difflib.SequenceMatcher.set_seq2

    def counting_set_seq2(self, b):
        nonlocal compared
        compared += 1
        assert compared < 100_000, "the diff kept comparing lines past its budget"
        set_seq2(self, b)

    monkeypatch.setattr(difflib.SequenceMatcher, "set_seq2", counting_set_seq2)
    old = "\n".join(f"Old line {i} of the first text." for i in range(3000))
    new = "\n".join(f"New entry {i} in a second text!" for i in range(3000))

    lines = diff_texts(old, new)

    assert apply(old, lines) == new


def test_a_long_changed_line_is_bounded_too():
    rng = random.Random(5)
    words = ["the", "report", "sales", "rose", "in", "north", "spring", "because"]
    old = " ".join(rng.choice(words) for _ in range(3300))  # one line of ~20,000 characters
    new = " ".join(rng.choice(words) if i % 10 == 0 else w for i, w in enumerate(old.split(" ")))
    budget = WorkBudget()
    lines = diff_texts(old, new, budget=budget)
    assert budget.spent <= budget.limit
    assert apply(old, lines) == new


# -- the revision page ---------------------------------------------------------------


def save_two_revisions(client, first: str, second: str) -> int:
    created = client.post(
        "/sponsor/documents/new", data={"title": "Notes", "body": first, "editor_id": ""}
    )
    document_id = int(re.search(r"/sponsor/documents/(\d+)", created.location).group(1))
    client.post(
        f"/sponsor/documents/{document_id}/edit",
        data={"title": "Notes", "body": second, "editor_id": ""},
    )
    return document_id


def diff_part(page: str) -> str:
    return page[page.index('<div class="diff"') : page.index("</section>")]


def changed_words(removed: str, added: str) -> str:
    """How the page marks words changed inside a line, with what a screen reader says."""
    return (
        f'<del><span class="visually-hidden">removed: </span>{removed}</del>'
        f'<ins><span class="visually-hidden">added: </span>{added}</ins>'
    )


def test_a_changed_line_shows_its_changed_words_said_in_words(sponsor_client):
    document_id = save_two_revisions(
        sponsor_client, "Options:\nc) A new fence.\nEnd.", "Options:\nd) A new fence.\nEnd."
    )

    page = sponsor_client.get(f"/documents/{document_id}/revisions/2").get_data(as_text=True)

    changed = diff_part(page)
    assert changed_words("c)", "d)") + " A new fence." in changed
    assert '<span class="visually-hidden">Changed line</span>' in changed
    assert "cd)" not in changed
    # The legend says what the marks mean, in words.
    assert "data-diff-legend" in page and "struck-out words</del> were removed" in page


def test_hostile_words_changed_inside_a_line_are_escaped(sponsor_client):
    document_id = save_two_revisions(
        sponsor_client,
        'Keep <b>this</b> and "that" line.',
        'Keep <img src=x onerror=alert(1)> and "that" line.',
    )

    page = sponsor_client.get(f"/documents/{document_id}/revisions/2").get_data(as_text=True)

    changed = diff_part(page)
    assert "<img" not in page and "<b>" not in changed
    assert changed_words("&lt;b&gt;this&lt;/b&gt;", "&lt;img src=x onerror=alert(1)&gt;") in changed
    assert "&#34;that&#34; line." in changed


def test_a_plain_diff_is_still_escaped_on_the_page(sponsor_client, monkeypatch):
    monkeypatch.setattr(diff, "WORK_LIMIT", 0)
    document_id = save_two_revisions(
        sponsor_client,
        "Safe line\n<b>Chop two onions.</b>",
        "Safe line\n<b>Chop three onions.</b><script>alert(1)</script>",
    )

    page = sponsor_client.get(f"/documents/{document_id}/revisions/2").get_data(as_text=True)

    assert "<script>alert(1)</script>" not in page and "<b>Chop" not in page
    assert "<del>&lt;b&gt;Chop two onions.&lt;/b&gt;</del>" in page
    assert (
        "<ins>&lt;b&gt;Chop three onions.&lt;/b&gt;&lt;script&gt;alert(1)&lt;/script&gt;</ins>"
        in page
    )
    assert "1 line added, 1 removed, 0 changed." in page  # within budget it is 1 changed


def test_a_revision_diff_is_made_once_and_then_served_from_the_cache(
    sponsor_client, editor_client, monkeypatch
):
    made = []
    real = pages.diff_texts
    monkeypatch.setattr(pages, "diff_texts", lambda *args: made.append(args) or real(*args))
    document_id = save_two_revisions(
        sponsor_client, "Chop two onions.\nAdd <salt>.", "Chop three onions.\nAdd <salt>."
    )
    url = f"/documents/{document_id}/revisions/2"

    first = sponsor_client.get(url).get_data(as_text=True)
    again = sponsor_client.get(url).get_data(as_text=True)

    assert len(made) == 1
    assert changed_words("two", "three") in again and "Add &lt;salt&gt;." in again
    assert diff_part(first) == diff_part(again)
    # The cache never lets a reader past the access rules: the editor is not assigned.
    assert editor_client.get(url).status_code == 404
    sponsor_client.get(f"/documents/{document_id}/revisions/1")
    assert len(made) == 2  # another pair is another entry


def test_the_diff_cache_forgets_the_least_recently_used_pairs():
    cache = diff.DiffCache(max_entries=2, max_chars=100)
    cache.put((1, 2), "a" * 10, 10)
    cache.put((2, 3), "b" * 10, 10)
    assert cache.get((1, 2)) == "a" * 10  # now the most recently used
    cache.put((3, 4), "c" * 10, 10)
    assert cache.get((2, 3)) is None and cache.get((1, 2)) == "a" * 10
    cache.put((4, 5), "d" * 95, 95)  # alone over the size bound with the others
    assert cache.get((1, 2)) is None and cache.get((3, 4)) is None
    assert cache.get((4, 5)) == "d" * 95
    cache.put((5, 6), "e" * 101, 101)  # larger than the whole cache: not kept
    assert cache.get((5, 6)) is None
