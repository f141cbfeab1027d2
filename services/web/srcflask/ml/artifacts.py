"""Model artifacts on disk: what a loadable folder holds, its checksum, facts and conversions.

Weights are only ever read from safetensors files. Pickle-based files
(`*.bin`, `*.pt`, ...) can run code when loaded, so they are never copied into
the store and a folder holding nothing else is refused.

Only a model folder's own regular files are read. A symbolic link that leads
out of the folder would make an import copy any file the server can read into
the store, and a FIFO, socket or device would hang it or never end, so a
folder holding either is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
# Files of a Hugging Face model folder that are safe to keep: JSON, text, safetensors.
KEPT_FILES = {
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
    "model.safetensors.index.json",
}
HASH_CHUNK = 4 * 1024 * 1024

# Called as progress(done, total) while hashing or copying bytes.
ByteProgress = Callable[[int, int], None]


class UnsafeArtifactError(ValueError):
    """A model that could only be loaded through pickle, or is missing its safe weights."""


@dataclass(frozen=True)
class ModelFacts:
    """What a model folder is, read from its files without loading the weights."""

    architecture: str
    model_type: str
    parameter_count: int
    size_bytes: int
    tokenizer: str
    vocab_size: int | None
    context_length: int | None
    has_chat_template: bool


def weight_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.safetensors"))


def check_loadable_folder(folder: Path) -> None:
    """Refuse a folder without config or safetensors weights (pickle-only folders included)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UnsafeArtifactError(f"{folder} is not a folder")
    if not (folder / "config.json").is_file():
        raise UnsafeArtifactError(f"{folder} has no config.json: it is not a model folder")
    if not weight_files(folder):
        pickles = [p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES]
        if pickles:
            raise UnsafeArtifactError(
                f"{folder} holds only pickle weights ({', '.join(sorted(pickles))}); srcflask "
                "loads safetensors only, because pickle files can run code when loaded. "
                "Convert the model to safetensors first."
            )
        raise UnsafeArtifactError(f"{folder} has no *.safetensors weights")


_FILE_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def folder_files(folder: Path) -> dict[str, Path]:
    """The regular files at the top of a folder, by name, each at its real place inside it.

    Sub-folders are never read and are left out. Refuses, naming the entry, a
    symbolic link that leads out of the folder, loops or points at nothing,
    and anything that is not a regular file.
    """
    root = Path(folder).resolve()
    files: dict[str, Path] = {}
    for entry in sorted(os.scandir(root), key=lambda entry: entry.name):
        name, path = entry.name, Path(entry.path)
        if entry.is_symlink():
            try:
                path = path.resolve(strict=True)
            except FileNotFoundError:
                raise UnsafeArtifactError(
                    f"{name} is a broken symbolic link in the model folder"
                ) from None
            except (OSError, RuntimeError):  # a loop
                raise UnsafeArtifactError(
                    f"{name} is a symbolic link that loops back on itself"
                ) from None
            if root not in path.parents:
                raise UnsafeArtifactError(
                    f"{name} is a symbolic link that leads out of the model folder; only "
                    "files inside the folder are imported (copy the file in instead)"
                )
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            continue
        if not stat.S_ISREG(mode):
            kind = _FILE_KINDS.get(stat.S_IFMT(mode), "a special file")
            raise UnsafeArtifactError(
                f"{name} is not a regular file ({kind}); a model folder holds only files"
            )
        files[name] = path
    return files


def copy_model_folder(
    source: Path, target: Path, progress: ByteProgress | None = None
) -> list[str]:
    """Copy the safe files of a model folder; return the names of files left behind."""
    files = folder_files(source)
    check_loadable_folder(source)
    target.mkdir(parents=True, exist_ok=True)
    kept = {name: path for name, path in files.items() if _keep(name)}
    total = sum(path.stat().st_size for path in kept.values())
    done = 0
    for name, path in kept.items():
        done += _copy_regular_file(name, path, target / name)
        if progress:
            progress(done, total)
    return sorted(name for name in files if not _keep(name))


def _copy_regular_file(name: str, path: Path, target: Path) -> int:
    """Copy one checked file; refuse it if it was swapped for a link or special file since."""
    try:
        # O_NONBLOCK: opening a FIFO put in its place must not wait for a writer.
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        raise UnsafeArtifactError(f"{name} could not be read: {error.strerror}") from None
    with os.fdopen(handle, "rb") as source:
        if not stat.S_ISREG(os.fstat(source.fileno()).st_mode):
            raise UnsafeArtifactError(f"{name} is not a regular file any more")
        with target.open("wb") as copy:
            shutil.copyfileobj(source, copy, HASH_CHUNK)
            return copy.tell()


def _keep(name: str) -> bool:
    return name in KEPT_FILES or name.endswith(".safetensors") or name == "tokenizer.model"


def weights_sha256(folder: Path, progress: ByteProgress | None = None) -> str:
    """SHA-256 over the safetensors files of a folder, in name order (names included)."""
    files = weight_files(folder)
    total = sum(p.stat().st_size for p in files)
    digest = hashlib.sha256()
    done = 0
    for path in files:
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as handle:
            while chunk := handle.read(HASH_CHUNK):
                digest.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def describe(folder: Path) -> ModelFacts:
    """Read a model folder's architecture, size and tokenizer from its files."""
    from safetensors import safe_open

    config = json.loads((folder / "config.json").read_text())
    parameters = 0
    for path in weight_files(folder):
        with safe_open(path, framework="pt") as weights:
            for name in weights.keys():  # noqa: SIM118 (safe_open is not a mapping)
                count = 1
                for dimension in weights.get_slice(name).get_shape():
                    count *= dimension
                parameters += count
    tokenizer_config = {}
    if (folder / "tokenizer_config.json").is_file():
        tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    has_chat_template = (folder / "chat_template.jinja").is_file() or bool(
        tokenizer_config.get("chat_template")
    )
    architectures = config.get("architectures") or [config.get("model_type", "unknown")]
    context = next(
        (config[k] for k in ("max_position_embeddings", "n_positions", "n_ctx") if k in config),
        None,
    )
    return ModelFacts(
        architecture=architectures[0],
        model_type=config.get("model_type", "unknown"),
        parameter_count=parameters,
        size_bytes=folder_size(folder),
        tokenizer=tokenizer_config.get("tokenizer_class") or "PreTrainedTokenizerFast",
        vocab_size=config.get("vocab_size"),
        context_length=context,
        has_chat_template=has_chat_template,
    )


def convert_gguf(gguf_path: Path, target: Path) -> None:
    """Convert a GGUF file to a safetensors model folder (float32 weights).

    `transformers` dequantizes GGUF weights on load, but a model loaded that way
    refuses `save_pretrained`: so build a fresh model from its config without
    the quantization settings, load the weights into it and save that.
    """
    import torch

    from .lazy import model_classes, one_load_at_a_time

    AutoModelForCausalLM, AutoTokenizer = model_classes()

    gguf_path = Path(gguf_path)
    kwargs = {"gguf_file": gguf_path.name, "local_files_only": True}
    with one_load_at_a_time(), without_progress_bars():
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, **kwargs)
        loaded = AutoModelForCausalLM.from_pretrained(
            gguf_path.parent, dtype=torch.float32, **kwargs
        )
    config = loaded.config.__class__.from_dict(loaded.config.to_dict())
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.architectures = [type(loaded).__name__]
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.generation_config = loaded.generation_config
    target.mkdir(parents=True, exist_ok=True)
    with without_progress_bars():
        model.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)
    leftovers = [p.name for p in target.iterdir() if p.suffix in PICKLE_SUFFIXES]
    if leftovers:  # pragma: no cover - save_pretrained writes safetensors only
        raise UnsafeArtifactError(f"conversion wrote pickle files: {leftovers}")


def download_from_hub(repo_id: str, target: Path, revision: str | None = None) -> None:
    """Fetch a model's safe files from the Hugging Face hub (needs internet)."""
    from huggingface_hub import snapshot_download

    patterns = [*KEPT_FILES, "*.safetensors", "tokenizer.model"]
    snapshot_download(repo_id, revision=revision, local_dir=target, allow_patterns=patterns)
    for path in target.iterdir():
        if path.name.startswith(".") and path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)  # the hub client's own cache folder
    folder_files(target)
    check_loadable_folder(target)


@contextmanager
def without_progress_bars():
    """Without transformers' progress bars: in a server log or a terminal they are noise."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()
