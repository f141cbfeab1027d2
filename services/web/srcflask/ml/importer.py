"""Turning a model source into a verified artifact ready for the store.

A source is a local model folder, a `.gguf` file (converted once to
safetensors) or a Hugging Face hub id (only where the machine has internet).
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .artifacts import (
    ModelFacts,
    convert_gguf,
    copy_model_folder,
    describe,
    download_from_hub,
    file_sha256,
    weights_sha256,
)
from .engine import PromptFormat, TextGenerator
from .settings import GenerationSettings

# Called as report(step, done, total): a step title alone starts a step; done/total
# (bytes or runs) report progress inside it.
Report = Callable[[str, int | None, int | None], None]

CHECK_PROMPT = "The history of the bicycle begins in the early nineteenth century, when"
CHECK_SETTINGS = GenerationSettings(strategy="greedy", max_new_tokens=16, no_repeat_ngram_size=0)


def no_report(step: str, done: int | None = None, total: int | None = None) -> None:
    pass


class ImportFailed(RuntimeError):
    """A model source that could not be imported; the message says why."""


@dataclass
class PreparedModel:
    source_kind: str
    source_sha256: str | None
    sha256: str
    facts: ModelFacts
    skipped_files: list[str] = field(default_factory=list)


def source_kind(source: str) -> str:
    """Tell what a source string names: `folder`, `gguf` or `hub`."""
    path = Path(source).expanduser()
    if path.is_dir():
        return "folder"
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            return "gguf"
        raise ImportFailed(f"{source} is a file but not a .gguf file")
    if source.count("/") == 1 and not source.startswith((".", "/", "~")):
        return "hub"
    raise ImportFailed(f"{source} is neither a model folder, a .gguf file nor a hub id")


def gguf_checksum(source: str) -> str:
    return file_sha256(Path(source).expanduser())


def prepare(source: str, staged: Path, report: Report = no_report) -> PreparedModel:
    """Copy, convert or download `source` into `staged` and checksum its weights."""
    kind = source_kind(source)
    source_sha = None
    skipped: list[str] = []
    if kind == "folder":
        report("Copying the model folder", None, None)
        skipped = copy_model_folder(
            Path(source).expanduser(), staged, lambda d, t: report("copy", d, t)
        )
    elif kind == "gguf":
        report("Checksumming the GGUF file", None, None)
        source_sha = gguf_checksum(source)
        report("Converting GGUF to safetensors (loads and dequantizes every tensor)", None, None)
        convert_gguf(Path(source).expanduser(), staged)
    else:
        report(f"Downloading {source} from the Hugging Face hub", None, None)
        try:
            download_from_hub(source, staged)
        except Exception as error:
            raise ImportFailed(f"could not download {source} from the hub: {error}") from error
    report("Checksumming the weights", None, None)
    sha = weights_sha256(staged, lambda d, t: report("hash", d, t))
    return PreparedModel(kind, source_sha, sha, describe(staged), skipped)


def verify(
    folder: Path,
    prompt_format: PromptFormat,
    *,
    device: str = "auto",
    threads: int | None = None,
    label: str = "",
    report: Report = no_report,
) -> dict[str, Any]:
    """Load the model and check that it writes text for a fixed prompt.

    Its speed is measured on demand (`ml.speed`), when the admin asks and with
    the machine's load noted, not here, where an import may share the machine
    with anything.
    """
    report("Loading the converted model", None, None)
    generator = TextGenerator(
        folder, label=label, prompt_format=prompt_format, device=device, threads=threads
    )
    report("Checking that it writes text", None, None)
    [result] = generator.generate([CHECK_PROMPT], CHECK_SETTINGS)
    if result.generated_tokens == 0:
        raise ImportFailed("the model loaded but wrote no text for the test prompt")
    return {
        "load_seconds": round(generator.load_seconds, 3),
        "check_prompt": CHECK_PROMPT,
        "check_sample": result.text,
        "loaded_on": f"{generator.device}, {platform.machine()}, {_thread_count()} threads",
        "verified_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "verified": True,
    }


def _thread_count() -> int:
    import torch

    return torch.get_num_threads()
