"""The password policy: length limits and a list of passwords too common to accept."""

from __future__ import annotations

import functools
from importlib import resources

MIN_LENGTH = 8
MAX_LENGTH = 128


@functools.cache
def common_passwords() -> frozenset[str]:
    """Return the shipped list of common passwords, lower-cased."""
    text = resources.files("srcflask").joinpath("data/common-passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line.strip() and line[0] != "#"
    )


def password_problem(password: str, *, email: str = "", name: str = "") -> str | None:
    """Return why `password` is not acceptable, or None when it is."""
    if len(password) < MIN_LENGTH:
        return f"Use at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."
    lowered = password.lower()
    if lowered in common_passwords():
        return "This password is too common; choose one that is harder to guess."
    personal = {email.strip().lower(), email.split("@")[0].strip().lower(), name.strip().lower()}
    if lowered in personal - {""}:
        return "Do not use your name or email address as your password."
    return None
