"""What people are told when a generation job fails: what happened, never where on the server."""

from __future__ import annotations

import pytest

from srcflask.jobs.messages import failure_reason
from srcflask.ml.artifacts import UnsafeArtifactError
from srcflask.ml.engine import ModelLoadError


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (RuntimeError("CUDA out of memory"), "CUDA out of memory"),
        (
            FileNotFoundError(2, "No such file or directory", "/srv/models/tiny/config.json"),
            "No such file or directory",
        ),
        (
            UnsafeArtifactError("/srv/app/instance/models/tiny/v1-0123456789ab is not a folder"),
            "[path] is not a folder",
        ),
        (
            ModelLoadError(
                "cannot load the model in /srv/models/tiny/v1-abc: [Errno 13] Permission "
                "denied: '/srv/models/tiny/v1-abc/model.safetensors'"
            ),
            "cannot load the model in [path]: [Errno 13] Permission denied: [path]",
        ),
        (
            ValueError("artifact 'tiny/v1-abc' is outside the model store"),
            "artifact [path] is outside the model store",
        ),
        (
            OSError("Can't load it from 'https://huggingface.co/models'"),
            "Can't load it from [path]",
        ),
        (OSError("see file:///etc/passwd or ~/.cache/x"), "see [address] or [path]"),
        (KeyError(), "KeyError"),
        (RuntimeError("x" * 1000), "x" * 299 + "…"),
    ],
)
def test_failure_reasons_leave_out_server_paths(error, reason):
    assert failure_reason(error) == reason
