"""The language-model registry: model versions, aliases, the catalog and evaluations.

`service` owns every rule and is the only module here that commits; `pages`
(/admin/models), `api` (/api/v1/models) and `cli` (`flask models ...`) call it.
"""

from flask import Flask


def init_app(app: Flask) -> None:
    from . import cli, pages  # noqa: F401  (pages adds its views to /admin)

    app.cli.add_command(cli.models_group)
