"""Deployment files: compose files validate, nginx.conf parses, boot.sh, /readyz."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from srcflask.extensions import db
from srcflask.registry import service as registry

from .production_support import render_nginx_conf

WEB = Path(__file__).resolve().parent.parent
ROOT = WEB.parent.parent
needs_compose = pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose is not installed"
)


@needs_compose
@pytest.mark.parametrize("compose_file", ["docker-compose.yml", "docker-compose.prod.yml"])
def test_compose_files_validate(compose_file):
    result = subprocess.run(
        ["docker-compose", "-f", compose_file, "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@needs_compose
def test_production_compose_publishes_only_nginx_and_keeps_data_in_volumes():
    import yaml

    config = yaml.safe_load(
        subprocess.run(
            ["docker-compose", "-f", "docker-compose.prod.yml", "config"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    services = config["services"]
    assert set(services) == {"nginx", "web", "worker", "db", "redis", "trainer"}
    assert [name for name, s in services.items() if s.get("ports")] == ["nginx"]
    assert {"postgres", "redis", "models"} <= set(config["volumes"])
    for name in ("web", "worker", "db", "redis", "nginx"):
        assert services[name]["restart"] == "unless-stopped"
    for name in ("web", "worker", "db", "redis"):
        assert "healthcheck" in services[name], name
    assert services["worker"]["command"].split()[:3] == ["celery", "-A", "srcflask.worker"]
    assert "container_name" not in services["worker"]  # so --scale worker=N works


@needs_compose
def test_a_training_worker_starts_only_with_its_profile_and_takes_only_training_runs():
    import yaml

    def services(*options: str) -> dict:
        return yaml.safe_load(
            subprocess.run(
                ["docker-compose", "-f", "docker-compose.prod.yml", *options, "config"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )["services"]

    everything = services()
    assert everything["trainer"]["profiles"] == ["training"]  # `up` starts it only when asked
    command = everything["trainer"]["command"].split()
    assert command[command.index("-Q") + 1] == "training"
    assert "-Q" not in everything["worker"]["command"].split()  # generation workers: not it
    assert everything["trainer"]["volumes"] == everything["worker"]["volumes"]
    assert "healthcheck" in everything["trainer"]


def test_web_image_runs_as_a_non_root_user_with_no_secrets():
    dockerfile = (WEB / "Dockerfile").read_text()
    assert re.search(r"^USER srcflask$", dockerfile, re.MULTILINE)
    assert dockerfile.count("FROM ") == 2  # build and runtime stages
    assert "download.pytorch.org/whl/cpu" in dockerfile
    instructions = "\n".join(
        line for line in dockerfile.splitlines() if not line.lstrip().startswith("#")
    )
    assert not re.search(r"SECRET_KEY|PASSWORD|DATABASE_URL", instructions)
    assert 'VOLUME ["/data"]' in dockerfile


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_nginx_conf_parses(tmp_path):
    conf = render_nginx_conf(tmp_path, 8080, 8000)
    result = subprocess.run(
        [
            "nginx",
            "-t",
            "-p",
            str(tmp_path),
            "-c",
            str(conf),
            "-g",
            f"pid {tmp_path / 'nginx.pid'}; error_log {tmp_path / 'error.log'};",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    text = (ROOT / "services" / "nginx" / "nginx.conf").read_text()
    assert "location /static/ {\n            alias /srv/static/;" in text
    assert "limit_req_zone" in text and "client_max_body_size" in text and "gzip on;" in text


def boot_env(tmp_path, **extra) -> dict:
    return os.environ | {
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "SRCFLASK_ENV": "development",
        "SRCFLASK_INSTANCE_PATH": str(tmp_path / "instance"),
        "BOOT_PULL_MODEL": "0",
        **extra,
    }


def test_boot_migrates_then_runs_the_command(tmp_path):
    database = tmp_path / "boot.sqlite3"
    env = boot_env(tmp_path, DATABASE_URL=f"sqlite:///{database}")
    for _ in range(2):  # a second boot finds nothing to do and drops nothing
        result = subprocess.run(
            ["sh", str(WEB / "boot.sh"), "echo", "started"],
            cwd=WEB,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().endswith("started")
    import sqlite3

    with sqlite3.connect(database) as connection:
        [version] = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    assert (
        version
        == sorted(p.name for p in (WEB / "migrations" / "versions").glob("0*.py"))[-1].split("_")[0]
    )


def test_boot_gives_up_when_the_database_never_answers(tmp_path):
    env = boot_env(
        tmp_path, DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:9/none", BOOT_DB_ATTEMPTS="2"
    )
    result = subprocess.run(
        ["sh", str(WEB / "boot.sh"), "echo", "started"],
        cwd=WEB,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 1
    assert "waiting for the database (attempt 1)" in result.stderr
    assert "did not answer after 2 attempts" in result.stderr
    assert "started" not in result.stdout


# -- /readyz ---------------------------------------------------------------------


def test_readyz_names_what_is_missing(app, client, tiny_models):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["production_model"] == (
        "no model version has the production alias"
    )
    assert response.json["checks"]["database"] == "ok"

    with app.app_context():
        version = registry.import_model(str(tiny_models["gpt2"]), "tiny", actor=None).version
        registry.set_alias(version, "production", actor=None)
        folder = registry.artifact_path(version)
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json["status"] == "ready"

    shutil.rmtree(folder)
    gone = client.get("/readyz")
    assert gone.status_code == 503
    assert "files of tiny:1 are missing" in gone.json["checks"]["production_model"]


def test_readyz_reports_a_database_that_does_not_answer(app_factory, monkeypatch):
    app = app_factory()

    def broken(*args, **kwargs):
        raise ConnectionError("connection refused")

    with app.app_context():
        monkeypatch.setattr(db.session, "execute", broken)
        response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["database"] == ("the database does not answer (ConnectionError)")


def test_readyz_reports_a_broker_that_does_not_answer(app_factory):
    app = app_factory(JOBS_MODE="celery", CELERY_BROKER_URL="redis://127.0.0.1:9/0")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["broker"].startswith("the job broker does not answer")


# -- rate limits shared by every web worker ---------------------------------------------

PRODUCTION_ENV = {
    "SRCFLASK_ENV": "production",
    "SECRET_KEY": "k" * 48,
    "DATABASE_URL": "postgresql://srcflask:secret@db:5432/srcflask",
}


def production_settings(monkeypatch, tmp_path, **env) -> dict:
    from srcflask.config import load_config

    for name in ("RATELIMIT_STORAGE_URI", "REDIS_URL", "CELERY_BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in (PRODUCTION_ENV | env).items():
        monkeypatch.setenv(name, value)
    return load_config(None, str(tmp_path))


def test_production_counts_rate_limits_in_redis_when_one_is_configured(monkeypatch, tmp_path):
    broker = "redis://redis:6379/0"
    assert (
        production_settings(monkeypatch, tmp_path, CELERY_BROKER_URL=broker)[
            "RATELIMIT_STORAGE_URI"
        ]
        == broker
    )
    chosen = production_settings(
        monkeypatch, tmp_path, CELERY_BROKER_URL=broker, REDIS_URL="redis://cache:6379/2"
    )
    assert chosen["RATELIMIT_STORAGE_URI"] == "redis://cache:6379/2"


def test_in_memory_rate_limits_with_several_workers_are_refused(monkeypatch, tmp_path):
    from srcflask.config import ConfigError

    with pytest.raises(ConfigError, match="3 web workers run"):
        production_settings(
            monkeypatch, tmp_path, RATELIMIT_STORAGE_URI="memory://", SRCFLASK_WEB_WORKERS="3"
        )
    one = production_settings(
        monkeypatch, tmp_path, RATELIMIT_STORAGE_URI="memory://", SRCFLASK_WEB_WORKERS="1"
    )
    assert one["RATELIMIT_STORAGE_URI"] == "memory://"


def test_gunicorn_with_several_workers_and_memory_limits_stops_saying_why(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RATELIMIT_", "REDIS_", "CELERY_", "GUNICORN_", "SRCFLASK_"))
    }
    env |= PRODUCTION_ENV | {
        "RATELIMIT_STORAGE_URI": "memory://",
        "GUNICORN_WORKERS": "2",
        "GUNICORN_BIND": "127.0.0.1:0",
        "SRCFLASK_INSTANCE_PATH": str(tmp_path),
    }
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "--config",
            str(WEB / "gunicorn.conf.py"),
            "srcflask:create_app()",
        ],
        cwd=WEB,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "srcflask cannot start: RATELIMIT_STORAGE_URI is memory://" in result.stderr
    assert "Traceback" not in result.stderr
