"""Document services: who may see what, saving revisions, reviews, and machine-text state.

Every save commits the document, its new revision and a queued machine text
in one transaction, then hands the machine text to the job runner: the
request never waits for the model, and a failed hand-over loses nothing
(the runner finds queued rows by itself).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import current_app
from rapidfuzz.distance import Levenshtein
from sqlalchemy import Select, and_, func, or_, select, update
from sqlalchemy.orm import aliased, joinedload, selectinload

from .. import jobs
from ..experiments import service as experiments
from ..extensions import db
from ..jobs import work
from ..ml.engine import has_text_to_continue
from ..models import (
    Decision,
    Document,
    MachineText,
    MachineTextStatus,
    Review,
    Revision,
    RevisionOrigin,
    Role,
    User,
    UserStatus,
    record_event,
)
from ..models.types import MAX_ID, lock_row, utcnow
from ..pagination import Page, like_pattern, paginate
from .diff import kept_word_share
from .imports import ImportRow
from .marks import sentence_ends

log = logging.getLogger(__name__)


class DocumentError(ValueError):
    """A request about a document that cannot be done now; the message says why."""


class EditConflict(DocumentError):
    """An edit made on an older revision than the latest: saving it would undo someone's save."""

    def __init__(self, latest: Revision, base: int):
        self.latest, self.base = latest, base
        who = latest.author.name if latest.author else "someone"
        super().__init__(
            f"This document changed since you opened it: {who} saved revision "
            f"{latest.number} after revision {base}, which you were editing. Your text is "
            "kept below, with what differs from the saved revision. Save again to replace "
            "that revision with your text."
        )


# An editor's decisions, by the names forms and the API use.
DECISIONS = {
    "accept": Decision.ACCEPTED,
    "edit": Decision.EDITED,
    "keep": Decision.KEPT_PART,
    "reject": Decision.REJECTED,
}
ORIGINS = {
    Decision.ACCEPTED: RevisionOrigin.ACCEPTED,
    Decision.EDITED: RevisionOrigin.EDITED,
    Decision.KEPT_PART: RevisionOrigin.KEPT_PART,
}
# Revisions an editor's decision made.
REVIEWED_ORIGINS = tuple(ORIGINS.values())

NOTHING_TO_CONTINUE = (
    "There is nothing to continue yet: the body is empty. Write the beginning of the "
    "document and save it, and the machine text follows."
)


# -- who may see what ------------------------------------------------------------


def visible_to(user: User):
    """The condition on Document rows that `user` may read (never deleted ones)."""
    if user.role is Role.ADMIN:
        scope = True
    elif user.role is Role.EDITOR:
        scope = Document.editor_id == user.id
    else:
        scope = Document.owner_id == user.id
    return and_(Document.is_deleted.is_(False), scope)


def readable_document(user: User, document_id: int) -> Document | None:
    """The document if `user` may read it, else None (callers answer 404 either way)."""
    return db.session.scalar(
        select(Document)
        .options(joinedload(Document.editor), joinedload(Document.owner))
        .where(Document.id == document_id, visible_to(user))
    )


def owned_document(user: User, document_id: int) -> Document | None:
    """The document if `user` is the sponsor who owns it."""
    if user.role is not Role.SPONSOR:
        return None
    return readable_document(user, document_id)


def assigned_document(user: User, document_id: int) -> Document | None:
    """The document if `user` is the editor it is assigned to."""
    if user.role is not Role.EDITOR:
        return None
    return readable_document(user, document_id)


# -- lists (one query per page, whatever the number of rows) ---------------------


@dataclass(frozen=True)
class Person:
    id: int
    name: str


@dataclass
class DocumentRow:
    """A document as lists show it: with its latest revision's number and machine text.

    `machine_text` is loaded only for one document (`document_row`), not for lists.
    """

    document: Document
    revision_number: int
    status: MachineTextStatus | None
    editor_name: str | None
    owner_name: str
    # The editor's decision on the latest machine text, and how the latest revision came.
    decision: Decision | None = None
    origin: RevisionOrigin | None = None
    machine_text: MachineText | None = None

    @property
    def review_state(self) -> str | None:
        """`needs-review`, `reviewed` (the latest text was decided on), or None."""
        return review_state(self.status, self.decision, self.origin)

    @property
    def owner(self) -> Person:
        return Person(self.document.owner_id, self.owner_name)

    @property
    def editor(self) -> Person | None:
        if self.document.editor_id is None:
            return None
        return Person(self.document.editor_id, self.editor_name or "")


def document_row(document: Document) -> DocumentRow:
    """One document with its latest revision and that revision's machine text."""
    revision = latest_revision(document)
    machine_text = revision.machine_text
    return DocumentRow(
        document,
        revision.number,
        machine_text.status if machine_text else None,
        document.editor.name if document.editor else None,
        document.owner.name,
        machine_text.review.decision if machine_text and machine_text.review else None,
        revision.origin,
        machine_text,
    )


def latest_revisions():
    """A subquery: each document's newest revision number."""
    return (
        select(Revision.document_id, func.max(Revision.number).label("number"))
        .group_by(Revision.document_id)
        .subquery()
    )


# Review queues: what an editor has to decide on, and what they have decided.
REVIEW_QUEUES = ("needs-review", "reviewed")
NEEDS_REVIEW, REVIEWED = REVIEW_QUEUES


def review_state(
    status: MachineTextStatus | None, decision: Decision | None, origin: RevisionOrigin | None
) -> str | None:
    """Where a document stands in review, from its latest revision and machine text.

    It needs review when its latest machine text is ready and undecided. It counts
    as reviewed when that text was decided on, or when the latest revision is an
    accepted or edited machine text whose own continuation is not ready yet.
    """
    if decision is not None:
        return REVIEWED
    if status is MachineTextStatus.DONE:
        return NEEDS_REVIEW
    if origin in REVIEWED_ORIGINS:
        return REVIEWED
    return None


def _review_condition(queue: str):
    if queue == NEEDS_REVIEW:
        return and_(MachineText.status == MachineTextStatus.DONE, Review.id.is_(None))
    reviewed_origin = Revision.origin.in_(REVIEWED_ORIGINS)
    return or_(
        Review.id.is_not(None),
        and_(
            reviewed_origin,
            or_(MachineText.id.is_(None), MachineText.status != MachineTextStatus.DONE),
        ),
    )


def _latest_rows(user: User) -> Select:
    latest = latest_revisions()
    editor = aliased(User)
    owner = aliased(User)
    return (
        select(
            Document,
            Revision.number,
            MachineText.status,
            editor.name,
            owner.name,
            Review.decision,
            Revision.origin,
        )
        .join(latest, latest.c.document_id == Document.id)
        .join(
            Revision, and_(Revision.document_id == Document.id, Revision.number == latest.c.number)
        )
        .outerjoin(
            MachineText,
            and_(MachineText.revision_id == Revision.id, MachineText.replaced_at.is_(None)),
        )
        .outerjoin(Review, Review.machine_text_id == MachineText.id)
        .outerjoin(editor, editor.id == Document.editor_id)
        .join(owner, owner.id == Document.owner_id)
        .where(visible_to(user))
    )


def document_rows_query(
    user: User,
    status: MachineTextStatus | None = None,
    queue: str | None = None,
    unassigned: bool = False,
    search: str = "",
) -> Select:
    query = _latest_rows(user).order_by(Document.updated_at.desc(), Document.id.desc())
    if search:
        pattern = like_pattern(search)
        query = query.where(
            or_(
                Document.title.ilike(pattern, escape="\\"),
                Document.body.ilike(pattern, escape="\\"),
            )
        )
    if status is not None:
        query = query.where(MachineText.status == status)
    if queue is not None:
        query = query.where(_review_condition(queue))
    if unassigned:
        query = query.where(Document.editor_id.is_(None))
    return query


def document_rows(
    user: User,
    page: int = 1,
    per_page: int = 25,
    status: MachineTextStatus | None = None,
    queue: str | None = None,
    unassigned: bool = False,
    search: str = "",
) -> Page:
    """The documents `user` may read, newest first, with the state of their machine text.

    `queue` (one of REVIEW_QUEUES) keeps the documents that need review, or were reviewed;
    `unassigned` those with no editor, which nobody can review; `search` those whose title
    or text holds it.
    """
    result = paginate(
        document_rows_query(user, status, queue, unassigned, search), page, per_page, scalars=False
    )
    result.items = [DocumentRow(*row) for row in result.items]
    return result


def row_states(user: User, ids: list[int]) -> dict[int, DocumentRow]:
    """The list rows of the documents `ids` that `user` may read (others are left out)."""
    ids = [i for i in ids if 0 < i <= MAX_ID]
    if not ids:
        return {}
    rows = db.session.execute(_latest_rows(user).where(Document.id.in_(ids))).all()
    return {row[0].id: DocumentRow(*row) for row in rows}


# -- export --------------------------------------------------------------------------

EXPORT_FIELDS = (
    "id",
    "title",
    "body",
    "editor_email",
    "revision",
    "machine_text_status",
    "machine_text",
    "review",
    "updated_at",
)


def export_rows(user: User) -> Iterator[dict[str, Any]]:
    """Every document `user` may read, oldest first, with its latest machine text and review.

    Read in chunks, so a long export never holds every document in memory.
    """
    editors = dict(
        db.session.execute(select(User.id, User.email).where(User.role == Role.EDITOR)).all()
    )
    query = (
        _latest_rows(user)
        .add_columns(MachineText.text)
        .order_by(Document.id)
        .execution_options(yield_per=200)
    )
    for document, number, status, _, _, decision, origin, text in db.session.execute(query):
        yield {
            "id": document.id,
            "title": document.title,
            "body": document.body,
            "editor_email": editors.get(document.editor_id),
            "revision": number,
            "machine_text_status": status.value if status else None,
            "machine_text": text if status is MachineTextStatus.DONE else None,
            "review": decision.value if decision else review_state(status, None, origin),
            "updated_at": document.updated_at.isoformat(timespec="seconds"),
        }


def review_counts(user: User) -> dict[str, int]:
    """How many of the documents `user` may read are in each review queue."""
    counts = {}
    for queue in REVIEW_QUEUES:
        rows = _latest_rows(user).where(_review_condition(queue)).subquery()
        counts[queue] = db.session.scalar(select(func.count()).select_from(rows))
    return counts


def next_to_review(user: User, besides: int | None = None) -> Document | None:
    """The document waiting longest for `user`'s review, other than `besides`."""
    query = _latest_rows(user).where(_review_condition(NEEDS_REVIEW))
    if besides is not None:
        query = query.where(Document.id != besides)
    row = db.session.execute(
        query.order_by(MachineText.finished_at.asc(), Document.id.asc()).limit(1)
    ).first()
    return row[0] if row else None


# -- revisions and machine text ---------------------------------------------------


def _revision_query(document: Document):
    """Revisions of `document`, each loaded with its machine text, model and author."""
    return (
        select(Revision)
        .options(
            joinedload(Revision.machine_text).joinedload(MachineText.model_version),
            joinedload(Revision.author),
        )
        .where(Revision.document_id == document.id)
    )


def latest_revision(document: Document) -> Revision:
    return db.session.scalar(_revision_query(document).order_by(Revision.number.desc()).limit(1))


def revision_history(document: Document) -> list[Revision]:
    """Every revision, newest first, with its machine texts (the replaced ones too) and
    their reviews."""
    return db.session.scalars(
        select(Revision)
        .options(
            selectinload(Revision.machine_text)
            .joinedload(MachineText.review)
            .joinedload(Review.editor),
            selectinload(Revision.machine_texts)
            .joinedload(MachineText.review)
            .joinedload(Review.editor),
            joinedload(Revision.author),
        )
        .where(Revision.document_id == document.id)
        .order_by(Revision.number.desc())
    ).all()


def revision_by_number(document: Document, number: int) -> Revision | None:
    return db.session.scalar(_revision_query(document).where(Revision.number == number))


def _add_revision(
    document: Document, author: User, origin: RevisionOrigin, number: int, *, write: bool = True
) -> Revision:
    """A new revision of `document`, with its machine text queued when `write` and the
    body has text to continue."""
    revision = Revision(
        document=document,
        number=number,
        title=document.title,
        body=document.body,
        author=author,
        origin=origin,
    )
    # An empty body has nothing to continue: the model would only continue the title.
    if write and has_text_to_continue(document.body):
        revision.machine_text = MachineText(status=MachineTextStatus.QUEUED, queued_at=utcnow())
    db.session.add(revision)
    return revision


def _lock(document: Document) -> None:
    """Make changes to `document` one at a time, each from what the last one committed.

    Two tabs saving (or two editors reviewing) at once would otherwise both read
    revision N and both write N + 1. The second waits here for the first to
    commit, then reads everything again.
    """
    lock_row(Document, document.id)
    db.session.expire_all()


def _commit_and_queue(revision: Revision) -> None:
    """Commit a new revision; queue its machine text unless its owner has many in line.

    The document's older machine texts that are still waiting or queued are
    superseded: nobody needs text for a revision that is no longer the latest
    (one already running finishes). When the owner has JOB_MAX_QUEUED_PER_USER
    machine texts queued or running, this one waits and is queued as soon as
    one of them finishes.
    """
    machine_text = revision.machine_text
    if machine_text is not None:
        db.session.flush()
        experiments.assign(machine_text, revision.document_id)
        _supersede_older(revision)
        ahead = _in_line(revision.document.owner_id, besides=machine_text.id)
        if ahead >= current_app.config["JOB_MAX_QUEUED_PER_USER"]:
            machine_text.status = MachineTextStatus.WAITING
    db.session.commit()
    if machine_text is not None and machine_text.status is MachineTextStatus.QUEUED:
        jobs.submit([machine_text.id])


def _supersede_older(revision: Revision) -> None:
    older = select(Revision.id).where(
        Revision.document_id == revision.document_id, Revision.id != revision.id
    )
    db.session.execute(
        update(MachineText)
        .where(
            MachineText.revision_id.in_(older),
            MachineText.status.in_([MachineTextStatus.QUEUED, MachineTextStatus.WAITING]),
        )
        .values(status=MachineTextStatus.SUPERSEDED, finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def _in_line(owner_id: int, besides: int) -> int:
    """How many machine texts of `owner_id`'s documents are queued or running, but `besides`."""
    return db.session.scalar(
        select(func.count())
        .select_from(MachineText)
        .join(Revision, Revision.id == MachineText.revision_id)
        .join(Document, Document.id == Revision.document_id)
        .where(
            Document.owner_id == owner_id,
            MachineText.id != besides,
            MachineText.status.in_([MachineTextStatus.QUEUED, MachineTextStatus.RUNNING]),
        )
    )


def approved_editors() -> list[User]:
    return db.session.scalars(
        select(User)
        .where(User.role == Role.EDITOR, User.status == UserStatus.APPROVED)
        .order_by(User.name, User.id)
    ).all()


def check_editor(editor_id: int | None, keep: Document | None = None) -> User | None:
    """Return the editor with this id, who must be an approved editor; None for none.

    The editor `keep` already has may stay even if no longer approved: saving a
    document must not fail, or quietly unassign, because of its editor's status.
    """
    if editor_id is None:
        return None
    if keep is not None and keep.editor_id == editor_id:
        return keep.editor
    editor = db.session.get(User, editor_id) if 1 <= editor_id <= MAX_ID else None
    if editor is None or editor.role is not Role.EDITOR or not editor.is_approved:
        raise DocumentError("Choose an approved editor, or nobody yet.")
    return editor


def last_editor_id(owner: User) -> int | None:
    """The editor of `owner`'s latest document with one, while they are an approved editor:
    a new document's form offers them first."""
    return db.session.scalar(
        select(Document.editor_id)
        .join(User, User.id == Document.editor_id)
        .where(
            Document.owner_id == owner.id,
            Document.is_deleted.is_(False),
            User.role == Role.EDITOR,
            User.status == UserStatus.APPROVED,
        )
        .order_by(Document.created_at.desc(), Document.id.desc())
        .limit(1)
    )


def create_document(owner: User, title: str, body: str, editor_id: int | None) -> Document:
    """Create a document with its first revision and queue its machine text."""
    editor = check_editor(editor_id)
    now = utcnow()
    document = Document(
        owner=owner, editor=editor, title=title, body=body, created_at=now, updated_at=now
    )
    db.session.add(document)
    revision = _add_revision(document, owner, RevisionOrigin.SAVE, 1)
    _commit_and_queue(revision)
    return document


@dataclass
class Imported:
    """What an import made: the documents, and how many of their machine texts wait."""

    documents: list[Document]
    waiting: int


def import_documents(owner: User, rows: list[ImportRow]) -> Imported:
    """Create a document per checked row, all in one transaction, and queue their machine text.

    Past the owner's share of the queue (JOB_MAX_QUEUED_PER_USER) machine texts
    wait, as they do for single saves.
    """
    now = utcnow()
    limit = current_app.config["JOB_MAX_QUEUED_PER_USER"]
    ahead = _in_line(owner.id, besides=0)
    documents, machine_texts = [], []
    for row in rows:
        document = Document(
            owner=owner,
            editor=row.editor,
            title=row.title,
            body=row.body,
            created_at=now,
            updated_at=now,
        )
        db.session.add(document)
        revision = _add_revision(document, owner, RevisionOrigin.SAVE, 1)
        if revision.machine_text is not None:
            if ahead >= limit:
                revision.machine_text.status = MachineTextStatus.WAITING
            ahead += 1
            machine_texts.append(revision.machine_text)
        documents.append(document)
    # Ids and statuses are read before the commit expires the objects: no query per row.
    db.session.flush()
    experiment = experiments.running()
    for machine_text in machine_texts:
        experiments.assign_to(experiment, machine_text, machine_text.revision.document_id)
    queued = [m.id for m in machine_texts if m.status is MachineTextStatus.QUEUED]
    waiting = len(machine_texts) - len(queued)
    db.session.commit()
    if queued:
        jobs.submit(queued)
    return Imported(documents, waiting)


def save_document(
    document: Document,
    author: User,
    title: str,
    body: str,
    editor_id: int | None,
    base_revision: int | None = None,
) -> Revision | None:
    """Save an edit; a new revision (and machine text) only when the text changed.

    `base_revision` is the revision the edit started from: when a newer one was
    saved since, EditConflict is raised and nothing is saved.
    """
    _lock(document)
    latest = latest_revision(document)
    if base_revision is not None and base_revision != latest.number:
        raise EditConflict(latest, base_revision)
    editor = check_editor(editor_id, keep=document)
    document.editor = editor
    if (title, body) == (document.title, document.body):
        db.session.commit()
        return None
    number = latest.number + 1
    document.title, document.body, document.updated_at = title, body, utcnow()
    revision = _add_revision(document, author, RevisionOrigin.SAVE, number)
    _commit_and_queue(revision)
    return revision


def assign_editor(document: Document, editor_id: int | None) -> User | None:
    editor = check_editor(editor_id, keep=document)
    document.editor = editor
    db.session.commit()
    return editor


def delete_document(document: Document) -> None:
    """Hide a document from every list and page; its rows stay (soft delete)."""
    document.is_deleted = True
    document.deleted_at = utcnow()
    db.session.commit()


def retry_machine_text(machine_text: MachineText | None) -> None:
    """Queue a failed machine text again."""
    if machine_text is None:
        raise DocumentError(NOTHING_TO_CONTINUE)
    if machine_text.status is not MachineTextStatus.FAILED:
        raise DocumentError("Only a failed machine text can be retried.")
    machine_text.status = MachineTextStatus.QUEUED
    machine_text.queued_at = utcnow()
    machine_text.error = None
    machine_text.progress_tokens = 0
    machine_text.started_at = machine_text.finished_at = machine_text.claimed_by = None
    machine_text.attempts = 0
    # Into the running experiment's arm for its document, or out of one that ended.
    experiments.assign(machine_text, machine_text.revision.document_id)
    db.session.commit()
    jobs.submit([machine_text.id])


def review_machine_text(
    document: Document,
    editor: User,
    decision: Decision,
    text: str | None = None,
    keep_until: int | None = None,
    chosen: int | None = None,
) -> Review:
    """Record an editor's decision on the latest machine text of `document`.

    `chosen` picks among the machine text's choices (0, the default: the model's
    first; 1 or 2: an alternative); accepting it with a `text` that differs from
    it is an edit. Accepting it (as is, edited, or kept up to
    the sentence ending at character `keep_until`) appends the text to the
    document as a new revision authored by the editor, without machine text of
    its own until someone asks for more (`write_more`).
    """
    _lock(document)
    revision = latest_revision(document)
    machine_text = revision.machine_text
    if machine_text is None:
        raise DocumentError(NOTHING_TO_CONTINUE)
    if machine_text.status is not MachineTextStatus.DONE:
        raise DocumentError("The machine text is not ready to review yet.")
    if machine_text.review is not None:
        raise DocumentError("This machine text has already been reviewed.")
    choices = machine_text.choices()
    if chosen is None:
        chosen = 0
    if not 0 <= chosen < len(choices):
        raise DocumentError("Choose one of the texts the model wrote for this revision.")
    base = choices[chosen]
    if decision is Decision.ACCEPTED and changed(base, text):
        # What the editor typed is never dropped: accepting a changed text saves the edit.
        decision = Decision.EDITED
    if decision is Decision.EDITED and not (text or "").strip():
        raise DocumentError(
            "The edit box is empty: write the text to add, or reject the machine text."
        )
    if decision is Decision.KEPT_PART:
        if changed(base, text):
            raise DocumentError(
                "You changed the text in the edit box: accept your edit, or undo your changes "
                "to keep part of the machine text."
            )
        text = kept_part(base, keep_until)
    final = final_text(decision, base, text)
    review = Review(
        machine_text=machine_text,
        editor=editor,
        decision=decision,
        # The final text, unless it is the model's first choice as it was (or none).
        text=final if final is not None and (decision is not Decision.ACCEPTED or chosen) else None,
        edit_distance=final_text_distance(decision, base, final),
        kept_share=kept_word_share(base, final),
        chosen=chosen if len(choices) > 1 else None,
    )
    db.session.add(review)
    if decision is Decision.REJECTED:
        db.session.commit()
        experiments.after_review(machine_text)
        return review
    document.body = join_continuation(document.body, final or "")
    document.updated_at = utcnow()
    # The decision's revision gets no machine text by itself, or the editor would review
    # for ever: the sponsor or the editor asks for more (`write_more`).
    new_revision = _add_revision(
        document, editor, ORIGINS[decision], revision.number + 1, write=False
    )
    review.revision = new_revision
    db.session.commit()
    experiments.after_review(machine_text)
    return review


def write_more(document: Document, user: User) -> MachineText:
    """Queue machine text for the latest revision: more, when it has none (an editor's
    decision made it), or another, in place of one an editor rejected.

    A rejected text stays in the history with its review; the new one is written by
    sampling, so that it differs (ml.settings.another_text_settings).
    """
    _lock(document)
    revision = latest_revision(document)
    current = revision.machine_text
    if not has_text_to_continue(revision.body):
        raise DocumentError(NOTHING_TO_CONTINUE)
    if current is None:
        revision.machine_text = MachineText(status=MachineTextStatus.QUEUED, queued_at=utcnow())
        _commit_and_queue(revision)
        return revision.machine_text
    if current.review is None or current.review.decision is not Decision.REJECTED:
        raise DocumentError(
            "The model has written for this revision already: another text can be asked for "
            "once an editor rejects this one."
        )
    numbers = [m.number for m in revision.machine_texts]
    most = current_app.config["MACHINE_TEXTS_PER_REVISION"]
    if len(numbers) >= most:
        raise DocumentError(
            f"The model has written {len(numbers)} texts for this revision, the most it "
            "writes for one: edit the document and save it for a new start."
        )
    current.replaced_at = utcnow()
    another = MachineText(
        revision_id=revision.id,
        number=max(numbers) + 1,
        status=MachineTextStatus.QUEUED,
        queued_at=utcnow(),
    )
    db.session.add(another)
    db.session.flush()
    record_event(
        "document.write_another",
        actor=user,
        target_label=_describe(document),
        document=document.id,
        revision=revision.number,
        replaced=current.id,
        machine_text=another.id,
    )
    db.session.expire(revision, ["machine_text", "machine_texts"])
    _commit_and_queue(revision)
    return another


def _describe(document: Document) -> str:
    return f"document {document.id} ({document.title})"


def undo_deadline(review: Review):
    """Until when its editor may undo `review`."""
    return review.created_at + timedelta(seconds=current_app.config["REVIEW_UNDO_SECONDS"])


def can_undo(review: Review | None, user: User) -> bool:
    """Whether `user` may still undo `review`: theirs, and recent (the document's state is
    checked when they do)."""
    return review is not None and review.editor_id == user.id and utcnow() < undo_deadline(review)


def undoable_review(latest: Revision, user: User) -> Review | None:
    """`user`'s last decision on a document while they may still undo it, from its `latest`
    revision: the rejection of its machine text, or the decision that made it."""
    if latest.machine_text is not None:
        review = latest.machine_text.review
    elif latest.origin in REVIEWED_ORIGINS:
        review = db.session.scalar(select(Review).where(Review.revision_id == latest.id))
    else:
        review = None
    return review if can_undo(review, user) else None


def undo_review(document: Document, editor: User, review_id: int) -> MachineText:
    """Take back `editor`'s decision `review_id` on `document`, within REVIEW_UNDO_SECONDS.

    The machine text needs review again. A decision that added text removes the revision
    it made and gives the document back the text it had: only while that revision is
    still the latest and nobody asked the model to continue it. The audit log keeps what
    was undone, the decision's text included.
    """
    _lock(document)
    review = own_review(editor, document, review_id)
    if review is None:
        raise LookupError(review_id)
    if utcnow() >= undo_deadline(review):
        minutes = round(current_app.config["REVIEW_UNDO_SECONDS"] / 60) or 1
        raise DocumentError(
            f"Too late to undo: a decision can be undone for {minutes} minute"
            f"{'s' if minutes != 1 else ''} after it is made."
        )
    machine_text = review.machine_text
    latest = latest_revision(document)
    made = review.revision
    if made is None and review.decision is not Decision.REJECTED:
        raise DocumentError("This decision's revision is gone: it cannot be undone.")
    if made is not None:
        if made.id != latest.id or latest.machine_text is not None:
            raise DocumentError(
                "The document changed after your decision (a newer revision, or the model "
                "writing more), so it can no longer be undone."
            )
        before = machine_text.revision
        document.title, document.body = before.title, before.body
    elif latest.id != machine_text.revision_id or machine_text.replaced_at is not None:
        raise DocumentError(
            "The document changed after your decision (a newer revision, or another text "
            "asked for), so it can no longer be undone."
        )
    record_event(
        "document.undo_review",
        actor=editor,
        target_label=_describe(document),
        document=document.id,
        revision=machine_text.revision.number,
        decision=review.decision.value,
        decided_at=review.created_at.isoformat(timespec="seconds"),
        text=review.text,
        removed_revision=made.number if made is not None else None,
    )
    db.session.delete(review)
    if made is not None:
        db.session.delete(made)
    document.updated_at = utcnow()
    db.session.commit()
    experiments.after_review(machine_text)
    return machine_text


def changed(machine: str, typed: str | None) -> bool:
    """Whether an editor's text differs from the machine text (None: nothing was typed)."""
    return typed is not None and typed.strip() != machine.strip()


def kept_part(machine: str, keep_until: int | None) -> str:
    """The machine text up to the sentence that ends at character `keep_until`."""
    ends = sentence_ends(machine)
    if keep_until not in ends[:-1]:
        raise DocumentError(
            "Choose a sentence of the machine text to keep up to (to keep all of it, accept it)."
        )
    return machine[:keep_until].rstrip()


def final_text(decision: Decision, machine: str | None, typed: str | None) -> str | None:
    """The text a decision adds to the document: None when rejected."""
    if decision is Decision.REJECTED:
        return None
    return machine if decision is Decision.ACCEPTED else typed


def final_text_distance(decision: Decision, machine: str | None, final: str | None):
    """Normalised edit distance (0 to 1) from the machine text to the editor's final text.

    0 when it was accepted as it was; None when it was rejected (no final text).
    """
    if decision is Decision.REJECTED:
        return None
    if decision is Decision.ACCEPTED:
        return 0.0
    return Levenshtein.normalized_distance(machine or "", final or "")


# A body ending here, before any of CLOSERS, has finished its sentence: the continuation
# starts a paragraph ("We chose (b)" has not; "(as agreed.)" has).
SENTENCE_ENDS = ".!?;\u2026"
CLOSERS = "\"'\u201d\u2019)]*"
# A continuation starting with one of these closes the body's sentence: no space before it.
CLOSING = ",.;:!?)]\u201d\u2019'"


def own_review(editor: User, document: Document, review_id: int) -> Review | None:
    """`editor`'s review `review_id` of a machine text of `document`; None otherwise."""
    if not 0 < review_id <= MAX_ID:
        return None
    return db.session.scalar(
        select(Review)
        .join(MachineText, MachineText.id == Review.machine_text_id)
        .join(Revision, Revision.id == MachineText.revision_id)
        .where(
            Review.id == review_id,
            Review.editor_id == editor.id,
            Revision.document_id == document.id,
        )
    )


def reviewed_document(editor: User, review_id: int) -> Document | None:
    """The document assigned to `editor` whose machine text their review `review_id` is of."""
    if not 0 < review_id <= MAX_ID:
        return None
    document_id = db.session.scalar(
        select(Revision.document_id)
        .join(MachineText, MachineText.revision_id == Revision.id)
        .join(Review, Review.machine_text_id == MachineText.id)
        .where(Review.id == review_id, Review.editor_id == editor.id)
    )
    return assigned_document(editor, document_id) if document_id else None


def join_continuation(body: str, continuation: str) -> str:
    """Append an accepted continuation to a body, as the body's last line asks.

    An open list item ("d)", "4.", "-") and an unfinished sentence go on on the
    same line, after a space (none before closing punctuation); so does a
    trailing colon, unless the continuation starts a list, which starts on the
    next line, as a list item after a list item does. After a finished
    paragraph the continuation starts a new one. A continuation that brings its
    own line break keeps it.
    """
    continuation = continuation.rstrip()
    body = body.rstrip(" \t")
    if not body.strip():
        return continuation.lstrip()
    if not continuation.strip():
        return body
    last_line = body.rsplit("\n", 1)[-1].strip()
    if OPEN_ITEM.fullmatch(last_line):
        return f"{body} {continuation.lstrip()}"
    if continuation[0] in "\r\n" or body.endswith("\n"):
        return body.rstrip("\n") + "\n\n" + continuation.lstrip()
    continuation = continuation.lstrip()
    if LIST_ITEM.match(continuation) and (body.endswith(":") or LIST_ITEM.match(last_line)):
        return f"{body}\n{continuation}"
    if body.endswith(":"):
        return f"{body} {continuation}"
    if (body.rstrip(CLOSERS) or " ")[-1] in SENTENCE_ENDS:
        return f"{body}\n\n{continuation}"
    if continuation[0] in CLOSING:
        return body + continuation
    return f"{body} {continuation}"


# A list item's marker: "-", "*", "•", "4.", "4)", "d)", "(d)", "iv.".
_MARKER = r"(?:[-*\u2022+]|\(?(?:\d{1,3}|[a-zA-Z]|[ivxIVX]{1,4})[.)])"
# A line that is a list item's marker and nothing else: the item is still to be written.
OPEN_ITEM = re.compile(_MARKER)
# Text that starts with a list item.
LIST_ITEM = re.compile(_MARKER + r"\s+\S")


# How many recent machine texts the waiting estimate is measured on.
TIMING_SAMPLE = 20


def typical_seconds() -> float | None:
    """The median time the model took for the latest machine texts; None before any."""
    rows = db.session.execute(
        select(MachineText.started_at, MachineText.finished_at)
        .where(
            MachineText.status == MachineTextStatus.DONE,
            MachineText.started_at.is_not(None),
            MachineText.finished_at.is_not(None),
        )
        .order_by(MachineText.finished_at.desc())
        .limit(TIMING_SAMPLE)
    ).all()
    took = sorted((finished - started).total_seconds() for started, finished in rows)
    if not took:
        return None
    middle = len(took) // 2
    return took[middle] if len(took) % 2 else (took[middle - 1] + took[middle]) / 2


def estimate_seconds(machine_text: MachineText, position: int | None) -> int | None:
    """About how long until `machine_text` is written, from the model's measured speed.

    None when nothing was measured yet or the text is not on its way. Jobs run in
    batches, so a text `position` places back waits for the batches before its own.
    """
    status = machine_text.status
    if status not in (MachineTextStatus.QUEUED, MachineTextStatus.RUNNING):
        return None
    typical = typical_seconds()
    if typical is None:
        return None
    if status is MachineTextStatus.RUNNING:
        done = machine_text.progress_tokens or 0
        most = machine_text.max_new_tokens or 0
        left = 1 - done / most if most else 1
        return max(1, round(typical * left))
    batch = max(1, current_app.config["GENERATION_BATCH_SIZE"])
    batches = -(-(position or 1) // batch)
    return max(1, round(typical * batches))


def queue_position(machine_text: MachineText) -> int | None:
    """1 for the next machine text to run, 2 for the one after...; None unless queued."""
    if machine_text.status is not MachineTextStatus.QUEUED:
        return None
    return work.queue_position(work.MACHINE_TEXTS, machine_text.id)
