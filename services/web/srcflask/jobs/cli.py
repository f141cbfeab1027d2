"""`flask --app srcflask jobs ...`: look at and run generation jobs by hand."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import func, select

from ..extensions import db
from . import work

jobs_group = AppGroup("jobs", help="Generation jobs: status, recovery, running them here.")


@jobs_group.command("status")
def status_command() -> None:
    """Count machine texts by status."""
    for kind in work.KINDS:
        model = kind.model
        rows = db.session.execute(select(model.status, func.count()).group_by(model.status))
        counts = {status.value: count for status, count in rows}
        click.echo("machine texts:" if kind is work.MACHINE_TEXTS else "API generation jobs:")
        for name in ("queued", "running", "done", "failed"):
            click.echo(f"{name:>10}: {counts.get(name, 0)}")


@jobs_group.command("run")
def run_command() -> None:
    """Take back stale jobs, then run every queued job in this process and exit."""
    requeued = work.recover_stale()
    if requeued:
        click.echo(f"Queued again {len(requeued)} job(s) whose worker had stopped.")
    done = work.run_pending()
    click.echo(f"Ran {done} job(s).")
