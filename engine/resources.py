"""Locating shipped data in ``resources/`` (a source checkout or a PyInstaller bundle)."""

from __future__ import annotations

import sys
from pathlib import Path

from engine.errors import StrandcapError


def resources_dir() -> Path:
    """The ``resources/`` folder: beside the packages in a checkout, inside ``sys._MEIPASS`` in a
    PyInstaller bundle.

    Raises:
        StrandcapError: the folder is missing (a broken installation).
    """
    bundle = getattr(sys, "_MEIPASS", None)
    root = Path(bundle) if bundle else Path(__file__).resolve().parent.parent
    path = root / "resources"
    if not path.is_dir():
        raise StrandcapError(f"{path}: shipped resources are missing; reinstall Strandcap")
    return path


def resource(*parts: str) -> Path:
    """Path of a shipped file, e.g. ``resource("head", "ict_head.npz")``.

    Raises:
        StrandcapError: the file is missing.
    """
    path = resources_dir().joinpath(*parts)
    if not path.exists():
        raise StrandcapError(f"{path}: shipped resource is missing; reinstall Strandcap")
    return path


def sample_dir() -> Path:
    """The embedded sample capture (``resources/sample``)."""
    return resource("sample")
