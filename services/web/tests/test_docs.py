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


def test_every_page_s_tables_are_made_from_the_result_files_it_names():
    tables = load_tables()
    pages = sorted(set(tables.PAGES.values()))
    checked = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        named = re.findall(r"Result file: `([^`]+)`", text)
        markers = re.findall(r"<!-- table: ([\w-]+) -->", text)
        made = {}
        for name in named:
            assert (ROOT / name).is_file(), f"{page.name} names {name}, which is not committed"
            assert tables.page_of(ROOT / name) == page, f"{name} belongs on another page"
            made |= tables.tables(ROOT / name)
        # Every marker is filled from a named result, and every result's tables are shown.
        assert sorted(made) == sorted(markers), page.name
        assert tables.replace_tables(text, made) == text, f"{page.name} differs from {named}"
        checked += named
    assert {tables.kind_of(ROOT / name) for name in checked} >= set(tables.PAGES)


def test_the_check_sees_a_table_typed_by_hand():
    text = DOCS.read_text(encoding="utf-8")
    tables = load_tables()
    [named] = re.findall(r"Result file: `([^`]+)`", text)
    typed = text.replace("| original | 100% |", "| original | 99% |", 1)
    assert typed != text
    assert tables.replace_tables(typed, tables.tables(ROOT / named)) != typed
