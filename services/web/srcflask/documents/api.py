"""Documents, revisions, machine text and reviews, with the same rules as the pages."""

from __future__ import annotations

from flask_login import current_user
from flask_smorest import Blueprint, abort
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from ..api.common import errors, refuse, require_role
from ..extensions import db
from ..models import Document, MachineText, Role
from ..models.jobs import JobStatus
from . import imports, service
from .schemas import (
    DocumentCreateSchema,
    DocumentImportResultSchema,
    DocumentImportSchema,
    DocumentPageSchema,
    DocumentQuerySchema,
    DocumentSchema,
    DocumentUpdateSchema,
    MachineTextSchema,
    ReviewCreateSchema,
    ReviewSchema,
    RevisionListSchema,
)

blp = Blueprint(
    "Documents",
    __name__,
    url_prefix="/api/v1",
    description="Documents, their revisions, machine text and reviews",
)


def readable_or_404(document_id: int) -> Document:
    document = service.readable_document(current_user, document_id)
    if document is None:
        refuse(404, f"No document {document_id} that you can read.")
    return document


def owned_or_404(document_id: int) -> Document:
    document = readable_or_404(document_id)
    if document.owner_id != current_user.id:
        refuse(
            404 if current_user.role is Role.SPONSOR else 403,
            "Only the sponsor who owns a document can change it.",
        )
    return document


def editor_choice(editor_id: int | None, document: Document | None = None):
    try:
        return service.check_editor(editor_id, keep=document)
    except service.DocumentError as error:
        refuse(422, str(error))


@blp.route("/documents", methods=["GET"])
@blp.arguments(DocumentQuerySchema, location="query")
@blp.response(200, DocumentPageSchema)
@errors(blp, 422)
def list_documents(query):
    """The documents you may read, newest first (one page)."""
    status = JobStatus(query["status"]) if query.get("status") else None
    page = service.document_rows(
        current_user, page=query["page"], per_page=query["per_page"], status=status
    )
    return page


@blp.route("/documents", methods=["POST"])
@blp.arguments(DocumentCreateSchema)
@blp.response(201, DocumentSchema)
@errors(blp, 413, 422)
def create_document(data):
    """Write a new document (sponsors); its machine text is queued at once."""
    require_role(Role.SPONSOR)
    editor = editor_choice(data["editor_id"])
    document = service.create_document(
        current_user, data["title"], data["body"], editor.id if editor else None
    )
    return service.document_row(document)


@blp.route("/documents/import", methods=["POST"])
@blp.arguments(DocumentImportSchema)
@blp.response(201, DocumentImportResultSchema)
@errors(blp, 413, 422)
def import_documents(data):
    """Write many documents at once (sponsors): every one is checked, then all are saved."""
    require_role(Role.SPONSOR)
    try:
        imported = service.import_documents(current_user, imports.check_rows(data["documents"]))
    except imports.ImportRefused as refusal:
        by_position: dict[str, list[str]] = {}
        for position, message in refusal.problems:
            key = str(position - 1) if position else "_all"
            by_position.setdefault(key, []).append(message)
        abort(
            422,
            message="Nothing was imported: fix the documents `fields` names (by position).",
            errors={"json": {"documents": by_position}},
        )
    ids = [document.id for document in imported.documents]
    rows = service.row_states(current_user, ids)
    return {"items": [rows[document_id] for document_id in ids]}


@blp.route("/documents/<int:document_id>", methods=["GET"])
@blp.response(200, DocumentSchema)
@errors(blp, 404)
def get_document(document_id: int):
    """One document with its latest machine text."""
    return service.document_row(readable_or_404(document_id))


@blp.route("/documents/<int:document_id>", methods=["PATCH"])
@blp.arguments(DocumentUpdateSchema)
@blp.response(200, DocumentSchema)
@errors(blp, 404, 409, 413, 422)
def update_document(data, document_id: int):
    """Change the title, body or editor (the owning sponsor); new text makes a new revision."""
    document = owned_or_404(document_id)
    editor_id = data.get("editor_id", document.editor_id)
    editor = editor_choice(editor_id, document)
    try:
        service.save_document(
            document,
            current_user,
            data.get("title", document.title),
            data.get("body", document.body),
            editor.id if editor else None,
            base_revision=data.get("base_revision"),
        )
    except service.EditConflict as conflict:
        refuse(
            409,
            f"Revision {conflict.latest.number} was saved after revision {conflict.base}, "
            "which this change started from. Read the document again, then send the change "
            f"with base_revision {conflict.latest.number}.",
        )
    return service.document_row(document)


@blp.route("/documents/<int:document_id>", methods=["DELETE"])
@blp.response(204)
@errors(blp, 404)
def delete_document(document_id: int):
    """Delete a document (the owning sponsor). Its rows are kept; it disappears from lists."""
    service.delete_document(owned_or_404(document_id))


@blp.route("/documents/<int:document_id>/revisions", methods=["GET"])
@blp.response(200, RevisionListSchema)
@errors(blp, 404)
def list_revisions(document_id: int):
    """Every revision of a document, newest first."""
    return {"items": service.revision_history(readable_or_404(document_id))}


@blp.route("/documents/<int:document_id>/revisions/<int:number>/machine-text", methods=["GET"])
@blp.response(200, MachineTextSchema)
@errors(blp, 404)
def get_machine_text(document_id: int, number: int):
    """The machine text of one revision: status, text, model version, settings, timings."""
    revision = service.revision_by_number(readable_or_404(document_id), number)
    if revision is None:
        refuse(404, f"Document {document_id} has no revision {number}.")
    if revision.machine_text is None:
        if revision.origin in service.REVIEWED_ORIGINS:
            refuse(
                404,
                f"Revision {number} has no machine text: an editor's decision made it. Ask "
                f"for more with POST /api/v1/documents/{document_id}/machine-text.",
            )
        refuse(404, f"Revision {number} has no machine text: {service.NOTHING_TO_CONTINUE}")
    return revision.machine_text


@blp.route("/documents/<int:document_id>/machine-text", methods=["POST"])
@blp.response(202, MachineTextSchema)
@errors(blp, 403, 404, 409)
def write_more(document_id: int):
    """Ask for machine text for the latest revision (the document's sponsor or editor):
    more, when an editor's decision made the revision and it has none; another, in place
    of a text an editor rejected (which stays in the revision's history)."""
    document = readable_or_404(document_id)
    if current_user.id not in (document.owner_id, document.editor_id):
        refuse(403, "Only the document's sponsor or editor can ask for more machine text.")
    try:
        return service.write_more(document, current_user)
    except service.DocumentError as error:
        refuse(409, str(error))


@blp.route("/reviews/<int:review_id>", methods=["DELETE"])
@blp.response(200, MachineTextSchema)
@errors(blp, 404, 409)
def undo_review(review_id: int):
    """Undo one's own decision on a machine text within REVIEW_UNDO_SECONDS of making it
    (the editor who made it): the machine text needs review again, and a revision the
    decision made is removed while it is still the latest."""
    require_role(Role.EDITOR)
    document = service.reviewed_document(current_user, review_id)
    try:
        if document is None:
            raise LookupError(review_id)
        return service.undo_review(document, current_user, review_id)
    except LookupError:
        refuse(404, f"No review {review_id} of yours on a document assigned to you.")
    except service.DocumentError as error:
        refuse(409, str(error))


@blp.route("/machine-texts/<int:machine_text_id>/review", methods=["POST"])
@blp.arguments(ReviewCreateSchema)
@blp.response(201, ReviewSchema)
@errors(blp, 404, 409, 413, 422)
def review(data, machine_text_id: int):
    """Accept, edit, keep part of or reject a machine text (the document's assigned editor)."""
    require_role(Role.EDITOR)
    machine_text = db.session.scalar(
        select(MachineText)
        .options(joinedload(MachineText.revision))
        .where(MachineText.id == machine_text_id)
    )
    document = (
        service.assigned_document(current_user, machine_text.revision.document_id)
        if machine_text
        else None
    )
    if document is None:
        refuse(404, f"No machine text {machine_text_id} assigned to you.")
    if service.latest_revision(document).machine_text_id != machine_text.id:
        refuse(409, "This machine text is not the document's latest; review the latest one.")
    try:
        done = service.review_machine_text(
            document,
            current_user,
            service.DECISIONS[data["decision"]],
            data.get("text"),
            keep_until=data.get("keep_until"),
            chosen=data.get("chosen"),
        )
    except service.DocumentError as error:
        refuse(409, str(error))
    return done
