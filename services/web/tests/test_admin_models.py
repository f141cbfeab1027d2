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
from srcflask.models import AuditEvent, ModelTask, ModelVersion
from srcflask.registry import model_tasks
from srcflask.registry import service as registry

from . import fakes
from .support import run_model_tasks, task_box


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


def test_trying_a_prompt_runs_in_the_background_and_lands_beside_the_button(
    app, admin_client, two_versions
):
    first = two_versions[0]
    response = admin_client.post(
        f"/admin/models/{first}/try",
        data={"prompt": "How do I mow my lawn?", "preset": "greedy", "max_new_tokens": "6"},
    )

    # Answered at once, back to the page at the box beside the button: no waiting request.
    assert response.status_code == 303
    assert response.location == f"/admin/models#try-{first}"
    page = html.unescape(admin_client.get("/admin/models").get_data(as_text=True))
    writing = task_box(page, f"try-{first}")
    assert (
        "data-task-url=" in writing and "Writing" in writing and "waiting for a worker" in writing
    )
    assert '<meta http-equiv="refresh" content="5">' in page  # without scripts, it follows
    assert "How do I mow my lawn?</textarea>" in page  # the form keeps the prompt

    assert run_model_tasks(app) == 1
    page = html.unescape(admin_client.get("/admin/models").get_data(as_text=True))
    written = task_box(page, f"try-{first}")
    assert "Continuation" in written and "tokens/s" in written and "Answered in" in written
    assert "data-task-url=" not in written
    assert 'http-equiv="refresh"' not in page


def test_a_tried_prompt_shows_what_the_model_wrote_as_text(app, admin_client, two_versions):
    # Whatever a model writes is shown as text, never as markup: on the page and in JSON.
    fakes.install(app).text = "<script>alert('x')</script>\nline two"
    admin_client.post(
        f"/admin/models/{two_versions[0]}/try",
        data={"prompt": "Hi", "preset": "greedy", "max_new_tokens": "2"},
    )
    run_model_tasks(app)
    page = admin_client.get("/admin/models").get_data(as_text=True)
    assert "<script>alert(" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;\nline two" in page
    with app.app_context():
        task = db.session.scalars(select(ModelTask)).one()
    state = admin_client.get(f"/admin/models/tasks/{task.id}").json
    assert "<script>alert(" not in state["html"] and "&lt;script&gt;" in state["html"]


def test_the_script_starts_a_prompt_and_follows_it_as_json(app, admin_client, two_versions):
    first = two_versions[0]
    response = admin_client.post(
        f"/admin/models/{first}/try",
        data={"prompt": "How do I mow my lawn?", "preset": "greedy", "max_new_tokens": "6"},
        headers={"Accept": "application/json"},
    )

    assert response.status_code == 202
    task = response.json["task"]
    assert response.headers["Location"] == f"/admin/models/tasks/{task['id']}"
    assert (task["kind"], task["status"], task["finished"]) == ("try", "queued", False)
    assert f'id="try-{first}"' in task["html"] and "data-task-url" in task["html"]

    run_model_tasks(app)
    state = admin_client.get(f"/admin/models/tasks/{task['id']}").json
    assert (state["status"], state["finished"], state["error"]) == ("done", True, None)
    assert "Continuation" in state["html"] and "data-task-url" not in state["html"]


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
            # The batch goes on only once the prompt has its text: if trying a prompt waited
            # for the batch to end, it would wait here until this gives up.
            answered.wait(10)

    batch = threading.Thread(
        target=generator.generate, args=(["Quarterly report"] * 4, settings, progress)
    )
    batch.start()
    assert started.wait(10)
    admin_client.post(
        f"/admin/models/{two_versions[0]}/try",
        data={"prompt": "How do I mow my lawn?", "preset": "greedy", "max_new_tokens": "6"},
    )
    run_model_tasks(app)
    still_writing = batch.is_alive()
    answered.set()
    batch.join(10)

    page = admin_client.get("/admin/models").get_data(as_text=True)
    assert "Continuation" in task_box(page, f"try-{two_versions[0]}")
    assert still_writing


def test_a_second_prompt_waits_for_the_first_with_409(app, admin_client, two_versions):
    first = two_versions[0]
    data = {"prompt": "One", "preset": "greedy", "max_new_tokens": "3"}
    assert admin_client.post(f"/admin/models/{first}/try", data=data).status_code == 303

    again = admin_client.post(f"/admin/models/{first}/try", data=data)
    as_json = admin_client.post(
        f"/admin/models/{first}/try", data=data, headers={"Accept": "application/json"}
    )

    assert again.status_code == 409
    assert "already being tried on tiny:1" in html.unescape(again.get_data(as_text=True))
    assert as_json.status_code == 409
    assert "already being tried on tiny:1" in as_json.json["error"]["message"]
    # Another version, or the same once the first has its text, is fine.
    assert admin_client.post(f"/admin/models/{two_versions[1]}/try", data=data).status_code == 303
    run_model_tasks(app)
    assert admin_client.post(f"/admin/models/{first}/try", data=data).status_code == 303


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
def test_trying_a_bad_prompt_explains_what_is_wrong(app, admin_client, two_versions, data, message):
    response = admin_client.post(f"/admin/models/{two_versions[0]}/try", data=data)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    as_json = admin_client.post(
        f"/admin/models/{two_versions[0]}/try", data=data, headers={"Accept": "application/json"}
    )
    assert as_json.status_code == 422
    assert message in as_json.json["error"]["message"]
    with app.app_context():
        assert db.session.scalars(select(ModelTask)).all() == []


@pytest.mark.parametrize(
    "data",
    [
        {"prompt": "x" * 2001, "preset": "greedy", "max_new_tokens": "5"},
        {"prompt": "x", "preset": "nonsense", "max_new_tokens": "5"},
        {"prompt": "x", "preset": "greedy", "max_new_tokens": "1e9"},
        {"prompt": "x", "preset": "greedy", "max_new_tokens": "-1"},
        {"prompt": "x", "preset": "greedy", "max_new_tokens": ""},
    ],
)
def test_hostile_try_forms_are_refused_and_start_nothing(app, admin_client, two_versions, data):
    response = admin_client.post(f"/admin/models/{two_versions[0]}/try", data=data)
    assert response.status_code == 422
    with app.app_context():
        assert db.session.scalars(select(ModelTask)).all() == []


def test_model_actions_are_for_admins_only(app, make_user, two_versions):
    from srcflask.models import Role

    from .conftest import login_as

    with app.app_context():
        task = model_tasks.start_speed(db.session.get(ModelVersion, two_versions[0]), actor=None)
    for role in (Role.EDITOR, Role.SPONSOR):
        client = login_as(app.test_client(), make_user(role=role))
        first = two_versions[0]
        assert client.post(f"/admin/models/{first}/try", data={"prompt": "x"}).status_code == 403
        assert client.post(f"/admin/models/{first}/speed").status_code == 403
        assert client.post("/admin/models/catalog/gemma-3-270m/fetch").status_code == 403
        assert client.get(f"/admin/models/tasks/{task.id}").status_code == 403
    with app.app_context():
        assert len(db.session.scalars(select(ModelTask)).all()) == 1


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


def test_unknown_versions_and_actions_give_404(admin_client):
    assert admin_client.post("/admin/models/999/alias", data={"alias": "x"}).status_code == 404
    assert admin_client.post("/admin/models/999/try", data={"prompt": "x"}).status_code == 404
    assert admin_client.post("/admin/models/999/speed").status_code == 404
    for task_id in ("999", str(2**63), "-1", "x"):
        assert admin_client.get(f"/admin/models/tasks/{task_id}").status_code == 404
    missing = admin_client.get("/admin/models/tasks/999", headers={"Accept": "application/json"})
    assert missing.json["error"]["message"] == "No such model action."


def test_empty_registry_page_says_what_to_do(admin_client):
    page = admin_client.get("/admin/models").get_data(as_text=True)
    assert "No models yet" in page and "models pull-default" in page


def quiet_machine(monkeypatch, load: float | None = 0.1, cpus: int = 2) -> None:
    monkeypatch.setattr(speed, "machine_load", lambda: (load, cpus))


def test_measuring_speed_on_a_quiet_machine_keeps_the_median(
    app, admin_client, admin, two_versions, monkeypatch
):
    quiet_machine(monkeypatch, load=0.3)
    first, _ = two_versions

    response = admin_client.post(
        f"/admin/models/{first}/speed", environ_base={"REMOTE_ADDR": "198.51.100.9"}
    )

    assert response.status_code == 303
    assert response.location == f"/admin/models#speed-{first}"
    measuring = task_box(admin_client.get("/admin/models").get_data(as_text=True), f"speed-{first}")
    assert "Measuring…</button>" in measuring and "disabled" in measuring
    assert run_model_tasks(app) == 1
    page = html.unescape(admin_client.get("/admin/models").get_data(as_text=True))
    beside = task_box(page, f"speed-{first}")
    with app.app_context():
        measured = db.session.get(ModelVersion, first).metrics["speed"]
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "model.measure_speed")
        ).one()
    assert measured["runs"] == speed.SPEED_RUNS
    low, high = measured["spread"]["greedy"]
    assert low <= measured["greedy_tokens_per_second"] <= high
    assert (measured["load_average"], measured["cpus"], measured["busy"]) == (0.3, 2, False)
    # The figure, and what the measurement said, beside the button.
    assert f"{measured['greedy_tokens_per_second']} tokens/s greedy" in beside
    assert "Kept as its speed." in beside and "Measure now</button>" in beside
    assert "load average 0.3 on 2 CPUs" in beside
    assert event.details["kept"] is True
    assert (event.actor_id, event.ip_address) == (admin.id, "198.51.100.9")


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
        admin_client.post(f"/admin/models/{first}/speed")
        run_model_tasks(app)
    finally:
        release.set()
        if documents_running:
            holder.join(10)

    page = html.unescape(admin_client.get("/admin/models").get_data(as_text=True))
    beside = task_box(page, f"speed-{first}")
    assert f"Not kept, because the machine was busy: {because}." in beside
    assert "not measured yet" in beside
    with app.app_context():
        assert "speed" not in db.session.get(ModelVersion, first).metrics
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "model.measure_speed")
        ).one()
    assert event.details["kept"] is False and event.details["busy_because"] == because


def test_a_failed_measurement_says_why_beside_the_button(app, admin_client, two_versions):
    first, _ = two_versions
    with app.app_context():
        weights = registry.artifact_path(db.session.get(ModelVersion, first)) / "model.safetensors"
    weights.write_bytes(b"not weights")  # a damaged store: the model cannot load

    admin_client.post(f"/admin/models/{first}/speed", headers={"Accept": "application/json"})
    run_model_tasks(app)

    page = html.unescape(admin_client.get("/admin/models").get_data(as_text=True))
    beside = task_box(page, f"speed-{first}")
    assert "Not measured:" in beside and 'role="alert"' in beside
    assert "not measured yet" in beside and "Measure now</button>" in beside
    with app.app_context():
        task = db.session.scalars(select(ModelTask)).one()
        assert task.status.value == "failed" and task.error in beside
        assert task.active_slot is None  # measuring again is allowed


def test_one_measurement_at_a_time(app, admin_client, two_versions):
    first, second = two_versions
    assert admin_client.post(f"/admin/models/{first}/speed").status_code == 303

    refused = admin_client.post(
        f"/admin/models/{second}/speed", headers={"Accept": "application/json"}
    )

    assert refused.status_code == 409
    assert refused.json["error"]["message"].startswith("tiny:1 is being measured now")
    run_model_tasks(app)
    assert admin_client.post(f"/admin/models/{second}/speed").status_code == 303


def test_the_speed_command_measures_and_says_whether_it_kept_it(app, two_versions, monkeypatch):
    quiet_machine(monkeypatch, load=None)
    result = app.test_cli_runner().invoke(args=["models", "speed", "tiny:2", "--runs", "3"])

    assert result.exit_code == 0, result.output
    assert "Measuring tiny:2: 3 greedy and 3 beam-search runs" in result.output
    assert "median of 3 runs each" in result.output and "Kept as its speed." in result.output
    assert "load average unknown on 2 CPUs" in result.output
    with app.app_context():
        assert db.session.get(ModelVersion, two_versions[1]).metrics["speed"]["runs"] == 3
