from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from ..documents import service
from ..documents.routes import render_document_list, render_document_page
from ..models import MachineTextStatus
from . import bp
from .forms import DocumentForm, EditorForm, editor_choices


def own_or_404(document_id: int):
    document = service.owned_document(current_user, document_id)
    if document is None:
        abort(404)
    return document


@bp.get("/")
def home():
    return redirect(url_for("sponsor.documents"))


@bp.get("/documents")
def documents():
    return render_document_list("sponsor/documents.html")


@bp.route("/documents/new", methods=["GET", "POST"])
def new_document():
    form = DocumentForm()
    form.editor_id.choices = editor_choices(service.approved_editors())
    if form.validate_on_submit():
        try:
            document = service.create_document(
                current_user, form.title.data, form.body.data or "", form.editor_id.data
            )
        except service.DocumentError as error:
            form.editor_id.errors = [str(error)]
        else:
            flash(f"Saved. {machine_text_note(document.revisions[0])}", "success")
            return redirect(url_for("sponsor.show_document", document_id=document.id), 303)
    status = 422 if form.errors else 200
    return render_template("sponsor/document_form.html", form=form, document=None), status


@bp.get("/documents/<int:document_id>")
def show_document(document_id: int):
    return render_document_page(own_or_404(document_id))


@bp.route("/documents/<int:document_id>/edit", methods=["GET", "POST"])
def edit_document(document_id: int):
    document = own_or_404(document_id)
    form = DocumentForm(obj=document if request.method == "GET" else None)
    form.editor_id.choices = editor_choices(service.approved_editors(), document.editor)
    if request.method == "GET":
        form.editor_id.data = document.editor_id
    if form.validate_on_submit():
        try:
            revision = service.save_document(
                document, current_user, form.title.data, form.body.data or "", form.editor_id.data
            )
        except service.DocumentError as error:
            form.editor_id.errors = [str(error)]
        else:
            if revision is None:
                flash("Nothing in the text changed, so no new revision was made.", "info")
            else:
                flash(
                    f"Saved revision {revision.number}. {machine_text_note(revision)}",
                    "success",
                )
            return redirect(url_for("sponsor.show_document", document_id=document.id), 303)
    status = 422 if form.errors else 200
    return render_template("sponsor/document_form.html", form=form, document=document), status


@bp.post("/documents/<int:document_id>/editor")
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


@bp.route("/documents/<int:document_id>/delete", methods=["GET", "POST"])
def delete_document(document_id: int):
    document = own_or_404(document_id)
    if request.method == "GET":
        return render_template("sponsor/confirm_delete.html", document=document)
    service.delete_document(document)
    flash(f"“{document.title}” is deleted.", "success")
    return redirect(url_for("sponsor.documents"), 303)


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
