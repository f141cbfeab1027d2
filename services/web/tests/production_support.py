"""The production topology on loopback, for the tests that run it (test_production, test_faults).

nginx -> gunicorn -> srcflask and a Celery worker, started the way the containers
start them (boot.sh), on a fresh Postgres database and Redis. Private Postgres
clusters and Redis servers can be started too, for tests that stop them.
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
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

WEB = Path(__file__).resolve().parent.parent
NGINX_CONF = WEB.parent / "nginx" / "nginx.conf"
BIN = Path(sys.executable).parent
# A Celery worker as the worker container runs it.
CELERY_WORKER = [
    "celery",
    "-A",
    "srcflask.worker",
    "worker",
    "--loglevel",
    "INFO",
    "--without-gossip",
    "--without-mingle",
]
ADMIN_EMAIL, ADMIN_PASSWORD = "ops@example.org", "an operator passphrase"
PASSWORD = "violet rivers run deep"

# What every test of the topology needs; add the markers of its own after these.
REQUIREMENTS = [
    pytest.mark.production,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed"),
    pytest.mark.skipif(
        not os.environ.get("TEST_DATABASE_URL"), reason="TEST_DATABASE_URL is not set"
    ),
    pytest.mark.skipif(not os.environ.get("TEST_REDIS_URL"), reason="TEST_REDIS_URL is not set"),
]


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


def wait_until(predicate, timeout: float = 90, interval: float = 0.25) -> bool:
    """Call `predicate` until it is true or `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
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
    """The production processes, started and stopped as a unit (or one by one).

    `redis_url` defaults to TEST_REDIS_URL; `settings` are more environment
    variables for every process (JOB_STALE_SECONDS=..., ...).
    """

    def __init__(
        self,
        folder: Path,
        database_url: str,
        tiny_model: Path,
        redis_url: str | None = None,
        **settings: str,
    ):
        self.folder = folder
        self.web_port, self.nginx_port = free_port(), free_port()
        redis = redis_url or os.environ["TEST_REDIS_URL"]
        run = uuid.uuid4().hex[:8]
        self.queue = f"smoke-{run}"
        self.env = os.environ | {
            "PATH": f"{BIN}:{os.environ['PATH']}",
            "SRCFLASK_ENV": "production",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "DATABASE_URL": database_url,
            "SRCFLASK_INSTANCE_PATH": str(folder / "instance"),
            "MODEL_STORE": str(folder / "models"),
            "MODEL_CACHE": str(folder / "cache"),
            "CELERY_BROKER_URL": redis,
            "CELERY_QUEUE": self.queue,
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
            **settings,
        }
        self.env.pop("JOBS_MODE", None)
        self.nginx_conf = render_nginx_conf(folder, self.nginx_port, self.web_port)
        self.processes: dict[str, subprocess.Popen] = {}
        self.tiny_model = tiny_model
        self.model_name = "tiny"

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
            self.model_name,
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
        self.start_web()
        self.start_worker()
        self.start_nginx()

    def start_web(self) -> None:
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

    def start_worker(self) -> None:
        self._spawn(
            "worker",
            ["sh", str(WEB / "boot.sh"), *CELERY_WORKER],
            BOOT_MIGRATE="0",
            BOOT_PULL_MODEL="0",
        )

    def start_nginx(self) -> None:
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

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> int:
        """Send `sig` to one process (and its children) and reap it; return its pid."""
        process = self.processes.pop(name)
        os.killpg(process.pid, sig)
        process.wait(timeout=60)
        return process.pid

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

    def form_token(self, page: str) -> str:
        """The CSRF token of the form on `page`."""
        html = self.get(page).text
        return re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html).group(1)

    def post(self, path: str, token: str, allow_redirects: bool = False, **fields):
        """Submit a form with a token from `form_token()`; redirects are not followed."""
        return self.http.post(
            self.base + path,
            data={"csrf_token": token, **fields},
            timeout=30,
            allow_redirects=allow_redirects,
        )

    def post_form(self, page: str, action: str | None = None, **fields):
        """Open `page`, then submit its form (with its CSRF token) to `action` or itself."""
        return self.post(action or page, self.form_token(page), allow_redirects=True, **fields)

    def login(self, email: str, password: str):
        return self.post_form("/auth/login", email=email, password=password)


def sign_up_and_approve(topology: Topology, people: list[tuple[str, str, str]]) -> Visitor:
    """Sign up (name, email, role) people through nginx; the operator approves them all.

    Returns the operator, logged in.
    """
    for name, email, role in people:
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
    assert len(ids) == len(people)
    for user_id in ids:
        admin.post_form("/admin/users?status=pending", f"/admin/users/{user_id}/approve")
    assert 'Pending <span class="count">0</span>' in admin.get("/admin/users").text
    return admin


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


# -- private servers, for tests that stop them ------------------------------------


def _as_postgres() -> list[str]:
    """Postgres refuses to run as root: run its programs as the postgres user then."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


class PrivatePostgres:
    """A Postgres cluster of its own on a free loopback port, that a test may stop and start."""

    def __init__(self) -> None:
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        if not versions:
            pytest.skip("no Postgres server programs in /usr/lib/postgresql")
        self.bin = versions[-1].parent
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="srcflask-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def _run(self, program: str, *args: str) -> None:
        subprocess.run(
            [*_as_postgres(), str(self.bin / program), *args],
            check=True,
            capture_output=True,
            timeout=120,
        )

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root}"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: `fast` ends every session at once, as a restart does."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_postgres():
    """A running private Postgres cluster, removed afterwards."""
    server = PrivatePostgres()
    try:
        server.start()
        yield server
    finally:
        server.remove()


class PrivateRedis:
    """A Redis server of its own on a free loopback port, without persistence."""

    def __init__(self, folder: Path) -> None:
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not installed")
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = (self.folder / "redis.log").open("a")
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            cwd=self.folder,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        assert wait_for_port(self.port, 30), "redis-server did not start"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None


@pytest.fixture
def private_redis(tmp_path):
    """A running private Redis server, stopped afterwards."""
    folder = tmp_path / "redis"
    folder.mkdir()
    server = PrivateRedis(folder)
    server.start()
    yield server
    server.stop()
