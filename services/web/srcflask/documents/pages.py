"""Document pages: every reader's, the sponsor's, the editor's and the admins' list.

Every rule, and every commit, is in `documents.service`.
"""

from __future__ import annotations

from flask import (
    Blueprint,
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

from ..areas import admin_bp, editor_bp, sponsor_bp
from ..downloads import download
from ..inputs import accepts_files
from ..models import MachineTextStatus, Role
from ..models.documents import BODY_MAX
from ..pagination import requested_page
from . import imports, service
from .diff import DiffCache, diff_texts, summary
from .forms import DocumentForm, EditorForm, ImportForm, ReviewForm, editor_choices
from .marks import MARK_KINDS, marked_sentences
from .schemas import machine_text_state

documents_bp = Blueprint("documents", __name__, url_prefix="/documents")


# -- /documents: every reader's pages --------------------------------------------------


DIFFS = "srcflask.revision_diffs"


@documents_bp.record_once
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


# The longest search a document list takes (longer ones are cut).
SEARCH_MAX = 100


def render_document_list(template: str, **context):
    """A page of the documents the current user may read, by machine-text status or review."""
    status = request.args.get("status") or None
    if status is not None and status not in MachineTextStatus._value2member_map_:
        abort(400, description=f"Unknown machine-text status {status!r}.")
    queue = request.args.get("review") or None
    if queue is not None and queue not in service.REVIEW_QUEUES:
        abort(400, description=f"Unknown review queue {queue!r}: use needs-review or reviewed.")
    editor = request.args.get("editor") or None
    if editor not in (None, "none"):
        abort(400, description=f"Unknown editor filter {editor!r}: use editor=none.")
    search = " ".join(request.args.get("q", "").split())[:SEARCH_MAX]
    page = service.document_rows(
        current_user,
        page=requested_page(),
        per_page=current_app.config["PAGE_SIZE"],
        status=MachineTextStatus(status) if status else None,
        queue=queue,
        unassigned=editor == "none",
        search=search,
    )
    return render_template(
        template, page=page, status=status, queue=queue, editor=editor, search=search, **context
    )


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


@documents_bp.get("/<int:document_id>")
def show(document_id: int):
    document = readable_or_404(document_id)
    if current_user.role is Role.SPONSOR:
        return redirect(url_for("sponsor.show_document", document_id=document.id))
    return render_document_page(document)


# The most documents one list refresh asks about: a page of a list.
MAX_LIST_IDS = 100


@documents_bp.get("/machine-text")
def list_states():
    """Machine-text status and review state of listed documents, for lists that refresh.

    `?ids=3,5,8`: documents the caller may not read are left out of the answer.
    """
    raw = [part for part in request.args.get("ids", "").split(",") if part]
    if len(raw) > MAX_LIST_IDS or not all(part.isdigit() and len(part) <= 10 for part in raw):
        abort(400, description=f"ids must be up to {MAX_LIST_IDS} document ids, comma-separated.")
    rows = service.row_states(current_user, [int(part) for part in raw])
    response = jsonify(
        documents={
            str(document_id): {
                "status": row.status.value if row.status else None,
                "review": row.review_state,
                "decision": row.decision.value if row.decision else None,
                "origin": row.origin.value if row.origin else None,
                "has_editor": row.document.editor_id is not None,
            }
            for document_id, row in rows.items()
        }
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@documents_bp.get("/<int:document_id>/machine-text")
def machine_text(document_id: int):
    """The state of the latest machine text, for pages that update themselves."""
    document = readable_or_404(document_id)
    revision = service.latest_revision(document)
    state = machine_text_state(revision)
    response = jsonify(state)
    response.headers["Cache-Control"] = "no-store"
    return response


@documents_bp.post("/<int:document_id>/machine-text/retry")
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


@documents_bp.post("/<int:document_id>/machine-text/more")
def write_more(document_id: int):
    """Machine text for a revision an editor's decision made: its sponsor or editor asks."""
    document = readable_or_404(document_id)
    if current_user.id not in (document.owner_id, document.editor_id):
        abort(403)
    try:
        written = service.write_more(document, current_user)
    except service.DocumentError as error:
        flash(str(error), "error")
    else:
        flash(
            "The model is writing another text; the rejected one stays in the history."
            if written.number > 1
            else "The model is writing more.",
            "success",
        )
    if request.form.get("next") == "review" and current_user.id == document.editor_id:
        return redirect(url_for("editor.review", document_id=document.id), 303)
    return redirect(document_page_url(document), 303)


@documents_bp.get("/<int:document_id>/revisions/<int:number>")
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


# -- /sponsor: writing documents, choosing their editor --------------------------------


def own_or_404(document_id: int):
    document = service.owned_document(current_user, document_id)
    if document is None:
        abort(404)
    return document


@sponsor_bp.get("/", endpoint="home")
def sponsor_home():
    return redirect(url_for("sponsor.documents"))


@sponsor_bp.get("/documents", endpoint="documents")
def sponsor_documents():
    return render_document_list("sponsor/documents.html")


@sponsor_bp.get("/documents/export.<any(csv, jsonl):kind>", endpoint="export_documents")
def export_documents(kind: str):
    """The sponsor's documents with their latest machine text and review, as CSV or JSONL."""
    rows = service.export_rows(current_user)
    return download(rows, service.EXPORT_FIELDS, kind, "srcflask-documents")


@sponsor_bp.route("/documents/import", methods=["GET", "POST"], endpoint="import_documents")
@accepts_files
def import_documents():
    """Many documents at once from a CSV or JSONL file: all of them, or none."""
    form = ImportForm()
    problems = None
    status = 200
    if form.validate_on_submit():
        upload = form.file.data
        kind = imports.kind_of(upload.filename or "")
        try:
            if kind is None:
                raise imports.ImportRefused([(None, "Choose a file ending in .csv or .jsonl.")])
            rows = imports.read_rows(upload.read(imports.MAX_BYTES + 1), kind)
            imported = service.import_documents(current_user, rows)
        except imports.ImportRefused as refusal:
            problems = refusal.problems
            status = 422
        else:
            count, waiting = len(imported.documents), imported.waiting
            message = f"Imported {count} document{'s' if count != 1 else ''}."
            if waiting:
                message += (
                    f" Their machine text is queued; {waiting} wait until earlier ones are done."
                )
            else:
                message += " Their machine text is queued."
            flash(message, "success")
            return redirect(url_for("sponsor.documents"), 303)
    elif request.method == "POST":
        status = 422
    return render_template("sponsor/import.html", form=form, problems=problems), status


@sponsor_bp.route("/documents/new", methods=["GET", "POST"])
def new_document():
    form = DocumentForm()
    form.editor_id.choices = editor_choices(service.approved_editors())
    if request.method == "GET":  # the editor of their last document, so someone can review
        form.editor_id.data = service.last_editor_id(current_user)
    if form.validate_on_submit():
        try:
            document = service.create_document(
                current_user, form.title.data, form.body.data or "", form.editor_id.data
            )
        except service.DocumentError as error:
            form.editor_id.errors = [str(error)]
        else:
            first = document.revisions[0]
            flash(f"Saved. {machine_text_note(first)}", note_category(first))
            return redirect(url_for("sponsor.show_document", document_id=document.id), 303)
    status = 422 if form.errors else 200
    return render_template("sponsor/document_form.html", form=form, document=None), status


@sponsor_bp.get("/documents/<int:document_id>")
def show_document(document_id: int):
    return render_document_page(own_or_404(document_id))


@sponsor_bp.route("/documents/<int:document_id>/edit", methods=["GET", "POST"])
def edit_document(document_id: int):
    document = own_or_404(document_id)
    form = DocumentForm(obj=document if request.method == "GET" else None)
    form.editor_id.choices = editor_choices(service.approved_editors(), document.editor)
    conflict = None
    if request.method == "GET":
        form.editor_id.data = document.editor_id
        form.base_revision.data = service.latest_revision(document).number
    if form.validate_on_submit():
        try:
            revision = service.save_document(
                document,
                current_user,
                form.title.data,
                form.body.data or "",
                form.editor_id.data,
                base_revision=form.base_revision.data,
            )
        except service.EditConflict as error:
            form.form_errors.append(str(error))
            # Saving again now replaces the newer revision, knowingly.
            form.base_revision.data = error.latest.number
            lines = diff_texts(error.latest.body, form.body.data or "")
            conflict = {"latest": error.latest, "body_diff": lines, "counts": summary(lines)}
        except service.DocumentError as error:
            form.editor_id.errors = [str(error)]
        else:
            if revision is None:
                flash("Nothing in the text changed, so no new revision was made.", "info")
            else:
                flash(
                    f"Saved revision {revision.number}. {machine_text_note(revision)}",
                    note_category(revision),
                )
            return redirect(url_for("sponsor.show_document", document_id=document.id), 303)
    status = 409 if conflict else 422 if form.errors else 200
    return render_template(
        "sponsor/document_form.html", form=form, document=document, conflict=conflict
    ), status


@sponsor_bp.post("/documents/<int:document_id>/editor")
def assign_editor(document_id: int):
    document = own_or_404(document_id)
    form = EditorForm()
    try:
        editor = service.assign_editor(document, form.editor_id.data)
    except service.DocumentError as error:
        flash(str(error), "error")
    else:
        flash(f"Assigned to {editor.name}." if editor else "No editor is assigned now.", "success")
    return redirect(url_for("sponsor.show_document", document_id=document.id), 303)


@sponsor_bp.route("/documents/<int:document_id>/delete", methods=["GET", "POST"])
def delete_document(document_id: int):
    document = own_or_404(document_id)
    if request.method == "GET":
        return render_template("sponsor/confirm_delete.html", document=document)
    service.delete_document(document)
    flash(f"“{document.title}” is deleted.", "success")
    return redirect(url_for("sponsor.documents"), 303)


def note_category(revision) -> str:
    """`machine-text` for a save whose text is on its way: the page updates that note."""
    return "success" if revision.machine_text is None else "machine-text"


def machine_text_note(revision) -> str:
    machine_text = revision.machine_text
    if machine_text is None:
        return "The body is empty, so there is nothing for the model to continue yet."
    if machine_text.status is MachineTextStatus.WAITING:
        return (
            "Your earlier machine texts are still being written; this one follows as soon "
            "as one of them is done."
        )
    return "The machine text is being written."


# -- /editor: reviewing machine text ---------------------------------------------------


def assigned_or_404(document_id: int):
    document = service.assigned_document(current_user, document_id)
    if document is None:
        abort(404)
    return document


@editor_bp.get("/", endpoint="home")
def editor_home():
    """An editor starts where their work is: the documents that need their review."""
    return redirect(url_for("editor.documents", review="needs-review"))


@editor_bp.get("/documents", endpoint="documents")
def editor_documents():
    return render_document_list("editor/documents.html", counts=service.review_counts(current_user))


@editor_bp.route("/documents/<int:document_id>/review", methods=["GET", "POST"])
def review(document_id: int):
    document = service.assigned_document(current_user, document_id)
    if document is None:
        if request.method != "POST":
            abort(404)
        # Unassigned while the page was open: say so, and give the typed text back. The
        # same answer whether the document exists or not, so it tells nothing about it.
        typed = request.form.get("text", "")[:BODY_MAX]
        return render_template("editor/not_assigned.html", typed=typed), 404
    revision = service.latest_revision(document)
    machine_text = revision.machine_text
    formdata = None
    if (
        request.method == "POST"
        and request.form.get("keep_until")
        and not request.form.get("decision")
    ):  # a "Keep up to here" button: it names the sentence, the decision is keeping part
        formdata = request.form.copy()
        formdata["decision"] = "keep"
    form = ReviewForm(formdata=formdata) if formdata is not None else ReviewForm()
    choices = machine_text.choices() if machine_text and machine_text.text else []
    chosen = request.args.get("choice", 0, type=int) if request.method == "GET" else None
    status = 200
    if request.method == "GET":
        chosen = chosen if 0 <= chosen < len(choices) else 0
        form.text.data = choices[chosen] if choices else ""
    elif form.validate_on_submit():
        decision = service.DECISIONS[form.decision.data]
        chosen = form.chosen.data
        try:
            done = service.review_machine_text(
                document,
                current_user,
                decision,
                # None when the form sent no edit box (then Accept takes the machine text).
                form.text.data if "text" in request.form else None,
                keep_until=form.keep_until.data,
                chosen=chosen,
            )
        except service.DocumentError as error:
            form.form_errors.append(str(error))
            status = 409
        else:
            return redirect(url_for("editor.review", document_id=document.id, decided=done.id), 303)
    else:
        status = 422
    undoable = service.undoable_review(revision, current_user)
    return render_template(
        "editor/review.html",
        document=document,
        revision=revision,
        machine_text=machine_text,
        form=form,
        decided=decided_review(document),
        choices=choices,
        chosen=chosen if chosen is not None and 0 <= chosen < len(choices) else 0,
        sentences=marked_sentences(
            machine_text, choices[chosen] if chosen and 0 <= chosen < len(choices) else None
        )
        if machine_text
        else [],
        mark_kinds=MARK_KINDS,
        next_document=service.next_to_review(current_user, besides=document.id),
        undoable=undoable,
        undo_until=service.undo_deadline(undoable) if undoable else None,
    ), status


@editor_bp.post("/documents/<int:document_id>/reviews/<int:review_id>/undo")
def undo_review(document_id: int, review_id: int):
    """Take back one's own recent decision: the machine text needs review again."""
    document = assigned_or_404(document_id)
    try:
        service.undo_review(document, current_user, review_id)
    except LookupError:  # undone already (in another tab, say), or not theirs
        flash("There is no decision of yours to undo here: it may be undone already.", "error")
        return redirect(url_for("editor.review", document_id=document.id), 303)
    except service.DocumentError as error:
        flash(str(error), "error")
        return redirect(url_for("editor.review", document_id=document.id), 303)
    flash("Your decision is undone: the machine text needs your review again.", "success")
    return redirect(url_for("editor.review", document_id=document.id), 303)


def decided_review(document):
    """The review named in `?decided=`, when it is this editor's, on this document."""
    review_id = request.args.get("decided", type=int)
    if review_id is None:
        return None
    return service.own_review(current_user, document, review_id)


# -- /admin: every document ------------------------------------------------------------


@admin_bp.get("/documents", endpoint="documents")
def admin_documents():
    return render_document_list("admin/documents.html")
