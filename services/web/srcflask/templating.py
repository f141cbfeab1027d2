"""Filters and globals for the templates."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Flask


def format_datetime(value: datetime | str | None) -> str:
    """Show a timestamp (or its ISO 8601 text, as JSON states carry it) in UTC, to the minute."""
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def about_seconds(seconds: int | float | None) -> str:
    """A wait in words: "about 40 seconds", "about 3 minutes"."""
    if not seconds:
        return "a moment"
    if seconds < 90:
        return f"about {max(5, round(seconds / 5) * 5)} seconds"
    return f"about {round(seconds / 60)} minutes"


def format_filesize(size: int | None) -> str:
    """Show a byte count in the largest unit that keeps it above 1."""
    if size is None:
        return "—"
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover


def format_count(count: int | None) -> str:
    """Show a large count the way people say it: 134.5M, 12.3K."""
    if count is None:
        return "—"
    for threshold, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if count >= threshold:
            return f"{count / threshold:.1f}{suffix}"
    return str(count)


def format_percent(share: float | None) -> str:
    """Show a share (0 to 1) as a whole percentage."""
    if share is None:
        return "—"
    return f"{share:.0%}"


def format_duration(seconds: float | None) -> str:
    """A measured time span, from seconds to days: "40 s", "12 min", "3.5 h", "2.0 days"."""
    if seconds is None:
        return "—"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def init_app(app: Flask) -> None:
    app.add_template_filter(format_datetime, "datetime")
    app.add_template_filter(format_filesize, "filesize")
    app.add_template_filter(about_seconds, "about_seconds")
    app.add_template_filter(format_count, "count")
    app.add_template_filter(format_percent, "percent")
    app.add_template_filter(format_duration, "duration")

    from .accounts.audit import sentence
    from .documents.schemas import machine_text_state

    app.add_template_global(sentence, "audit_sentence")

    app.add_template_global(machine_text_state, "machine_text_state")

    from .experiments.service import writer_hidden

    # Blind review: whether the person reading may not see who wrote a machine text.
    app.add_template_global(writer_hidden, "writer_hidden")
