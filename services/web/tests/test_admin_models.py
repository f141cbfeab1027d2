"""Admin model pages: the registry listed, the production alias moved, a prompt tried."""

from __future__ import annotations

import html
import threading
import time

import pytest
from sqlalchemy import select

from srcflask.extensions import db
from srcflask.ml import speed
from srcflask.ml.settings import GenerationSettings
from srcflask.models import AuditEvent, ModelVersion
from srcflask.registry import service as registry

from . import fakes


@pytest.fixture
def two_versions(app, tiny_models) -> tuple[int, int]:
    with app.app_context():
        first = registry.import_model(
            str(tiny_models["llama"]), "tiny", actor=None, description="first tiny llama"
        ).version
        second = registry.import_model(str(tiny_models["llama-chat"]), "tiny", actor=None).version
        registry.set_alias(first, "production", actor=None)
        return first.id, second.id


def test_models_page_lists_every_version_with_its_metadata(app, admin_client, two_versions):
    page = html.unescape(admin_client.get("/admin/models").get_data(as_text=True))

    assert "Machine text is written by <strong>tiny:1</strong>" in page
    assert "tiny:1" in page and "tiny:2" in page
    with app.app_context():
        first = db.session.get(ModelVersion, two_versions[0])
        assert first.sha256 in page
        # Long hashes and paths are cut on screen and copied whole.
        assert f'id="sha-{first.id}" title="{first.sha256}">{first.sha256}</code>' in page
        assert f'data-copy="sha-{first.id}"' in page and f'data-copy="source-{first.id}"' in page
        assert "first tiny llama" in page
        assert "LlamaForCausalLM" in page
        assert "not measured yet" in page and "Measure now" in page
    assert page.count("Make production") == 1  # only the version that is not production


def test_admin_moves_the_production_alias_and_it_is_audited(app, admin_client, admin, two_versions):
    _, second = two_versions

    response = admin_client.post(
        f"/admin/models/{second}/alias",
        data={"alias": "production"},
        environ_base={"REMOTE_ADDR": "198.51.100.4"},
        follow_redirects=True,
    )

    assert "production now points at tiny:2 (it was on tiny:1)." in html.unescape(
        response.get_data(as_text=True)
    )
    with app.app_context():
        assert registry.production_version().id == second
        event = db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "model.alias")
            .order_by(AuditEvent.id.desc())
        ).first()
        assert (event.actor_id, event.target_label, event.ip_address) == (
            admin.id,
            "tiny:2",
            "198.51.100.4",
        )
        assert event.details == {"alias": "production", "previous": "tiny:1"}
    assert "model.alias" in admin_client.get("/admin/audit").get_data(as_text=True)


def test_a_bad_alias_is_refused_with_a_message(admin_client, two_versions):
    response = admin_client.post(
        f"/admin/models/{two_versions[0]}/alias",
        data={"alias": "Not Valid!"},
        follow_redirects=True,
    )
    assert "Alias not set: Start with a letter" in html.unescape(response.get_data(as_text=True))


def test_trying_a_prompt_shows_the_continuation_escaped(app, admin_client, two_versions):
    response = admin_client.post(
        f"/admin/models/{two_versions[0]}/try",
        data={"prompt": "How do I mow my lawn?", "preset": "greedy", "max_new_tokens": "6"},
    )
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Continuation" in page and "tokens/s" in page

    # Whatever a model writes is shown as text, never as markup.
    fakes.install(app).text = "<script>alert('x')</script>\nline two"
    page = admin_client.post(
        f"/admin/models/{two_versions[0]}/try",
        data={"prompt": "Hi", "preset": "greedy", "max_new_tokens": "2"},
    ).get_data(as_text=True)
    assert "<script>alert(" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;\nline two" in page


def test_trying_a_prompt_answers_while_a_batch_of_documents_is_being_written(
    app, admin_client, two_versions
):
    with app.app_context():
        generator = registry.generator_for(db.session.get(ModelVersion, two_versions[0]))
    settings = GenerationSettings(strategy="greedy", max_new_tokens=30, no_repeat_ngram_size=0)
    started, answered = threading.Event(), threading.Event()

    def progress(done: int, total: int) -> None:
        if done == 2:
            started.set()
        if done == 3:  # hold this step until the prompt waits for the model
            deadline = time.monotonic() + 10
            while not generator._turns._waiting and time.monotonic() < deadline:
                time.sleep(0.001)
        if done == 4:
            # The batch goes on only once the page has answered: if trying a prompt waited
            # for the batch to end, it would wait here until this gives up.
            answered.wait(10)

    batch = threading.Thread(
        target=generator.generate, args=(["Quarterly report"] * 4, settings, progress)
    )
    batch.start()
    assert started.wait(10)
    response = admin_client.post(
        f"/admin/models/{two_versions[0]}/try",
        data={"prompt": "How do I mow my lawn?", "preset": "greedy", "max_new_tokens": "6"},
    )
    still_writing = batch.is_alive()
    answered.set()
    batch.join(10)

    assert response.status_code == 200
    assert "Continuation" in response.get_data(as_text=True)
    assert still_writing


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"prompt": "", "preset": "greedy", "max_new_tokens": "5"}, "This field is required."),
        (
            {"prompt": "x", "preset": "greedy", "max_new_tokens": "500"},
            "Number must be between 1 and 128.",
        ),
        ({"prompt": "   ", "preset": "greedy", "max_new_tokens": "5"}, "This field is required."),
    ],
)
def test_trying_a_bad_prompt_explains_what_is_wrong(admin_client, two_versions, data, message):
    response = admin_client.post(f"/admin/models/{two_versions[0]}/try", data=data)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)


def test_admin_edits_the_prompt_format(app, admin_client, two_versions):
    second = two_versions[1]
    admin_client.post(
        f"/admin/models/{second}/prompt-format",
        data={"prompt_format": "chat", "system_prompt": "Be brief."},
    )
    with app.app_context():
        version = db.session.get(ModelVersion, second)
        assert (version.prompt_format, version.system_prompt) == ("chat", "Be brief.")
    admin_client.post(
        f"/admin/models/{second}/prompt-format",
        data={"prompt_format": "raw", "system_prompt": "ignored"},
    )
    with app.app_context():
        version = db.session.get(ModelVersion, second)
        assert (version.prompt_format, version.system_prompt) == ("raw", None)
        actions = db.session.scalars(select(AuditEvent.action)).all()
    assert actions.count("model.prompt_format") == 2


def test_unknown_versions_give_404(admin_client):
    assert admin_client.post("/admin/models/999/alias", data={"alias": "x"}).status_code == 404
    assert admin_client.post("/admin/models/999/try", data={"prompt": "x"}).status_code == 404


def test_empty_registry_page_says_what_to_do(admin_client):
    page = admin_client.get("/admin/models").get_data(as_text=True)
    assert "No models yet" in page and "models pull-default" in page


def quiet_machine(monkeypatch, load: float | None = 0.1, cpus: int = 2) -> None:
    monkeypatch.setattr(speed, "machine_load", lambda: (load, cpus))


def test_measuring_speed_on_a_quiet_machine_keeps_the_median(
    app, admin_client, two_versions, monkeypatch
):
    quiet_machine(monkeypatch, load=0.3)
    first, _ = two_versions

    response = admin_client.post(f"/admin/models/{first}/speed")

    assert response.status_code == 303
    assert response.location == f"/admin/models#version-{first}"
    page = html.unescape(admin_client.get("/admin/models").get_data(as_text=True))
    with app.app_context():
        measured = db.session.get(ModelVersion, first).metrics["speed"]
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "model.measure_speed")
        ).one()
    assert measured["runs"] == speed.SPEED_RUNS
    low, high = measured["spread"]["greedy"]
    assert low <= measured["greedy_tokens_per_second"] <= high
    assert (measured["load_average"], measured["cpus"], measured["busy"]) == (0.3, 2, False)
    assert f"{measured['greedy_tokens_per_second']} tokens/s greedy" in page
    assert "Kept as its speed." in page
    assert "load average 0.3 on 2 CPUs" in page
    assert event.details["kept"] is True


@pytest.mark.parametrize(
    ("load", "documents_running", "because"),
    [
        (1.8, False, "load average 1.80 on 2 CPUs"),
        (0.1, True, "documents were being written (paused for each run)"),
    ],
)
def test_a_speed_measured_on_a_busy_machine_is_shown_but_not_kept(
    app, admin_client, two_versions, monkeypatch, load, documents_running, because
):
    quiet_machine(monkeypatch, load=load)
    first, _ = two_versions
    with app.app_context():
        generator = registry.generator_for(db.session.get(ModelVersion, first))
    held, release = threading.Event(), threading.Event()

    def hold_the_model():  # a batch of documents being written, as far as turns go
        with generator._turns.batch():
            held.set()
            while not release.is_set():
                generator._turns.give_way()
                time.sleep(0.001)

    holder = threading.Thread(target=hold_the_model)
    if documents_running:
        holder.start()
        assert held.wait(10)
    try:
        page = html.unescape(
            admin_client.post(f"/admin/models/{first}/speed", follow_redirects=True).get_data(
                as_text=True
            )
        )
    finally:
        release.set()
        if documents_running:
            holder.join(10)

    assert f"Not kept, because the machine was busy: {because}." in page
    assert "not measured yet" in page
    with app.app_context():
        assert "speed" not in db.session.get(ModelVersion, first).metrics
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "model.measure_speed")
        ).one()
    assert event.details["kept"] is False and event.details["busy_because"] == because


def test_the_speed_command_measures_and_says_whether_it_kept_it(app, two_versions, monkeypatch):
    quiet_machine(monkeypatch, load=None)
    result = app.test_cli_runner().invoke(args=["models", "speed", "tiny:2", "--runs", "3"])

    assert result.exit_code == 0, result.output
    assert "Measuring tiny:2: 3 greedy and 3 beam-search runs" in result.output
    assert "median of 3 runs each" in result.output and "Kept as its speed." in result.output
    assert "load average unknown on 2 CPUs" in result.output
    with app.app_context():
        assert db.session.get(ModelVersion, two_versions[1]).metrics["speed"]["runs"] == 3
