"""The model store: a folder holding one sub-folder per model version."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from filelock import FileLock

from .artifacts import file_sha256

STAGING = ".staging"


def slug(name: str) -> str:
    """A folder-safe form of a model name."""
    cleaned = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-.")
    return cleaned or "model"


class ModelStore:
    """Model versions on disk under `root`, written atomically through a staging folder."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @staticmethod
    def artifact_name(name: str, version: int, sha256: str) -> str:
        # Name, version and checksum: two versions can never share a folder.
        return f"{slug(name)}/v{version}-{sha256[:12]}"

    def path(self, artifact: str) -> Path:
        """The folder of an artifact; refuses names that would leave the store."""
        path = (self.root / artifact).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"artifact {artifact!r} is outside the model store")
        return path

    def exists(self, artifact: str) -> bool:
        return self.path(artifact).is_dir()

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A scratch folder inside the store, removed afterwards unless committed."""
        folder = self.root / STAGING / uuid.uuid4().hex
        folder.mkdir(parents=True)
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def commit(self, staged: Path, artifact: str) -> Literal["new", "kept", "replaced"]:
        """Move a staged folder to its place in the store (one rename, same disk).

        The place can be taken already when the store has outlived its database
        (a reset or restored database, or another installation sharing the
        store). Files identical to the staged ones are kept as they are (a
        worker may be reading them); anything else there is replaced.
        """
        target = self.path(artifact)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not (target.exists() or target.is_symlink()):
            os.replace(staged, target)
            return "new"
        if same_files(staged, target):
            return "kept"
        aside = self.root / STAGING / f"replaced-{uuid.uuid4().hex}"
        os.replace(target, aside)
        os.replace(staged, target)
        if aside.is_dir() and not aside.is_symlink():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            aside.unlink()
        return "replaced"

    def remove(self, artifact: str) -> None:
        shutil.rmtree(self.path(artifact), ignore_errors=True)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the store's import lock: one import at a time, across processes on this disk."""
        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(self.root / ".import.lock"):
            yield


def same_files(folder: Path, other: Path) -> bool:
    """Whether `other` is a real folder holding exactly the files of `folder`, byte for byte."""
    if other.is_symlink() or not other.is_dir():
        return False
    names = sorted(path.name for path in folder.iterdir())
    if sorted(path.name for path in other.iterdir()) != names:
        return False
    for name in names:
        there = other / name
        if there.is_symlink() or not there.is_file():
            return False
        if file_sha256(folder / name) != file_sha256(there):
            return False
    return True
