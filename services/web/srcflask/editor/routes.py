from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from ..documents import service
from ..documents.routes import render_document_list
from ..models import Decision
from . import bp
from .forms import ReviewForm

DONE_MESSAGES = {
    Decision.ACCEPTED: "Accepted: the machine text is now part of the document (revision {n}).",
    Decision.EDITED: "Your edit is now part of the document (revision {n}).",
    Decision.REJECTED: "Rejected: the document stays as it was.",
}


def assigned_or_404(document_id: int):
    document = service.assigned_document(current_user, document_id)
    if document is None:
        abort(404)
    return document


@bp.get("/")
def home():
    return redirect(url_for("editor.documents"))


@bp.get("/documents")
def documents():
    return render_document_list("editor/documents.html")


@bp.route("/documents/<int:document_id>/review", methods=["GET", "POST"])
def review(document_id: int):
    document = assigned_or_404(document_id)
    revision = service.latest_revision(document)
    machine_text = revision.machine_text
    form = ReviewForm()
    status = 200
    if request.method == "GET":
        form.text.data = machine_text.text if machine_text and machine_text.text else ""
    elif form.validate_on_submit():
        decision = service.DECISIONS[form.decision.data]
        try:
            done = service.review_machine_text(document, current_user, decision, form.text.data)
        except service.DocumentError as error:
            form.form_errors.append(str(error))
            status = 409
        else:
            number = done.revision.number if done.revision else revision.number
            flash(DONE_MESSAGES[decision].format(n=number), "success")
            return redirect(url_for("editor.review", document_id=document.id), 303)
    else:
        status = 422
    return render_template(
        "editor/review.html",
        document=document,
        revision=revision,
        machine_text=machine_text,
        form=form,
    ), status
