"""engine/ must never import Qt, vispy or pyqtgraph (DESIGN.md, convention 1)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

FORBIDDEN = ("PySide6", "PySide2", "PyQt5", "PyQt6", "shiboken6", "vispy", "pyqtgraph", "qtpy")
ENGINE = Path(__file__).resolve().parents[2] / "engine"


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", ""))
              in ("import_module", "__import__") and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))
    return found


def test_no_engine_source_file_imports_qt_vispy_or_pyqtgraph():
    files = sorted(ENGINE.rglob("*.py"))
    assert len(files) > 5
    bad = [f"{f.relative_to(ENGINE.parent)}:{line} imports {name}"
           for f in files for line, name in _imports(f) if name.split(".")[0] in FORBIDDEN]
    assert not bad, "\n".join(bad)


def test_the_scanner_catches_a_forbidden_import(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import os\nfrom vispy import scene\ndef f():\n    import PySide6.QtCore\n")
    assert [n for _, n in _imports(f) if n.split(".")[0] in FORBIDDEN] == ["vispy", "PySide6.QtCore"]


def test_importing_every_engine_module_loads_no_gui_toolkit():
    modules = sorted(".".join(p.relative_to(ENGINE.parent).with_suffix("").parts)
                     for p in ENGINE.rglob("*.py") if p.name != "__main__.py")
    modules = [m[: -len(".__init__")] if m.endswith(".__init__") else m for m in modules]
    code = ("import importlib, sys\n"
            f"for m in {modules!r}:\n    importlib.import_module(m)\n"
            f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ENGINE.parent, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "", f"GUI modules loaded by engine: {out.stdout}"
