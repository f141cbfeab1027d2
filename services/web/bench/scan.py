"""Attack srcflask with scanners nobody on the team wrote: wapiti and sqlmap.

Run from services/web: ../../.venv/bin/python bench/scan.py [--minutes N] [--tools DIR]

It starts srcflask on a loopback port (SQLite, demo accounts, a few documents),
then runs, with each role's login:
- wapiti (crawl and attack: injections, XSS, stored XSS, redirects, SSRF, CRLF,
  CSRF, XXE, HTTP methods, backup files; logout excluded from the crawl);
- sqlmap (--batch, level 2) on every query parameter of the JSON API's lists,
  with a bearer token, and on the login form.
The tools are installed from PyPI, exactly as requirements/scan.txt (hashed) locks
them, into a virtual environment of their own (--tools, default
services/web/.scan-tools), never into the app's. The summary (every finding,
and what each scan covered) is written to bench/results/<machine>/<date>-scan.json;
the raw reports stay in a temporary folder. Exits 1 when a scanner reported a
vulnerability, or when a scan reached no verdict.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import requests

WEB = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(WEB / "bench"))
from decoding_study import commit, machine_name, write_result  # noqa: E402

# The scanners' hashed lock (`make lock` makes it from scan.in, whose pins name them).
LOCK = WEB / "requirements" / "scan.txt"
TOOLS = dict(
    line.split("==")
    for line in (WEB / "requirements" / "scan.in").read_text().splitlines()
    if "==" in line and not line.startswith("#")
)
# The attacks the issue asks for, by wapiti's module names.
WAPITI_MODULES = "sql,timesql,exec,file,xss,permanentxss,redirect,ssrf,crlf,csrf,xxe,methods,backup"
ROLES = ("sponsor", "editor", "admin")
# sqlmap's verdict when it found nothing.
CLEAN = "no tested parameter appears to be injectable"
# Each attack module's time per role, after the crawl.
ATTACK_SECONDS = 30


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def install_tools(folder: Path) -> Path:
    """A virtual environment with the scanners; returns its bin folder."""
    bin_dir = folder / "bin"
    if not (bin_dir / "wapiti").exists() or not (bin_dir / "sqlmap").exists():
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
        subprocess.run(
            [str(bin_dir / "pip"), "install", "--quiet", "--require-hashes", "-r", str(LOCK)],
            check=True,
        )
    return bin_dir


def start_app(instance: Path) -> tuple[subprocess.Popen, str, dict]:
    """srcflask with demo accounts on a free loopback port; returns (process, url, logins)."""
    env = os.environ | {
        "SRCFLASK_ENV": "development",
        "SRCFLASK_INSTANCE_PATH": str(instance),
        "DATABASE_URL": f"sqlite:///{instance / 'scan.sqlite3'}",
        "JOBS_MODE": "manual",
        "LOG_LEVEL": "WARNING",
        # Scanners send thousands of requests from one address: the limits would only
        # answer 429 to them, which would hide what the pages do.
        "RATELIMIT_ENABLED": "false",
    }
    env.pop("CELERY_BROKER_URL", None)
    flask = [sys.executable, "-m", "flask", "--app", "srcflask"]
    subprocess.run([*flask, "db", "upgrade"], cwd=WEB, env=env, check=True, capture_output=True)
    subprocess.run([*flask, "seed-demo"], cwd=WEB, env=env, check=True, capture_output=True)
    logins = {}
    for line in (instance / "demo-logins.txt").read_text().splitlines():
        role, email, _, password = line.split()
        logins[role] = (email, password)
    port = free_port()
    process = subprocess.Popen(
        [*flask, "run", "--host", "127.0.0.1", "--port", str(port)],
        cwd=WEB,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(150):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.2)
    return process, f"http://127.0.0.1:{port}", logins


def csrf(page: str) -> str:
    """The CSRF token of the first form on a page."""
    tag = re.search(r'<input[^>]*name="csrf_token"[^>]*>', page).group(0)
    return re.search(r'value="([^"]+)"', tag).group(1)


def login(base: str, email: str, password: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{base}/auth/login").text
    token = csrf(page)
    answer = session.post(
        f"{base}/auth/login",
        data={"csrf_token": token, "email": email, "password": password},
        allow_redirects=False,
    )
    assert answer.status_code == 303, answer.status_code
    return session


def seed_content(base: str, sessions: dict) -> str:
    """Documents to crawl and attack, and an API token of the sponsor's; returns the token."""
    sponsor = sessions["sponsor"]
    editors = sponsor.get(f"{base}/sponsor/documents/new").text
    editor_id = re.search(r'<option value="(\d+)"[^>]*>Demo Editor', editors)
    for i in range(3):
        page = sponsor.get(f"{base}/sponsor/documents/new").text
        token = csrf(page)
        sponsor.post(
            f"{base}/sponsor/documents/new",
            data={
                "csrf_token": token,
                "title": f"Minutes {i}",
                "body": "The board met on Tuesday. First, the treasurer reported",
                "editor_id": editor_id.group(1) if editor_id else "",
            },
        )
    page = sponsor.get(f"{base}/account/tokens").text
    token = csrf(page)
    made = sponsor.post(
        f"{base}/account/tokens", data={"csrf_token": token, "name": "scan", "expires_in_days": "7"}
    ).text
    secret = re.search(r'id="new-token">([^<]+)<', made)
    return secret.group(1) if secret else ""


def run_wapiti(tools: Path, base: str, role: str, email: str, password: str, out: Path, minutes):
    report = out / f"wapiti-{role}.json"
    command = [
        str(tools / "wapiti"),
        "-u", f"{base}/",
        "--scope", "folder",
        "-m", WAPITI_MODULES,
        "--form-url", f"{base}/auth/login",
        "--form-user", email,
        "--form-password", password,
        # What ends the scanner's own session: attacked, every later answer would be the
        # login page, and wapiti would report each form as missing its CSRF check.
        "-x", f"{base}/auth/logout",
        "-x", f"{base}/account/sessions/end-all",
        "-x", f"{base}/account/password",
        "--max-scan-time", str(int(minutes * 60)),
        "--max-attack-time", str(ATTACK_SECONDS),
        "--flush-session",
        "-f", "json",
        "-o", str(report),
        "--no-bugreport",
    ]  # fmt: skip
    started = time.monotonic()
    # A run that ends without a report never started scanning (wapiti stopped at its
    # options or its session store): it is tried once more, and both tries are recorded.
    for attempt in (1, 2):
        done = subprocess.run(command, capture_output=True, text=True, timeout=minutes * 60 + 600)
        if report.exists() or attempt == 2:
            break
    found = json.loads(report.read_text()) if report.exists() else {}
    vulnerabilities = {
        kind: items for kind, items in found.get("vulnerabilities", {}).items() if items
    }
    anomalies = {kind: items for kind, items in found.get("anomalies", {}).items() if items}
    return {
        "role": role,
        "exit_code": done.returncode,
        "seconds": round(time.monotonic() - started),
        "crawled": found.get("infos", {}).get("crawled_pages_nbr"),
        "vulnerabilities": {k: [i.get("info") for i in v] for k, v in vulnerabilities.items()},
        "anomalies": {
            k: [f"{i.get('method')} {i.get('path')}: {i.get('info')}" for i in v]
            for k, v in anomalies.items()
        },
        "attempts": attempt,
        "log_tail": (done.stdout[-600:] + done.stderr[-1500:]) if done.returncode else "",
    }


def run_sqlmap(tools: Path, target: dict, out: Path) -> dict:
    command = [
        str(tools / "sqlmap"),
        "--batch",
        "--level", "2",
        "--risk", "1",
        "--output-dir", str(out / "sqlmap"),
        "--disable-coloring",
        "--flush-session",
        *target["args"],
    ]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=1200)
    text = done.stdout
    injectable = re.findall(r"Parameter: (.+?) \(", text)
    tested = re.findall(r"parameter '([^']+)' does not seem to be injectable", text)
    if injectable:
        verdict = "injectable: " + ", ".join(injectable)
    elif "all tested parameters do not appear to be injectable" in text:
        verdict = CLEAN
    else:
        verdict = "no verdict: " + " | ".join(
            line.strip() for line in text.splitlines() if "[CRITICAL]" in line or "[ERROR]" in line
        )
    return {
        "target": target["name"],
        "exit_code": done.returncode,
        "seconds": round(time.monotonic() - started),
        "parameters_tested": sorted(set(tested)),
        "injectable": injectable,
        "verdict": verdict,
    }


def sqlmap_targets(base: str, token: str) -> list[dict]:
    bearer = ["--headers", f"Authorization: Bearer {token}"]
    lists = {
        "documents": {"page": "1", "per_page": "10", "status": "done", "q": "board"},
        "models": {"page": "1"},
    }
    targets = [
        {"name": f"GET /api/v1/{path}?{'&'.join(params)}",
         "args": ["-u", f"{base}/api/v1/{path}?{urlencode(params)}", *bearer]}
        for path, params in lists.items()
    ]  # fmt: skip
    targets.append(
        {
            "name": "GET /api/v1/documents/1/revisions/1/machine-text (path ids)",
            "args": ["-u", f"{base}/api/v1/documents/1*/revisions/1*/machine-text", *bearer],
        }
    )
    targets.append(
        {
            "name": "POST /auth/login (form)",
            "args": [
                "-u", f"{base}/auth/login",
                "--data", "csrf_token=x&email=someone%40example.org&password=wrong",
                "--csrf-token", "csrf_token",
                "--csrf-url", f"{base}/auth/login",
                "-p", "email,password",
                # A wrong password is answered 401, which sqlmap takes for a login it lacks.
                "--ignore-code", "401",
            ],
        }
    )  # fmt: skip
    return targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4, help="wapiti's time per role")
    parser.add_argument("--tools", type=Path, default=WEB / ".scan-tools")
    parser.add_argument("--out", type=Path, help="summary JSON (default: bench/results/…)")
    args = parser.parse_args(argv)
    tools = install_tools(args.tools)
    work = Path(tempfile.mkdtemp(prefix="srcflask-scan-"))
    process, base, logins = start_app(work / "instance")
    try:
        sessions = {role: login(base, *logins[role]) for role in ROLES}
        token = seed_content(base, sessions)
        # sqlmap first: wapiti's attacks with the admin's login may suspend the sponsor,
        # which revokes the token.
        sqlmap = [run_sqlmap(tools, t, work) for t in sqlmap_targets(base, token)]
        wapiti = [
            run_wapiti(tools, base, role, *logins[role], work, args.minutes) for role in ROLES
        ]
    finally:
        process.terminate()
        process.wait(timeout=20)
    found = sum(len(v) for w in wapiti for v in w["vulnerabilities"].values()) + sum(
        len(s["injectable"]) for s in sqlmap
    )
    # A scan that reached no verdict proves nothing: it fails the run as a finding would.
    unfinished = [w["role"] for w in wapiti if w["exit_code"] or not w["crawled"]] + [
        s["target"] for s in sqlmap if s["verdict"] != CLEAN
    ]
    result = {
        "command": "python bench/scan.py " + " ".join(argv or sys.argv[1:]),
        "commit": commit(),
        "machine": machine_name(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "tools": TOOLS,
        "wapiti_modules": WAPITI_MODULES,
        "vulnerabilities_reported": found,
        "scans_without_a_verdict": unfinished,
        "wapiti": wapiti,
        "sqlmap": sqlmap,
    }
    write_result(result, "scan", args.out)
    print(
        json.dumps(
            {
                k: result[k]
                for k in ("commit", "vulnerabilities_reported", "scans_without_a_verdict")
            }
        )
    )
    for w in wapiti:
        found_here = w["vulnerabilities"] or "none"
        print(f"wapiti {w['role']}: {w['crawled']} pages, {w['seconds']} s, found {found_here}")
    for s in sqlmap:
        print(f"sqlmap {s['target']}: {s['verdict']}")
    return 1 if found or unfinished else 0


if __name__ == "__main__":
    sys.exit(main())
