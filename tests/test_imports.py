"""Layering: every engine module imports on its own (no circular imports), no
module imports another module's underscore names, and the engine never
imports streamlit."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENGINE = ROOT / "engine"


def _modules() -> list[str]:
    out = []
    for p in sorted(ENGINE.rglob("*.py")):
        rel = p.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__main__":
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append(".".join(parts))
    return out


def test_every_engine_module_imports_on_its_own():
    """Each module in a fresh interpreter, so an import circle cannot hide behind
    another module that happened to be imported first."""
    code = ("import importlib, sys\nfailed = []\n"
            "for name in sys.argv[1:]:\n"
            "    for m in [k for k in sys.modules if k == 'engine' or k.startswith('engine.')]:\n"
            "        del sys.modules[m]\n"
            "    try:\n        importlib.import_module(name)\n"
            "    except Exception as exc:\n        failed.append(f'{name}: {type(exc).__name__}: {exc}')\n"
            "print('\\n'.join(failed))\nsys.exit(1 if failed else 0)\n")
    proc = subprocess.run([sys.executable, "-c", code, *_modules()], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]


def _imported_names(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                yield node, alias.name


@pytest.mark.parametrize("path", sorted(ENGINE.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_cross_module_private_imports_and_no_streamlit(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bad = [f"line {node.lineno}: from {'.' * node.level}{node.module or ''} import {name}"
           for node, name in _imported_names(tree)
           if name.startswith("_") and not name.startswith("__")]
    assert not bad, f"{path.name} imports private names of other modules: {bad}"
    for node in ast.walk(tree):
        mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        assert not any(m.split(".")[0] == "streamlit" for m in mods), \
            f"{path.name}:{node.lineno}: the engine never imports streamlit"
