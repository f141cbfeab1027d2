"""Scanners nobody on the team wrote find nothing: bench/scan.py's wapiti and sqlmap runs.

The scan installs wapiti and sqlmap from PyPI into a virtual environment of its own,
starts srcflask on loopback and attacks it with each role's login (bench/scan.py says
how). It takes about a quarter of an hour on two cores, so it runs with the slow tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.scan]


def test_wapiti_and_sqlmap_report_no_vulnerability(tmp_path):
    summary = tmp_path / "scan.json"
    done = subprocess.run(
        [sys.executable, str(WEB / "bench" / "scan.py"), "--minutes", "1", "--out", str(summary)],
        cwd=WEB,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert summary.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(summary.read_text())
    # Every scan ran to a verdict: a scanner that could not log in or reach a page
    # proves nothing, and counts as a failure here.
    assert result["scans_without_a_verdict"] == [], json.dumps(result, indent=2)
    assert all(run["crawled"] > 10 for run in result["wapiti"]), result["wapiti"]
    assert {run["target"] for run in result["sqlmap"]} >= {"POST /auth/login (form)"}
    assert all(run["parameters_tested"] for run in result["sqlmap"]), result["sqlmap"]
    assert result["vulnerabilities_reported"] == 0, json.dumps(result, indent=2)
    assert done.returncode == 0, done.stdout[-3000:]
