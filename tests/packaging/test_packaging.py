"""Packaging: fast checks of the smoke-test helpers and the spec (always), and the full bundle
smoke test (only with STRANDCAP_BUNDLE_TEST=1; it builds dist/strandcap first when missing, which
takes minutes)."""

from __future__ import annotations

import ast
import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"strandcap_packaging_{name}", PACKAGING / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_expected_version_is_the_engine_version():
    import engine

    assert _load("smoke_test").expected_version() == engine.__version__


def test_clean_env_hides_the_build_python(tmp_path):
    smoke = _load("smoke_test")
    env = smoke.clean_env(tmp_path)
    assert not {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"} & env.keys()
    for entry in env["PATH"].split(os.pathsep):
        assert not Path(entry).resolve().is_relative_to(Path(sys.prefix).resolve())
    assert env.get("HOME", env.get("USERPROFILE")) == str(tmp_path)


@pytest.mark.skipif(not sys.platform.startswith("linux") or sys.prefix == sys.base_prefix,
                    reason="/proc maps and a virtual environment are needed")
def test_leak_check_sees_this_venv_in_this_process(tmp_path):
    import numpy  # noqa: F401 - maps numpy's shared libraries from the venv

    smoke = _load("smoke_test")
    leaks = smoke.leaked_mappings(os.getpid(), tmp_path)
    assert any(Path(p).is_relative_to(Path(sys.prefix).resolve()) for p in leaks)
    # ... and nothing counts as leaked when the "bundle" is the venv itself
    assert not {p for p in smoke.leaked_mappings(os.getpid(), Path(sys.prefix))
                if Path(p).is_relative_to(Path(sys.prefix).resolve())}


def test_spec_names_both_programs_and_the_known_needs():
    text = (PACKAGING / "strandcap.spec").read_text(encoding="utf-8")
    ast.parse(text)  # valid Python
    for need in ('"pxr"', '"mediapipe"', '"alembic3d"', '"vispy.app.backends._pyside6"',
                 'name=NAME', 'name=f"{NAME}-studio"', '"resources"'):
        assert need in text, need
    for entry in ("entry_cli.py", "entry_studio.py"):
        assert (PACKAGING / entry).is_file()


@pytest.mark.skipif(os.environ.get("STRANDCAP_BUNDLE_TEST") != "1",
                    reason="set STRANDCAP_BUNDLE_TEST=1 to build (when missing) and smoke-test the bundle")
def test_bundle_smoke(tmp_path):
    bundle = ROOT / "dist" / "strandcap"
    if not bundle.is_dir():
        assert _load("build").main([]) == 0
    assert _load("smoke_test").main([str(bundle), "--json", str(tmp_path / "smoke.json")]) == 0
