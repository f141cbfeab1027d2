"""Accounts: sign-up, approval, roles, login sessions, passwords and API tokens.

`service` owns every rule and is the only module here that commits; `pages`
(/auth, /account and the admins' people pages), `api` (/api/v1/me and
/api/v1/users) and `cli` call it.
"""

from flask import Flask


def init_app(app: Flask) -> None:
    from ..models.users import dummy_hash
    from . import cli, pages

    dummy_hash()

    app.register_blueprint(pages.auth_bp)
    app.register_blueprint(pages.account_bp)
    app.cli.add_command(cli.create_admin_command)
    app.cli.add_command(cli.seed_demo_command)
