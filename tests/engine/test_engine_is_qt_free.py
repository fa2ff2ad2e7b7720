"""engine/ must never load Qt, vispy or pyqtgraph (DESIGN.md, convention 1), not even through
another package: every engine module is imported in a fresh interpreter and sys.modules checked.
The static rule (no such import statement) is an import contract (test_import_contracts.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FORBIDDEN = ("PySide6", "PySide2", "PyQt5", "PyQt6", "shiboken6", "vispy", "pyqtgraph", "qtpy")
ENGINE = Path(__file__).resolve().parents[2] / "engine"


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
