"""Documents: their revisions, machine text and reviews.

`service` owns every rule and is the only module here that commits; `pages`
(/documents, the sponsor's and editor's pages, the admins' list) and `api`
(/api/v1/documents) call it. `diff` compares revisions.
"""

from flask import Flask


def init_app(app: Flask) -> None:
    from . import pages

    app.register_blueprint(pages.documents_bp)
