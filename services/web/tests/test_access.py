"""The access matrix: every route x every kind of visitor, with the answer each gets.

Adding a route without a row here fails `test_every_route_has_a_row`, so no
page can ship without deciding who may reach it. Document routes are asked
about one document, owned by `sponsor` and assigned to `editor`; the
`*-other` visitors have the same role but no tie to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from srcflask.extensions import db
from srcflask.models import (
    ApiToken,
    Decision,
    Experiment,
    ExperimentStatus,
    GenerationJob,
    ModelTask,
    ModelTaskKind,
    Review,
    Role,
    TrainingRun,
    User,
    UserStatus,
)

from .conftest import plant_session
from .factories import DocumentFactory, ModelVersionFactory

VISITORS = [
    "anonymous",
    "pending",
    "rejected",
    "suspended",
    "sponsor",
    "sponsor-other",
    "editor",
    "editor-other",
    "admin",
]
INACTIVE = ["pending", "rejected", "suspended"]
SPONSORS = ["sponsor", "sponsor-other"]
EDITORS = ["editor", "editor-other"]
APPROVED = [*SPONSORS, *EDITORS, "admin"]

# Expected answers: a status code, or (status code, where it redirects to).
TO_LOGIN = (302, "/auth/login")
TO_LOGIN_AFTER_POST = (303, "/auth/login")
TO_STATUS = (302, "/auth/status")
TO_STATUS_AFTER_POST = (303, "/auth/status")
TO_INDEX = (302, "/")


def everyone(answer) -> dict:
    return {visitor: answer for visitor in VISITORS}


def gate(approved: dict, *, post: bool = False) -> dict:
    """Anonymous to login, inactive to their status page, approved visitors as given."""
    answers = {"anonymous": TO_LOGIN_AFTER_POST if post else TO_LOGIN}
    answers |= {v: TO_STATUS_AFTER_POST if post else TO_STATUS for v in INACTIVE}
    return answers | approved


def only(roles: list[str], allowed, *, post: bool = False) -> dict:
    """Approved visitors of `roles` get `allowed`, other approved visitors 403."""
    return gate({v: allowed if v in roles else 403 for v in APPROVED}, post=post)


def readers(answer, *, owner=None, editor=None, post: bool = False) -> dict:
    """A route about the document: its sponsor, its editor and admins read it; others 404."""
    return gate(
        {
            "sponsor": owner if owner is not None else answer,
            "sponsor-other": 404,
            "editor": editor if editor is not None else answer,
            "editor-other": 404,
            "admin": answer,
        },
        post=post,
    )


def owner_only(answer, *, post: bool = False) -> dict:
    """A sponsor page about the document: its sponsor only; other sponsors 404."""
    return gate(
        {"sponsor": answer, "sponsor-other": 404, "editor": 403, "editor-other": 403, "admin": 403},
        post=post,
    )


def assigned_only(answer, *, post: bool = False) -> dict:
    """An editor page about the document: its editor only; other editors 404."""
    return gate(
        {"sponsor": 403, "sponsor-other": 403, "editor": answer, "editor-other": 404, "admin": 403},
        post=post,
    )


def api_gate(approved: dict) -> dict:
    """API answers: no token 401, a token of an account that is not approved 403."""
    return {"anonymous": 401} | {v: 403 for v in INACTIVE} | approved


def api_only(roles: list[str], allowed) -> dict:
    return api_gate({v: allowed if v in roles else 403 for v in APPROVED})


def api_readers(answer, *, owner=None, editor=None, admin=None, others=404) -> dict:
    return api_gate(
        {
            "sponsor": owner if owner is not None else answer,
            "sponsor-other": others,
            "editor": editor if editor is not None else answer,
            "editor-other": others,
            "admin": admin if admin is not None else answer,
        }
    )


def logged_out_only(anonymous_answer) -> dict:
    return {"anonymous": anonymous_answer} | {v: TO_INDEX for v in INACTIVE + APPROVED}


@dataclass
class Row:
    url: str
    answers: dict
    data: dict = field(default_factory=dict)
    json: dict | None = None


DOC = "/documents/{doc}"
API_DOC = "/api/v1/documents/{doc}"
SPONSOR_DOC = "/sponsor/documents/{doc}"
TO_SPONSOR_DOC = (303, SPONSOR_DOC)

# (method, URL rule) -> the URL to request and what each visitor gets. Placeholders:
# {target} a pending user for admin actions, {version} a model version, {doc} the document,
# {task} a model action, {experiment} an experiment that has ended.
MATRIX: dict[tuple[str, str], Row] = {
    ("GET", "/"): Row("/", {"anonymous": TO_LOGIN} | {v: 302 for v in INACTIVE + APPROVED}),
    ("GET", "/healthz"): Row("/healthz", everyone(200)),
    # No production model in these tests: not ready, whoever asks.
    ("GET", "/readyz"): Row("/readyz", everyone(503)),
    ("GET", "/static/<path:filename>"): Row("/static/css/app.css", everyone(200)),
    ("GET", "/auth/login"): Row("/auth/login", logged_out_only(200)),
    ("POST", "/auth/login"): Row("/auth/login", logged_out_only(422)),
    ("GET", "/auth/signup"): Row("/auth/signup", logged_out_only(200)),
    ("POST", "/auth/signup"): Row("/auth/signup", logged_out_only(422)),
    ("POST", "/auth/logout"): Row("/auth/logout", everyone((303, "/auth/login"))),
    ("GET", "/auth/status"): Row(
        "/auth/status",
        {"anonymous": TO_LOGIN} | {v: 200 for v in INACTIVE} | {v: 302 for v in APPROVED},
    ),
    # Sponsors
    ("GET", "/sponsor/"): Row("/sponsor/", only(SPONSORS, (302, "/sponsor/documents"))),
    ("GET", "/sponsor/documents"): Row("/sponsor/documents", only(SPONSORS, 200)),
    ("GET", "/sponsor/documents/import"): Row("/sponsor/documents/import", only(SPONSORS, 200)),
    ("POST", "/sponsor/documents/import"): Row(
        "/sponsor/documents/import", only(SPONSORS, 422, post=True)
    ),
    ("GET", "/sponsor/documents/export.<any(csv, jsonl):kind>"): Row(
        "/sponsor/documents/export.csv", only(SPONSORS, 200)
    ),
    ("GET", "/sponsor/documents/new"): Row("/sponsor/documents/new", only(SPONSORS, 200)),
    ("POST", "/sponsor/documents/new"): Row(
        "/sponsor/documents/new",
        only(SPONSORS, 303, post=True),
        data={"title": "New", "body": "Text", "editor_id": ""},
    ),
    ("GET", "/sponsor/documents/<int:document_id>"): Row(SPONSOR_DOC, owner_only(200)),
    ("GET", "/sponsor/documents/<int:document_id>/edit"): Row(
        SPONSOR_DOC + "/edit", owner_only(200)
    ),
    ("POST", "/sponsor/documents/<int:document_id>/edit"): Row(
        SPONSOR_DOC + "/edit",
        owner_only(TO_SPONSOR_DOC, post=True),
        data={"title": "Changed", "body": "Changed text", "editor_id": ""},
    ),
    ("POST", "/sponsor/documents/<int:document_id>/editor"): Row(
        SPONSOR_DOC + "/editor", owner_only(TO_SPONSOR_DOC, post=True), data={"editor_id": ""}
    ),
    ("GET", "/sponsor/documents/<int:document_id>/delete"): Row(
        SPONSOR_DOC + "/delete", owner_only(200)
    ),
    ("POST", "/sponsor/documents/<int:document_id>/delete"): Row(
        SPONSOR_DOC + "/delete", owner_only((303, "/sponsor/documents"), post=True)
    ),
    # Editors
    ("GET", "/editor/"): Row("/editor/", only(EDITORS, (302, "/editor/documents"))),
    ("GET", "/editor/documents"): Row("/editor/documents", only(EDITORS, 200)),
    ("GET", "/editor/documents/<int:document_id>/review"): Row(
        "/editor/documents/{doc}/review", assigned_only(200)
    ),
    ("POST", "/editor/documents/<int:document_id>/review"): Row(
        "/editor/documents/{doc}/review",
        assigned_only((303, "/editor/documents/{doc}/review"), post=True),
        data={"decision": "reject", "text": ""},
    ),
    # Undo: the editor who decided, on a document still assigned to them (here a rejection).
    ("POST", "/editor/documents/<int:document_id>/reviews/<int:review_id>/undo"): Row(
        "/editor/documents/{decided_doc}/reviews/{review}/undo",
        assigned_only((303, "/editor/documents/{decided_doc}/review"), post=True),
    ),
    # Every reader of the document
    ("GET", "/documents/<int:document_id>"): Row(DOC, readers(200, owner=(302, SPONSOR_DOC))),
    ("GET", "/documents/<int:document_id>/machine-text"): Row(DOC + "/machine-text", readers(200)),
    # Every approved person may ask; the answer holds only documents they may read.
    ("GET", "/documents/machine-text"): Row(
        "/documents/machine-text?ids={doc}", gate({v: 200 for v in APPROVED})
    ),
    ("POST", "/documents/<int:document_id>/machine-text/retry"): Row(
        DOC + "/machine-text/retry", readers((303, DOC), owner=TO_SPONSOR_DOC, post=True)
    ),
    # Write more: the sponsor and the editor (told it is written already); admins only read.
    ("POST", "/documents/<int:document_id>/machine-text/more"): Row(
        DOC + "/machine-text/more",
        readers((303, DOC), owner=TO_SPONSOR_DOC, post=True) | {"admin": 403},
    ),
    ("GET", "/documents/<int:document_id>/revisions/<int:number>"): Row(
        DOC + "/revisions/1", readers(200)
    ),
    # Admins
    ("GET", "/admin/"): Row("/admin/", only(["admin"], 200)),
    ("GET", "/admin/users"): Row("/admin/users", only(["admin"], 200)),
    ("GET", "/admin/audit"): Row("/admin/audit", only(["admin"], 200)),
    ("GET", "/admin/documents"): Row("/admin/documents", only(["admin"], 200)),
    ("POST", "/admin/users/<int:user_id>/<any(approve, reject, suspend, reinstate):action>"): Row(
        "/admin/users/{target}/approve", only(["admin"], (303, "/admin/users"), post=True)
    ),
    ("POST", "/admin/users/<int:user_id>/role"): Row(
        "/admin/users/{target}/role",
        only(["admin"], (303, "/admin/users"), post=True),
        data={"role": "editor"},
    ),
    ("GET", "/admin/models"): Row("/admin/models", only(["admin"], 200)),
    ("GET", "/admin/reviews"): Row("/admin/reviews", only(["admin"], 200)),
    ("GET", "/admin/training"): Row("/admin/training", only(["admin"], 200)),
    # The form names no version these tests have: refused with the reason.
    ("POST", "/admin/training"): Row(
        "/admin/training",
        only(["admin"], 422, post=True),
        data={"parent": "{version}", "name": "tuned", "epochs": "1", "learning_rate": "0.001"},
    ),
    ("GET", "/admin/training/<int:run_id>"): Row("/admin/training/{run}", only(["admin"], 200)),
    # Experiments (the one in these tests has ended: stopping or promoting it is refused)
    ("GET", "/admin/experiments"): Row("/admin/experiments", only(["admin"], 200)),
    ("POST", "/admin/experiments"): Row("/admin/experiments", only(["admin"], 422, post=True)),
    ("GET", "/admin/experiments/<int:experiment_id>"): Row(
        "/admin/experiments/{experiment}", only(["admin"], 200)
    ),
    ("POST", "/admin/experiments/<int:experiment_id>/stop"): Row(
        "/admin/experiments/{experiment}/stop",
        only(["admin"], (303, "/admin/experiments/{experiment}"), post=True),
    ),
    ("POST", "/admin/experiments/<int:experiment_id>/promote"): Row(
        "/admin/experiments/{experiment}/promote",
        only(["admin"], (303, "/admin/experiments/{experiment}"), post=True),
    ),
    ("GET", "/admin/training/<int:run_id>/progress"): Row(
        "/admin/training/{run}/progress", only(["admin"], 200)
    ),
    ("POST", "/admin/training/<int:run_id>/cancel"): Row(
        "/admin/training/{run}/cancel",
        only(["admin"], (303, "/admin/training/{run}"), post=True),
    ),
    ("POST", "/admin/models/rollback"): Row(
        "/admin/models/rollback", only(["admin"], (303, "/admin/models"), post=True)
    ),
    ("GET", "/admin/reviews/export.<any(csv, jsonl):kind>"): Row(
        "/admin/reviews/export.jsonl", only(["admin"], 200)
    ),
    # The fixture's version has no terms file, so even an admin finds nothing there.
    ("GET", "/admin/models/<int:version_id>/license"): Row(
        "/admin/models/{version}/license", only(["admin"], 404)
    ),
    ("POST", "/admin/models/<int:version_id>/alias"): Row(
        "/admin/models/{version}/alias",
        only(["admin"], (303, "/admin/models"), post=True),
        data={"alias": "candidate"},
    ),
    ("POST", "/admin/models/<int:version_id>/prompt-format"): Row(
        "/admin/models/{version}/prompt-format",
        only(["admin"], (303, "/admin/models"), post=True),
        data={"prompt_format": "raw"},
    ),
    ("POST", "/admin/models/<int:version_id>/speed"): Row(
        "/admin/models/{version}/speed",
        only(["admin"], (303, "/admin/models#speed-{version}"), post=True),
    ),
    # Queued only (no runner runs in these tests), so nothing is downloaded.
    ("POST", "/admin/models/catalog/<string:name>/fetch"): Row(
        "/admin/models/catalog/smollm2-135m-instruct/fetch",
        only(["admin"], (303, "/admin/models#catalog-smollm2-135m-instruct"), post=True),
    ),
    ("GET", "/admin/models/tasks/<int:task_id>"): Row(
        "/admin/models/tasks/{task}", only(["admin"], 200)
    ),
    ("POST", "/admin/models/<int:version_id>/try"): Row(
        "/admin/models/{version}/try",
        only(["admin"], 422, post=True),
        data={"prompt": ""},
    ),
    ("GET", "/admin/api"): Row("/admin/api", only(["admin"], 200)),
    ("POST", "/admin/api"): Row(
        "/admin/api",
        only(["admin"], (303, "/admin/api"), post=True),
        data={
            "max_prompt_characters": "1000",
            "max_new_tokens": "64",
            "max_beams": "4",
            "allow_sampling": "y",
            "requests_per_minute": "20",
        },
    ),
    # Account pages
    ("GET", "/account/"): Row("/account/", only(APPROVED, 200)),
    ("POST", "/account/password"): Row(
        "/account/password",
        only(APPROVED, 422, post=True),
        data={"current_password": "not it", "new_password": "x", "confirm_password": "y"},
    ),
    ("POST", "/account/sessions/end-all"): Row(
        "/account/sessions/end-all", only(APPROVED, (303, "/auth/login"), post=True)
    ),
    ("GET", "/account/tokens"): Row("/account/tokens", only(APPROVED, 200)),
    ("POST", "/account/tokens"): Row(
        "/account/tokens",
        only(APPROVED, (303, "/account/tokens"), post=True),
        data={"name": "script", "expires_in_days": "30"},
    ),
    ("POST", "/account/tokens/<int:token_id>/revoke"): Row(
        "/account/tokens/{token}/revoke",
        gate(
            {"sponsor": (303, "/account/tokens")} | {v: 404 for v in APPROVED if v != "sponsor"},
            post=True,
        ),
    ),
    # The JSON API, with each visitor's API token
    ("GET", "/api/v1/openapi.json"): Row("/api/v1/openapi.json", everyone(200)),
    ("GET", "/api/v1/docs"): Row("/api/v1/docs", everyone(200)),
    ("GET", "/api/v1/me"): Row("/api/v1/me", api_only(APPROVED, 200)),
    ("GET", "/api/v1/documents"): Row("/api/v1/documents", api_only(APPROVED, 200)),
    ("POST", "/api/v1/documents"): Row(
        "/api/v1/documents", api_only(SPONSORS, 201), json={"title": "From a script"}
    ),
    ("POST", "/api/v1/documents/import"): Row(
        "/api/v1/documents/import",
        api_only(SPONSORS, 201),
        json={"documents": [{"title": "From a file"}]},
    ),
    ("GET", "/api/v1/documents/<int:document_id>"): Row(API_DOC, api_readers(200)),
    ("PATCH", "/api/v1/documents/<int:document_id>"): Row(
        API_DOC, api_readers(200, editor=403, admin=403), json={"title": "Renamed"}
    ),
    ("DELETE", "/api/v1/documents/<int:document_id>"): Row(
        API_DOC, api_readers(204, editor=403, admin=403)
    ),
    ("GET", "/api/v1/documents/<int:document_id>/revisions"): Row(
        API_DOC + "/revisions", api_readers(200)
    ),
    ("GET", "/api/v1/documents/<int:document_id>/revisions/<int:number>/machine-text"): Row(
        API_DOC + "/revisions/1/machine-text", api_readers(200)
    ),
    ("POST", "/api/v1/documents/<int:document_id>/machine-text"): Row(
        API_DOC + "/machine-text", api_readers(409, admin=403)
    ),
    ("POST", "/api/v1/machine-texts/<int:machine_text_id>/review"): Row(
        "/api/v1/machine-texts/{mt}/review",
        api_gate(
            {"sponsor": 403, "sponsor-other": 403, "editor": 201, "editor-other": 404, "admin": 403}
        ),
        json={"decision": "reject"},
    ),
    ("DELETE", "/api/v1/reviews/<int:review_id>"): Row(
        "/api/v1/reviews/{review}",
        api_gate(
            {"sponsor": 403, "sponsor-other": 403, "editor": 200, "editor-other": 404, "admin": 403}
        ),
    ),
    # No production model in these tests, so every generation is queued.
    ("POST", "/api/v1/generate"): Row(
        "/api/v1/generate",
        api_only(APPROVED, 202),
        json={"prompt": "Hi", "settings": {"strategy": "greedy", "max_new_tokens": 4}},
    ),
    ("GET", "/api/v1/jobs/<int:job_id>"): Row("/api/v1/jobs/{job}", api_readers(200, editor=404)),
    ("GET", "/api/v1/models"): Row("/api/v1/models", api_only(APPROVED, 200)),
    ("GET", "/api/v1/experiments"): Row("/api/v1/experiments", api_only(["admin"], 200)),
    ("POST", "/api/v1/experiments"): Row(
        "/api/v1/experiments", api_only(["admin"], 404), json={"challenger": "nothing:9"}
    ),
    ("GET", "/api/v1/experiments/<int:experiment_id>"): Row(
        "/api/v1/experiments/{experiment}", api_only(["admin"], 200)
    ),
    ("POST", "/api/v1/experiments/<int:experiment_id>/stop"): Row(
        "/api/v1/experiments/{experiment}/stop", api_only(["admin"], 409), json={"confirm": True}
    ),
    ("POST", "/api/v1/experiments/<int:experiment_id>/promote"): Row(
        "/api/v1/experiments/{experiment}/promote",
        api_only(["admin"], 409),
        json={"confirm": True},
    ),
    ("POST", "/api/v1/models/<string:name>/aliases"): Row(
        "/api/v1/models/fake-model/aliases",
        api_only(["admin"], 200),
        json={"version": "{version_number}", "alias": "candidate"},
    ),
    ("GET", "/api/v1/models/<string:name>/<int:version>/metrics"): Row(
        "/api/v1/models/fake-model/{version_number}/metrics", api_only(["admin"], 200)
    ),
    ("GET", "/api/v1/users"): Row("/api/v1/users", api_only(["admin"], 200)),
    ("POST", "/api/v1/users/<int:user_id>/approve"): Row(
        "/api/v1/users/{target}/approve", api_only(["admin"], 200)
    ),
    ("POST", "/api/v1/users/<int:user_id>/reject"): Row(
        "/api/v1/users/{target}/reject", api_only(["admin"], 200)
    ),
    # The target is pending: it cannot be suspended or reinstated.
    ("POST", "/api/v1/users/<int:user_id>/suspend"): Row(
        "/api/v1/users/{target}/suspend", api_only(["admin"], 409)
    ),
    ("POST", "/api/v1/users/<int:user_id>/reinstate"): Row(
        "/api/v1/users/{target}/reinstate", api_only(["admin"], 409)
    ),
    ("POST", "/api/v1/users/<int:user_id>/role"): Row(
        "/api/v1/users/{target}/role", api_only(["admin"], 200), json={"role": "editor"}
    ),
}


def app_routes(app) -> set[tuple[str, str]]:
    return {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


def test_every_route_has_a_row(app):
    routes = app_routes(app)
    missing = routes - MATRIX.keys()
    stale = MATRIX.keys() - routes
    assert not missing, f"routes without a row in the access matrix: {sorted(missing)}"
    assert not stale, f"rows for routes that no longer exist: {sorted(stale)}"


VISITOR_USERS = {
    "pending": (Role.SPONSOR, UserStatus.PENDING),
    "rejected": (Role.EDITOR, UserStatus.REJECTED),
    "suspended": (Role.SPONSOR, UserStatus.SUSPENDED),
    "sponsor-other": (Role.SPONSOR, UserStatus.APPROVED),
    "editor-other": (Role.EDITOR, UserStatus.APPROVED),
    "admin": (Role.ADMIN, UserStatus.APPROVED),
}


@pytest.mark.parametrize("visitor", VISITORS)
@pytest.mark.parametrize("route", sorted(MATRIX), ids=lambda r: f"{r[0]} {r[1]}")
def test_access(app, make_user, route, visitor):
    row = MATRIX[route]
    method, rule = route
    # A second admin, so no admin action trips the last-admin guard.
    make_user(role=Role.ADMIN)
    owner = make_user(role=Role.SPONSOR)
    editor = make_user(role=Role.EDITOR)
    target = make_user(role=Role.SPONSOR, status=UserStatus.PENDING)
    visitor_id = {"sponsor": owner.id, "editor": editor.id, "anonymous": None}.get(visitor)
    if visitor_id is None and visitor != "anonymous":
        role, status = VISITOR_USERS[visitor]
        visitor_id = make_user(role=role, status=status).id
    with app.app_context():
        model = ModelVersionFactory()
        owner_user = db.session.get(User, owner.id)
        document = DocumentFactory(owner=owner_user, editor=db.session.get(User, editor.id))
        token, _ = ApiToken.issue(owner_user, "owner's token", 30)
        job = GenerationJob(user=owner_user, prompt="Hello", settings={})
        run = TrainingRun(parent=model, name="tuned", created_by_label="command line")
        task = ModelTask(kind=ModelTaskKind.SPEED, version=model, created_by_label="command line")
        # A second document of theirs whose machine text the editor just rejected.
        decided = DocumentFactory(owner=owner_user, editor=db.session.get(User, editor.id))
        review = Review(
            machine_text=decided.revisions[0].machine_text,
            editor_id=editor.id,
            decision=Decision.REJECTED,
            kept_share=0.0,
        )
        experiment = Experiment(
            champion=model,
            challenger=model,
            challenger_preset="greedy",
            status=ExperimentStatus.STOPPED,
            started_by_label="command line",
        )
        db.session.add_all([token, job, run, review, task, experiment])
        db.session.flush()
        secret = None
        if visitor_id is not None:
            visitor_token, secret = ApiToken.issue(db.session.get(User, visitor_id), "t", 30)
            db.session.add(visitor_token)
        db.session.commit()
        values = {
            "target": target.id,
            "version": model.id,
            "version_number": model.version,
            "doc": document.id,
            "mt": document.revisions[0].machine_text.id,
            "job": job.id,
            "token": token.id,
            "run": run.id,
            "task": task.id,
            "decided_doc": decided.id,
            "review": review.id,
            "experiment": experiment.id,
        }
    client = app.test_client()
    headers = {}
    if rule.startswith("/api/"):
        if secret:
            headers["Authorization"] = f"Bearer {secret}"
    elif visitor_id is not None:
        plant_session(app, client, visitor_id)

    json_body = fill(row.json, values) if row.json is not None else None
    response = client.open(
        row.url.format(**values),
        method=method,
        data=row.data or None,
        json=json_body,
        headers=headers,
    )

    expected = row.answers[visitor]
    code, location = expected if isinstance(expected, tuple) else (expected, None)
    assert response.status_code == code, response.get_data(as_text=True)[:800]
    if location is not None:
        assert response.location.split("?")[0] == location.format(**values)
    if rule.startswith("/api/v1/") and rule not in ("/api/v1/docs",) and code >= 400:
        assert set(response.json["error"]) >= {"code", "message"}


def fill(body: dict, values: dict) -> dict:
    """Put the test's ids into a JSON body ("{name}" strings become numbers)."""
    filled = {}
    for key, value in body.items():
        if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
            filled[key] = values[value[1:-1]]
        elif isinstance(value, dict):
            filled[key] = fill(value, values)
        else:
            filled[key] = value
    return filled
