"""factory_boy factories for test rows."""

from __future__ import annotations

import factory
from werkzeug.security import generate_password_hash

from srcflask.extensions import db
from srcflask.models import ModelVersion, Role, User, UserStatus
from srcflask.models.types import utcnow

DEFAULT_PASSWORD = "correct horse battery staple"
# A cheap hash keeps the suite fast; the app's own hashing is tested on its own.
_CHEAP_HASH = generate_password_hash(DEFAULT_PASSWORD, method="pbkdf2:sha256:1000")


class BaseFactory(factory.alchemy.SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session_factory = lambda: db.session  # noqa: E731
        sqlalchemy_session_persistence = "commit"


class UserFactory(BaseFactory):
    class Meta:
        model = User

    name = factory.Faker("name")
    email = factory.Sequence(lambda n: f"user{n}@example.org")
    organization = factory.Faker("company")
    password_hash = _CHEAP_HASH
    role = Role.SPONSOR
    status = UserStatus.APPROVED
    approved_at = factory.LazyFunction(utcnow)


class ModelVersionFactory(BaseFactory):
    """A registry row without files: for pages and access checks, not for generating."""

    class Meta:
        model = ModelVersion

    name = "fake-model"
    version = factory.Sequence(lambda n: n + 1)
    source = "/nowhere"
    source_kind = "folder"
    sha256 = factory.Sequence(lambda n: f"{n:064x}")
    artifact = factory.LazyAttribute(lambda o: f"{o.name}/v{o.version}-{o.sha256[:12]}")
    architecture = "GPT2LMHeadModel"
    model_type = "gpt2"
    parameter_count = 1000
    size_bytes = 4000
    tokenizer = "PreTrainedTokenizerFast"
    context_length = 128
    prompt_format = "raw"
    generation_settings = factory.LazyFunction(dict)
    metrics = factory.LazyFunction(dict)
    description = ""
    tags = factory.LazyFunction(list)
    imported_by_label = "command line"
