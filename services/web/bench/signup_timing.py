"""Measure whether sign-up answers a taken email faster or slower than a new one.

Run from services/web: ../../.venv/bin/python bench/signup_timing.py [ROUNDS]
It alternates new and taken emails in one process and prints the medians and
their ratio (1.0 means no gap). Not a test: timings depend on the machine.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time

from srcflask import create_app
from srcflask.extensions import db


def signup_form(email: str) -> dict:
    password = "a long enough passphrase"
    return {
        "name": "Timing",
        "email": email,
        "organization": "",
        "password": password,
        "confirm_password": password,
        "role": "sponsor",
    }


def main(rounds: int) -> None:
    folder = tempfile.mkdtemp()
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder}/timing.sqlite3"},
        env_name="testing",
        instance_path=folder,
    )
    with app.app_context():
        db.create_all()
    client = app.test_client()
    client.post("/auth/signup", data=signup_form("taken@example.org"))
    new, taken = [], []
    for i in range(rounds):
        for email, samples in ((f"new{i}@example.org", new), ("taken@example.org", taken)):
            start = time.perf_counter()
            client.post("/auth/signup", data=signup_form(email))
            samples.append(time.perf_counter() - start)
    new_ms, taken_ms = statistics.median(new) * 1000, statistics.median(taken) * 1000
    print(
        f"rounds {rounds}: new email median {new_ms:.1f} ms, taken email median "
        f"{taken_ms:.1f} ms, ratio taken/new {taken_ms / new_ms:.3f}"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40)
