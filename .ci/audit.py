"""Audit the hashed locks with pip-audit, less the recorded, dated exceptions.

Fails (exit 1) on a known vulnerability not listed in the exceptions file, on an
exception with a missing field or past its review_by date, and when the vulnerability
service could audit none of the locked packages (a skipped audit is not a pass).
AUDIT_UNREACHABLE=warn turns that last case into a warning, for machines whose
network reaches PyPI's package files but not its per-release advisory data.
"""

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

FIELDS = ("id", "package", "recorded", "reason", "review_by")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def load_exceptions(path: Path, today: datetime.date) -> tuple[list[dict], list[str]]:
    """Return the exceptions and the problems with them (missing fields, past review)."""
    entries = tomllib.loads(path.read_text()).get("exception", [])
    problems = []
    for entry in entries:
        name = entry.get("id", "<no id>")
        missing = [field for field in FIELDS if not entry.get(field)]
        if missing:
            problems.append(f"{path}: exception {name} lacks {', '.join(missing)}")
            continue
        for field in ("recorded", "review_by"):
            if not isinstance(entry[field], datetime.date):
                problems.append(f"{path}: exception {name}: {field} is not a date")
        if isinstance(entry["review_by"], datetime.date) and entry["review_by"] < today:
            problems.append(
                f"{path}: exception {name} ({entry['package']}) was due for review on "
                f"{entry['review_by']}: fix it, or renew it with a new date and reason"
            )
    return entries, problems


def audit_input(lock: Path) -> str:
    """Return the lock as a hashed requirements file pip-audit can look up.

    A local version (torch's +cpu) is not a release on PyPI, so it is audited as the
    public release it was built from; the advisories are the same.
    """
    lines = []
    for line in lock.read_text().splitlines():
        match = PIN.match(line)
        if match and "+" in match.group(2):
            public = match.group(2).split("+", 1)[0]
            line = line.replace(f"=={match.group(2)}", f"=={public}", 1)
        lines.append(line)
    return "\n".join(lines) + "\n"


def run_pip_audit(pip_audit: str, lock: Path, exceptions: list[dict]) -> list[dict] | None:
    """Return pip-audit's findings for one lock, or None when it did not run."""
    with tempfile.TemporaryDirectory() as tmp:
        requirements = Path(tmp, lock.name)
        requirements.write_text(audit_input(lock))
        report = Path(tmp, "report.json")
        command = [pip_audit, "--requirement", str(requirements), "--require-hashes"]
        command += ["--disable-pip", "--progress-spinner", "off"]
        command += ["--format", "json", "--output", str(report)]
        for entry in exceptions:
            if entry.get("id"):
                command += ["--ignore-vuln", entry["id"]]
        # Its own summary ("No known vulnerabilities found") counts skipped packages as
        # clean, so it is shown only when pip-audit fails; main() prints the real one.
        result = subprocess.run(command, check=False, capture_output=True, text=True)  # noqa: S603
        if not report.exists():
            print(result.stdout + result.stderr, file=sys.stderr)
            print(f"audit: pip-audit failed on {lock} (exit {result.returncode})", file=sys.stderr)
            return None
        return json.loads(report.read_text())["dependencies"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pip-audit", required=True)
    parser.add_argument("--exceptions", type=Path, required=True)
    parser.add_argument("locks", type=Path, nargs="+")
    args = parser.parse_args()

    today = datetime.datetime.now(datetime.UTC).date()
    exceptions, problems = load_exceptions(args.exceptions, today)
    dependencies = []
    for lock in args.locks:  # one run each: two locks may pin a package differently
        report = run_pip_audit(args.pip_audit, lock, exceptions)
        if report is None:
            return 1
        dependencies += report
    audited = [dep for dep in dependencies if "skip_reason" not in dep]
    skipped = [dep for dep in dependencies if "skip_reason" in dep]
    found = [(dep, vuln) for dep in audited for vuln in dep.get("vulns", [])]
    for dep, vuln in found:
        fixes = ", ".join(vuln.get("fix_versions", [])) or "no fixed release"
        print(f"VULNERABLE {dep['name']} {dep['version']}: {vuln['id']} (fixed in {fixes})")
    for entry in exceptions:
        package, until = entry.get("package"), entry.get("review_by")
        print(f"excepted   {package}: {entry.get('id')} until {until}")
    for problem in problems:
        print(f"EXCEPTION  {problem}")
    print(
        f"audit: {len(dependencies)} locked packages, {len(audited)} audited against "
        f"PyPI's advisories, {len(skipped)} skipped, {len(found)} known vulnerabilities"
    )

    unreachable = dependencies and not audited
    if unreachable:
        print(
            "audit: THE VULNERABILITY SERVICE ANSWERED FOR NO PACKAGE (PyPI's per-release "
            "JSON API, https://pypi.org/pypi/<name>/<version>/json, is not reachable from "
            "here): nothing was audited.",
            file=sys.stderr,
        )
    elif skipped:
        names = ", ".join(f"{dep['name']} {dep['version']}" for dep in skipped)
        print(f"audit: not audited: {names}", file=sys.stderr)
    if found or problems:
        return 1
    if unreachable and os.environ.get("AUDIT_UNREACHABLE") != "warn":
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
