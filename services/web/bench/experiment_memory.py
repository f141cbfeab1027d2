"""Benchmark: what a worker's memory costs when it serves both arms of an experiment.

A worker loads each version it is asked to write with, and keeps up to
GENERATION_CACHED_MODELS of them (2 by default: champion and challenger). This
loads the production version, writes the first N realistic documents
(bench/documents.jsonl) with it, then loads a second catalog version and writes
the same documents with it, reading the process's resident memory (VmRSS) and
its highest so far (VmHWM) after each stage. The second version is fetched into
the registry of the instance in use if it is not there yet.

Linux only (/proc/self/status). Not a test: run it by hand.

    cd services/web
    ../../.venv/bin/python bench/experiment_memory.py --challenger smollm2-135m-instruct

writes bench/results/<machine>/<date>-experiment-memory.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from decoding_study import commit, machine_name, write_result  # noqa: E402


def memory() -> dict[str, float]:
    """This process's resident memory now and at its highest, in MiB."""
    figures = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            figures[name] = int(value.split()[0]) / 1024
    return {"resident_mib": round(figures["VmRSS"], 1), "peak_mib": round(figures["VmHWM"], 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--challenger", default="smollm2-135m-instruct", help="a catalog model")
    parser.add_argument("--limit", type=int, default=4, help="documents written per version")
    parser.add_argument("--out", type=Path, help="result JSON (default: bench/results/…)")
    args = parser.parse_args(argv)

    import torch

    from srcflask import create_app
    from srcflask.ml.engine import document_prompt
    from srcflask.ml.quality import load_documents
    from srcflask.registry import service as registry

    documents = load_documents(HERE / "documents.jsonl")[: args.limit]
    prompts = [document_prompt(d.title, d.body) for d in documents]
    app = create_app()
    stages = [{"stage": "the app, before any model", **memory()}]
    with app.app_context():
        champion = registry.production_version()
        if champion is None:
            raise SystemExit("no production model: flask --app srcflask models pull-default")
        challenger = registry.fetched_versions().get(args.challenger)
        if challenger is None:
            challenger = registry.pull(args.challenger)[0].version
        cached = app.config["GENERATION_CACHED_MODELS"]
        for role, version in (("champion", champion), ("challenger", challenger)):
            generator = registry.generator_for(version)
            stages.append({"stage": f"{role} {version.label} loaded", **memory()})
            generator.generate(prompts, registry.settings_for(version))
            stages.append(
                {"stage": f"{role} {version.label} wrote {len(prompts)} documents", **memory()}
            )
    result = {
        "command": "python bench/experiment_memory.py " + " ".join(argv or sys.argv[1:]),
        "commit": commit(),
        "machine": machine_name(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "torch_threads": torch.get_num_threads(),
        "cached_models": cached,
        "versions": {
            "champion": {"label": champion.label, "parameters": champion.parameter_count},
            "challenger": {"label": challenger.label, "parameters": challenger.parameter_count},
        },
        "documents": len(prompts),
        "stages": stages,
    }
    out = write_result(result, "experiment-memory", args.out)
    for stage in stages:
        print(f"{stage['stage']:<60} {stage['resident_mib']:>8.1f} MiB (peak {stage['peak_mib']})")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
