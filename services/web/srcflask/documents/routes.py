from __future__ import annotations

from flask import (
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from ..models import MachineTextStatus, Role
from ..pagination import requested_page
from . import bp, service
from .diff import DiffCache, diff_texts, summary
from .schemas import machine_text_state

DIFFS = "srcflask.revision_diffs"


@bp.record_once
def keep_diffs(state) -> None:
    state.app.extensions[DIFFS] = DiffCache()


def readable_or_404(document_id: int):
    document = service.readable_document(current_user, document_id)
    if document is None:
        abort(404)
    return document


def document_page_url(document) -> str:
    if current_user.role is Role.SPONSOR:
        return url_for("sponsor.show_document", document_id=document.id)
    return url_for("documents.show", document_id=document.id)


def render_document_list(template: str):
    """A page of the documents the current user may read, optionally by machine-text status."""
    status = request.args.get("status") or None
    if status is not None and status not in MachineTextStatus._value2member_map_:
        abort(400, description=f"Unknown machine-text status {status!r}.")
    page = service.document_rows(
        current_user,
        page=requested_page(),
        per_page=current_app.config["PAGE_SIZE"],
        status=MachineTextStatus(status) if status else None,
    )
    return render_template(template, page=page, status=status)


def render_document_page(document):
    """The document, its editor, its latest machine text and its history (every reader)."""
    revisions = service.revision_history(document)
    editors = []
    if current_user.id == document.owner_id:
        editors = service.approved_editors()
        if document.editor is not None and document.editor not in editors:
            editors.append(document.editor)
    return render_template(
        "documents/document.html",
        document=document,
        latest=revisions[0],
        revisions=revisions,
        editors=editors,
    )


@bp.get("/<int:document_id>")
def show(document_id: int):
    document = readable_or_404(document_id)
    if current_user.role is Role.SPONSOR:
        return redirect(url_for("sponsor.show_document", document_id=document.id))
    return render_document_page(document)


@bp.get("/<int:document_id>/machine-text")
def machine_text(document_id: int):
    """The state of the latest machine text, for pages that update themselves."""
    document = readable_or_404(document_id)
    revision = service.latest_revision(document)
    state = machine_text_state(revision)
    response = jsonify(state)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/<int:document_id>/machine-text/retry")
def retry(document_id: int):
    document = readable_or_404(document_id)
    revision = service.latest_revision(document)
    try:
        service.retry_machine_text(revision.machine_text)
    except service.DocumentError as error:
        flash(str(error), "error")
    else:
        flash("The machine text is queued again.", "success")
    target = request.form.get("next")
    if target == "review" and current_user.role is Role.EDITOR:
        return redirect(url_for("editor.review", document_id=document.id), 303)
    return redirect(document_page_url(document), 303)


@bp.get("/<int:document_id>/revisions/<int:number>")
def revision(document_id: int, number: int):
    document = readable_or_404(document_id)
    current = service.revision_by_number(document, number)
    if current is None:
        abort(404)
    previous = service.revision_by_number(document, number - 1) if number > 1 else None
    body_diff, counts = cached_diff(previous, current)
    return render_template(
        "documents/revision.html",
        document=document,
        revision=current,
        previous=previous,
        body_diff=body_diff,
        counts=counts,
        title_changed=previous is not None and previous.title != current.title,
        back_url=document_page_url(document),
    )


def cached_diff(previous, current) -> tuple[list, dict[str, int]]:
    """The body diff of two revisions, with its counts; worked out once per pair.

    The diff (not its HTML) is cached: the page template escapes it on every view.
    """
    cache: DiffCache = current_app.extensions[DIFFS]
    key = (previous.id if previous else None, current.id)
    found = cache.get(key)
    if found is None:
        lines = diff_texts(previous.body if previous else "", current.body)
        found = (lines, summary(lines))
        cache.put(key, found, len(previous.body if previous else "") + len(current.body))
    return found
