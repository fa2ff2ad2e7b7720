"""Import contracts (issue 24), checked with import-linter on the real source tree.

The contracts live in ``pyproject.toml`` (``[tool.importlinter]``): no import cycles between the
packages and modules of ``engine``; ``engine`` free of Qt, vispy, pyqtgraph and ``app``; the
product never importing ``engine.synthetic`` (synthetic captures and test fixtures). A contract
that the tree breaks on purpose shows the checker reads the real imports.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--no-cache", "--no-logo", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_the_import_contracts_of_pyproject_hold():
    out = _lint()
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "3 kept, 0 broken" in out.stdout, out.stdout[-2000:]


def test_a_contract_the_tree_breaks_is_reported(tmp_path):
    config = tmp_path / "contracts.toml"
    config.write_text('[tool.importlinter]\nroot_packages = ["engine"]\n\n'
                      '[[tool.importlinter.contracts]]\nname = "strands without coarse"\n'
                      'type = "forbidden"\nsource_modules = ["engine.strands"]\n'
                      'forbidden_modules = ["engine.coarse"]\n', encoding="utf-8")
    out = _lint(str(config))
    assert out.returncode != 0
    assert "engine.strands.stage -> engine.coarse" in out.stdout, out.stdout[-2000:]
