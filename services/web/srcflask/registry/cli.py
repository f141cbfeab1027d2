"""Model registry commands: `flask --app srcflask models ...`."""

from __future__ import annotations

import json
import time

import click
from flask.cli import AppGroup
from sqlalchemy.exc import DBAPIError

from ..ml import catalog, speed
from ..ml.catalog import CatalogError
from ..ml.engine import PROMPT_FORMATS, ModelLoadError, PromptError
from ..ml.importer import ImportFailed
from ..ml.quality import BenchmarkError, QualityReport, format_table
from ..ml.settings import DEFAULT_PRESET, PRESETS, SettingsError
from ..ml.training import Hyperparameters
from ..models.mlmodels import PRODUCTION
from . import service as registry

models_group = AppGroup("models", help="Import, list, alias and try language models.")


class ProgressPrinter:
    """Show import steps as lines, and byte or run counts as progress bars."""

    def __init__(self) -> None:
        self.bar = None
        self.shown = 0

    def __call__(self, step: str, done: int | None = None, total: int | None = None) -> None:
        if done is None:
            self.close()
            click.echo(f"- {step}")
            return
        if self.bar is None and total:
            self.bar = click.progressbar(length=total, show_pos=False, width=30)
            self.bar.__enter__()
            self.shown = 0
        if self.bar is not None:
            self.bar.update(done - self.shown)
            self.shown = done
            if total and done >= total:
                self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def fail_cleanly(function):
    """Turn the registry's expected errors into one-line messages instead of tracebacks."""
    import functools

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (
            registry.RegistryError,
            ImportFailed,
            CatalogError,
            BenchmarkError,
            ModelLoadError,
            PromptError,
            SettingsError,
            ValueError,
        ) as error:
            raise click.ClickException(str(error)) from error
        except DBAPIError as error:  # no database, or one nobody has upgraded
            raise click.ClickException(
                f"the database could not be used ({str(error.orig).strip()}); check that it "
                "is running and up to date: flask --app srcflask db upgrade"
            ) from error
        except OSError as error:  # a full disk, a store that is not a writable folder...
            where = f": {error.filename}" if error.filename else ""
            raise click.ClickException(f"{error.strerror or error}{where}") from error

    return wrapper


def describe_line(version) -> str:
    aliases = f" [{', '.join(version.alias_names)}]" if version.aliases else ""
    speed = (version.metrics.get("speed") or {}).get("greedy_tokens_per_second")
    return (
        f"{version.label:<32}{aliases:<14} {version.architecture:<22} "
        f"{version.parameter_count / 1e6:8.1f}M params {version.size_bytes / 2**20:8.1f} MiB "
        f"{f'{speed} tok/s' if speed else '':>12}"
    )


@models_group.command("catalog")
@fail_cleanly
def catalog_command() -> None:
    """List the models `models pull` can fetch, with their licenses."""
    for entry in catalog.CATALOG.values():
        default = " (default)" if entry.name == catalog.DEFAULT_MODEL else ""
        click.echo(f"{entry.name}{default}: {entry.title}")
        click.echo(f"    license: {entry.license} <{entry.license_url}>")
        click.echo(f"    source:  {entry.source}")
        click.echo(f"    format:  {entry.prompt_format}; GGUF sha256 {entry.gguf_sha256}")


@models_group.command("pull")
@click.argument("name")
@fail_cleanly
def pull_command(name: str) -> None:
    """Fetch the catalog model NAME (see `models catalog`) and import it."""
    pull_and_report(name)


@models_group.command("pull-default")
@click.option(
    "--if-missing", is_flag=True, help="Do nothing when a production model is already in the store."
)
@fail_cleanly
def pull_default_command(if_missing: bool) -> None:
    """Fetch the catalog's default model and import it."""
    current = registry.production_version()
    if if_missing and current is not None and registry.artifact_path(current).is_dir():
        click.echo(f"Production model: {current.label} (ready)")
        for advice in registry.catalog_advice(current):
            click.echo(advice)
        return
    pull_and_report(catalog.DEFAULT_MODEL)


def pull_and_report(name: str) -> None:
    printer = ProgressPrinter()
    outcome, made_production = registry.pull(name, report=printer)
    printer.close()
    verb = "Imported" if outcome.created else "Already imported:"
    click.echo(f"{verb} {outcome.version.label} ({outcome.version.sha256[:12]})")
    click.echo(f"License: {outcome.version.license} <{outcome.version.license_url}>")
    if made_production:
        click.echo(f"{outcome.version.label} is now the production model.")
    else:
        current = registry.production_version()
        if current is not None and current.id != outcome.version.id:
            click.echo(f"Production stays {current.label}.")


@models_group.command("import")
@click.argument("source")
@click.option("--name", required=True, help="Model name; versions count up per name.")
@click.option("--description", default="", help="What this model is.")
@click.option("--tag", "tags", multiple=True, help="A tag (repeat for several).")
@click.option(
    "--prompt-format",
    type=click.Choice(list(PROMPT_FORMATS)),
    help="raw: continue the document as is; chat: the chat template with a system line; "
    "continue: chat, with the assistant's turn begun with the document's last sentence. "
    "Default: the catalog's format for catalog models, else chat when the tokenizer has a "
    "chat template.",
)
@click.option("--system-prompt", help="The system line for the chat format.")
@click.option("--alias", "alias", help="Also point this alias at the new version.")
@fail_cleanly
def import_command(source, name, description, tags, prompt_format, system_prompt, alias):
    """Import SOURCE (a model folder, a .gguf file or a hub id) as a new version of NAME."""
    printer = ProgressPrinter()
    outcome = registry.import_model(
        source,
        name,
        actor=None,
        description=description,
        tags=list(tags),
        prompt_format=prompt_format,
        system_prompt=system_prompt,
        report=printer,
    )
    printer.close()
    if outcome.created:
        click.echo(f"Imported {outcome.version.label}")
    else:
        click.echo(
            f"These weights are already imported as {outcome.version.label}; nothing stored."
        )
    click.echo(describe_line(outcome.version))
    if alias:
        registry.set_alias(outcome.version, alias, actor=None)
        click.echo(f"{alias} -> {outcome.version.label}")


@models_group.command("list")
@fail_cleanly
def list_command() -> None:
    """List every model version, newest first per name."""
    versions = registry.all_versions()
    if not versions:
        click.echo("No models yet: run `flask --app srcflask models pull-default`.")
        return
    for version in versions:
        click.echo(describe_line(version))


@models_group.command("verify")
@fail_cleanly
def verify_command() -> None:
    """Hash every version's files again against the SHA-256 the registry holds."""
    versions = registry.all_versions()
    changed = 0
    for version in versions:
        problem = registry.changed_files(version)
        changed += problem is not None
        click.echo(f"{version.label:<32} {problem or 'ok'}")
    if changed:
        raise click.ClickException(f"{changed} of {len(versions)} model version(s) do not verify")
    click.echo(f"{len(versions)} model version(s) verified")


@models_group.command("alias")
@click.argument("name")
@click.argument("version", type=int)
@click.argument("alias")
@fail_cleanly
def alias_command(name: str, version: int, alias: str) -> None:
    """Point ALIAS (such as production) at VERSION of NAME."""
    target = registry.find_version(f"{name}:{version}")
    before = registry.set_alias(target, alias, actor=None)
    moved = f" (was {before.label})" if before and before.id != target.id else ""
    click.echo(f"{alias} -> {target.label}{moved}")


@models_group.command("show")
@click.argument("spec")
@fail_cleanly
def show_command(spec: str) -> None:
    """Show everything recorded about NAME[:VERSION|ALIAS]."""
    version = registry.find_version(spec)
    rows = [
        ("version", version.label),
        ("aliases", ", ".join(version.alias_names) or "-"),
        ("source", f"{version.source} ({version.source_kind})"),
        ("stored in", str(registry.artifact_path(version))),
        ("sha256", version.sha256),
        ("architecture", f"{version.architecture} ({version.model_type})"),
        ("parameters", f"{version.parameter_count:,}"),
        ("size", f"{version.size_bytes:,} bytes"),
        ("tokenizer", version.tokenizer),
        ("context", f"{version.context_length} tokens"),
        (
            "prompt format",
            version.prompt_format
            + (f" / system: {version.system_prompt}" if version.system_prompt else ""),
        ),
        ("settings", json.dumps(version.generation_settings)),
        ("metrics", json.dumps(version.metrics)),
        ("imported by", version.imported_by_label),
        ("imported at", version.created_at.isoformat(timespec="seconds")),
        ("license", f"{version.license} <{version.license_url}>" if version.license else "-"),
        ("terms file", str(registry.license_path(version) or "-")),
        ("description", version.description or "-"),
        ("tags", ", ".join(version.tags) or "-"),
    ]
    for key, value in rows:
        click.echo(f"{key:>14}: {value}")


@models_group.command("generate")
@click.argument("prompt")
@click.option("--model", "spec", help=f"NAME[:VERSION|ALIAS]; default: the {PRODUCTION} model.")
@click.option(
    "--preset",
    type=click.Choice(sorted(PRESETS)),
    default=DEFAULT_PRESET,
    show_default=True,
    help="Generation settings preset.",
)
@click.option("--max-new-tokens", type=int, help="Override the preset's max_new_tokens.")
@click.option("--seed", type=int, help="Seed for the creative (sampling) preset.")
@fail_cleanly
def generate_command(prompt: str, spec: str | None, preset: str, max_new_tokens, seed) -> None:
    """Write a continuation of PROMPT and print it with timings."""
    version = registry.find_version(spec) if spec else registry.production_version()
    if version is None:
        raise click.ClickException(
            "No production model: run `flask --app srcflask models "
            "pull-default` or `models alias NAME VERSION production`."
        )
    overrides = {
        k: v for k, v in (("max_new_tokens", max_new_tokens), ("seed", seed)) if v is not None
    }
    settings = PRESETS[preset].replace(**overrides)
    started = time.perf_counter()
    generator = registry.generator_for(version)
    loaded = time.perf_counter() - started
    [result] = generator.generate([prompt], settings)
    click.echo(result.text)
    click.echo(
        f"\n-- {version.label} ({preset}): {result.generated_tokens} tokens in "
        f"{result.seconds:.2f}s ({result.tokens_per_second:.1f} tok/s), prompt "
        f"{result.prompt_tokens} tokens{' (truncated)' if result.truncated else ''}, "
        f"model loaded in {loaded:.2f}s, finished by {result.finish_reason}",
        err=True,
    )


@models_group.command("evaluate")
@click.argument("spec", required=False)
@click.option(
    "--format",
    "formats",
    multiple=True,
    type=click.Choice([*PROMPT_FORMATS, "all"]),
    help="Prompt format(s) to measure (repeat, or all); default: the version's own.",
)
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default=DEFAULT_PRESET)
@click.option("--max-new-tokens", type=int, help="Override the preset's max_new_tokens.")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N documents.")
@click.option(
    "--against-parent",
    is_flag=True,
    help="A fine-tuned version: score its parent too, side by side, on the quality "
    "benchmark and on the reviews held out from its training.",
)
@fail_cleanly
def evaluate_command(spec, formats, preset, max_new_tokens, limit, against_parent) -> None:
    """Run the quality benchmark on NAME[:VERSION|ALIAS] (default: production) and keep it."""
    version = registry.find_version(spec) if spec else registry.production_version()
    if version is None:
        raise click.ClickException("No production model: name a version to evaluate.")
    versions = [version]
    if against_parent:
        if version.parent is None:
            raise click.ClickException(f"{version.label} was not fine-tuned from another version.")
        versions = [version.parent, version]
    evaluations = []
    for each in versions:
        chosen = formats
        if "all" in formats:
            templated = registry.generator_for(each).tokenizer.chat_template
            chosen = [f for f in PROMPT_FORMATS if f == "raw" or templated]
        for fmt in chosen or [each.prompt_format]:
            click.echo(f"- {each.label}, {fmt} format, {preset}")
            with click.progressbar(length=1, label="  documents", show_pos=True) as bar:

                def progress(done: int, total: int, bar=bar) -> None:
                    bar.length = total
                    bar.update(done - bar.pos)

                evaluations.append(
                    registry.evaluate_version(
                        each,
                        prompt_format=fmt,
                        preset=preset,
                        max_new_tokens=max_new_tokens,
                        limit=limit,
                        progress=progress,
                    )
                )
    click.echo(format_table([evaluation_as_report(e) for e in evaluations]))
    click.echo("Stored on the version: the Models page shows every version side by side.")
    if against_parent:
        from . import training

        click.echo(comparison_table(training.compare_with_parent(version)))


@models_group.command("speed")
@click.argument("spec", required=False)
@click.option(
    "--runs",
    type=click.IntRange(min=1, max=50),
    default=speed.SPEED_RUNS,
    show_default=True,
    help="Runs of each kind (greedy and beam search); the median is kept.",
)
@fail_cleanly
def speed_command(spec, runs) -> None:
    """Measure how fast NAME[:VERSION|ALIAS] (default: production) writes.

    The figure is kept on the version only if the machine was quiet.
    """
    version = registry.find_version(spec) if spec else registry.production_version()
    if version is None:
        raise click.ClickException("No production model: name a version to measure.")
    click.echo(f"Measuring {version.label}: {runs} greedy and {runs} beam-search runs")
    with click.progressbar(length=runs * 2, label="  runs", show_pos=True) as bar:

        def report(done: int, total: int) -> None:
            bar.update(done - bar.pos)

        measured = registry.measure_speed(version, runs=runs, report=report)
    click.echo(registry.speed_sentence(version.label, measured))
    load = measured["load_average"]
    click.echo(
        f"  on {measured['measured_on']}; load average "
        f"{'unknown' if load is None else load} on {measured['cpus']} CPUs"
    )


def evaluation_as_report(evaluation) -> QualityReport:
    return QualityReport(
        model=evaluation.version.label,
        prompt_format=evaluation.prompt_format,
        preset=evaluation.preset,
        settings=evaluation.settings,
        dataset_sha256=evaluation.dataset_sha256,
        summary=evaluation.summary,
    )


@models_group.command("train")
@click.option(
    "--from", "spec", required=True, help="The version to fine-tune: NAME[:VERSION|ALIAS]."
)
@click.option("--name", required=True, help="Model name of the new version.")
@click.option("--epochs", type=click.IntRange(1, 50), default=Hyperparameters.epochs)
@click.option(
    "--learning-rate", type=click.FloatRange(1e-6, 1.0), default=Hyperparameters.learning_rate
)
@click.option(
    "--rank", type=click.IntRange(1, 256), default=Hyperparameters.lora_rank, help="LoRA rank."
)
@click.option("--batch-size", type=click.IntRange(1, 256), default=Hyperparameters.batch_size)
@click.option("--max-tokens", type=click.IntRange(32, 8192), default=Hyperparameters.max_tokens)
@click.option(
    "--queue", is_flag=True, help="Only queue the run for the runner or a training worker."
)
@fail_cleanly
def train_command(spec, name, epochs, learning_rate, rank, batch_size, max_tokens, queue) -> None:
    """Fine-tune a version on the accepted and edited reviews into a new version of NAME."""
    from dataclasses import replace

    from . import training

    hyper = replace(
        Hyperparameters(),
        epochs=epochs,
        learning_rate=learning_rate,
        lora_rank=rank,
        lora_alpha=2 * rank,
        batch_size=batch_size,
        max_tokens=max_tokens,
    )
    parent = registry.find_version(spec)
    run = training.start(parent, name, hyper, actor=None)
    dataset = run.dataset
    click.echo(
        f"Training run {run.id}: {parent.label} -> {name}, "
        f"{len(dataset['train_review_ids'])} reviews to learn from, "
        f"{len(dataset['heldout_review_ids'])} held out, {run.total_steps} steps."
    )
    if queue:
        click.echo("Queued: the runner or a worker of the training queue will run it.")
        return
    if not training.claim(run.id):
        raise click.ClickException(f"Training run {run.id} was taken by another worker.")
    started = time.monotonic()

    def show(progress) -> None:
        click.echo(
            f"  step {progress.step}/{progress.total_steps}  loss {progress.loss:.3f}  "
            f"{time.monotonic() - started:.0f} s"
        )

    run = training.run(run.id, on_progress=show)
    if run.status.value != "done":
        raise click.ClickException(f"Training run {run.id} {run.status.value}: {run.error or ''}")
    before, after = run.metrics["before"], run.metrics["after"]
    click.echo(
        f"{run.result.label} in {time.monotonic() - started:.0f} s. Held-out bits per "
        f"character of the editors' texts: {before['bits_per_char']:.3f} -> "
        f"{after['bits_per_char']:.3f}."
    )
    comparison = run.result.lineage.get("comparison")
    if comparison:
        click.echo(comparison_table(comparison))


@models_group.command("compare")
@click.argument("spec")
@fail_cleanly
def compare_command(spec) -> None:
    """Score a fine-tuned version against its parent on the reviews held out from its training."""
    from . import training

    version = registry.find_version(spec)
    click.echo(comparison_table(training.compare_with_parent(version)))
    click.echo(
        "The quality benchmark: flask --app srcflask models evaluate for each version; "
        "the Models page shows them side by side."
    )


def comparison_table(comparison: dict) -> str:
    lines = [
        f"Held-out reviews: {comparison['examples']} (texts written for "
        f"{comparison['generated_examples']})",
        f"{'version':<32} {'bits/char':>10} {'edit distance':>14}",
    ]
    for role in ("parent", "version"):
        row = comparison[role]
        bits, distance = row["bits_per_char"], row["median_edit_distance"]
        lines.append(
            f"{row['label']:<32} {bits if bits is None else f'{bits:.3f}':>10} "
            f"{distance if distance is None else f'{distance:.3f}':>14}"
        )
    return "\n".join(lines)
