"""The dashboard entry page starts and says what LoopLab is."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent


def test_app_starts():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert at.title[0].value == "LoopLab"
    assert any("DJ- and DAW-ready loops" in m.value for m in at.markdown)


def test_engine_never_imports_streamlit():
    for py in (ROOT / "engine").rglob("*.py"):
        text = py.read_text(encoding="utf-8")
        assert "import streamlit" not in text and "from streamlit" not in text, py
