"""Model files that changed on disk are caught before a version writes any text.

The registry holds the SHA-256 of each version's weights and the size of its
files. Hashing a 1 GB model at every job would take seconds, so a process hashes
a version's files once, when it first uses the version (its load, which is rare),
and keeps what `os.stat` said of each file then: size, modification time, inode.
Before each batch it stats the files again (microseconds) and hashes again only
when that changed. A change that keeps size and modification time (a bit flipped
in place with the time set back) is invisible to `os.stat`: the next load, in
this process or any other, hashes the files and catches it.

A version whose files do not verify is marked (`ModelVersion.files_problem`): its
jobs fail with the reason and write no text, and the Models page and /readyz say
so. Once the files are put back, the next check sees them changed, hashes them
again and clears the mark.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from flask import current_app

from ..extensions import db
from ..ml.artifacts import folder_size, weights_sha256
from ..models import ModelVersion

log = logging.getLogger(__name__)

Fingerprint = tuple[tuple[str, int, int, int], ...]


class ModelFilesChanged(RuntimeError):
    """A version's files in the model store are not those the registry recorded."""


@dataclass(frozen=True)
class Verified:
    """What one process found when it last hashed a version's files."""

    fingerprint: Fingerprint | None
    problem: str | None


def fingerprint(folder: Path) -> Fingerprint | None:
    """What os.stat says of a folder's files (name, size, mtime, inode); None if it is gone."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return None
    stats = []
    for entry in entries:
        if entry.is_file():
            stat = entry.stat()
            stats.append((entry.name, stat.st_size, stat.st_mtime_ns, stat.st_ino))
    return tuple(sorted(stats))


def size_problem(version: ModelVersion, folder: Path) -> str | None:
    """What differs in the files' sizes from the registry (stat only, no hashing)."""
    if not (folder / "config.json").is_file():
        return "its files are missing from the model store"
    size = folder_size(folder)
    if version.license_file and (folder / version.license_file).is_file():
        # Copied in after the size was measured at import.
        size -= (folder / version.license_file).stat().st_size
    if size != version.size_bytes:
        return (
            f"its files changed on disk: {size:,} bytes where the registry recorded "
            f"{version.size_bytes:,}"
        )
    return None


def hash_problem(version: ModelVersion, folder: Path) -> str | None:
    """Hash the version's weights; say what differs from the registry, or None."""
    problem = size_problem(version, folder)
    if problem is not None:
        return problem
    actual = weights_sha256(folder)
    if actual != version.sha256:
        return (
            f"its weights changed on disk: SHA-256 {actual[:12]}… where the registry "
            f"recorded {version.sha256[:12]}…"
        )
    return None


def check_files(version: ModelVersion, folder: Path) -> None:
    """Raise ModelFilesChanged unless the version's files are those the registry recorded.

    Hashes on the first check in a process and whenever os.stat sees a change (or
    another process recorded a different finding); otherwise only stats the files.
    """
    verified: dict[int, Verified] = current_app.extensions.setdefault(
        "srcflask.verified_models", {}
    )
    lock: threading.Lock = current_app.extensions.setdefault(
        "srcflask.verified_models_lock", threading.Lock()
    )
    with lock:
        now = fingerprint(folder)
        seen = verified.get(version.id)
        if seen is None or seen.fingerprint != now or seen.problem != version.files_problem:
            seen = Verified(now, hash_problem(version, folder))
            verified[version.id] = seen
            if seen.problem != version.files_problem:
                _record(version, folder, seen.problem)
    if seen.problem is not None:
        raise ModelFilesChanged(seen.problem)


def _record(version: ModelVersion, folder: Path, problem: str | None) -> None:
    # The log names the folder, for admins; pages and jobs name only the version.
    if problem is None:
        log.warning("the files of %s (%s) verify again", version.label, folder)
    else:
        log.error("the files of %s (%s) cannot be used: %s", version.label, folder, problem)
    version.files_problem = problem
    db.session.commit()
