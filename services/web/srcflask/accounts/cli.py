"""`flask create-admin` and `flask seed-demo`."""

from __future__ import annotations

import os
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from ..models import LifecycleError
from .passwords import password_problem
from .service import create_admin, seed_demo_accounts

DEMO_LOGINS_FILE = "demo-logins.txt"


@click.command("create-admin")
@with_appcontext
@click.option("--email", required=True, help="The admin's email address (their login).")
@click.option("--name", required=True, help="The admin's full name.")
@click.option("--organization", default="", help="Their organization (optional).")
def create_admin_command(email: str, name: str, organization: str) -> None:
    """Create an approved admin; the password comes from a prompt or SRCFLASK_ADMIN_PASSWORD."""
    password = os.environ.get("SRCFLASK_ADMIN_PASSWORD")
    if not password:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    problem = password_problem(password, email=email, name=name)
    if problem:
        raise click.ClickException(f"Password refused: {problem}")
    try:
        user = create_admin(name=name, email=email, organization=organization, password=password)
    except LifecycleError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"Created admin {user.name} <{user.email}>. Log in at /auth/login.")


@click.command("seed-demo")
@with_appcontext
@click.option("--reset", is_flag=True, help="Give existing demo accounts new passwords.")
def seed_demo_command(reset: bool) -> None:
    """Create approved demo accounts with random passwords (refused in production)."""
    if current_app.config["ENV_NAME"] == "production":
        raise click.ClickException("seed-demo is refused in production: it creates known accounts.")
    path = Path(current_app.instance_path) / DEMO_LOGINS_FILE
    logins = read_demo_logins(path)
    for email, (role, password) in seed_demo_accounts(reset).items():
        logins[email] = f"{role.value:<8} {email}  password: {password}"
    write_demo_logins(path, logins)
    if logins:
        click.echo("Demo logins:")
        click.echo("\n".join(f"  {line}" for line in logins.values()))
    else:
        click.echo(
            "Demo accounts exist but their passwords were not recorded here; "
            "run `flask --app srcflask seed-demo --reset` for new ones."
        )


def read_demo_logins(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return {line.split()[1]: line for line in lines}


def write_demo_logins(path: Path, logins: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("".join(line + "\n" for line in logins.values()))
