"""Filters every feature's forms share."""

from __future__ import annotations


def strip(value: str | None) -> str | None:
    """Leading and trailing white space removed (a field left out stays None)."""
    return value.strip() if isinstance(value, str) else value


def normalise_newlines(value: str | None) -> str | None:
    """Browsers send CR LF; the text is stored with LF alone."""
    return value.replace("\r\n", "\n").replace("\r", "\n") if isinstance(value, str) else value
