"""Benchmark: how long a save waits for its machine text when the app is busy.

Starts srcflask on a loopback port (the embedded default: SQLite and the
in-process runner, in a fresh instance folder with the production model of
the given instance), then has several sponsors save the realistic documents
of bench/documents.jsonl through the API at Poisson arrivals, at a share of
the measured capacity, for a fixed time. Each save's wait is its machine
text's `finished_at - queued_at`, as the server recorded them. A waiting
sponsor asks for its machine text every `--poll` seconds (0.5; a document's
page asks every 1.5 s): in the embedded default those requests are served by
the process that generates.

It first measures, in the same run, each document's solo generation time
(saved alone on an idle app) and the capacity (documents per second with a
full queue), then reports the median and 95th percentile wait beside the
median solo time, and each save's wait over its own document's solo time:
documents differ in length and in how soon their beams end (38 to 100 new
tokens), so a save is compared with itself alone. The first `--documents`
documents are used throughout (the first 10: 88 to 907 tokens, mean 461, as
all 30's 458). Runs measure their own capacity, which moves with a shared
machine's speed; `--rate` sends the same traffic in runs to be compared.
Not a test: run it by hand.

    cd services/web
    SRCFLASK_INSTANCE_PATH=/tmp/benchinst ../../.venv/bin/python bench/latency.py \
        --minutes 5 --load 0.7

Traffic goes only to 127.0.0.1, with a bounded number of requests.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
WEB = HERE.parent
SPONSORS = 4


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def prepare_instance(source: Path, target: Path, sponsors: int) -> list[str]:
    """A fresh instance sharing `source`'s model store; return the sponsors' API tokens."""
    os.environ["SRCFLASK_INSTANCE_PATH"] = str(target)
    os.environ["MODEL_STORE"] = str(source / "models")
    os.environ["JOBS_MODE"] = "manual"  # this process only sets up; the server runs the jobs
    from srcflask import create_app
    from srcflask.accounts import service as accounts
    from srcflask.extensions import db
    from srcflask.models import Role, User, UserStatus
    from srcflask.registry import service as registry

    app = create_app()
    with app.app_context():
        if registry.production_version() is None:
            raise SystemExit(
                f"no production model in {source}: run `flask --app srcflask models pull-default`"
            )
        tokens = []
        for number in range(sponsors):
            user = User(
                name=f"Bench sponsor {number}",
                email=f"bench{number}@example.org",
                organization="bench",
                role=Role.SPONSOR,
                status=UserStatus.APPROVED,
            )
            user.set_password(f"bench password {number} {time.time()}")
            db.session.add(user)
            db.session.commit()
            tokens.append(accounts.issue_token(user, "latency bench", 1, "127.0.0.1"))
    return tokens


def request(base: str, token: str, method: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        base + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as response:
        return json.loads(response.read() or b"{}")


POLL_SECONDS = 0.5  # how often a waiting sponsor asks for its machine text (--poll)


def wait_until_done(
    base: str, token: str, document_id: int, deadline: float, poll: float
) -> dict | None:
    while time.monotonic() < deadline:
        text = request(base, token, "GET", f"/api/v1/documents/{document_id}")["machine_text"]
        if text and text["status"] in ("done", "failed"):
            return text
        time.sleep(poll)
    return None


def percentile(values: list[float], share: float) -> float:
    """The value at `share` of the sorted `values` (nearest rank)."""
    return values[min(len(values) - 1, round(share * (len(values) - 1)))]


def seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--load", type=float, default=0.7, help="share of measured capacity")
    parser.add_argument(
        "--rate",
        type=float,
        help="saves per minute, instead of --load x the capacity this run measures: "
        "the same traffic in runs to compare",
    )
    parser.add_argument(
        "--documents", type=int, default=10, help="the first N documents: each timed alone"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--poll",
        type=float,
        default=POLL_SECONDS,
        help="seconds between a waiting sponsor's requests for its machine text",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.rate is not None and args.rate <= 0:
        parser.error("--rate must be above 0 saves per minute")

    source = Path(os.environ.get("SRCFLASK_INSTANCE_PATH") or WEB / "instance")
    from srcflask.ml.quality import load_documents

    documents = load_documents(HERE / "documents.jsonl")[: args.documents]
    workdir = Path(tempfile.mkdtemp(prefix="srcflask-latency-"))
    # The source's database (its model registry) and secret key, its model store as it is.
    shutil.copy(source / "srcflask.sqlite3", workdir / "srcflask.sqlite3")
    if (source / "secret_key").exists():
        shutil.copy(source / "secret_key", workdir / "secret_key")
    tokens = prepare_instance(source, workdir, SPONSORS)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "SRCFLASK_INSTANCE_PATH": str(workdir),
        "MODEL_STORE": str(source / "models"),
        "JOBS_MODE": "local",
        "LOG_LEVEL": "WARNING",
        "RATELIMIT_ENABLED": "false",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "srcflask", "run", "--port", str(port)],
        cwd=WEB,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        rng = random.Random(args.seed)

        def save(token: str, document) -> int:
            body = {"title": document.title, "body": document.body}
            created = request(base, token, "POST", "/api/v1/documents", body)
            return created["id"]

        # 1. Each document's solo time: saved alone on an idle app (the model warm).
        warm_up = save(tokens[0], documents[-1])
        wait_until_done(base, tokens[0], warm_up, time.monotonic() + 600, args.poll)
        solo = []
        for document in documents:
            document_id = save(tokens[0], document)
            text = wait_until_done(base, tokens[0], document_id, time.monotonic() + 600, args.poll)
            solo.append(seconds_between(text["queued_at"], text["finished_at"]))
        solo_median = statistics.median(solo)
        print(f"solo: {', '.join(f'{s:.1f}' for s in solo)} s; median {solo_median:.1f} s")

        # 2. Capacity: a full queue of documents, saved at once by every sponsor.
        burst = [documents[i % len(documents)] for i in range(12)]
        started = time.monotonic()
        ids = [(tokens[i % SPONSORS], save(tokens[i % SPONSORS], d)) for i, d in enumerate(burst)]
        for token, document_id in ids:
            wait_until_done(base, token, document_id, time.monotonic() + 1800, args.poll)
        capacity = len(burst) / (time.monotonic() - started)
        print(f"capacity: {capacity * 60:.1f} documents/min with a full queue")

        # 3. Poisson arrivals at `load` x capacity (or `--rate`), for `minutes`.
        rate = args.rate / 60 if args.rate else args.load * capacity
        end = time.monotonic() + args.minutes * 60
        waits: list[float] = []
        ratios: list[float] = []  # each save's wait over its document's solo time
        threads = []
        lock = threading.Lock()

        def one(token: str, index: int) -> None:
            document_id = save(token, documents[index])
            text = wait_until_done(base, token, document_id, time.monotonic() + 1800, args.poll)
            if text and text["status"] == "done":
                wait = seconds_between(text["queued_at"], text["finished_at"])
                with lock:
                    waits.append(wait)
                    ratios.append(wait / solo[index])

        sent = 0
        next_at = time.monotonic() + rng.expovariate(rate)
        while next_at < end and sent < 1000:
            time.sleep(max(0.0, next_at - time.monotonic()))
            index = rng.randrange(len(documents))
            thread = threading.Thread(target=one, args=(tokens[sent % SPONSORS], index))
            thread.start()
            threads.append(thread)
            sent += 1
            next_at += rng.expovariate(rate)
        for thread in threads:
            thread.join(timeout=1800)
        if not waits:
            raise SystemExit(
                f"{sent} saves sent, no machine text written: run longer or at a higher rate"
            )
        waits.sort()
        ratios.sort()
        median = statistics.median(waits)
        p95 = percentile(waits, 0.95)
        print(
            f"{sent} saves at {rate * 60:.1f}/min ({rate / capacity:.0%} of capacity) for "
            f"{args.minutes:g} min; {len(waits)} machine texts written"
        )
        print(
            f"save -> machine text: median {median:.1f} s ({median / solo_median:.2f}x solo), "
            f"p95 {p95:.1f} s ({p95 / solo_median:.2f}x solo)"
        )
        print(
            f"each save against its document alone: median {statistics.median(ratios):.2f}x, "
            f"p95 {percentile(ratios, 0.95):.2f}x"
        )
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "solo": solo,
                        "capacity_per_min": capacity * 60,
                        "rate_per_min": rate * 60,
                        "waits": waits,
                        "median": median,
                        "p95": p95,
                        "ratios": ratios,
                    },
                    indent=2,
                )
            )
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
