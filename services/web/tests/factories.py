"""factory_boy factories for test rows."""

from __future__ import annotations

import factory
from werkzeug.security import generate_password_hash

from srcflask.extensions import db
from srcflask.models import (
    Document,
    MachineText,
    MachineTextStatus,
    ModelVersion,
    Revision,
    RevisionOrigin,
    Role,
    User,
    UserStatus,
)
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


class DocumentFactory(BaseFactory):
    """A document with its first revision and that revision's machine text.

    Pass machine_text__status / machine_text__text to set the machine text's state.
    """

    class Meta:
        model = Document

    owner = factory.SubFactory(UserFactory, role=Role.SPONSOR)
    editor = None
    title = factory.Sequence(lambda n: f"Document {n}")
    body = "The first paragraph of the document."

    @factory.post_generation
    def machine_text(document, create, extracted, status="done", text=None, **kwargs):
        revision = Revision(
            document=document,
            number=1,
            title=document.title,
            body=document.body,
            author=document.owner,
            origin=RevisionOrigin.SAVE,
        )
        status = MachineTextStatus(status)
        done = status is MachineTextStatus.DONE
        revision.machine_text = MachineText(
            status=status,
            text=(text if text is not None else "and the machine continued it.") if done else None,
            generated_tokens=7 if done else None,
            error="The model could not write this machine text: boom"
            if status is MachineTextStatus.FAILED
            else None,
            **kwargs,
        )
        if create:
            db.session.add(revision)
            db.session.commit()
