"""Command-line tools, run as `flask --app srcflask COMMAND`."""

from flask import Flask

from .accounts import create_admin_command, seed_demo_command
from .models import models_group


def init_app(app: Flask) -> None:
    app.cli.add_command(create_admin_command)
    app.cli.add_command(seed_demo_command)
    app.cli.add_command(models_group)
