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
sys.path.insert(0, str(HERE.parent))
WINNER = "beam-paragraph"  # the study's plan that became the `editor` preset
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


def part_summary(report: dict[str, Any], part: str) -> dict[str, Any]:
    """A report's figures over all its documents, or over one split of them."""
    from srcflask.ml.quality import DocumentOutcome, summarise

    if part == "all":
        return report["summary"]
    outcomes = [DocumentOutcome(**d) for d in report["documents"] if d["split"] == part]
    return summarise(outcomes)


def study_table(result: dict[str, Any], part: str = "all") -> str:
    """A Markdown table of a decoding study: a row per plan, over all or held-out documents."""
    base = None
    headings = ["plan", *(c[0] for c in COLUMNS), "s/doc vs original"]
    lines = ["| " + " | ".join(headings) + " |", "|" + "---|" * len(headings)]
    for report in result["reports"]:
        summary = part_summary(report, part)
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


# Documents whose texts the docs quote (tuning documents: the held-out ones stay unread).
READINGS = (
    "garden-board-minutes",
    "mountain-train-diary",
    "office-move-email",
    "webhook-lock-postmortem",
    "gym-cancellation-complaint",
)


def readings(result: dict[str, Any], plans: tuple[str, str] = ("original", "editor")) -> str:
    """The texts two plans wrote for the READINGS documents, verbatim, as quotations."""
    texts = {
        report["preset"]: {d["id"]: d for d in report["documents"]} for report in result["reports"]
    }
    parts = []
    for document_id in READINGS:
        parts.append(f"**{document_id}**")
        for plan in plans:
            outcome = texts[plan][document_id]
            quoted = "\n".join(
                "> " + line if line else ">" for line in outcome["text"].splitlines()
            )
            parts.append(f"*{plan}* ({len(outcome['text'].split())} words):\n\n{quoted}")
    return "\n\n".join(parts)


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
        "decoding-study-tune": study_table(result, "tune"),
        "decoding-study-held-out": study_table(result, "held-out"),
        "decoding-study-readings": readings(result, ("original", WINNER)),
    }


def replace_tables(text: str, made: dict[str, str]) -> str:
    for name, table in made.items():
        # What lies between a marker and the next end (empty the first time), never further.
        pattern = re.compile(
            rf"(<!-- table: {re.escape(name)} -->\n)(?:(?!<!-- ).)*?(<!-- end table -->)", re.S
        )
        if not pattern.search(text):
            raise SystemExit(f"docs: no <!-- table: {name} --> marker")
        text = pattern.sub(lambda m, t=table: m.group(1) + t + "\n" + m.group(2), text)
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
