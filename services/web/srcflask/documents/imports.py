"""Reading many documents at once: CSV or JSONL rows of title, body and editor email.

Every row is checked before anything is saved, and each problem is named with
the row's line number; `service.import_documents` saves all the rows or none.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

from ..models import Role, User, UserStatus
from ..models.documents import BODY_MAX, TITLE_MAX
from ..models.users import find_user_by_email, normalise_email

COLUMNS = ("title", "body", "editor_email")
MAX_ROWS = 500
# Below the request limit (MAX_CONTENT_LENGTH): a bigger file is refused before this.
MAX_BYTES = 1024 * 1024
KINDS = ("csv", "jsonl")


class ImportRefused(ValueError):
    """Rows that cannot be imported: `problems` holds (line, message) pairs; nothing was saved."""

    def __init__(self, problems: list[tuple[int | None, str]]):
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s); nothing was imported")


@dataclass(frozen=True)
class ImportRow:
    line: int
    title: str
    body: str
    editor: User | None


def kind_of(filename: str) -> str | None:
    """csv or jsonl, from a file's name; None for anything else."""
    name = filename.lower()
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    return None


def read_rows(data: bytes, kind: str) -> list[ImportRow]:
    """Parse and check every row; raise ImportRefused naming every problem found."""
    if len(data) > MAX_BYTES:
        raise ImportRefused([(None, "The file is larger than 1 MiB; split it in parts.")])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ImportRefused([(None, "The file is not UTF-8 text.")]) from error
    if "\x00" in text:
        raise ImportRefused([(None, "The file contains NUL characters.")])
    return _checked(_csv_rows(text) if kind == "csv" else _jsonl_rows(text))


def check_rows(values: list) -> list[ImportRow]:
    """Check documents sent as JSON objects; `line` is each one's position, from 1."""
    raw: list[tuple[int, dict | str]] = []
    for position, value in enumerate(values, start=1):
        if not isinstance(value, dict):
            raw.append((position, "Each document must be a JSON object."))
        elif unknown := [key for key in value if key not in COLUMNS]:
            raw.append((position, f"Unknown field(s): {', '.join(map(str, unknown))[:200]}."))
        else:
            raw.append((position, value))
    return _checked(raw)


def _checked(raw: list[tuple[int, dict | str]]) -> list[ImportRow]:
    problems = [(line, row) for line, row in raw if isinstance(row, str)]
    rows = [(line, row) for line, row in raw if isinstance(row, dict)]
    if not raw:
        raise ImportRefused([(None, "The file has no documents in it.")])
    if len(raw) > MAX_ROWS:
        raise ImportRefused(
            [(None, f"The file has {len(raw)} documents; import at most {MAX_ROWS} at a time.")]
        )
    checked = []
    for line, row in rows:
        found = _check(line, row)
        if isinstance(found, ImportRow):
            checked.append(found)
        else:
            problems.extend((line, message) for message in found)
    if problems:
        raise ImportRefused(sorted(problems, key=lambda problem: problem[0] or 0))
    return checked


def _csv_rows(text: str) -> list[tuple[int, dict | str]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [name.strip().lower() for name in reader.fieldnames or []]
    unknown = [name for name in header if name not in COLUMNS]
    if "title" not in header or unknown:
        raise ImportRefused(
            [
                (
                    1,
                    "The first line must name the columns: title, and optionally body and "
                    "editor_email"
                    + (f" (unknown: {', '.join(unknown)[:200]})." if unknown else "."),
                )
            ]
        )
    reader.fieldnames = header
    rows: list[tuple[int, dict | str]] = []
    try:
        for row in reader:
            line = reader.line_num
            if None in row:
                rows.append((line, "This row has more cells than the header has columns."))
            elif any((value or "").strip() for value in row.values()):
                rows.append((line, row))
    except csv.Error as error:
        rows.append((reader.line_num, f"This line is not valid CSV ({error})."))
    return rows


def _jsonl_rows(text: str) -> list[tuple[int, dict | str]]:
    rows: list[tuple[int, dict | str]] = []
    for line, content in enumerate(text.splitlines(), start=1):
        if not content.strip():
            continue
        try:
            value = json.loads(content)
        except ValueError:
            rows.append((line, "This line is not a JSON object."))
            continue
        if not isinstance(value, dict):
            rows.append((line, "This line is not a JSON object."))
        elif unknown := [key for key in value if key not in COLUMNS]:
            rows.append((line, f"Unknown field(s): {', '.join(map(str, unknown))[:200]}."))
        else:
            rows.append((line, value))
    return rows


def storable(text: str) -> bool:
    """Text every database stores: no NUL character, no unpaired surrogate."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check(line: int, row: dict) -> ImportRow | list[str]:
    problems = []
    values = {}
    for name in COLUMNS:
        value = row.get(name)
        if value is not None and not isinstance(value, str):
            problems.append(f"{name} must be text.")
            value = None
        elif value is not None and not storable(value):
            problems.append(f"{name} must be text without NUL characters or broken Unicode.")
            value = None
        values[name] = (value or "").replace("\r\n", "\n").replace("\r", "\n")
    title = values["title"].strip()
    if not title:
        problems.append("The title is missing.")
    elif len(title) > TITLE_MAX:
        problems.append(f"The title is {len(title):,} characters; the most is {TITLE_MAX:,}.")
    body = values["body"]
    if len(body) > BODY_MAX:
        problems.append(f"The body is {len(body):,} characters; the most is {BODY_MAX:,}.")
    editor = None
    email = normalise_email(values["editor_email"])
    if email:
        editor = find_user_by_email(email)
        if (
            editor is None
            or editor.role is not Role.EDITOR
            or (editor.status is not UserStatus.APPROVED)
        ):
            problems.append(f"No approved editor has the email {email[:254]}.")
    return problems or ImportRow(line, title, body, editor)
