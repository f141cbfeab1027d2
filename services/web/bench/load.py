"""Load test through the production topology: Locust against nginx -> gunicorn -> srcflask.

Run from services/web, with Postgres and Redis reachable:
    TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
    TEST_REDIS_URL=redis://127.0.0.1:6379/15 \\
    ../../.venv/bin/python bench/load.py [--minutes 5] [--sponsors 20] [--readers 20]

The processes are started as the production tests start them (tests/production_support.py:
boot.sh, gunicorn.conf.py with its default workers, a Celery worker, nginx.conf) on a
fresh Postgres database; the worker writes machine text with a tiny model, so the
queue is busy all along. Locust (installed from PyPI as requirements/load.txt locks
it, with hashes, into a virtual environment of its own, --tools) runs
bench/locustfile.py headless: sponsors saving realistic documents, editors browsing
lists, history and machine-text status.

After the run the queue is drained and the database checked against the saves the
server acknowledged: one document per acknowledged new document, one revision per
acknowledged save, one machine text per revision, each written once (done after one
attempt) or superseded by a newer save before the worker reached it, and the latest
revision of every document done. CPU time per process group says which part limits
throughput. The result (every figure, the command, commit and machine) goes to
bench/results/<machine>/<date>-load.json. Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

WEB = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(WEB))
sys.path.insert(0, str(WEB / "bench"))
from decoding_study import commit, machine_name, write_result  # noqa: E402

from tests import tinymodels  # noqa: E402
from tests.production_support import Topology, wait_until  # noqa: E402

# Locust's hashed lock (`make lock` makes it from load.in, whose pin names it).
LOCK = WEB / "requirements" / "load.txt"
LOCUST = next(
    line
    for line in (WEB / "requirements" / "load.in").read_text().splitlines()
    if line.startswith("locust==")
)
# Targets, in milliseconds, from the issue that asked for this test.
TARGETS = {"save_p99_ms": 250, "list_p99_ms": 300}
PASSWORD = "a load test passphrase"


def install_locust(folder: Path) -> Path:
    """A virtual environment with Locust; returns its locust program."""
    program = folder / "bin" / "locust"
    if not program.exists():
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
        pip = str(folder / "bin" / "pip")
        subprocess.run([pip, "install", "--quiet", "--require-hashes", "-r", str(LOCK)], check=True)
    return program


def fresh_database(base_url: str) -> tuple[str, sa.Engine, str]:
    base = sa.engine.make_url(base_url).set(drivername="postgresql+psycopg")
    name = f"srcflask_load_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    return base.set(database=name).render_as_string(hide_password=False), admin, name


def drop_database(admin: sa.Engine, name: str) -> None:
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def production_model(kind: str, work: Path) -> Path:
    """The folder of the model the worker writes with: a tiny one, or the default model."""
    if kind == "tiny":
        return tinymodels.build_model("llama", work / "tiny-llama", chat=True, seed=3, context=512)
    store = Path(os.environ.get("MODEL_STORE", WEB / "instance" / "models"))
    folders = sorted(store.glob("gemma-3-270m/v*"))
    if not folders:
        sys.exit("No default model here: run `flask --app srcflask models pull-default` first.")
    return folders[-1]


def create_people(topology: Topology, sponsors: int, readers: int) -> dict:
    """Approved sponsors and editors, made by the operator's own commands' code path."""
    script = f"""
import json, sys
from srcflask import create_app
from srcflask.extensions import db
from srcflask.models import Role, User, UserStatus
from srcflask.models.types import utcnow

app = create_app()
with app.app_context():
    people = {{"sponsors": [], "readers": []}}
    for n in range({readers}):
        editor = User(name=f"Editor {{n}}", email=f"editor{{n}}@load.example", organization="",
                      role=Role.EDITOR, status=UserStatus.APPROVED, approved_at=utcnow())
        editor.set_password({PASSWORD!r})
        db.session.add(editor)
        db.session.flush()
        people["readers"].append({{"email": editor.email, "password": {PASSWORD!r},
                                   "id": editor.id}})
    for n in range({sponsors}):
        sponsor = User(name=f"Sponsor {{n}}", email=f"sponsor{{n}}@load.example",
                       organization="", role=Role.SPONSOR, status=UserStatus.APPROVED,
                       approved_at=utcnow())
        sponsor.set_password({PASSWORD!r})
        db.session.add(sponsor)
        editor = people["readers"][n % max(len(people["readers"]), 1)]
        people["sponsors"].append({{"email": sponsor.email, "password": {PASSWORD!r},
                                    "editor_id": editor["id"]}})
    db.session.commit()
    json.dump(people, sys.stdout)
"""
    done = topology.boot("python", "-c", script, BOOT_MIGRATE="0", BOOT_PULL_MODEL="0")
    return json.loads(done.stdout.strip().splitlines()[-1])


class CpuMeter:
    """CPU seconds used by each process group while the load runs, sampled every second.

    Groups: the topology's processes by session (gunicorn, Celery, nginx), every
    `postgres` process (the server is shared, so other databases count too), Locust.
    """

    def __init__(self, groups: dict[str, int]):
        self.groups = groups  # name -> session id
        self.seen: dict[int, tuple[str, float]] = {}
        self.used: dict[str, float] = dict.fromkeys([*groups, "postgres", "other"], 0.0)
        self.stop = threading.Event()
        self.clock = os.sysconf("SC_CLK_TCK")

    def watch(self, name: str, session: int) -> None:
        self.groups[name] = session
        self.used.setdefault(name, 0.0)

    def _sample(self) -> None:
        names = {sid: name for name, sid in self.groups.items()}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            session = int(fields[3])
            cpu = (int(fields[11]) + int(fields[12])) / self.clock
            group = names.get(session) or ("postgres" if comm == "postgres" else "other")
            pid = int(entry.name)
            before = self.seen.get(pid)
            if before is not None:
                self.used[group] += cpu - before[1]
            self.seen[pid] = (group, cpu)

    def run(self) -> None:
        self._sample()
        while not self.stop.wait(1.0):
            self._sample()
        self._sample()


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile of sorted `values`."""
    return values[max(0, min(len(values) - 1, round(share * len(values)) - 1))]


def summarize(times: list[float], seconds: float) -> dict:
    times = sorted(times)
    return {
        "requests": len(times),
        "requests_per_second": round(len(times) / seconds, 2),
        "median_ms": round(percentile(times, 0.50)),
        "p95_ms": round(percentile(times, 0.95)),
        "p99_ms": round(percentile(times, 0.99)),
        "max_ms": round(times[-1]),
    }


def read_requests(path: Path) -> tuple[dict, dict, list[str], float]:
    """Figures per request name and per kind (save, list, page...) from the steady state.

    Returns (by name, by kind, every error of the whole run, steady seconds). The
    steady state starts when every person has started (logged in, first page).
    """
    rows, steady_from, errors = [], None, []
    for line in path.read_text().splitlines():
        started, name, milliseconds, error = line.split("\t")
        if name == "steady":
            steady_from = float(started)
            continue
        rows.append((float(started), name, float(milliseconds)))
        if error:
            errors.append(f"{name}: {error}")
    steady = [row for row in rows if steady_from is not None and row[0] >= steady_from]
    seconds = max(row[0] for row in steady) - steady_from if steady else 1.0
    by_name, by_kind = {}, {}
    for _, name, milliseconds in steady:
        by_name.setdefault(name, []).append(milliseconds)
        by_kind.setdefault(name.split(":")[0], []).append(milliseconds)
    by_kind["all"] = [row[2] for row in steady]
    return (
        {name: summarize(times, seconds) for name, times in sorted(by_name.items())},
        {kind: summarize(times, seconds) for kind, times in sorted(by_kind.items())},
        errors,
        seconds,
    )


def check_database(database_url: str, acks: list[tuple[str, int]]) -> dict:
    """The database against the acknowledged saves; returns figures and any problem found."""
    engine = sa.create_engine(database_url)
    with engine.connect() as connection:
        q = lambda sql: connection.execute(sa.text(sql)).all()  # noqa: E731
        documents = q("SELECT id FROM documents")
        revisions = q("SELECT count(*) FROM revisions")[0][0]
        per_revision = q(
            "SELECT r.id, count(m.id), min(m.status), min(m.attempts), max(m.attempts),"
            " r.number = (SELECT max(number) FROM revisions r2"
            "             WHERE r2.document_id = r.document_id)"
            " FROM revisions r LEFT JOIN machine_texts m ON m.revision_id = r.id GROUP BY r.id"
        )
        statuses = dict(q("SELECT status, count(*) FROM machine_texts GROUP BY status"))
    engine.dispose()
    problems = []
    new = sum(1 for kind, _ in acks if kind == "new")
    if len(documents) != new:
        problems.append(f"{len(documents)} documents for {new} acknowledged new documents")
    if revisions != len(acks):
        problems.append(f"{revisions} revisions for {len(acks)} acknowledged saves")
    acknowledged_ids = {document_id for _, document_id in acks}
    if acknowledged_ids != {row[0] for row in documents}:
        problems.append("the documents differ from the acknowledged ones")
    for revision_id, texts, status, fewest, most, latest in per_revision:
        status = (status or "").lower()
        if texts != 1:
            problems.append(f"revision {revision_id} has {texts} machine texts")
        elif status == "done" and not fewest == most == 1:
            problems.append(f"revision {revision_id}'s text took {most} attempts")
        elif status not in ("done", "superseded") or (latest and status != "done"):
            problems.append(f"revision {revision_id}'s machine text is {status}")
    return {
        "documents": len(documents),
        "revisions": revisions,
        "machine_texts_by_status": {str(k).lower(): v for k, v in statuses.items()},
        "problems": problems[:20],
        "problem_count": len(problems),
    }


def queue_drained(database_url: str) -> bool:
    engine = sa.create_engine(database_url)
    with engine.connect() as connection:
        busy = connection.execute(
            sa.text(
                "SELECT count(*) FROM machine_texts"
                " WHERE lower(status) IN ('waiting', 'queued', 'running')"
            )
        ).scalar()
    engine.dispose()
    return busy == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--sponsors", type=int, default=20)
    parser.add_argument("--readers", type=int, default=20)
    parser.add_argument(
        "--wait-scale", type=float, default=1.0,
        help="people's pauses between tasks times this (0: none, to find capacity)",
    )  # fmt: skip
    parser.add_argument("--model", choices=("tiny", "default"), default="tiny")
    parser.add_argument(
        "--hold-worker", action="store_true",
        help="start the worker only after the load: the web tier alone, for comparison",
    )  # fmt: skip
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE",
        help="a setting for every process (GENERATION_THREADS=1, ...); may be repeated",
    )  # fmt: skip
    parser.add_argument("--tools", type=Path, default=WEB / ".load-tools")
    parser.add_argument("--out", type=Path, help="result JSON (default: bench/results/…)")
    args = parser.parse_args(argv)
    for name in ("TEST_DATABASE_URL", "TEST_REDIS_URL"):
        if not os.environ.get(name):
            parser.error(f"{name} must point at a Postgres database / Redis server")
    settings = dict(item.split("=", 1) for item in args.set if "=" in item)
    if len(settings) != len(args.set):
        parser.error("--set takes NAME=VALUE")
    locust = install_locust(args.tools)
    work = Path(tempfile.mkdtemp(prefix="srcflask-load-"))
    database_url, admin, database = fresh_database(os.environ["TEST_DATABASE_URL"])
    topology = Topology(
        work,
        database_url,
        production_model(args.model, work),
        # gunicorn.conf.py's own default number of workers, as in production.
        GUNICORN_WORKERS="",
        **settings,
    )
    if args.model == "default":
        topology.model_name = "gemma-3-270m"
    try:
        topology.prepare()
        people = create_people(topology, args.sponsors, args.readers)
        topology.start_web()
        if not args.hold_worker:
            topology.start_worker()
        topology.start_nginx()
        ready = "production_model" if args.hold_worker else "all"
        assert wait_until(lambda: topology_ready(topology, ready), 120), topology.logs()
        accounts, acks_path = work / "accounts.json", work / "acks.txt"
        requests_path = work / "requests.tsv"
        accounts.write_text(json.dumps(people))
        acks_path.touch()
        users = args.sponsors + args.readers
        meter = CpuMeter({name: process.pid for name, process in topology.processes.items()})
        command = [
            str(locust), "-f", str(WEB / "bench" / "locustfile.py"), "--headless",
            "--host", topology.base, "--users", str(users),
            "--spawn-rate", str(max(users / 20, 1)),
            "--run-time", f"{int(args.minutes * 60)}s", "--stop-timeout", "30",
            "--only-summary", "--loglevel", "WARNING",
        ]  # fmt: skip
        env = os.environ | {
            "LOAD_ACCOUNTS": str(accounts),
            "LOAD_DOCUMENTS": str(WEB / "bench" / "documents.jsonl"),
            "LOAD_ACKS": str(acks_path),
            "LOAD_REQUESTS": str(requests_path),
            "LOAD_WAIT_SCALE": str(args.wait_scale),
        }
        sampler = threading.Thread(target=meter.run)
        started = time.monotonic()
        runner = subprocess.Popen(
            command, env=env, cwd=WEB, start_new_session=True,
            stdout=(work / "locust.log").open("w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        meter.watch("locust", runner.pid)
        sampler.start()
        runner.wait(timeout=args.minutes * 60 + 180)
        seconds = time.monotonic() - started
        meter.stop.set()
        sampler.join()
        if args.hold_worker:
            topology.start_worker()
        drained_at = time.monotonic()
        drained = wait_until(lambda: queue_drained(database_url), 600, 1)
        drain_seconds = round(time.monotonic() - drained_at, 1)
        acks = [(kind, int(n)) for kind, n in (line.split() for line in acks_path.open())]
        database_check = check_database(database_url, acks)
        by_name, by_kind, errors, steady_seconds = read_requests(requests_path)
    finally:
        topology.stop()
        drop_database(admin, database)

    cores_used = {k: round(v / seconds, 2) for k, v in meter.used.items()}
    verdicts = {
        "no errors (no 5xx, no timeout, no refusal)": not errors,
        f"save p99 under {TARGETS['save_p99_ms']} ms": by_kind["save"]["p99_ms"]
        < TARGETS["save_p99_ms"],
        f"list pages p99 under {TARGETS['list_p99_ms']} ms": by_kind["list"]["p99_ms"]
        < TARGETS["list_p99_ms"],
        "queue drained": drained,
        "database matches the acknowledged saves": database_check["problem_count"] == 0,
    }
    result = {
        "command": "python bench/load.py " + " ".join(argv or sys.argv[1:]),
        "commit": commit(),
        "machine": machine_name(),
        "cpu_count": os.cpu_count(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "locust": LOCUST,
        "topology": "nginx -> gunicorn (gunicorn.conf.py defaults) -> srcflask; one Celery "
        "worker; Postgres and Redis on loopback",
        "model": args.model,
        "worker_during_load": not args.hold_worker,
        "settings": settings,
        "users": {"sponsors": args.sponsors, "readers": args.readers},
        "wait_scale": args.wait_scale,
        "seconds": round(seconds),
        "targets": TARGETS,
        "verdicts": verdicts,
        "steady_seconds": round(steady_seconds),
        "by_kind": by_kind,
        "by_request": by_name,
        "errors": errors[:50],
        "error_count": len(errors),
        "acknowledged_saves": {
            "new": sum(1 for k, _ in acks if k == "new"),
            "edit": sum(1 for k, _ in acks if k == "edit"),
        },
        "database": database_check,
        "drain_seconds_after_load": drain_seconds,
        "cores_used_during_load": cores_used,
    }
    name = "load-web-alone" if args.hold_worker else "load"
    out = write_result(result, name, args.out)
    for name, row in [*by_name.items(), *by_kind.items()]:
        print(
            f"{name:32} {row['requests']:6} req "
            f"p50 {row['median_ms']:6}  p95 {row['p95_ms']:6}  p99 {row['p99_ms']:6} ms"
        )
    print("cores used:", cores_used)
    print("database:", database_check)
    for verdict, held in verdicts.items():
        print(("ok   " if held else "MISS ") + verdict)
    print(f"result: {out}")
    return 0 if all(verdicts.values()) else 1


def topology_ready(topology: Topology, check: str = "all") -> bool:
    """/readyz is green (`all`), or one of its checks is ok."""
    import requests

    try:
        answer = requests.get(topology.base + "/readyz", timeout=5)
    except requests.RequestException:
        return False
    if check == "all":
        return answer.status_code == 200
    return answer.json().get("checks", {}).get(check) == "ok"


if __name__ == "__main__":
    sys.exit(main())
