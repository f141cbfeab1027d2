"""The language-model registry: model versions, aliases, the catalog and evaluations.

`service` owns the registry's rules and `training` those of fine-tuning (both
commit; `metrics` and `reviews` only read). `pages` (/admin/models, /admin/reviews),
`training_pages` (/admin/training), `api` (/api/v1/models) and `cli`
(`flask models ...`) call them.
"""

from flask import Flask


def init_app(app: Flask) -> None:
    from . import cli, pages, training_pages  # noqa: F401  (pages add their views to /admin)

    app.cli.add_command(cli.models_group)
