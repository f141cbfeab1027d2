"""Decoding study: every decoding plan side by side on the whole quality benchmark.

For each plan (a set of generation settings), writes machine text for every
document of the quality benchmark one at a time, as a save would, and reports
what an editor would keep (`srcflask.ml.usefulness`), bits per character and
median seconds per document, over all documents and over the held-out part.
Writes every figure and every text, with the command, commit and machine, to
bench/results/<machine>/<date>-decoding-study.json; `bench/tables.py` turns
that file into the documentation's table. Not a test: run it by hand.

    cd services/web
    ../../.venv/bin/python bench/decoding_study.py   # every plan: about an hour on 2 cores
    ../../.venv/bin/python bench/decoding_study.py --plan original --plan beam-paragraph --limit 8
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from srcflask.config import QUALITY_FILES  # noqa: E402
from srcflask.ml.engine import PromptFormat, TextGenerator  # noqa: E402
from srcflask.ml.quality import evaluate, format_table, load_documents  # noqa: E402
from srcflask.ml.settings import PRESETS, GenerationSettings  # noqa: E402

EDITOR = {"stop_at": "paragraph", "ban_markup": True, "max_new_tokens": 120}
# The plans compared: today's default first. Contrastive search is not among them: in
# transformers 5 it is code fetched from a model hub and run with trust_remote_code.
PLANS: dict[str, GenerationSettings] = {
    "original": PRESETS["original"],
    "beam-paragraph": GenerationSettings(**EDITOR),
    "beam-paragraph-penalty": GenerationSettings(
        **EDITOR, repetition_penalty=1.2, no_repeat_ngram_size=3
    ),
    "nucleus-t0.7": GenerationSettings(
        strategy="sample", temperature=0.7, top_p=0.9, top_k=0, **EDITOR
    ),
    "min-p-t1.0": GenerationSettings(
        strategy="sample", temperature=1.0, min_p=0.1, top_k=0, **EDITOR
    ),
    "typical-t1.0": GenerationSettings(
        strategy="sample", temperature=1.0, typical_p=0.9, top_k=0, **EDITOR
    ),
    "best-of-4-t0.7": GenerationSettings(
        strategy="sample", temperature=0.7, top_p=0.9, top_k=0, best_of=4, **EDITOR
    ),
}


def machine_name() -> str:
    """A short name for this machine's kind: CPU model and core count (or the GPU)."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0).replace(" ", "-")
    except ImportError:
        pass
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    words = "".join(c if c.isalnum() else "-" for c in model).strip("-").split("-")
    return "-".join(w for w in words if w)[:40] + f"-{os.cpu_count()}cores"


def write_result(result: dict, kind: str, out: Path | None = None) -> Path:
    """Write a result as JSON: to `out`, or to bench/results/<machine>/<date>-<kind>.json."""
    import datetime

    if out is None:
        folder = Path(__file__).resolve().parent / "results" / machine_name()
        out = folder / f"{datetime.date.today().isoformat()}-{kind}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return out


def commit() -> str:
    """The short commit the run is made from, with "+changes" when tracked files differ."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 (git from PATH)
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],  # noqa: S607
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if changed else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a model folder (default: production)")
    parser.add_argument("--plan", action="append", choices=sorted(PLANS), default=[])
    parser.add_argument("--limit", type=int, help="only the first N documents of each file")
    parser.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    parser.add_argument("--out", type=Path, help="JSON file (default: bench/results/…)")
    args = parser.parse_args(argv)

    at_commit = commit()  # the code that runs, whatever is committed while it runs
    documents = []
    for name in QUALITY_FILES:
        documents += load_documents(HERE / name)[: args.limit]
    folder, label = resolve(args.model)
    generator = TextGenerator(folder, label=label, threads=args.threads)
    generator.with_prompt_format(PromptFormat("raw"))
    plans = args.plan or list(PLANS)
    bits: dict[str, tuple[float, int]] = {}
    reports = []
    started = time.time()
    for name in plans:
        print(f"== {name}: {PLANS[name].to_dict()}")
        report = evaluate(
            generator,
            documents,
            PLANS[name],
            preset=name,
            bits=bits,
            progress=lambda done, total: print(f"   {done}/{total}", end="\r", flush=True),
        )
        reports.append(report)
        print(format_table([report]).splitlines()[-1])
    print()
    print(format_table(reports))

    result = {
        "benchmark": "decoding-study",
        "command": "python bench/decoding_study.py " + " ".join(argv or sys.argv[1:]),
        "commit": at_commit,
        "machine": machine_name(),
        "torch_threads": __import__("torch").get_num_threads(),
        "date": time.strftime("%Y-%m-%d"),
        "minutes": round((time.time() - started) / 60, 1),
        "model": label,
        "documents": len(documents),
        "held_out": sum(d.split == "held-out" for d in documents),
        "reports": [r.to_dict() for r in reports],
    }
    out = args.out or HERE / "results" / result["machine"] / (
        f"{result['date']}-decoding-study.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(f"\nEvery figure and text: {out}")
    return 0


def resolve(folder: Path | None) -> tuple[Path, str]:
    if folder is not None:
        return folder, folder.name
    from srcflask import create_app
    from srcflask.registry import service as registry

    with create_app().app_context():
        version = registry.production_version()
        if version is None:
            raise SystemExit("No production model: run `flask --app srcflask models pull-default`")
        return registry.artifact_path(version), version.label


if __name__ == "__main__":
    sys.exit(main())
