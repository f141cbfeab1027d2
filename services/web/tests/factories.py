"""factory_boy factories for test rows."""

from __future__ import annotations

import factory
from werkzeug.security import generate_password_hash

from srcflask.extensions import db
from srcflask.models import Role, User, UserStatus
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
