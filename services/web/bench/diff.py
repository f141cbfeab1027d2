"""Benchmark: how long the revision diff takes on realistic and on hostile bodies.

Three pairs of revisions, each diffed REPEATS times; the figures are medians:

1. a 500-line document (the benchmark documents' text, wrapped at 38
   characters: about 19,000 characters) with small edits: ten words changed,
   five lines added and three removed;
2. 10,000 short lines, every one rewritten so that none resembles an old
   one (the line pairing's worst case);
3. a 20,000-character body of 10,000 lines, a tenth of them changed.

A body holds at most 20,000 characters, so 10,000 lines are one letter each.

`diff` is `diff_texts` alone; `page` adds turning it into the HTML of the
revision page, the first time a pair is viewed; `view` is a later view, which
finds the diff in the cache and only renders it.
Not a test: timings depend on the machine.

    cd services/web
    ../../.venv/bin/python bench/diff.py [--repeats 5] [--case NAME]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from srcflask.documents import diff

DOCUMENTS = Path(__file__).with_name("documents.jsonl")
WORDS = [
    "the",
    "a",
    "report",
    "sales",
    "rose",
    "north",
    "south",
    "team",
    "meeting",
    "launch",
    "spring",
    "because",
    "customer",
    "order",
    "warehouse",
    "dock",
    "safety",
    "soup",
    "onions",
    "salt",
    "serve",
    "hot",
    "garden",
    "board",
    "minutes",
    "treasurer",
    "balance",
    "approved",
    "proposed",
    "seconded",
    "budget",
    "plan",
    "week",
    "month",
    "year",
    "review",
    "draft",
    "final",
    "note",
]


def small_edits(seed: int = 1) -> tuple[str, str]:
    text = " ".join(json.loads(line)["body"] for line in DOCUMENTS.open())
    lines = textwrap.wrap(text, width=38)[:500]
    rng = random.Random(seed)
    new = list(lines)
    for _ in range(10):
        index = rng.randrange(len(new))
        words = new[index].split(" ")
        words[rng.randrange(len(words))] = rng.choice(WORDS)
        new[index] = " ".join(words)
    for _ in range(5):
        new.insert(rng.randrange(len(new)), " ".join(rng.choices(WORDS, k=6)))
    for _ in range(3):
        del new[rng.randrange(len(new))]
    return "\n".join(lines), "\n".join(new)


def one_letter_lines(seed: int, old_letters: str, new_letters: str, changed: float):
    """10,000 one-letter lines (19,999 characters, the most lines a body can hold), edited."""
    rng = random.Random(seed)
    old = [rng.choice(old_letters) for _ in range(10_000)]
    new = [rng.choice(new_letters) if rng.random() < changed else text for text in old]
    return "\n".join(old), "\n".join(new)


def rewritten() -> tuple[str, str]:
    return one_letter_lines(2, "abcdefghij", "klmnopqrst", changed=1.0)


def edited() -> tuple[str, str]:
    return one_letter_lines(3, "abcdefghij", "abcdefghij", changed=0.1)


CASES: dict[str, Callable[[], tuple[str, str]]] = {
    "500 lines, small edits": small_edits,
    "10,000 short lines, all rewritten": rewritten,
    "20,000 characters in 10,000 lines": edited,
}


def page_renderer() -> Callable[[list], object] | None:
    """Render a diff as the revision page does, where this version has the template."""
    from srcflask import create_app

    folder = tempfile.mkdtemp()
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder}/bench.sqlite3"},
        env_name="testing",
        instance_path=folder,
    )
    if "documents/_diff.html" not in app.jinja_env.list_templates():
        return None
    template = app.jinja_env.get_template("documents/_diff.html")

    def render(lines: list) -> object:
        with app.test_request_context():
            return template.render(body_diff=lines)

    return render


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(repeats: int, only: str | None) -> None:
    render = page_renderer()
    print(
        f"{'case':<36} {'characters':>12} {'lines':>13} {'diff':>9} {'page':>9} {'view':>9}  notes"
    )
    for name, make in CASES.items():
        if only and only not in name:
            continue
        old, new = make()
        lines = diff.diff_texts(old, new)
        diff_time = median_seconds(lambda old=old, new=new: diff.diff_texts(old, new), repeats)
        page = view = "-"
        if render is not None:
            seconds = median_seconds(
                lambda old=old, new=new: render(diff.diff_texts(old, new)), repeats
            )
            page = f"{seconds:.3f}s"
            view = f"{median_seconds(lambda lines=lines: render(lines), repeats):.3f}s"
        notes = ", ".join(f"{k} {v}" for k, v in diff.summary(lines).items())
        if hasattr(diff, "WorkBudget"):
            budget = diff.WorkBudget()
            diff.diff_texts(old, new, budget=budget)
            notes += f"; work {budget.spent:,} of {budget.limit:,}"
            if budget.exhausted:
                notes += ", ran out: the rest unpaired"
            elif budget.fallback:
                notes += ", lines matched coarsely"
        sizes = f"{len(old):,}/{len(new):,}"
        counts = f"{len(old.splitlines()):,}/{len(new.splitlines()):,}"
        print(
            f"{name:<36} {sizes:>12} {counts:>13} {diff_time:>8.3f}s {page:>9} {view:>9}  {notes}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--case", help="only the cases whose name contains this")
    arguments = parser.parse_args()
    main(arguments.repeats, arguments.case)
