"""Champion and challenger: live comparisons of model versions on editors' reviews.

`service` owns the rules (start, assign documents to arms, who writes a text,
the results, stop and promote; it commits); `rule` is the sequential decision
rule and `summary` the per-arm figures with their intervals; `charts` lays out
the page's chart. `pages` (/admin/experiments), `api` (/api/v1/experiments) and
`cli` (`flask experiments ...`) call the service.
"""

from flask import Flask


def init_app(app: Flask) -> None:
    from . import cli, pages  # noqa: F401  (pages add their views)

    app.cli.add_command(cli.experiments_group)
