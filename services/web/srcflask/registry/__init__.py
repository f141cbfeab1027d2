"""The language-model registry: model versions, aliases, the catalog and evaluations.

`service` owns the registry's rules, `training` those of fine-tuning and
`model_tasks` those of the actions the Models page runs in the background (all
commit; `metrics` and `reviews` only read). `pages` (/admin/models, /admin/reviews),
`training_pages` (/admin/training), `api` (/api/v1/models) and `cli`
(`flask models ...`) call them.
"""

from flask import Flask


def init_app(app: Flask) -> None:
    from .. import jobs
    from . import cli, model_tasks, pages, training_pages  # noqa: F401  (pages add their views)

    app.cli.add_command(cli.models_group)
    jobs.register_task(model_tasks.KIND, model_tasks.run)
