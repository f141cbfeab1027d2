"""Experiment commands: `flask --app srcflask experiments ...`."""

from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from ..ml.settings import PRESETS
from ..registry import service as registry
from ..registry.cli import fail_cleanly
from . import service as experiments
from .schemas import ExperimentResultsSchema
from .service import DEFAULT_SHARE

experiments_group = AppGroup(
    "experiments", help="Compare a challenger with the production model on live documents."
)


def _current():
    experiment = experiments.running()
    if experiment is None:
        raise click.ClickException("no experiment is running; `experiments status` shows the last")
    return experiment


def _percent(estimate) -> str:
    if estimate.value is None:
        return "—"
    return f"{estimate.value:.0%} ({estimate.low:.0%} to {estimate.high:.0%})"


def print_results(found: experiments.Results) -> None:
    experiment = found.experiment
    click.echo(f"Experiment {experiment.id}: {experiment.status.value}")
    click.echo(f"  challenger: {experiment.arm_label('challenger')}, {experiment.share:.0%}")
    click.echo(f"  champion:   {experiment.arm_label('champion')}")
    for arm in found.arms:
        decisions = ", ".join(f"{d.count} {d.decision}" for d in arm.decisions)
        click.echo(
            f"  {arm.arm.value:<10}  {arm.written} written, {arm.reviews} reviews "
            f"({decisions}); kept {_percent(arm.kept)}"
        )
    verdict = found.verdict
    click.echo(
        f"Rule: {verdict.message}. Kept share, challenger minus champion: "
        f"{verdict.kept.estimate * 100:+.1f} points ({verdict.kept.low * 100:+.1f} to "
        f"{verdict.kept.high * 100:+.1f})"
    )
    if experiment.ended_because:
        click.echo(experiment.ended_because)


@experiments_group.command("start")
@click.option("--challenger", required=True, help="The challenger version: NAME:VERSION.")
@click.option(
    "--preset", type=click.Choice(sorted(PRESETS)), help="Its settings (default: its own)."
)
@click.option("--share", type=float, default=DEFAULT_SHARE, show_default=True,
              help="Share of documents the challenger writes for.")  # fmt: skip
@click.option("--auto-promote", is_flag=True, help="Promote it as soon as the rule says better.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@fail_cleanly
def start_command(challenger: str, preset, share: float, auto_promote: bool, yes: bool) -> None:
    """Start an experiment: the production model against CHALLENGER."""
    version = registry.find_version(challenger)
    production = registry.production_version()
    if not yes:
        click.confirm(
            f"Let {version.label} ({preset or 'its own settings'}) write for {share:.0%} of "
            f"documents against {production.label if production else 'production'}?",
            abort=True,
        )
    experiment = experiments.start(
        version, preset, share, auto_promote=auto_promote, actor=None, confirmed=True
    )
    click.echo(f"Experiment {experiment.id} started.")
    print_results(experiments.results(experiment))


@experiments_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@fail_cleanly
def status_command(as_json: bool) -> None:
    """The running experiment's results (or the last one's)."""
    experiment = experiments.running() or next(iter(experiments.all_experiments()), None)
    if experiment is None:
        raise click.ClickException("no experiment has run yet; `experiments start` starts one")
    found = experiments.results(experiment)
    if as_json:
        click.echo(json.dumps(ExperimentResultsSchema().dump(found), indent=2))
    else:
        print_results(found)


@experiments_group.command("stop")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@fail_cleanly
def stop_command(yes: bool) -> None:
    """Stop the running experiment: production writes every machine text again."""
    experiment = _current()
    if not yes:
        click.confirm(f"Stop experiment {experiment.id}?", abort=True)
    experiments.stop(experiment, actor=None, confirmed=True)
    print_results(experiments.results(experiment))


@experiments_group.command("promote")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@fail_cleanly
def promote_command(yes: bool) -> None:
    """Make the challenger production, once the rule says it is better."""
    experiment = _current()
    verdict = experiments.results(experiment).verdict
    if verdict.outcome == "better" and not yes:
        click.confirm(f"Make {experiment.arm_label('challenger')} production?", abort=True)
    version = experiments.promote(experiment, actor=None, confirmed=True)
    click.echo(f"{version.label} is now the production model (Roll back on the Models page).")
