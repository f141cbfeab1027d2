"""A worker that runs for days: 300 jobs through one Celery worker process, its memory and files.

Run from services/web, with Postgres and Redis reachable:
    TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
    TEST_REDIS_URL=redis://127.0.0.1:6379/15 \\
    ../../.venv/bin/python bench/soak.py [--jobs 300] [--waves 10] [--model default|tiny]

The production processes start as in bench/load.py (nginx -> gunicorn -> srcflask, one
Celery worker with the solo pool, so one process runs every job). Sponsors save new
documents (bench/documents.jsonl, hundreds of tokens each) through nginx in waves;
after each wave drains, the worker's resident memory (VmRSS), open file descriptors
and threads are read from /proc. The first wave is the warm-up: the model loads, the
allocator and caches find their size. Target: resident memory after the last wave at
most 10% above the sample after the warm-up, and open files flat. The result goes to
bench/results/<machine>/<date>-soak.json. Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

WEB = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(WEB))
sys.path.insert(0, str(WEB / "bench"))
from decoding_study import commit, machine_name, write_result  # noqa: E402
from load import (  # noqa: E402
    PASSWORD,
    create_people,
    drop_database,
    fresh_database,
    production_model,
    queue_drained,
    topology_ready,
)

from tests.production_support import Topology, Visitor, wait_until  # noqa: E402

MAX_GROWTH = 0.10


def proc_figures(pid: int) -> dict:
    """Resident memory (MiB), open file descriptors and threads of one process."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))
    return {
        "rss_mib": round(rss_kb / 1024, 1),
        "open_files": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": threads,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--waves", type=int, default=10)
    parser.add_argument("--sponsors", type=int, default=5)
    parser.add_argument("--model", choices=("default", "tiny"), default="default")
    parser.add_argument("--out", type=Path, help="result JSON (default: bench/results/…)")
    args = parser.parse_args(argv)
    for name in ("TEST_DATABASE_URL", "TEST_REDIS_URL"):
        if not os.environ.get(name):
            parser.error(f"{name} must point at a Postgres database / Redis server")
    documents = [
        json.loads(line) for line in (WEB / "bench" / "documents.jsonl").open() if line.strip()
    ]
    work = Path(tempfile.mkdtemp(prefix="srcflask-soak-"))
    database_url, admin, database = fresh_database(os.environ["TEST_DATABASE_URL"])
    topology = Topology(work, database_url, production_model(args.model, work))
    if args.model == "default":
        topology.model_name = "gemma-3-270m"
    samples, per_wave, timings = [], args.jobs // args.waves, []
    try:
        topology.prepare()
        people = create_people(topology, args.sponsors, 1)
        topology.start()
        assert wait_until(lambda: topology_ready(topology), 300), topology.logs()
        worker = topology.processes["worker"].pid
        sponsors = []
        for account in people["sponsors"]:
            visitor = Visitor(topology.base)
            visitor.login(account["email"], PASSWORD)
            sponsors.append((visitor, visitor.form_token("/sponsor/documents/new")))
        saved = 0
        for _ in range(args.waves):
            started = time.monotonic()
            for _ in range(per_wave):
                visitor, token = sponsors[saved % len(sponsors)]
                document = documents[saved % len(documents)]
                answer = visitor.post(
                    "/sponsor/documents/new",
                    token,
                    title=f"{document['title']} #{saved}",
                    body=document["body"],
                )
                assert answer.status_code == 303, (answer.status_code, answer.text[:300])
                saved += 1
            assert wait_until(lambda: queue_drained(database_url), 3600, 2), topology.logs()
            timings.append(round(time.monotonic() - started, 1))
            samples.append({"jobs_done": saved, **proc_figures(worker)})
            print(json.dumps(samples[-1]), flush=True)
        engine = sa.create_engine(database_url)
        with engine.connect() as connection:
            statuses = dict(
                connection.execute(
                    sa.text("SELECT status, count(*) FROM machine_texts GROUP BY status")
                ).all()
            )
        engine.dispose()
    finally:
        topology.stop()
        drop_database(admin, database)

    warm, last = samples[0], samples[-1]
    growth = (last["rss_mib"] - warm["rss_mib"]) / warm["rss_mib"]
    verdicts = {
        f"resident memory grows at most {MAX_GROWTH:.0%} after the warm-up": growth <= MAX_GROWTH,
        "open files flat after the warm-up": max(s["open_files"] for s in samples[1:])
        <= warm["open_files"],
        "every job done": statuses.get("done", statuses.get("DONE")) == saved,
    }
    result = {
        "command": "python bench/soak.py " + " ".join(argv or sys.argv[1:]),
        "commit": commit(),
        "machine": machine_name(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "model": args.model,
        "jobs": saved,
        "worker": "celery, solo pool: one process runs every job",
        "warm_up": f"the first wave ({per_wave} jobs)",
        "rss_growth_after_warm_up": round(growth, 4),
        "machine_texts_by_status": {str(k).lower(): v for k, v in statuses.items()},
        "seconds_per_wave": timings,
        "samples": samples,
        "verdicts": verdicts,
    }
    out = write_result(result, "soak", args.out)
    print(f"resident memory {warm['rss_mib']} -> {last['rss_mib']} MiB ({growth:+.1%})")
    for verdict, held in verdicts.items():
        print(("ok   " if held else "MISS ") + verdict)
    print(f"result: {out}")
    return 0 if all(verdicts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
