"""Benchmark: the load test repeated, to tell a setting's effect from a noisy machine.

One load test (bench/load.py) is one sample of a shared machine: on 2 cores the
save p99 of the same commit has read 112 ms on one run and 282 ms on another.
This runs load.py ROUNDS times for each variant, interleaved (A, B, A, B, ...)
so that both meet the same noise, and reports every run's figures and the
median per variant:

- `default`: the worker as deployed (GENERATION_THREADS from the cores);
- `one-generation-thread`: GENERATION_THREADS=1, leaving a core to the web tier.

Needs what load.py needs (TEST_DATABASE_URL, TEST_REDIS_URL, nginx, Locust in
.load-tools). Each run takes load.py's minutes plus about a minute and a half.

    cd services/web
    ../../.venv/bin/python bench/load_repeats.py --rounds 3

writes bench/results/<machine>/<date>-load-repeats.json (each run's own file goes
to a temporary folder; the figures that matter are copied into this one).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from decoding_study import commit, machine_name, write_result  # noqa: E402

VARIANTS = {
    "default": [],
    "one-generation-thread": ["--set", "GENERATION_THREADS=1"],
}


def summary(run: dict) -> dict:
    """The figures of one load.py result that the comparison needs."""
    kinds = run["by_kind"]
    return {
        "requests_per_second": kinds["all"]["requests_per_second"],
        "save_p50_ms": kinds["save"]["median_ms"],
        "save_p99_ms": kinds["save"]["p99_ms"],
        "list_p99_ms": kinds["list"]["p99_ms"],
        "errors": run["error_count"],
        "targets_met": all(run["verdicts"].values()),
        "verdicts": run["verdicts"],
        "worker_cores": run["cores_used_during_load"].get("worker"),
        "date": run["date"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs of each variant")
    parser.add_argument("--minutes", type=float, default=5, help="each run's load (load.py)")
    parser.add_argument("--out", type=Path, help="result JSON (default: bench/results/…)")
    args = parser.parse_args(argv)

    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="srcflask-load-") as folder:
        for round_number in range(1, args.rounds + 1):
            for variant, extra in VARIANTS.items():
                out = Path(folder) / f"{round_number}-{variant}.json"
                command = [sys.executable, str(HERE / "load.py"), "--minutes", str(args.minutes)]
                print(f"round {round_number}, {variant}", flush=True)
                done = subprocess.run([*command, *extra, "--out", str(out)], check=False)
                if done.returncode not in (0, 1) or not out.exists():  # 1: a target missed
                    raise SystemExit(f"load.py stopped with exit code {done.returncode}")
                figures = summary(json.loads(out.read_text()))
                runs.append({"round": round_number, "variant": variant, **figures})
                print(json.dumps(runs[-1]), flush=True)
    medians = {}
    for variant in VARIANTS:
        mine = [r for r in runs if r["variant"] == variant]
        medians[variant] = {
            name: statistics.median(r[name] for r in mine)
            for name in ("requests_per_second", "save_p50_ms", "save_p99_ms", "list_p99_ms")
        }
        medians[variant]["runs_meeting_every_target"] = sum(r["targets_met"] for r in mine)
    result = {
        "command": "python bench/load_repeats.py " + " ".join(argv or sys.argv[1:]),
        "commit": commit(),
        "machine": machine_name(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "minutes_per_run": args.minutes,
        "rounds": args.rounds,
        "variants": {name: " ".join(extra) or "(as deployed)" for name, extra in VARIANTS.items()},
        "targets": {"save_p99_ms": 250, "list_p99_ms": 300},
        "runs": runs,
        "medians": medians,
    }
    path = write_result(result, "load-repeats", args.out)
    print(json.dumps(medians, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
