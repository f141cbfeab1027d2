"""The model registry service: import versions into the store, name them, find them.

Every change is written to the audit log. The `production` alias names the
one version that writes machine text; it is unique across all models.
"""

from __future__ import annotations

import platform
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from ..extensions import db
from ..ml import catalog, quality, speed
from ..ml.artifacts import weights_sha256
from ..ml.engine import PromptFormat, TextGenerator
from ..ml.importer import Report, gguf_checksum, no_report, prepare, source_kind, verify
from ..ml.settings import DEFAULT_PRESET, PRESETS, GenerationSettings
from ..ml.store import ModelStore
from ..models import ModelAlias, ModelEvaluation, ModelVersion, User, record_event
from ..models.mlmodels import PRODUCTION, PROMPT_FORMATS

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
ALIAS_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,49}$")


class RegistryError(ValueError):
    """A registry request that cannot be done; the message says why."""


@dataclass
class ImportOutcome:
    version: ModelVersion
    created: bool


@dataclass(frozen=True)
class Provenance:
    """What an import records beyond its source path: where it came from and its license."""

    source: str | None = None  # how to name the source, when not its local path
    license: str | None = None
    license_url: str | None = None
    license_file: Path | None = None  # a terms file to keep beside the weights


def model_store() -> ModelStore:
    return ModelStore(current_app.config["MODEL_STORE"])


def artifact_path(version: ModelVersion) -> Path:
    return model_store().path(version.artifact)


def changed_files(version: ModelVersion) -> str | None:
    """Hash a version's weights in the store again; say how they differ from the registry."""
    folder = artifact_path(version)
    if not folder.is_dir():
        return f"missing from the model store ({folder})"
    actual = weights_sha256(folder)
    if actual != version.sha256:
        return f"files changed: SHA-256 {actual[:12]}, the registry says {version.sha256[:12]}"
    return None


def all_versions() -> list[ModelVersion]:
    return db.session.scalars(
        select(ModelVersion)
        .options(selectinload(ModelVersion.aliases), selectinload(ModelVersion.imported_by))
        .order_by(ModelVersion.name, ModelVersion.version.desc())
    ).all()


def production_version() -> ModelVersion | None:
    """The version that writes machine text, if one has the `production` alias."""
    return db.session.scalar(
        select(ModelVersion).join(ModelVersion.aliases).where(ModelAlias.alias == PRODUCTION)
    )


def find_version(spec: str) -> ModelVersion:
    """Find `name`, `name:VERSION` or `name:ALIAS` (a bare name means its newest version)."""
    name, _, selector = spec.partition(":")
    query = select(ModelVersion).where(ModelVersion.name == name)
    if selector.isdigit():
        query = query.where(ModelVersion.version == int(selector))
    elif selector:
        query = query.join(ModelVersion.aliases).where(ModelAlias.alias == selector)
    else:
        query = query.order_by(ModelVersion.version.desc()).limit(1)
    version = db.session.scalar(query)
    if version is None:
        raise RegistryError(f"no model version {spec!r}; `flask models list` shows them")
    return version


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise RegistryError(
            "model names use lower-case letters, digits, '.', '_' and '-' (at most 100), "
            f"got {name!r}"
        )
    return name


def prompt_format_of(version: ModelVersion) -> PromptFormat:
    return PromptFormat(version.prompt_format, version.system_prompt)


def import_model(
    source: str,
    name: str,
    *,
    actor: User | None,
    description: str = "",
    tags: list[str] | None = None,
    prompt_format: str | None = None,
    system_prompt: str | None = None,
    ip_address: str | None = None,
    report: Report = no_report,
    provenance: Provenance | None = None,
) -> ImportOutcome:
    """Import a model folder, GGUF file or hub id as the next version of `name`."""
    # Processes that boot together (web, workers) must not import the same model twice.
    with model_store().lock():
        return _import_model(
            source,
            name,
            actor=actor,
            description=description,
            tags=tags,
            prompt_format=prompt_format,
            system_prompt=system_prompt,
            ip_address=ip_address,
            report=report,
            provenance=provenance or Provenance(),
        )


def _import_model(
    source,
    name,
    *,
    actor,
    description,
    tags,
    prompt_format,
    system_prompt,
    ip_address,
    report,
    provenance,
) -> ImportOutcome:
    check_name(name)
    if prompt_format is not None and prompt_format not in PROMPT_FORMATS:
        raise RegistryError(f"prompt format must be one of {', '.join(PROMPT_FORMATS)}")
    kind = source_kind(source)
    store = model_store()
    if kind == "gguf":
        # Converting takes a while: recognise a GGUF imported before by its own checksum.
        existing = db.session.scalar(
            select(ModelVersion).where(ModelVersion.source_sha256 == gguf_checksum(source))
        )
        if existing is not None and store.exists(existing.artifact):
            return ImportOutcome(existing, created=False)
    config = current_app.config
    with store.staging() as staged:
        prepared = prepare(source, staged, report)
        if provenance.license_file is not None:
            shutil.copyfile(provenance.license_file, staged / provenance.license_file.name)
        existing = db.session.scalar(
            select(ModelVersion).where(ModelVersion.sha256 == prepared.sha256)
        )
        if existing is not None:
            if not store.exists(existing.artifact):  # the store lost it; the database did not
                report(f"Restoring the files of {existing.label} in the model store", None, None)
                store.commit(staged, existing.artifact)
            return ImportOutcome(existing, created=False)
        fmt = prompt_format or ("chat" if prepared.facts.has_chat_template else "raw")
        prompt = PromptFormat(fmt, system_prompt)
        metrics = verify(
            staged,
            prompt,
            device=config["GENERATION_DEVICE"],
            threads=config["GENERATION_THREADS"] or None,
            label=f"{name} (new)",
            report=report,
        )
        if prepared.skipped_files:
            metrics["files_not_imported"] = prepared.skipped_files
        number = (
            db.session.scalar(
                select(func.max(ModelVersion.version)).where(ModelVersion.name == name)
            )
            or 0
        ) + 1
        artifact = ModelStore.artifact_name(name, number, prepared.sha256)
        facts = prepared.facts
        version = ModelVersion(
            name=name,
            version=number,
            source=provenance.source or str(source),
            source_kind=prepared.source_kind,
            source_sha256=prepared.source_sha256,
            artifact=artifact,
            sha256=prepared.sha256,
            architecture=facts.architecture,
            model_type=facts.model_type,
            parameter_count=facts.parameter_count,
            size_bytes=facts.size_bytes,
            tokenizer=facts.tokenizer,
            context_length=facts.context_length,
            prompt_format=fmt,
            system_prompt=system_prompt if fmt != "raw" else None,
            generation_settings=PRESETS[DEFAULT_PRESET].to_dict(),
            metrics=metrics,
            description=description,
            tags=sorted(set(tags or [])),
            license=provenance.license,
            license_url=provenance.license_url,
            license_file=provenance.license_file.name if provenance.license_file else None,
            imported_by=actor,
            imported_by_label=actor.email if actor else "command line",
        )
        report("Saving to the model store", None, None)
        stored = store.commit(staged, artifact)
        if stored == "kept":
            report("The model store already holds these files, unchanged: keeping them", None, None)
        elif stored == "replaced":
            report("The model store held other files in their place: replaced them", None, None)
    db.session.add(version)
    record_event(
        "model.import",
        actor=actor,
        target_label=version.label,
        ip_address=ip_address,
        source=str(source),
        sha256=prepared.sha256,
    )
    try:
        db.session.commit()
    except Exception:
        db.session.rollback()
        if stored != "kept":  # files kept were there before, perhaps another's
            store.remove(artifact)
        raise
    return ImportOutcome(version, created=True)


def set_alias(
    version: ModelVersion,
    alias: str,
    *,
    actor: User | None,
    ip_address: str | None = None,
    rollback: bool = False,
) -> ModelVersion | None:
    """Point `alias` at `version`; return the version it pointed at before, if any."""
    if not ALIAS_PATTERN.match(alias):
        raise RegistryError(
            "aliases start with a letter and use lower-case letters, digits, '_' and '-'"
        )
    query = select(ModelAlias).where(ModelAlias.alias == alias)
    if alias != PRODUCTION:
        query = query.where(ModelAlias.model_name == version.name)
    previous = db.session.scalar(query)
    before = previous.version if previous else None
    if before is not None and before.id == version.id:
        return before
    if previous is not None:
        db.session.delete(previous)
        db.session.flush()
    db.session.add(
        ModelAlias(model_name=version.name, alias=alias, version=version, previous_version=before)
    )
    record_event(
        "model.rollback" if rollback else "model.alias",
        actor=actor,
        target_label=version.label,
        ip_address=ip_address,
        alias=alias,
        previous=before.label if before else None,
    )
    db.session.commit()
    db.session.refresh(version)
    if alias == PRODUCTION:
        from ..experiments import service as experiments  # it reads the registry

        experiments.production_moved(version)
    return before


def rollback_target(alias: str = PRODUCTION) -> ModelVersion | None:
    """The version `alias` named before its last move, if it is still in the registry."""
    current = db.session.scalar(select(ModelAlias).where(ModelAlias.alias == alias))
    return current.previous_version if current is not None else None


def roll_back(
    alias: str = PRODUCTION, *, actor: User | None, ip_address: str | None = None
) -> ModelVersion:
    """Point `alias` back at the version it named before its last move; return that version."""
    target = rollback_target(alias)
    if target is None:
        raise RegistryError(f"{alias} has not moved since srcflask began keeping its history.")
    set_alias(target, alias, actor=actor, ip_address=ip_address, rollback=True)
    return target


def update_prompt_format(
    version: ModelVersion,
    prompt_format: str,
    system_prompt: str | None,
    *,
    actor: User | None,
    ip_address: str | None = None,
) -> None:
    """Change how documents are put to a version (raw text, or chat with a system line)."""
    if prompt_format not in PROMPT_FORMATS:
        raise RegistryError(f"prompt format must be one of {', '.join(PROMPT_FORMATS)}")
    before = (version.prompt_format, version.system_prompt)
    version.prompt_format = prompt_format
    version.system_prompt = (system_prompt or None) if prompt_format != "raw" else None
    record_event(
        "model.prompt_format",
        actor=actor,
        target_label=version.label,
        ip_address=ip_address,
        before=before[0],
        after=prompt_format,
        system_prompt=version.system_prompt,
    )
    db.session.commit()


def pull(
    name: str,
    *,
    actor: User | None = None,
    report: Report = no_report,
    ip_address: str | None = None,
) -> tuple[ImportOutcome, bool]:
    """Fetch a catalog model and import it; make it production when no version is.

    Returns the import outcome and whether the production alias was set: an
    installation that has a production model keeps it (moving it is an
    admin's decision, never an upgrade's).
    """
    entry = catalog.get(name)
    cache = Path(current_app.config["MODEL_CACHE"])
    report(f"Fetching {entry.source} into {cache}", None, None)
    gguf, terms = catalog.fetch(entry, cache, report)
    outcome = import_model(
        str(gguf),
        entry.name,
        actor=actor,
        ip_address=ip_address,
        description=entry.description,
        tags=list(entry.tags),
        prompt_format=entry.prompt_format,
        system_prompt=None,
        report=report,
        provenance=Provenance(
            source=entry.source,
            license=entry.license,
            license_url=entry.license_url,
            license_file=terms,
        ),
    )
    made_production = False
    if production_version() is None:
        set_alias(outcome.version, PRODUCTION, actor=actor, ip_address=ip_address)
        made_production = True
    return outcome, made_production


def fetched_versions() -> dict[str, ModelVersion]:
    """The catalog models already imported: catalog name -> the newest version of its GGUF."""
    by_checksum = {entry.gguf_sha256: name for name, entry in catalog.CATALOG.items()}
    rows = db.session.scalars(
        select(ModelVersion)
        .where(ModelVersion.source_sha256.in_(by_checksum))
        .order_by(ModelVersion.id)
    ).all()
    return {by_checksum[version.source_sha256]: version for version in rows}


def pull_default(
    *, actor: User | None = None, report: Report = no_report
) -> tuple[ImportOutcome, bool]:
    """Fetch and import the catalog's default model (see `pull`)."""
    return pull(catalog.DEFAULT_MODEL, actor=actor, report=report)


def catalog_advice(current: ModelVersion) -> list[str]:
    """What the catalog now recommends that an installation's production model does not do.

    Upgrades never change the production model or its prompt format on their
    own; they say what changed and how to follow it.
    """
    advice = []
    entry = catalog.CATALOG.get(current.name)
    if entry is not None and current.prompt_format != entry.prompt_format:
        advice.append(
            f"{current.label} writes with the {current.prompt_format} prompt format; the quality "
            f"benchmark recommends {entry.prompt_format} for it (change it on the Models page)."
        )
    if current.name != catalog.DEFAULT_MODEL:
        advice.append(
            f"The catalog's default is now {catalog.DEFAULT_MODEL}; production stays "
            f"{current.label}. To compare: `flask --app srcflask models pull "
            f"{catalog.DEFAULT_MODEL}` and `models evaluate`; to switch, make it production "
            "on the Models page."
        )
    return advice


def license_path(version: ModelVersion) -> Path | None:
    """The terms file kept beside a version's weights, if it has one on disk."""
    if not version.license_file:
        return None
    path = artifact_path(version) / version.license_file
    return path if path.is_file() else None


# -- the quality benchmark -----------------------------------------------------------


def quality_documents() -> list[quality.BenchDocument]:
    return quality.load_documents(current_app.config["QUALITY_DOCUMENTS"])


def evaluate_version(
    version: ModelVersion,
    *,
    prompt_format: str | None = None,
    preset: str = DEFAULT_PRESET,
    max_new_tokens: int | None = None,
    limit: int | None = None,
    actor: User | None = None,
    progress: quality.DocumentProgress | None = None,
) -> ModelEvaluation:
    """Run the quality benchmark on a version and keep its figures on the version."""
    if preset not in PRESETS:
        raise RegistryError(f"preset must be one of {', '.join(sorted(PRESETS))}")
    fmt = prompt_format or version.prompt_format
    if fmt not in PROMPT_FORMATS:
        raise RegistryError(f"prompt format must be one of {', '.join(PROMPT_FORMATS)}")
    documents = quality_documents()[:limit] if limit else quality_documents()
    settings = settings_for(version)
    if preset != DEFAULT_PRESET or not version.generation_settings:
        settings = PRESETS[preset]
    if max_new_tokens is not None:
        settings = settings.replace(max_new_tokens=max_new_tokens)
    generator = generator_for(version).with_prompt_format(PromptFormat(fmt, version.system_prompt))
    report = quality.evaluate(generator, documents, settings, preset=preset, progress=progress)
    evaluation = ModelEvaluation(
        version=version,
        prompt_format=fmt,
        preset=preset,
        settings=report.settings,
        dataset_sha256=report.dataset_sha256,
        summary=report.summary,
        samples=[
            {
                "id": outcome.id,
                "text": outcome.text,
                "continues": outcome.continues,
                "reasons": outcome.reasons,
                "clean_ending": outcome.clean_ending,
                "split": outcome.split,
                "degenerate": outcome.degenerate,
                "markup": outcome.markup,
                "invented_contacts": outcome.invented_contacts,
                "invented_specifics": outcome.invented_specifics,
            }
            for outcome in report.documents
        ],
        measured_on=f"{generator.device}, {platform.machine()}",
        created_by_label=actor.email if actor else "command line",
    )
    db.session.add(evaluation)
    record_event(
        "model.evaluate",
        actor=actor,
        target_label=version.label,
        prompt_format=fmt,
        preset=preset,
        continuation_rate=report.summary["continuation_rate"],
        bits_per_char=report.summary["bits_per_char"],
    )
    db.session.commit()
    return evaluation


def measure_speed(
    version: ModelVersion,
    runs: int = speed.SPEED_RUNS,
    actor: User | None = None,
    report: speed.SpeedReport | None = None,
    ip_address: str | None = None,
) -> dict:
    """Measure how fast `version` writes; keep the figure on it unless the machine was busy.

    Returns the measurement, with `kept` saying whether it became the version's figure.
    """
    measured = speed.measure_speed(generator_for(version), runs=runs, report=report)
    kept = not measured["busy"]
    if kept:
        # A new dict, so the JSON column sees the change.
        version.metrics = {**version.metrics, "speed": measured}
    record_event(
        "model.measure_speed",
        actor=actor,
        target_label=version.label,
        ip_address=ip_address,
        greedy_tokens_per_second=measured["greedy_tokens_per_second"],
        beam_tokens_per_second=measured["beam_tokens_per_second"],
        kept=kept,
        busy_because=measured["busy_because"],
    )
    db.session.commit()
    return {**measured, "kept": kept}


def speed_sentence(label: str, measured: dict) -> str:
    """A measurement in words, saying whether it was kept."""
    said = (
        f"{label} writes {measured['greedy_tokens_per_second']} tokens/s greedy and "
        f"{measured['beam_tokens_per_second']} tokens/s with beam search (median of "
        f"{measured['runs']} runs each, {measured['seconds']:.0f} s in all)."
    )
    if measured["kept"]:
        return f"{said} Kept as its speed."
    return (
        f"{said} Not kept, because the machine was busy: {measured['busy_because']}. "
        "Measure again when it is quiet."
    )


def latest_evaluations() -> list[ModelEvaluation]:
    """The newest evaluation of every version, format, preset and length, best first."""
    rows = db.session.scalars(
        select(ModelEvaluation)
        .options(selectinload(ModelEvaluation.version).selectinload(ModelVersion.aliases))
        .order_by(ModelEvaluation.created_at.desc(), ModelEvaluation.id.desc())
    ).all()
    newest: dict[tuple, ModelEvaluation] = {}
    for row in rows:
        key = (row.version_id, row.prompt_format, row.preset, row.max_new_tokens)
        newest.setdefault(key, row)
    return sorted(newest.values(), key=evaluation_rank)


def evaluation_rank(evaluation: ModelEvaluation) -> tuple:
    """How the default is chosen: continuation rate first, then bits per character."""
    summary = evaluation.summary or {}
    rate = summary.get("continuation_rate")
    bits = summary.get("bits_per_char")
    return (-(rate if rate is not None else -1), bits if bits is not None else float("inf"))


def generator_for(version: ModelVersion) -> TextGenerator:
    """The loaded generator of a version (loaded once per process, then reused).

    Raises integrity.ModelFilesChanged, before anything is loaded or written, when
    the version's files on disk are not those the registry recorded.
    """
    from . import integrity, loads

    integrity.check_files(version, artifact_path(version))
    cache = current_app.extensions["srcflask.generators"]
    version_id = version.id
    return cache.get(
        (version.id, version.prompt_format, version.system_prompt),
        artifact_path(version),
        label=version.label,
        prompt_format=prompt_format_of(version),
        on_load=lambda: loads.recording(version_id),
    )


def settings_for(version: ModelVersion, **overrides) -> GenerationSettings:
    """The version's default generation settings with `overrides` applied (validated)."""
    return GenerationSettings.from_dict({**(version.generation_settings or {}), **overrides})
