"""What people are told when a generation job fails: what happened, never where on the server.

A failed job's error is stored on its row and shown to everyone who may read
the job (a document's sponsor and editor, the API caller), so it must not
carry the server's paths: the model store, the instance folder, a user's
home. The full error, paths included, goes to the log for admins.
"""

from __future__ import annotations

import re

MAX_REASON = 300
# A quoted string with a slash in it is a path (or a URL) however it is spelled.
_QUOTED_PATH = re.compile(r"""'[^'\n]*[/\\][^'\n]*'|"[^"\n]*[/\\][^"\n]*\"""")
_ADDRESS = re.compile(r"\b[a-zA-Z][\w+.-]*://\S+")
_PATH = re.compile(r"(?:[\w.~-]*[/\\])+[\w.-]*")


def failure_reason(error: BaseException) -> str:
    """The error's message without paths or addresses, short enough to show on a page."""
    # An OSError's str() names its file; its strerror says what happened.
    reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    reason = _QUOTED_PATH.sub("[path]", reason)
    reason = _ADDRESS.sub("[address]", reason)
    reason = _PATH.sub("[path]", reason).strip()
    if not reason:
        return type(error).__name__
    return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 1] + "…"
