"""The documentation's tables are the committed result files' figures, not typed by hand."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs" / "machine-text.md"


def load_tables():
    spec = importlib.util.spec_from_file_location(
        "bench_tables", ROOT / "services/web/bench/tables.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_decoding_study_tables_are_made_from_the_committed_result_file():
    text = DOCS.read_text(encoding="utf-8")
    [named] = re.findall(r"Result file: `([^`]+)`", text)
    result = ROOT / named
    assert result.is_file(), f"{named} is not committed"
    tables = load_tables()

    assert tables.replace_tables(text, tables.tables(result)) == text


def test_the_check_sees_a_table_typed_by_hand():
    text = DOCS.read_text(encoding="utf-8")
    tables = load_tables()
    [named] = re.findall(r"Result file: `([^`]+)`", text)
    typed = text.replace("| original | 100% |", "| original | 99% |", 1)
    assert typed != text
    assert tables.replace_tables(typed, tables.tables(ROOT / named)) != typed
