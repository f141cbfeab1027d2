"""Measure whether a failed login tells a registered email from an unknown one.

Run from services/web:

    ../../.venv/bin/python bench/login_timing.py [--rounds 30]

Starts srcflask under gunicorn on loopback (one worker, one thread, a SQLite
database in a temporary folder, rate limits raised so none is reached), makes an
account and an account with three repeated sign-ups, then sends wrong passwords
for them and for unknown emails in turn, through a real HTTP connection. Writes
the medians side by side, with the command, commit and machine, to
bench/results/<machine>/<date>-login-timing.json. Not a test: timings depend
on the machine; the test is `test_every_failed_login_hashes_the_same`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
WEB = HERE.parent
sys.path.insert(0, str(WEB))

from bench.decoding_study import commit, machine_name  # noqa: E402

PASSWORD = "a long enough passphrase"
WRONG = "not the passphrase at all"
CASES = {
    "unknown email": None,
    "registered email": "owner@example.org",
    "registered email with 3 repeated sign-ups": "repeated@example.org",
}
NO_LIMIT = "1000000 per minute"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_accounts(env: dict) -> None:
    """Create the accounts in the benchmark's database, as sign-ups do."""
    script = (
        "from srcflask import create_app\n"
        "from srcflask.extensions import db\n"
        "from srcflask.accounts.service import register\n"
        "app = create_app()\n"
        "with app.app_context():\n"
        "    db.create_all()\n"
        "    for email, times in (('owner@example.org', 1), ('repeated@example.org', 4)):\n"
        "        for _ in range(times):\n"
        f"            register(name='Bench', email=email, organization='', password={PASSWORD!r},"
        " role='sponsor', ip_address='127.0.0.1')\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=WEB, env=env, check=True)


def attempt(http: requests.Session, base: str, email: str) -> float:
    """Seconds one wrong-password login takes, from sending the form to the answer."""
    page = http.get(f"{base}/auth/login")
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text)
    form = {"email": email, "password": WRONG, "csrf_token": token.group(1) if token else ""}
    start = time.perf_counter()
    answer = http.post(f"{base}/auth/login", data=form, allow_redirects=False)
    seconds = time.perf_counter() - start
    assert answer.status_code == 401, (answer.status_code, answer.text[:300])
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="attempts per case")
    parser.add_argument("--out", type=Path, help="JSON file (default: bench/results/…)")
    args = parser.parse_args(argv)
    at_commit = commit()
    folder = tempfile.mkdtemp()
    port = free_port()
    env = dict(
        os.environ,
        SRCFLASK_ENV="development",
        SRCFLASK_INSTANCE_PATH=folder,
        DATABASE_URL=f"sqlite:///{folder}/timing.sqlite3",
        SECRET_KEY="login-timing-" + "x" * 32,
        GUNICORN_WORKERS="1",
        GUNICORN_THREADS="1",
        RATELIMIT_LOGIN_PER_IP=NO_LIMIT,
        RATELIMIT_LOGIN_PER_ACCOUNT=NO_LIMIT,
        RATELIMIT_LOGIN_PER_ACCOUNT_AND_IP=NO_LIMIT,
        RATELIMIT_SIGNUP_PER_IP=NO_LIMIT,
        RATELIMIT_SIGNUP_PER_ACCOUNT=NO_LIMIT,
    )
    make_accounts(env)
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", "1", "--threads", "1",
         "--bind", f"127.0.0.1:{port}", "--access-logfile", "/dev/null",
         "srcflask:create_app()"],
        cwd=WEB, env=env, stdout=subprocess.DEVNULL, stderr=open(f"{folder}/server.log", "w"),  # noqa: SIM115
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                requests.get(f"{base}/auth/login", timeout=10)
                break
            except requests.RequestException:
                if server.poll() is not None:
                    sys.exit(f"the server stopped; see {folder}/server.log")
                time.sleep(0.5)
        http = requests.Session()
        samples: dict[str, list[float]] = {case: [] for case in CASES}
        for email in CASES.values():  # warm-up: the first login of a process
            attempt(http, base, email or "warm-up@example.org")
        for i in range(args.rounds):
            for case, email in CASES.items():
                samples[case].append(attempt(http, base, email or f"nobody{i}@example.org"))
    finally:
        server.terminate()
        server.wait(10)
    medians = {case: round(statistics.median(s) * 1000, 1) for case, s in samples.items()}
    unknown = medians["unknown email"]
    result = {
        "benchmark": "login-timing",
        "command": "python bench/login_timing.py " + " ".join(argv or sys.argv[1:]),
        "commit": at_commit,
        "machine": machine_name(),
        "date": datetime.datetime.now(datetime.UTC).date().isoformat(),
        "server": "gunicorn, 1 worker, 1 thread, loopback, SQLite, development config",
        "rounds": args.rounds,
        # Other processes' load skews every case alike, but widens the spread.
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "median_ms": medians,
        "ratio_to_unknown": {case: round(ms / unknown, 3) for case, ms in medians.items()},
        "samples_ms": {case: [round(x * 1000, 1) for x in s] for case, s in samples.items()},
    }
    out = args.out or HERE / "results" / result["machine"] / f"{result['date']}-login-timing.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    for case, ms in medians.items():
        print(f"{case:45s} median {ms:7.1f} ms  x{result['ratio_to_unknown'][case]:.3f}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
