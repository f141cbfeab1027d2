"""Schemathesis against the API's own OpenAPI document, with a token of each role.

Every generated request is sent as a sponsor, an editor and an admin. The
checks: no 5xx answer, every status code documented, every body and content
type as the schema says. The number of requests sent is printed at the end of
the session and written to tests/artifacts/schemathesis-cases.txt.
"""

from __future__ import annotations

import atexit
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from srcflask.extensions import db
from srcflask.models import ApiToken, Role, User
from srcflask.models.api import ApiLimits
from srcflask.registry import service as registry

from .conftest import make_app
from .factories import DocumentFactory, UserFactory

pytestmark = pytest.mark.fuzz

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 50
ARTIFACT = Path(__file__).resolve().parent / "artifacts" / "schemathesis-cases.txt"
SENT: Counter = Counter()


def report() -> None:
    if SENT:
        ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"{key}: {count}" for key, count in sorted(SENT.items())]
        ARTIFACT.write_text("\n".join(lines) + f"\ntotal: {sum(SENT.values())}\n")


atexit.register(report)


@pytest.fixture(scope="module")
def fuzz_app(request, tmp_path_factory, tiny_models, database_kind):
    """One app and database for the whole run, with people, documents and a tiny model."""
    folder = tmp_path_factory.mktemp("fuzz")
    if database_kind == "postgres":
        url = request.getfixturevalue("postgres_schema_factory")()
    else:
        url = f"sqlite:///{folder / 'fuzz.sqlite3'}"
    app = make_app(url, folder / "instance")
    tokens = {}
    with app.app_context():
        db.create_all()
        version = registry.import_model(str(tiny_models["gpt2"]), "tiny", actor=None).version
        registry.set_alias(version, "production", actor=None)
        db.session.merge(
            ApiLimits(
                id=1,
                max_prompt_characters=500,
                max_new_tokens=12,
                max_beams=2,
                allow_sampling=True,
                requests_per_minute=10_000,
            )
        )
        people = {role: UserFactory(role=role, name=f"Fuzz {role.value}") for role in Role}
        for _ in range(3):
            DocumentFactory(owner=people[Role.SPONSOR], editor=people[Role.EDITOR])
        for role, user in people.items():
            token, secret = ApiToken.issue(db.session.get(User, user.id), "fuzz", 30)
            db.session.add(token)
            tokens[role.value] = secret
        db.session.commit()
    app.config["FUZZ_TOKENS"] = tokens
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="module")
def api_schema(fuzz_app):
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", fuzz_app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck)
)
def test_every_answer_matches_the_schema_and_none_is_a_server_error(case, fuzz_app):
    for role, secret in fuzz_app.config["FUZZ_TOKENS"].items():
        SENT[f"{case.operation.label} as {role}"] += 1
        case.call_and_validate(headers={"Authorization": f"Bearer {secret}"}, checks=CHECKS)
