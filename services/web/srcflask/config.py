"""Configuration classes, read from the environment.

`SRCFLASK_ENV` picks the class: ``development`` (the default), ``production``
or ``testing``. Every setting can be overridden by an environment variable of
the same name; docs/configuration.md lists them all with their defaults.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import ClassVar

# The value shipped in .env.prod: a production app refuses to start with it.
PLACEHOLDER_SECRET_KEY = "change-me-to-a-long-random-value"  # noqa: S105
MIN_SECRET_KEY_LENGTH = 32
# The quality benchmark's documents (in bench/): the first set, and one of further genres
# with a held-out part.
QUALITY_FILES = ("documents.jsonl", "documents-genres.jsonl")


class ConfigError(RuntimeError):
    """The configuration cannot run the app; the message says what to fix."""


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def env_int(name: str, default: int) -> int:
    raw = env_str(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def env_bool(name: str, default: bool) -> bool:
    raw = env_str(name)
    if raw is None:
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


class BaseConfig:
    ENV_NAME = "base"

    SECRET_KEY: str | None = None
    SQLALCHEMY_DATABASE_URI: str | None = None
    SQLALCHEMY_ENGINE_OPTIONS: ClassVar[dict] = {"pool_pre_ping": True}
    MAX_CONTENT_LENGTH = 1024 * 1024

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False
    SESSION_COOKIE_NAME = "srcflask_session"
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_SECURE = False
    PERMANENT_SESSION_LIFETIME = timedelta(hours=12)

    WTF_CSRF_ENABLED = True
    # Checked in srcflask.security instead, so requests authenticated by an API token
    # (and only those) can skip it.
    WTF_CSRF_CHECK_DEFAULT = False
    WTF_CSRF_TIME_LIMIT = 8 * 3600

    RATELIMIT_ENABLED = True
    # memory:// counts in each process alone; production uses Redis (REDIS_URL, or a
    # Redis CELERY_BROKER_URL) unless this is set.
    RATELIMIT_STORAGE_URI = "memory://"
    REDIS_URL: str | None = None
    RATELIMIT_HEADERS_ENABLED = True
    RATELIMIT_STRATEGY = "fixed-window"
    RATELIMIT_KEY_PREFIX = "srcflask"
    # Login attempts from one address, whatever the account.
    RATELIMIT_LOGIN_PER_IP = "20 per minute;200 per day"
    # Wrong passwords for one account from one address...
    RATELIMIT_LOGIN_PER_ACCOUNT_AND_IP = "5 per minute;50 per day"
    # ...and for one account from every address together (guessing from many addresses).
    RATELIMIT_LOGIN_PER_ACCOUNT = "20 per hour;100 per day"
    RATELIMIT_SIGNUP_PER_IP = "10 per hour"
    RATELIMIT_SIGNUP_PER_ACCOUNT = "3 per hour"

    # Number of reverse proxies in front of the app whose X-Forwarded-* to trust.
    PROXY_FIX_HOPS = 0
    HSTS = False
    LOG_LEVEL = "INFO"
    PAGE_SIZE = 25

    # Models and generation. MODEL_STORE defaults to <instance>/models.
    MODEL_STORE: str | None = None
    MODEL_CACHE: str | None = None
    # The quality benchmark's documents; defaults to bench/documents.jsonl beside the package.
    # The quality benchmark's files, joined by the system's path separator.
    QUALITY_DOCUMENTS: str | None = None
    GENERATION_DEVICE = "auto"
    GENERATION_THREADS = 0  # 0: PyTorch's default (one per core)
    GENERATION_MAX_INPUT_TOKENS = 1024
    GENERATION_CACHED_MODELS = 2
    GENERATION_BATCH_SIZE = 8
    # Weights' precision: "auto" is float32 on a CPU and bfloat16 on a GPU; "bfloat16" on
    # a CPU with native support (AVX512-BF16, AMX) is faster, with slightly different text.
    GENERATION_DTYPE = "auto"
    # Beams decoded in one step at most (documents x beams): bounds the KV cache's memory.
    GENERATION_MAX_ROWS = 80
    # float32 linear layers on a CPU: "onednn" (faster where the BLAS has slow kernels for
    # a few rows; falls back by itself) or "blas" (PyTorch's default).
    GENERATION_CPU_LINEAR = "onednn"

    # Generation jobs. JOBS_MODE: local (a thread in the web process), celery or manual;
    # the default is celery when CELERY_BROKER_URL is set, else local.
    CELERY_BROKER_URL: str | None = None
    CELERY_QUEUE = "generation"
    JOBS_MODE: str | None = None
    JOB_STALE_SECONDS = 30
    JOB_HEARTBEAT_SECONDS = 5
    JOB_MAX_ATTEMPTS = 3
    # Machine texts one person may have queued or running; more saves wait behind them.
    JOB_MAX_QUEUED_PER_USER = 10
    # This server's address as its users reach it (https://srcflask.example.org): the API
    # documentation's examples use it. Pages never take it from the request's Host header.
    PUBLIC_URL: str | None = None
    # How long an editor may undo a decision on a machine text, in seconds.
    REVIEW_UNDO_SECONDS = 300
    # Machine texts one revision may have: its first, and those written in place of rejected ones.
    MACHINE_TEXTS_PER_REVISION = 10
    JOB_POLL_SECONDS = 5
    JOB_SWEEP_SECONDS = 30
    JOB_RESEND_SECONDS = 300
    JOB_VISIBILITY_SECONDS = 600
    # How much lower generation's CPU priority is than the web's (0-19, as `nice`): the
    # Celery worker's process, the embedded runner's thread. Generation is batch work,
    # and on a shared machine a save should not wait behind it.
    WORKER_NICE = 10

    # Fine-tuning. Runs go to their own Celery queue, consumed only by workers started
    # for it (`-Q training`, on a GPU machine for example). TRAINING_DIR holds their
    # checkpoints (defaults to <instance>/training); it must be shared by those workers.
    TRAINING_QUEUE = "training"
    TRAINING_DIR: str | None = None
    TRAINING_MIN_REVIEWS = 20
    # A run whose worker has not reported for this long is taken over (at once when the
    # worker's process is gone from this host); one step must fit in it.
    TRAINING_STALE_SECONDS = 600

    # Settings an environment variable of the same name may set (DATABASE_URL sets
    # SQLALCHEMY_DATABASE_URI). The type of the default decides how the value is read.
    FROM_ENVIRONMENT: ClassVar[frozenset[str]] = frozenset(
        {
            "SECRET_KEY",
            "DATABASE_URL",
            "MAX_CONTENT_LENGTH",
            "SESSION_COOKIE_SECURE",
            "RATELIMIT_ENABLED",
            "RATELIMIT_KEY_PREFIX",
            "RATELIMIT_STORAGE_URI",
            "REDIS_URL",
            "RATELIMIT_LOGIN_PER_IP",
            "RATELIMIT_LOGIN_PER_ACCOUNT",
            "RATELIMIT_LOGIN_PER_ACCOUNT_AND_IP",
            "RATELIMIT_SIGNUP_PER_IP",
            "RATELIMIT_SIGNUP_PER_ACCOUNT",
            "PROXY_FIX_HOPS",
            "LOG_LEVEL",
            "PAGE_SIZE",
            "MODEL_STORE",
            "MODEL_CACHE",
            "QUALITY_DOCUMENTS",
            "GENERATION_DEVICE",
            "GENERATION_THREADS",
            "GENERATION_MAX_INPUT_TOKENS",
            "GENERATION_CACHED_MODELS",
            "GENERATION_BATCH_SIZE",
            "GENERATION_DTYPE",
            "GENERATION_MAX_ROWS",
            "GENERATION_CPU_LINEAR",
            "CELERY_BROKER_URL",
            "CELERY_QUEUE",
            "JOBS_MODE",
            "JOB_STALE_SECONDS",
            "JOB_HEARTBEAT_SECONDS",
            "JOB_MAX_ATTEMPTS",
            "JOB_MAX_QUEUED_PER_USER",
            "PUBLIC_URL",
            "REVIEW_UNDO_SECONDS",
            "MACHINE_TEXTS_PER_REVISION",
            "JOB_POLL_SECONDS",
            "JOB_SWEEP_SECONDS",
            "JOB_RESEND_SECONDS",
            "JOB_VISIBILITY_SECONDS",
            "WORKER_NICE",
            "TRAINING_QUEUE",
            "TRAINING_DIR",
            "TRAINING_MIN_REVIEWS",
            "TRAINING_STALE_SECONDS",
        }
    )
    ALIASES: ClassVar[dict[str, str]] = {"DATABASE_URL": "SQLALCHEMY_DATABASE_URI"}

    @classmethod
    def from_environment(cls) -> dict:
        """Return this class's settings with environment overrides applied."""
        settings = {key: getattr(cls, key) for key in dir(cls) if key.isupper()}
        for name in cls.FROM_ENVIRONMENT:
            key = cls.ALIASES.get(name, name)
            default = settings[key]
            if isinstance(default, bool):
                settings[key] = env_bool(name, default)
            elif isinstance(default, int):
                settings[key] = env_int(name, default)
            else:
                settings[key] = env_str(name, default)
        settings["REMEMBER_COOKIE_SECURE"] = settings["SESSION_COOKIE_SECURE"]
        return settings


class DevelopmentConfig(BaseConfig):
    ENV_NAME = "development"


class TestingConfig(BaseConfig):
    ENV_NAME = "testing"
    JOBS_MODE = "manual"
    TESTING = True
    SECRET_KEY = "testing-" + secrets.token_hex(16)
    WTF_CSRF_ENABLED = False
    RATELIMIT_ENABLED = False
    SQLALCHEMY_DATABASE_URI = "sqlite://"


class ProductionConfig(BaseConfig):
    ENV_NAME = "production"
    SESSION_COOKIE_SECURE = True
    REMEMBER_COOKIE_SECURE = True
    PREFERRED_URL_SCHEME = "https"
    HSTS = True


CONFIGS: dict[str, type[BaseConfig]] = {
    "development": DevelopmentConfig,
    "production": ProductionConfig,
    "testing": TestingConfig,
}


def load_config(env_name: str | None, instance_path: str) -> dict:
    """Build the settings for `env_name` (default: SRCFLASK_ENV, then development)."""
    env_name = env_name or env_str("SRCFLASK_ENV", "development")
    if env_name not in CONFIGS:
        raise ConfigError(
            f"SRCFLASK_ENV must be one of {', '.join(sorted(CONFIGS))}, got {env_name!r}"
        )
    settings = CONFIGS[env_name].from_environment()
    if settings["SQLALCHEMY_DATABASE_URI"] is None:
        database = Path(instance_path) / "srcflask.sqlite3"
        settings["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{database}"
    if settings["JOBS_MODE"] is None:
        settings["JOBS_MODE"] = "celery" if settings["CELERY_BROKER_URL"] else "local"
    if settings["MODEL_STORE"] is None:
        settings["MODEL_STORE"] = str(Path(instance_path) / "models")
    if settings["TRAINING_DIR"] is None:
        settings["TRAINING_DIR"] = str(Path(instance_path) / "training")
    if settings["MODEL_CACHE"] is None:
        cache_home = env_str("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        settings["MODEL_CACHE"] = str(Path(cache_home) / "srcflask")
    if settings["QUALITY_DOCUMENTS"] is None:
        package_parent = Path(__file__).resolve().parent.parent
        settings["QUALITY_DOCUMENTS"] = os.pathsep.join(
            str(package_parent / "bench" / name) for name in QUALITY_FILES
        )
    settings["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(
        settings["SQLALCHEMY_DATABASE_URI"]
    )
    settings["RATELIMIT_STORAGE_URI"] = rate_limit_storage(env_name, settings)
    check_rate_limit_storage(settings, env_int("SRCFLASK_WEB_WORKERS", 1))
    if env_name == "production":
        check_secret_key(settings["SECRET_KEY"])
        if "change-me" in settings["SQLALCHEMY_DATABASE_URI"]:
            raise ConfigError(
                "DATABASE_URL still holds the placeholder password from .env.prod; "
                "set the real one (and the same in .env.prod.db)."
            )
    elif not settings["SECRET_KEY"]:
        settings["SECRET_KEY"] = instance_secret_key(instance_path)
    return settings


def rate_limit_storage(env_name: str, settings: dict) -> str:
    """Where rate-limit counts live: RATELIMIT_STORAGE_URI if set, in production else Redis."""
    if env_str("RATELIMIT_STORAGE_URI") is not None or env_name != "production":
        return settings["RATELIMIT_STORAGE_URI"]
    broker = settings["CELERY_BROKER_URL"] or ""
    redis_url = settings["REDIS_URL"] or (
        broker if broker.startswith(("redis://", "rediss://")) else None
    )
    return redis_url or settings["RATELIMIT_STORAGE_URI"]


def check_rate_limit_storage(settings: dict, workers: int) -> None:
    """Refuse in-memory rate limits shared by nobody when several web workers run.

    Each gunicorn worker would keep its own counts, so five login attempts a
    minute would become five per worker. gunicorn.conf.py sets SRCFLASK_WEB_WORKERS.
    """
    if not settings["RATELIMIT_ENABLED"] or workers <= 1:
        return
    if settings["RATELIMIT_STORAGE_URI"].startswith("memory://"):
        raise ConfigError(
            f"RATELIMIT_STORAGE_URI is memory://, but {workers} web workers run: each would "
            f"count on its own, allowing {workers} times the limits (login attempts included). "
            "Set REDIS_URL or RATELIMIT_STORAGE_URI to a Redis URL (redis://host:6379/1), "
            "or run one worker (GUNICORN_WORKERS=1)."
        )


def normalise_database_url(url: str) -> str:
    """Use the psycopg 3 driver for plain postgres:// and postgresql:// URLs."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def check_secret_key(key: str | None) -> None:
    """Refuse a missing, short or placeholder SECRET_KEY (production only)."""
    hint = 'Generate one with: python -c "import secrets; print(secrets.token_urlsafe(48))"'
    if not key:
        raise ConfigError(f"SECRET_KEY is not set; production needs a real one. {hint}")
    if key == PLACEHOLDER_SECRET_KEY or "change-me" in key:
        raise ConfigError(f"SECRET_KEY is still the placeholder from .env.prod. {hint}")
    if len(key) < MIN_SECRET_KEY_LENGTH:
        raise ConfigError(
            f"SECRET_KEY is too short ({len(key)} characters, at least "
            f"{MIN_SECRET_KEY_LENGTH} needed). {hint}"
        )


def instance_secret_key(instance_path: str) -> str:
    """Return a random key kept in the instance folder, so dev sessions survive restarts."""
    path = Path(instance_path) / "secret_key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    temporary = path.with_name(f".secret_key.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    try:
        # link() fails if the file exists, so two processes starting together agree.
        os.link(temporary, path)
    except FileExistsError:
        key = path.read_text().strip()
    finally:
        temporary.unlink()
    return key
