"""Model files that changed on disk are caught before the version writes any text."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from sqlalchemy import select

from srcflask.extensions import db
from srcflask.models import MachineText, MachineTextStatus, ModelVersion, Revision
from srcflask.registry import integrity
from srcflask.registry import service as registry


def weights_of(app) -> Path:
    with app.app_context():
        return registry.artifact_path(registry.production_version()) / "model.safetensors"


def load_production(app) -> None:
    """Load the production model into this process, as a worker does when it starts."""
    with app.app_context():
        registry.generator_for(registry.production_version())


def restart(app) -> None:
    """Forget the loaded models and what was verified, as a new worker process starts."""
    app.extensions["srcflask.generators"].clear()
    app.extensions["srcflask.verified_models"].clear()


def save_and_run(sponsor_client, run_jobs) -> str:
    """Save a document, run its job; return the job's error, asserting no text was written."""
    response = sponsor_client.post(
        "/sponsor/documents/new", data={"title": "Report", "body": "Sales rose.", "editor_id": ""}
    )
    assert response.status_code == 303
    document_id = int(re.search(r"/sponsor/documents/(\d+)", response.location).group(1))
    assert run_jobs() == 1
    [text] = db.session.scalars(
        select(MachineText).join(Revision).where(Revision.document_id == document_id)
    ).all()
    assert text.status is MachineTextStatus.FAILED and text.text is None
    return text.error


def assert_shown_everywhere(app, admin_client, label: str, words: str) -> None:
    with app.app_context():
        version = db.session.scalar(select(ModelVersion).where(ModelVersion.name == "tiny-chat"))
        assert words in version.files_problem
    page = admin_client.get("/admin/models").get_data(as_text=True)
    assert f'data-files-problem="{label}"' in page and words in page
    assert "No machine text is written now" in page
    ready = admin_client.get("/readyz")
    assert ready.status_code == 503
    assert label in ready.json["checks"]["production_model"]
    assert words in ready.json["checks"]["production_model"]


def test_a_bit_flip_that_keeps_size_and_time_is_caught_at_the_next_load(
    app, production_model, sponsor_client, admin_client, run_jobs
):
    load_production(app)
    weights = weights_of(app)
    before = weights.stat()
    with weights.open("r+b") as handle:  # in place: the same file, size and inode
        handle.seek(before.st_size - 1)
        last = handle.read(1)
        handle.seek(before.st_size - 1)
        handle.write(bytes([last[0] ^ 1]))
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert integrity.fingerprint(weights.parent) is not None
    restart(app)

    with app.app_context():
        error = save_and_run(sponsor_client, run_jobs)
    assert f"The model {production_model} could not be loaded" in error
    assert "weights changed on disk" in error
    assert_shown_everywhere(app, admin_client, production_model, "weights changed on disk")


def test_a_truncated_file_is_caught_before_the_next_batch(
    app, production_model, sponsor_client, admin_client, run_jobs
):
    load_production(app)  # loaded and verified: a later check only stats the files
    weights = weights_of(app)
    with weights.open("r+b") as handle:
        handle.truncate(weights.stat().st_size // 2)

    # The web process sees the size without any job running.
    assert admin_client.get("/readyz").status_code == 503
    with app.app_context():
        error = save_and_run(sponsor_client, run_jobs)
    assert "files changed on disk" in error
    assert_shown_everywhere(app, admin_client, production_model, "files changed on disk")


def test_a_swapped_file_is_caught_and_putting_it_back_clears_it(
    app, production_model, tiny_models, sponsor_client, admin_client, run_jobs
):
    load_production(app)
    weights = weights_of(app)
    original = weights.read_bytes()
    other = tiny_models["llama-other"] / "model.safetensors"
    swapped = weights.with_name("swap.tmp")
    shutil.copyfile(other, swapped)
    os.replace(swapped, weights)  # another file in its place, the same size

    with app.app_context():
        error = save_and_run(sponsor_client, run_jobs)
    assert "weights changed on disk" in error
    assert_shown_everywhere(app, admin_client, production_model, "weights changed on disk")

    weights.write_bytes(original)  # put back from a backup
    load_production(app)
    with app.app_context():
        assert registry.production_version().files_problem is None
    assert admin_client.get("/readyz").status_code == 200
    assert "data-files-problem" not in admin_client.get("/admin/models").get_data(as_text=True)


def test_a_batch_only_stats_files_that_did_not_change(app, production_model, monkeypatch):
    load_production(app)
    hashed = []
    monkeypatch.setattr(
        integrity, "weights_sha256", lambda folder: hashed.append(folder) or "unused"
    )
    for _ in range(3):
        load_production(app)
    assert hashed == []
