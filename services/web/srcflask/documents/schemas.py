"""API v1 schemas of documents, their revisions, machine text and reviews."""

from __future__ import annotations

import marshmallow as ma
from flask import has_request_context
from flask_login import current_user
from marshmallow import ValidationError, fields, post_dump, validate, validates_schema

from ..api.schemas import (
    Id,
    IntegerThrough,
    PageSchema,
    PersonSchema,
    StringThrough,
    Text,
    enum_values,
    not_blank,
)
from ..experiments import service as experiments
from ..jobs.schemas import JobResultSchema
from ..ml.engine import has_text_to_continue
from ..models import Decision, MachineTextStatus, Revision, RevisionOrigin
from ..models.documents import BODY_MAX, TITLE_MAX
from ..models.jobs import JobStatus
from ..registry import loads
from ..registry import service as registry
from .imports import MAX_ROWS
from .marks import marks_for, sentence_ends
from .service import estimate_seconds, queue_position, undo_deadline


class MachineTextProgressSchema(ma.Schema):
    tokens = fields.Integer(required=True)
    max_tokens = fields.Integer(required=True, allow_none=True)


class QueuePosition(fields.Integer):
    """Where a queued job stands in the queue (1 is next); null unless queued."""

    def get_value(self, obj, attr, accessor=None, default=ma.missing):
        return queue_position(obj)


class MachineTextSchema(JobResultSchema):
    """Dumps a MachineText."""

    revision = IntegerThrough(required=True, attribute="revision.number")
    blind = fields.Method(
        "is_blind",
        required=True,
        metadata={
            "description": "True while model versions are being compared on this text: who "
            "wrote it (`model_version`, `settings`, token counts) is withheld from all but "
            "admins until the comparison ends"
        },
    )
    number = fields.Integer(
        required=True,
        metadata={
            "description": "1 for the revision's first machine text; 2 and on for those "
            "written in place of a rejected one"
        },
    )
    progress = fields.Nested(MachineTextProgressSchema, required=True)
    queue_position = QueuePosition(required=True, allow_none=True)
    attempts = fields.Integer(required=True)
    reviewed = StringThrough(
        required=True,
        allow_none=True,
        attribute="review.decision",
        validate=validate.OneOf(enum_values(Decision)),
    )
    alternatives = fields.List(
        fields.String(),
        required=True,
        allow_none=True,
        metadata={
            "description": "Up to two clearly different texts the model also wrote; review one "
            "by its `chosen` number (1 or 2; 0 is `text`)"
        },
    )

    def is_blind(self, machine_text) -> bool:
        user = current_user if has_request_context() else None
        return experiments.hidden_from(user, machine_text)

    @post_dump(pass_original=True)
    def withhold_writer(self, data, machine_text, **kwargs):
        """Blind review: nothing here says which version or arm wrote a blind text."""
        if not data.get("blind"):
            return data
        for name in ("model_version", "prompt_tokens", "generated_tokens"):
            if name in data:
                data[name] = None
        if "settings" in data:
            data["settings"] = {}
        if data.get("progress"):
            data["progress"] = {**data["progress"], "max_tokens": None}
        if data.get("loading_model"):
            data["loading_model"] = {**data["loading_model"], "model": None}
        return data

    sentence_ends = fields.Method(
        "ends",
        required=True,
        metadata={"description": "Where each sentence of the text ends (character offsets)"},
    )
    check_marks = fields.Method(
        "marks",
        required=True,
        metadata={
            "description": "Numbers, dates, names and contact details the document does not "
            "contain, for the editor to check: {start, end, kind, text}, character offsets"
        },
    )

    def ends(self, machine_text) -> list[int]:
        done = machine_text.status is MachineTextStatus.DONE
        return sentence_ends(machine_text.text) if done else []

    def marks(self, machine_text) -> list[dict]:
        return [mark.to_dict() for mark in marks_for(machine_text)]


class DocumentSummarySchema(ma.Schema):
    """Dumps a documents.service.DocumentRow."""

    id = fields.Integer(required=True, attribute="document.id")
    title = fields.String(required=True, attribute="document.title")
    owner = fields.Nested(PersonSchema, required=True)
    editor = fields.Nested(PersonSchema, required=True, allow_none=True)
    revision = fields.Integer(required=True, attribute="revision_number")
    machine_text_status = fields.String(
        required=True,
        allow_none=True,
        attribute="status",
        validate=validate.OneOf(enum_values(JobStatus)),
    )
    created_at = fields.DateTime(required=True, attribute="document.created_at")
    updated_at = fields.DateTime(required=True, attribute="document.updated_at")


class DocumentSchema(DocumentSummarySchema):
    body = fields.String(required=True, attribute="document.body")
    machine_text = fields.Nested(
        MachineTextSchema,
        required=True,
        allow_none=True,
        metadata={"description": "null when the body is empty: there is nothing to continue"},
    )


class DocumentPageSchema(PageSchema):
    items = fields.List(fields.Nested(DocumentSummarySchema), required=True)


class DocumentQuerySchema(ma.Schema):
    status = fields.String(
        validate=validate.OneOf(enum_values(JobStatus)),
        metadata={"description": "Only documents whose latest machine text has this status"},
    )
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    per_page = fields.Integer(load_default=25, validate=validate.Range(min=1, max=100))


class DocumentCreateSchema(ma.Schema):
    title = Text(required=True, validate=[validate.Length(min=1, max=TITLE_MAX), not_blank])
    body = Text(load_default="", validate=validate.Length(max=BODY_MAX))
    editor_id = Id(load_default=None, allow_none=True)


class DocumentUpdateSchema(ma.Schema):
    title = Text(validate=[validate.Length(min=1, max=TITLE_MAX), not_blank])
    body = Text(validate=validate.Length(max=BODY_MAX))
    editor_id = Id(allow_none=True)
    base_revision = Id(
        metadata={
            "description": "The revision this change started from: when a newer one was "
            "saved since, the change is refused with 409 instead of undoing it"
        }
    )

    @validates_schema
    def not_empty(self, data, **kwargs):
        if not data.keys() - {"base_revision"}:
            raise ValidationError("Give at least one of title, body or editor_id.")


class RevisionSchema(ma.Schema):
    """Dumps a Revision."""

    number = fields.Integer(required=True)
    title = fields.String(required=True)
    body = fields.String(required=True)
    author = fields.Nested(PersonSchema, required=True, allow_none=True)
    origin = fields.String(required=True, validate=validate.OneOf(enum_values(RevisionOrigin)))
    created_at = fields.DateTime(required=True)
    machine_text_status = StringThrough(
        required=True,
        allow_none=True,
        attribute="machine_text.status",
        validate=validate.OneOf(enum_values(JobStatus)),
    )


class RevisionListSchema(ma.Schema):
    items = fields.List(fields.Nested(RevisionSchema), required=True)


class ReviewCreateSchema(ma.Schema):
    decision = fields.String(
        required=True, validate=validate.OneOf(["accept", "edit", "keep", "reject"])
    )
    text = Text(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=BODY_MAX),
        metadata={"description": "The edited text (decision `edit` only)"},
    )
    chosen = fields.Integer(
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=0, max=2),
        metadata={"description": "Which text to review: 0 (default) `text`, 1 or 2 an alternative"},
    )
    keep_until = fields.Integer(
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=0, max=BODY_MAX),
        metadata={
            "description": "Decision `keep` only: keep the machine text up to this character, "
            "one of its `sentence_ends` but the last; the rest is dropped"
        },
    )

    @validates_schema
    def check_keep(self, data, **kwargs):
        if data["decision"] == "keep" and data.get("keep_until") is None:
            raise ValidationError("Say where to keep the machine text up to.", "keep_until")


class ReviewSchema(ma.Schema):
    """Dumps a Review."""

    id = fields.Integer(required=True)
    machine_text_id = fields.Integer(required=True)
    decision = fields.String(required=True, validate=validate.OneOf(enum_values(Decision)))
    text = fields.String(required=True, allow_none=True)
    revision = IntegerThrough(
        required=True,
        allow_none=True,
        attribute="revision.number",
        metadata={"description": "The revision the text became"},
    )
    kept_share = fields.Float(
        required=True,
        allow_none=True,
        metadata={"description": "Share (0 to 1) of the reviewed text's words kept"},
    )
    chosen = fields.Integer(
        required=True,
        allow_none=True,
        metadata={"description": "The text reviewed (0: the first); null when none other offered"},
    )
    created_at = fields.DateTime(required=True)
    undo_until = fields.Method(
        "deadline",
        required=True,
        metadata={"description": "Until when its editor may undo it: DELETE /api/v1/reviews/{id}"},
    )

    def deadline(self, review) -> str:
        return undo_deadline(review).isoformat()


# -- pages -------------------------------------------------------------------------


class Seconds(fields.DateTime):
    """A time to the second, as pages show it."""

    def _serialize(self, value, attr, obj, **kwargs):
        return value.isoformat(timespec="seconds") if value is not None else None


class MachineTextStateSchema(MachineTextSchema):
    """The API's machine text as pages follow it: the text once done, times to the second."""

    class Meta:
        exclude = ("settings",)

    text = fields.Method("finished_text")
    review = fields.Method("review_summary")
    estimate_seconds = fields.Method("estimate")
    loading_model = fields.Method("model_loading")
    queued_at = Seconds()
    started_at = Seconds()
    finished_at = Seconds()

    def finished_text(self, machine_text) -> str | None:
        return machine_text.text if machine_text.status is MachineTextStatus.DONE else None

    def estimate(self, machine_text) -> int | None:
        estimate = estimate_seconds(machine_text, queue_position(machine_text))
        loading = self._loading(machine_text)
        if estimate is None or loading is None:
            return estimate
        return estimate + loading.seconds_left

    def model_loading(self, machine_text) -> dict | None:
        """While the model that writes it is loading: which, and about how long it has left."""
        loading = self._loading(machine_text)
        if loading is None:
            return None
        return {"model": loading.version_label, "seconds_left": loading.seconds_left}

    def _loading(self, machine_text) -> loads.Loading | None:
        """The load this machine text waits for: any of the production model while it is
        queued; its worker's, once claimed and before the first token."""
        cache = self.__dict__.setdefault("_loads", {})
        if machine_text.id not in cache:
            cache[machine_text.id] = None
            status = machine_text.status
            waits = status is MachineTextStatus.QUEUED or (
                status is MachineTextStatus.RUNNING and not machine_text.progress_tokens
            )
            version = registry.production_version() if waits else None
            if version is not None:
                worker = machine_text.claimed_by if status is MachineTextStatus.RUNNING else None
                cache[machine_text.id] = loads.loading(version, worker)
        return cache[machine_text.id]

    def review_summary(self, machine_text) -> dict | None:
        """The editor's decision: what, by whom, when, and the revision it became."""
        review = machine_text.review
        if review is None:
            return None
        return {
            "id": review.id,
            "decision": review.decision.value,
            "by": review.editor.name if review.editor else None,
            "at": review.created_at.isoformat(timespec="seconds"),
            "revision": review.revision.number if review.revision else None,
        }


def machine_text_state(revision: Revision) -> dict:
    """The state of a revision's machine text, for the page panel and the status endpoint."""
    if revision.machine_text is None:
        return {
            "status": None,
            "text": None,
            "model_version": None,
            "blind": False,
            "error": None,
            "revision": revision.number,
            "origin": revision.origin.value,
            "nothing_to_continue": not has_text_to_continue(revision.body),
        }
    return MachineTextStateSchema().dump(revision.machine_text)


# -- many documents at once ----------------------------------------------------------


class DocumentImportSchema(ma.Schema):
    documents = fields.List(
        fields.Dict(),
        required=True,
        validate=validate.Length(min=1, max=MAX_ROWS),
        metadata={
            "description": "Objects with `title`, and optionally `body` and `editor_email`; "
            "all are saved, or none"
        },
    )


class DocumentImportResultSchema(ma.Schema):
    items = fields.List(fields.Nested(DocumentSummarySchema), required=True)
