"""The documentation's tables, made from committed benchmark results (never typed by hand).

    cd services/web
    ../../.venv/bin/python bench/tables.py bench/results/<machine>/<date>-decoding-study.json

prints the Markdown that a docs page holds between its `<!-- table: … -->` markers;
`--write` puts it there. Each kind of result has its page: a decoding study
`docs/machine-text.md`, a load test (bench/load.py) and a worker soak (bench/soak.py)
`docs/deployment.md`, a scan (bench/scan.py) `docs/security.md`. A test checks that
every page agrees with the result files its captions name.
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
ROOT = HERE.parent.parent.parent
DOCS = ROOT / "docs" / "machine-text.md"
# The page each kind of result file (the end of its name) goes to.
PAGES = {
    "decoding-study": DOCS,
    "load": ROOT / "docs" / "deployment.md",
    "soak": ROOT / "docs" / "deployment.md",
    "scan": ROOT / "docs" / "security.md",
    "experiment-rule": ROOT / "docs" / "experiments.md",
    "experiment-memory": ROOT / "docs" / "experiments.md",
}

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


def kind_of(path: Path) -> str:
    """The kind of a result file, from its name: <date>-<kind>.json.

    A load test's variants (`--hold-worker`, `--out <date>-load-<variant>.json`) are
    kinds of their own, each with its table, all on the load test's page.
    """
    kind = re.sub(r"^\d{4}-\d{2}-\d{2}-", "", path.name).removesuffix(".json")
    if kind in PAGES or kind.startswith("load-"):
        return kind
    raise SystemExit(f"{path.name}: not a result file bench/tables.py knows")


def page_of(path: Path) -> Path:
    kind = kind_of(path)
    return PAGES["load" if kind.startswith("load") else kind]


def run_caption(result: dict[str, Any], path: Path) -> str:
    return (
        f"{result['machine']}, commit {result['commit']}, {result['date']}. "
        f"Command: `{result['command'].strip()}`. Result file: `{path.as_posix()}`."
    )


def targets_met(result: dict[str, Any]) -> str:
    """Each target of a run and whether it held, the misses in bold."""
    return "; ".join(
        f"{name}: {'yes' if held else '**no**'}" for name, held in result["verdicts"].items()
    )


def load_table(result: dict[str, Any], path: Path) -> str:
    """Latency by kind of request in the steady state, the verdicts, and where CPU went."""
    lines = [
        "| requests | count | per second | median ms | p95 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, row in result["by_kind"].items():
        lines.append(
            f"| {kind} | {row['requests']} | {row['requests_per_second']} | {row['median_ms']} "
            f"| {row['p95_ms']} | {row['p99_ms']} | {row['max_ms']} |"
        )
    verdicts = targets_met(result)
    saves = result["acknowledged_saves"]
    texts = ", ".join(f"{n} {s}" for s, n in result["database"]["machine_texts_by_status"].items())
    cores = ", ".join(f"{name} {n}" for name, n in result["cores_used_during_load"].items())
    users = result["users"]
    return "\n".join(lines) + (
        f"\n\n{users['sponsors']} sponsors and {users['readers']} readers for "
        f"{result['seconds']} s ({result['steady_seconds']} s steady), model {result['model']}, "
        f"{result['error_count']} errors. Saves acknowledged: {saves['new']} new documents, "
        f"{saves['edit']} edits; machine texts: {texts}. Cores used during the load: "
        f"{cores}. Targets: {verdicts}. " + run_caption(result, path)
    )


def soak_table(result: dict[str, Any], path: Path) -> str:
    """The worker's memory, files and threads after each wave of jobs."""
    lines = ["| jobs done | resident MiB | open files | threads |", "|---|---|---|---|"]
    for sample in result["samples"]:
        lines.append(
            f"| {sample['jobs_done']} | {sample['rss_mib']} | {sample['open_files']} "
            f"| {sample['threads']} |"
        )
    verdicts = targets_met(result)
    return "\n".join(lines) + (
        f"\n\nModel {result['model']}; {result['worker']}; warm-up: {result['warm_up']}. "
        f"Resident memory after the warm-up grew {result['rss_growth_after_warm_up']:+.1%}. "
        f"Targets: {verdicts}. " + run_caption(result, path)
    )


def scan_table(result: dict[str, Any], path: Path) -> str:
    """What each scanner covered and what it found."""
    lines = ["| scanner | target | covered | found |", "|---|---|---|---|"]
    for run in result["wapiti"]:
        found = ", ".join(run["vulnerabilities"]) or "nothing"
        anomalies = sum(len(v) for v in run["anomalies"].values())
        lines.append(
            f"| wapiti | every page the {run['role']}'s login reaches | {run['crawled']} pages, "
            f"{run['seconds']} s ({anomalies} anomalies) | {found} |"
        )
    for run in result["sqlmap"]:
        found = ", ".join(run["injectable"]) or "nothing injectable"
        tested = ", ".join(run["parameters_tested"]) or "-"
        lines.append(f"| sqlmap | `{run['target']}` | {tested} | {found} |")
    return "\n".join(lines) + (
        f"\n\nwapiti modules: {result['wapiti_modules']}. "
        f"Vulnerabilities reported: {result['vulnerabilities_reported']}. "
        + run_caption(result, path)
    )


def experiment_rule_table(result: dict[str, Any], path: Path) -> str:
    """Each simulated scenario's verdicts, as shares, and the reviews a verdict took."""
    outcomes = ("better", "worse", "no difference", "collecting")
    lines = [
        "| scenario | " + " | ".join(outcomes) + " | median reviews per arm to a verdict |",
        "|---|" + "---|" * (len(outcomes) + 1),
    ]
    for name, scenario in result["scenarios"].items():
        total = scenario["experiments"]
        shares = [f"{scenario['verdicts'].get(o, 0) / total:.1%}" for o in outcomes]
        median = scenario["median_reviews_per_arm_to_a_verdict"]
        lines.append(f"| {name} | " + " | ".join(shares) + f" | {median:g} |")
    settings = result["rule"]
    return "\n".join(lines) + (
        f"\n\n{next(iter(result['scenarios'].values()))['experiments']} experiments per "
        f"scenario; alpha {settings['alpha']}, tau {settings['tau']}, margin "
        f"{settings['margin']}, no verdict before {settings['min_reviews_per_arm']} reviews "
        f"per arm, undecided at {settings['max_reviews_per_arm']}. " + run_caption(result, path)
    )


def experiment_memory_table(result: dict[str, Any], path: Path) -> str:
    """A worker's resident memory as it loads and runs each arm's version."""
    lines = ["| stage | resident MiB | highest so far MiB |", "|---|---|---|"]
    for stage in result["stages"]:
        resident, peak = stage["resident_mib"], stage["peak_mib"]
        lines.append(f"| {stage['stage']} | {resident:.0f} | {peak:.0f} |")
    versions = result["versions"]
    return "\n".join(lines) + (
        f"\n\n{versions['champion']['label']} ({versions['champion']['parameters'] / 1e6:.0f}M "
        f"parameters) then {versions['challenger']['label']} "
        f"({versions['challenger']['parameters'] / 1e6:.0f}M), each writing "
        f"{result['documents']} documents in one batch; float32, "
        f"{result['torch_threads']} threads, GENERATION_CACHED_MODELS "
        f"{result['cached_models']}. " + run_caption(result, path)
    )


def load_repeats_table(result: dict[str, Any], path: Path) -> str:
    """Every run of the repeated load test, then each variant's medians."""
    targets = result["targets"]
    lines = [
        "| round | variant | req/s | save p50 ms | save p99 ms | list p99 ms | errors "
        "| worker cores | every target met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in result["runs"]:
        lines.append(
            f"| {run['round']} | {run['variant']} | {run['requests_per_second']} "
            f"| {run['save_p50_ms']} | {run['save_p99_ms']} | {run['list_p99_ms']} "
            f"| {run['errors']} | {run['worker_cores']} | {'yes' if run['targets_met'] else 'no'} |"
        )
    for variant, median in result["medians"].items():
        lines.append(
            f"| median | {variant} | {median['requests_per_second']:g} "
            f"| {median['save_p50_ms']:g} | {median['save_p99_ms']:g} "
            f"| {median['list_p99_ms']:g} | | | {median['runs_meeting_every_target']} of "
            f"{result['rounds']} |"
        )
    return "\n".join(lines) + (
        f"\n\n{result['minutes_per_run']:g}-minute runs, interleaved; targets: save p99 under "
        f"{targets['save_p99_ms']} ms, list p99 under {targets['list_p99_ms']} ms, no errors, "
        "every save's machine text written once. " + run_caption(result, path)
    )


def tables(path: Path) -> dict[str, str]:
    """Each table the docs hold from this result file, by the name of its marker."""
    result = json.loads(path.read_text(encoding="utf-8"))
    relative = path.resolve().relative_to(ROOT)
    kind = kind_of(path)
    if kind == "load-repeats":
        return {kind: load_repeats_table(result, relative)}
    if kind.startswith("load"):
        return {kind: load_table(result, relative)}
    if kind == "soak":
        return {"soak": soak_table(result, relative)}
    if kind == "scan":
        return {"scan": scan_table(result, relative)}
    if kind == "experiment-rule":
        return {"experiment-rule": experiment_rule_table(result, relative)}
    if kind == "experiment-memory":
        return {"experiment-memory": experiment_memory_table(result, relative)}
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
    parser.add_argument("--write", action="store_true", help="write them into their page")
    args = parser.parse_args(argv)
    made = tables(args.result)
    if args.write:
        page = page_of(args.result)
        page.write_text(replace_tables(page.read_text(encoding="utf-8"), made), encoding="utf-8")
    else:
        for name, table in made.items():
            print(f"<!-- table: {name} -->\n{table}\n<!-- end table -->\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
