"""The documentation's tables, made from committed benchmark results (never typed by hand).

    cd services/web
    ../../.venv/bin/python bench/tables.py bench/results/<machine>/<date>-decoding-study.json

prints the Markdown that `docs/machine-text.md` holds between its `<!-- table: … -->`
markers; `--write` puts it there. A test checks that the two agree.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent.parent.parent / "docs" / "machine-text.md"

# (heading, summary key, format); a share as a whole percentage.
COLUMNS = (
    ("continues", "continuation_rate", "{:.0%}"),
    ("degenerate", "degenerate_rate", "{:.0%}"),
    ("markup", "markup_rate", "{:.0%}"),
    ("invented contacts", "invented_contact_rate", "{:.0%}"),
    ("invented specifics", "invented_specifics_rate", "{:.0%}"),
    ("clean endings", "clean_ending_rate", "{:.0%}"),
    ("median words", "median_words", "{:.0f}"),
    ("distinct 4-grams", "distinct_4gram_rate", "{:.3f}"),
    ("bits/char", "bits_per_char", "{:.3f}"),
    ("median s/doc", "median_seconds", "{:.1f}"),
)


def study_table(result: dict[str, Any], part: str = "all") -> str:
    """A Markdown table of a decoding study: a row per plan, over all or held-out documents."""
    base = None
    headings = ["plan", *(c[0] for c in COLUMNS), "s/doc vs original"]
    lines = ["| " + " | ".join(headings) + " |", "|" + "---|" * len(headings)]
    for report in result["reports"]:
        summary = report["summary"] if part == "all" else report["summary"].get("held_out", {})
        cells = [report["preset"]]
        for _, key, fmt in COLUMNS:
            value = summary.get(key)
            cells.append("-" if value is None else fmt.format(value))
        seconds = summary.get("median_seconds")
        if report["preset"] == "original":
            base = seconds
        cells.append(f"{seconds / base:.2f}x" if base and seconds else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def caption(result: dict[str, Any], path: Path) -> str:
    return (
        f"Model {result['model']}, {result['documents']} documents "
        f"({result['held_out']} held out), one at a time; {result['machine']}, "
        f"{result['torch_threads']} threads, commit {result['commit']}, {result['date']}. "
        f"Command: `{result['command'].strip()}`. Result file: `{path.as_posix()}`."
    )


def tables(path: Path) -> dict[str, str]:
    """Each table the docs hold, by the name of its marker."""
    result = json.loads(path.read_text(encoding="utf-8"))
    relative = path.resolve().relative_to(HERE.parent.parent.parent)
    return {
        "decoding-study": study_table(result) + "\n\n" + caption(result, relative),
        "decoding-study-held-out": study_table(result, "held-out"),
    }


def replace_tables(text: str, made: dict[str, str]) -> str:
    for name, table in made.items():
        pattern = re.compile(
            rf"(<!-- table: {re.escape(name)} -->\n).*?(\n<!-- end table -->)", re.S
        )
        if not pattern.search(text):
            raise SystemExit(f"docs: no <!-- table: {name} --> marker")
        text = pattern.sub(lambda m, t=table: m.group(1) + t + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("result", type=Path)
    parser.add_argument("--write", action="store_true", help=f"write them into {DOCS.name}")
    args = parser.parse_args(argv)
    made = tables(args.result)
    if args.write:
        DOCS.write_text(replace_tables(DOCS.read_text(encoding="utf-8"), made), encoding="utf-8")
    else:
        for name, table in made.items():
            print(f"<!-- table: {name} -->\n{table}\n<!-- end table -->\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
