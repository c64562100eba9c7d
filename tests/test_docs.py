"""The README's and FINDINGS' result tables are generated from committed result files, not typed."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _tables():
    spec = importlib.util.spec_from_file_location("doc_tables", ROOT / "docs" / "tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_marked_table_equals_its_rendering_from_the_result_files():
    tables = _tables()
    for path in tables.DOCS:
        text = path.read_text()
        assert tables.render(text) == text, f"{path.name}: a table differs from its result file; run docs/tables.py"


def test_the_docs_carry_the_generated_tables():
    tables = _tables()
    names = {m["name"] for path in tables.DOCS for m in tables.BLOCK.finditer(path.read_text())}
    assert names == set(tables.TABLES)
    for path in tables.DOCS:
        for match in tables.BLOCK.finditer(path.read_text()):
            assert re.search(r"\d\.\d{3}|\d+\.\d+x|\d+\.\d+ s", match["body"]), f"{match['name']} holds no numbers"
            assert "measured on" in match["body"], f"{match['name']} does not say where it was measured"


def test_a_typed_number_in_a_table_is_caught():
    tables = _tables()
    text = (ROOT / "README.md").read_text()
    match = next(m for m in tables.BLOCK.finditer(text) if m["name"] == "presets-official")
    tampered = text.replace(match["body"], re.sub(r"\d\.\d{3} ±", "9.999 ±", match["body"], count=1))
    assert tables.render(tampered) != tampered
