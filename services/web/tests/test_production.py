"""The production topology without Docker: nginx -> gunicorn -> srcflask, a Celery worker,
Postgres (a fresh database) and Redis, all on loopback, started the way the containers
start them (boot.sh). A user journey goes through nginx; then every process is stopped
and started again, and everything must still be there.

Needs nginx (Debian package), TEST_DATABASE_URL and TEST_REDIS_URL.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

pytestmark = [
    pytest.mark.production,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed"),
    pytest.mark.skipif(
        not os.environ.get("TEST_DATABASE_URL"), reason="TEST_DATABASE_URL is not set"
    ),
    pytest.mark.skipif(not os.environ.get("TEST_REDIS_URL"), reason="TEST_REDIS_URL is not set"),
]

WEB = Path(__file__).resolve().parent.parent
NGINX_CONF = WEB.parent / "nginx" / "nginx.conf"
BIN = Path(sys.executable).parent
ADMIN_EMAIL, ADMIN_PASSWORD = "ops@example.org", "an operator passphrase"
PASSWORD = "violet rivers run deep"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    return False


@pytest.fixture
def fresh_database():
    """A new, empty Postgres database for this test, dropped afterwards."""
    base = sa.engine.make_url(os.environ["TEST_DATABASE_URL"]).set(drivername="postgresql+psycopg")
    name = f"srcflask_smoke_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield base.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def render_nginx_conf(folder: Path, nginx_port: int, web_port: int) -> Path:
    """The production nginx.conf, pointed at loopback ports and this checkout's static files."""
    conf = NGINX_CONF.read_text()
    replacements = {
        "server web:8000;": f"server 127.0.0.1:{web_port};",
        "listen 80;": f"listen 127.0.0.1:{nginx_port};",
        "alias /srv/static/;": f"alias {WEB / 'srcflask' / 'static'}/;",
        "access_log /dev/stdout;": f"access_log {folder / 'nginx-access.log'};",
    }
    for old, new in replacements.items():
        assert old in conf, f"nginx.conf no longer has {old!r}"
        conf = conf.replace(old, new)
    if os.geteuid() == 0:
        conf = "user root;\n" + conf  # so workers can read a checkout under /root
    path = folder / "nginx.conf"
    path.write_text(conf)
    return path


class Topology:
    """The production processes, started and stopped as a unit."""

    def __init__(self, folder: Path, database_url: str, tiny_model: Path):
        self.folder = folder
        self.web_port, self.nginx_port = free_port(), free_port()
        redis = os.environ["TEST_REDIS_URL"]
        run = uuid.uuid4().hex[:8]
        self.env = os.environ | {
            "PATH": f"{BIN}:{os.environ['PATH']}",
            "SRCFLASK_ENV": "production",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "DATABASE_URL": database_url,
            "SRCFLASK_INSTANCE_PATH": str(folder / "instance"),
            "MODEL_STORE": str(folder / "models"),
            "MODEL_CACHE": str(folder / "cache"),
            "CELERY_BROKER_URL": redis,
            "CELERY_QUEUE": f"smoke-{run}",
            "RATELIMIT_STORAGE_URI": redis,
            "RATELIMIT_KEY_PREFIX": f"smoke-{run}",
            "PROXY_FIX_HOPS": "1",
            # Plain http on loopback here; behind TLS in real deployments.
            "SESSION_COOKIE_SECURE": "false",
            "GUNICORN_BIND": f"127.0.0.1:{self.web_port}",
            "GUNICORN_WORKERS": "2",
            "GUNICORN_FORWARDED_ALLOW_IPS": "127.0.0.1",
            "JOB_SWEEP_SECONDS": "2",
            "SRCFLASK_ADMIN_PASSWORD": ADMIN_PASSWORD,
        }
        self.env.pop("JOBS_MODE", None)
        self.nginx_conf = render_nginx_conf(folder, self.nginx_port, self.web_port)
        self.processes: dict[str, subprocess.Popen] = {}
        self.tiny_model = tiny_model

    def boot(self, *command: str, **extra: str) -> subprocess.CompletedProcess:
        """Run a command through boot.sh, as a container would, and wait for it."""
        env = self.env | extra
        return subprocess.run(
            ["sh", str(WEB / "boot.sh"), *command],
            cwd=WEB,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )

    def prepare(self) -> None:
        """What an operator does once: the tiny model in production, the first admin."""
        self.boot(
            "flask",
            "--app",
            "srcflask",
            "models",
            "import",
            str(self.tiny_model),
            "--name",
            "tiny",
            "--alias",
            "production",
            BOOT_PULL_MODEL="0",
        )
        self.boot(
            "flask",
            "--app",
            "srcflask",
            "create-admin",
            "--email",
            ADMIN_EMAIL,
            "--name",
            "Olive Operator",
            BOOT_MIGRATE="0",
            BOOT_PULL_MODEL="0",
        )

    def _spawn(self, name: str, command: list[str], **extra: str) -> None:
        log = (self.folder / f"{name}.log").open("a")
        self.processes[name] = subprocess.Popen(
            command,
            cwd=WEB,
            env=self.env | extra,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start(self) -> None:
        self._spawn(
            "web",
            [
                "sh",
                str(WEB / "boot.sh"),
                "gunicorn",
                "--config",
                str(WEB / "gunicorn.conf.py"),
                "srcflask:create_app()",
            ],
        )
        assert wait_for_port(self.web_port, 120), self.logs()
        self._spawn(
            "worker",
            [
                "sh",
                str(WEB / "boot.sh"),
                "celery",
                "-A",
                "srcflask.worker",
                "worker",
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
            ],
            BOOT_MIGRATE="0",
            BOOT_PULL_MODEL="0",
        )
        self._spawn(
            "nginx",
            [
                "nginx",
                "-p",
                str(self.folder),
                "-c",
                str(self.nginx_conf),
                "-g",
                f"daemon off; pid {self.folder / 'nginx.pid'}; "
                f"error_log {self.folder / 'nginx-error.log'};",
            ],
        )
        assert wait_for_port(self.nginx_port, 30), self.logs()

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()

    def logs(self) -> str:
        parts = []
        for path in sorted(self.folder.glob("*.log")):
            parts.append(f"--- {path.name}\n{path.read_text()[-3000:]}")
        return "\n".join(parts)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.nginx_port}"


@pytest.fixture
def topology(tmp_path, fresh_database, tiny_models):
    topology = Topology(tmp_path, fresh_database, tiny_models["gpt2"])
    topology.prepare()
    yield topology
    topology.stop()


class Visitor:
    """A browser-like client: a cookie jar and the CSRF token of the last form."""

    def __init__(self, base: str):
        import requests

        self.base = base
        self.http = requests.Session()

    def get(self, path: str, **kwargs):
        return self.http.get(self.base + path, timeout=30, **kwargs)

    def post_form(self, page: str, action: str | None = None, **fields):
        """Open `page`, then submit its form (with its CSRF token) to `action` or itself."""
        html = self.get(page).text
        token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html).group(1)
        return self.http.post(
            self.base + (action or page),
            data={"csrf_token": token, **fields},
            timeout=30,
            allow_redirects=True,
        )

    def login(self, email: str, password: str):
        return self.post_form("/auth/login", email=email, password=password)


def counts(database_url: str) -> dict[str, int]:
    engine = sa.create_engine(database_url)
    with engine.connect() as connection:
        result = {
            table: connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()
            for table in (
                "users",
                "documents",
                "revisions",
                "machine_texts",
                "reviews",
                "model_versions",
                "audit_events",
            )
        }
    engine.dispose()
    return result


def test_production_topology_serves_the_flow_and_keeps_everything_across_a_restart(
    topology, fresh_database
):
    topology.start()
    try:
        journey(topology, fresh_database)
    except AssertionError:
        print(topology.logs())
        raise


def journey(topology: Topology, database_url: str) -> None:
    anonymous = Visitor(topology.base)
    ready = anonymous.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok", "production_model": "ok"}

    # Static files come from nginx, not from gunicorn.
    css = anonymous.get("/static/css/app.css")
    assert css.status_code == 200 and css.headers["X-Served-By"] == "nginx"
    assert "text/css" in css.headers["Content-Type"]
    assert anonymous.get("/static/../boot.sh").status_code in (400, 403, 404)
    # Pages come from the app through nginx, with its security headers.
    login_page = anonymous.get("/auth/login")
    assert "frame-ancestors 'none'" in login_page.headers["Content-Security-Policy"]
    assert login_page.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Server" not in login_page.headers or "nginx/" not in login_page.headers["Server"]

    # Two people sign up; the operator approves them.
    for name, email, role in [
        ("Sam Sponsor", "sam@example.org", "sponsor"),
        ("Erin Editor", "erin@example.org", "editor"),
    ]:
        Visitor(topology.base).post_form(
            "/auth/signup",
            name=name,
            email=email,
            organization="",
            role=role,
            password=PASSWORD,
            confirm_password=PASSWORD,
        )
    admin = Visitor(topology.base)
    assert admin.login(ADMIN_EMAIL, ADMIN_PASSWORD).url.endswith("/admin/")
    pending = admin.get("/admin/users?status=pending").text
    ids = re.findall(r"/admin/users/(\d+)/approve", pending)
    assert len(ids) == 2
    for user_id in ids:
        admin.post_form("/admin/users?status=pending", f"/admin/users/{user_id}/approve")
    assert 'Pending <span class="count">0</span>' in admin.get("/admin/users").text

    # The sponsor writes a document; the Celery worker writes its machine text.
    sponsor = Visitor(topology.base)
    assert sponsor.login("sam@example.org", PASSWORD).url.endswith("/sponsor/documents")
    editor_id = re.search(
        r'<option value="(\d+)">Erin Editor', sponsor.get("/sponsor/documents/new").text
    ).group(1)
    saved = sponsor.post_form(
        "/sponsor/documents/new",
        title="Warehouse safety",
        body="Safety procedures for the warehouse loading dock",
        editor_id=editor_id,
    )
    document_id = int(re.search(r"/sponsor/documents/(\d+)$", saved.url).group(1))
    status_url = f"/documents/{document_id}/machine-text"
    deadline = time.monotonic() + 120
    while sponsor.get(status_url).json()["status"] != "done":
        assert time.monotonic() < deadline, f"no machine text:\n{topology.logs()}"
        time.sleep(0.5)
    machine_text = sponsor.get(status_url).json()
    assert machine_text["model_version"] == "tiny:1"

    editor = Visitor(topology.base)
    editor.login("erin@example.org", PASSWORD)
    review = editor.get(f"/editor/documents/{document_id}/review")
    assert review.status_code == 200 and "Warehouse safety" in review.text
    gunicorn_log = (topology.folder / "web.log").read_text()
    assert "/static/" not in gunicorn_log and "/auth/login" in gunicorn_log
    before = counts(database_url)
    assert before["users"] == 3 and before["documents"] == 1 and before["machine_texts"] == 1

    # Stop everything, start it again: nothing is lost, sessions and data survive.
    topology.stop()
    topology.start()
    assert counts(database_url) == before
    assert Visitor(topology.base).get("/readyz").status_code == 200
    page = sponsor.get(f"/sponsor/documents/{document_id}")
    assert page.status_code == 200 and "Warehouse safety" in page.text
    again = sponsor.get(status_url).json()
    assert (again["status"], again["text"]) == ("done", machine_text["text"])
    fresh_login = Visitor(topology.base)
    assert fresh_login.login("erin@example.org", PASSWORD).url.endswith("/editor/documents")
