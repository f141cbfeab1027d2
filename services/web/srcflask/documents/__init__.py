"""Documents: the service that saves them (`service`) and the pages every reader shares.

Sponsors' and editors' own pages live in their blueprints; the routes here
serve whoever may read a document: its sponsor, its assigned editor, admins.
"""

from flask import Blueprint

bp = Blueprint("documents", __name__, url_prefix="/documents")

from . import routes  # noqa: E402,F401
