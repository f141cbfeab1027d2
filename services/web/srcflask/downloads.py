"""Streamed downloads of many rows as CSV or JSONL, in flat memory.

Rows come from a generator (a query read in chunks) and leave one line at a
time, so an export of 100,000 rows never holds them all. In CSV, a cell that
a spreadsheet would run as a formula is prefixed with a quote.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from flask import Response, stream_with_context

KINDS = ("csv", "jsonl")
# Cells starting with one of these are formulas to a spreadsheet (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value):
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_lines(rows: Iterable[dict[str, Any]], fields: Sequence[str]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    for row in rows:
        writer.writerow({key: spreadsheet_safe(value) for key, value in row.items()})
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def json_lines(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(row, ensure_ascii=False) + "\n"


def download(rows: Iterable[dict[str, Any]], fields: Sequence[str], kind: str, name: str):
    """A streamed attachment `name.kind` of `rows` (`kind`: csv or jsonl)."""
    lines = csv_lines(rows, fields) if kind == "csv" else json_lines(rows)
    mimetype = "text/csv" if kind == "csv" else "application/x-ndjson"
    response = Response(stream_with_context(lines), mimetype=f"{mimetype}; charset=utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.{kind}"'
    response.headers["Cache-Control"] = "no-store"
    return response
