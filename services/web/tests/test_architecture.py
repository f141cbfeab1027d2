"""The package layout's rules: each feature's service owns its rules; pages and the API stay thin.

Read from the source, so a change that breaks a rule fails here with the line
that breaks it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "srcflask"
FEATURES = ("accounts", "documents", "jobs", "registry", "experiments")
VIEW_MODULES = ("pages", "api")
# Session calls that write: only a feature's service (and the job runners) make them.
WRITES = {"commit", "add", "add_all", "delete", "merge", "flush"}


def view_modules() -> list[Path]:
    return [
        PACKAGE / feature / f"{name}.py"
        for feature in FEATURES
        for name in VIEW_MODULES
        if (PACKAGE / feature / f"{name}.py").exists()
    ]


def imported_modules(path: Path, root: Path = PACKAGE.parent) -> list[tuple[int, str]]:
    """Every name `path` imports, dotted from `root` (relative imports resolved)."""
    package = path.parent.relative_to(root).parts
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return found


def test_every_feature_has_a_service_and_its_views():
    assert [path.relative_to(PACKAGE).as_posix() for path in view_modules()] == [
        "accounts/pages.py",
        "accounts/api.py",
        "documents/pages.py",
        "documents/api.py",
        "jobs/pages.py",
        "jobs/api.py",
        "registry/pages.py",
        "registry/api.py",
        "experiments/pages.py",
        "experiments/api.py",
    ]
    for feature in FEATURES:
        assert (PACKAGE / feature / "service.py").exists(), feature


def import_breaches(path: Path, root: Path = PACKAGE.parent) -> list[str]:
    feature = path.parent.name
    return [
        f"{path.name}:{line} imports {module}"
        for line, module in imported_modules(path, root)
        for other in FEATURES
        if other != feature
        for name in (*VIEW_MODULES, "forms")
        if module == f"srcflask.{other}.{name}" or module.startswith(f"srcflask.{other}.{name}.")
    ]


def session_writes(path: Path) -> list[str]:
    return [
        f"{path.name}:{node.lineno} calls .{node.func.attr}()"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in WRITES
        and isinstance(node.func.value, ast.Attribute)
        and node.func.value.attr == "session"
    ]


def relative(path: Path) -> str:
    return str(path.relative_to(PACKAGE))


@pytest.mark.parametrize("path", view_modules(), ids=relative)
def test_views_import_no_other_features_views_or_forms(path):
    assert not import_breaches(path)


@pytest.mark.parametrize("path", view_modules(), ids=relative)
def test_views_never_write_to_the_session(path):
    assert not session_writes(path)


def test_the_default_preset_is_named_in_one_place():
    naming = [
        f"{path.relative_to(PACKAGE)}"
        for path in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and node.value == "original"
    ]
    assert naming == ["ml/settings.py"]


def test_every_preset_is_offered_with_a_label():
    from srcflask.ml.settings import PRESET_LABELS, PRESETS

    assert PRESET_LABELS.keys() == PRESETS.keys()


def test_the_checks_see_a_breach(tmp_path):
    """The import and write checks find what they look for (a guard on the guards)."""
    probe = tmp_path / "srcflask" / "documents" / "pages.py"
    probe.parent.mkdir(parents=True)
    probe.write_text(
        "from ..registry.forms import AliasForm\n"
        "from ..extensions import db\n"
        "from . import service\n"
        "def view():\n"
        "    db.session.commit()\n"
    )
    assert import_breaches(probe, tmp_path) == [
        "pages.py:1 imports srcflask.registry.forms",
        "pages.py:1 imports srcflask.registry.forms.AliasForm",
    ]
    assert session_writes(probe) == ["pages.py:5 calls .commit()"]
