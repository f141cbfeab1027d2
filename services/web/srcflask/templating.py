"""Filters and globals for the templates."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Flask


def format_datetime(value: datetime | None) -> str:
    """Show a timestamp in UTC, to the minute."""
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def init_app(app: Flask) -> None:
    app.add_template_filter(format_datetime, "datetime")
