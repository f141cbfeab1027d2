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
`--engine` sends the same traffic (the same seed and rate give the same saves
at the same moments) straight into the engine in this process, with no web
app, database or polling: the difference between the two runs is what the
app adds to the wait, and the rest is the engine's own. Not a test: run it by
hand.

    cd services/web
    SRCFLASK_INSTANCE_PATH=/tmp/benchinst ../../.venv/bin/python bench/latency.py \
        --minutes 5 --load 0.7
    SRCFLASK_INSTANCE_PATH=/tmp/benchinst ../../.venv/bin/python bench/latency.py \
        --minutes 5 --rate 17.3 --engine

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
from dataclasses import dataclass
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


BURST = 12  # documents saved at once to measure capacity
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


@dataclass(frozen=True)
class Save:
    at: float  # seconds after the run's start
    document: int  # index into the documents


def poisson_saves(
    rate: float, minutes: float, seed: int, documents: int, most: int = 1000
) -> list[Save]:
    """Saves at Poisson arrivals, `rate` a second for `minutes`, each of a document drawn
    at random from the first `documents`; at most `most`. The same arguments, the same saves."""
    rng = random.Random(seed)
    saves: list[Save] = []
    at = rng.expovariate(rate)
    while at < minutes * 60 and len(saves) < most:
        saves.append(Save(at, rng.randrange(documents)))
        at += rng.expovariate(rate)
    return saves


class App:
    """srcflask on a loopback port, in a fresh instance; sponsors save through its API.

    `run(saves)` makes each save at its moment (a thread each) and returns each one's
    wait as the server recorded it (None if no machine text came), and the run's length.
    """

    def __init__(self, source: Path, documents, poll: float):
        self.documents, self.poll = documents, poll
        self.workdir = Path(tempfile.mkdtemp(prefix="srcflask-latency-"))
        # The source's database (its model registry) and secret key, its model store as it is.
        shutil.copy(source / "srcflask.sqlite3", self.workdir / "srcflask.sqlite3")
        if (source / "secret_key").exists():
            shutil.copy(source / "secret_key", self.workdir / "secret_key")
        self.tokens = prepare_instance(source, self.workdir, SPONSORS)
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "SRCFLASK_INSTANCE_PATH": str(self.workdir),
            "MODEL_STORE": str(source / "models"),
            "JOBS_MODE": "local",
            "LOG_LEVEL": "WARNING",
            "RATELIMIT_ENABLED": "false",
        }
        self.server = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "srcflask", "run", "--port", str(port)],
            cwd=WEB,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        for _ in range(120):
            try:
                urllib.request.urlopen(self.base + "/healthz", timeout=2)
                break
            except OSError:
                time.sleep(0.5)

    def close(self) -> None:
        self.server.terminate()
        try:
            self.server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.server.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def run(self, saves: list[Save]) -> tuple[list[float | None], float]:
        waits: list[float | None] = [None] * len(saves)
        started = time.monotonic()

        def one(number: int, save: Save) -> None:
            token = self.tokens[number % SPONSORS]
            document = self.documents[save.document]
            body = {"title": document.title, "body": document.body}
            document_id = request(self.base, token, "POST", "/api/v1/documents", body)["id"]
            text = wait_until_done(
                self.base, token, document_id, time.monotonic() + 1800, self.poll
            )
            if text and text["status"] == "done":
                waits[number] = seconds_between(text["queued_at"], text["finished_at"])

        threads = []
        for number, save in enumerate(saves):
            time.sleep(max(0.0, started + save.at - time.monotonic()))
            thread = threading.Thread(target=one, args=(number, save))
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join(timeout=1800)
        return waits, time.monotonic() - started


class Engine:
    """The production model's engine in this process, as the app configures it (its
    settings, GENERATION_BATCH_SIZE documents at once, GENERATION_MAX_ROWS): no web
    app, database or polling. A save joins the running batch at the first step
    boundary after its moment, or waits in line for a place."""

    def __init__(self, source: Path, documents):
        os.environ["SRCFLASK_INSTANCE_PATH"] = str(source)
        os.environ["JOBS_MODE"] = "manual"
        from srcflask import create_app
        from srcflask.ml.engine import document_prompt
        from srcflask.registry import service as registry

        app = create_app()
        with app.app_context():
            version = registry.production_version()
            if version is None:
                raise SystemExit(
                    f"no production model in {source}: "
                    "run `flask --app srcflask models pull-default`"
                )
            self.generator = registry.generator_for(version)
            self.settings = registry.settings_for(version)
            self.places = app.config["GENERATION_BATCH_SIZE"]
        self.prompts = [document_prompt(d.title, d.body) for d in documents]

    def close(self) -> None:
        pass

    def run(self, saves: list[Save]) -> tuple[list[float | None], float]:
        started = time.monotonic()
        due = 0  # the next save not yet made
        line: list[int] = []  # saves made, waiting for a place
        running: set[int] = set()
        finished: dict[int, float] = {}

        def arrived() -> None:
            nonlocal due
            now = time.monotonic() - started
            while due < len(saves) and saves[due].at <= now:
                line.append(due)
                due += 1

        def more(count: int) -> list[tuple[int, str]]:
            arrived()
            taken = line[: max(0, min(count, self.places - len(running)))]
            del line[: len(taken)]
            running.update(taken)
            return [(number, self.prompts[saves[number].document]) for number in taken]

        def on_result(number: int, result) -> None:
            finished[number] = time.monotonic() - started
            running.discard(number)

        while due < len(saves) or line:
            arrived()
            if not line:
                time.sleep(max(0.0, started + saves[due].at - time.monotonic()))
                continue
            self.generator.generate_continuously(
                more(self.places), self.settings, more=more, on_result=on_result
            )
        waits = [
            finished[number] - save.at if number in finished else None
            for number, save in enumerate(saves)
        ]
        return waits, time.monotonic() - started


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
    parser.add_argument(
        "--engine",
        action="store_true",
        help="send the saves straight into the engine in this process, without the app",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.rate is not None and args.rate <= 0:
        parser.error("--rate must be above 0 saves per minute")

    source = Path(os.environ.get("SRCFLASK_INSTANCE_PATH") or WEB / "instance")
    from srcflask.ml.quality import load_documents

    documents = load_documents(HERE / "documents.jsonl")[: args.documents]
    target = Engine(source, documents) if args.engine else App(source, documents, args.poll)
    try:
        # 1. Each document's solo time: saved alone on an idle app (the model warm).
        target.run([Save(0.0, len(documents) - 1)])
        solo = []
        for index in range(len(documents)):
            [wait], _ = target.run([Save(0.0, index)])
            if wait is None:
                raise SystemExit(f"document {index} got no machine text when saved alone")
            solo.append(wait)
        solo_median = statistics.median(solo)
        print(f"solo: {', '.join(f'{s:.1f}' for s in solo)} s; median {solo_median:.1f} s")

        # 2. Capacity: a full queue of documents, saved at once by every sponsor.
        burst = [Save(0.0, i % len(documents)) for i in range(BURST)]
        _, seconds = target.run(burst)
        capacity = len(burst) / seconds
        print(f"capacity: {capacity * 60:.1f} documents/min with a full queue")

        # 3. Poisson arrivals at `load` x capacity (or `--rate`), for `minutes`.
        rate = args.rate / 60 if args.rate else args.load * capacity
        saves = poisson_saves(rate, args.minutes, args.seed, len(documents))
        answered, _ = target.run(saves)
        pairs = zip(answered, saves, strict=True)
        done = [(wait, save) for wait, save in pairs if wait is not None]
        if not done:
            raise SystemExit(
                f"{len(saves)} saves sent, no machine text written: run longer or at a higher rate"
            )
        waits = sorted(wait for wait, _ in done)
        ratios = sorted(wait / solo[save.document] for wait, save in done)
        median = statistics.median(waits)
        p95 = percentile(waits, 0.95)
        print(
            f"{len(saves)} saves at {rate * 60:.1f}/min ({rate / capacity:.0%} of capacity) for "
            f"{args.minutes:g} min{' into the engine alone' if args.engine else ''}; "
            f"{len(waits)} machine texts written"
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
                        "target": "engine" if args.engine else "app",
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
        target.close()


if __name__ == "__main__":
    main()
