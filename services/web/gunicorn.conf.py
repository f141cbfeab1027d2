"""gunicorn settings for srcflask's web process (generation never runs in a request).

Every value can be changed with an environment variable of the same name in
upper case with a GUNICORN_ prefix (GUNICORN_WORKERS=4, ...).
"""

import multiprocessing
import os
import sys


def _env(name: str, default):
    value = os.environ.get(f"GUNICORN_{name.upper()}")
    return type(default)(value) if value not in (None, "") else default


bind = _env("bind", "0.0.0.0:8000")
# Page requests are short and mostly wait on the database: a few processes with
# threads each. Saves only queue generation work; the model never runs here.
workers = _env("workers", min(multiprocessing.cpu_count() * 2 + 1, 9))
threads = _env("threads", 4)
worker_class = "gthread"
timeout = _env("timeout", 30)
graceful_timeout = _env("graceful_timeout", 30)
keepalive = _env("keepalive", 5)
max_requests = _env("max_requests", 2000)
max_requests_jitter = _env("max_requests_jitter", 200)
# nginx's address: only it may tell gunicorn the client's scheme and address.
forwarded_allow_ips = _env("forwarded_allow_ips", "127.0.0.1")
accesslog = "-"
errorlog = "-"
loglevel = _env("loglevel", "info")
access_log_format = '%({x-forwarded-for}i)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s %(L)ss'


# srcflask's settings check this: in-memory rate limits cannot be shared by workers.
os.environ["SRCFLASK_WEB_WORKERS"] = str(workers)


def on_starting(server):
    """Check srcflask's settings once, in the master, and stop with the reason if they fail."""
    from srcflask.config import ConfigError, load_config

    instance = os.environ.get("SRCFLASK_INSTANCE_PATH") or os.path.join(os.getcwd(), "instance")
    try:
        load_config(None, instance)
    except ConfigError as error:
        print(f"srcflask cannot start: {error}", file=sys.stderr)
        sys.exit(1)
