"""Fixtures of the app tests (pytest-qt).

Under a real X server (``xvfb-run -a``, DISPLAY set) Qt uses the xcb platform so vispy draws
real pixels; without one it falls back to the offscreen platform and the tests that need
vispy's pixels skip with a reason."""

from __future__ import annotations

import os

if os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
else:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
PORTRAIT = SHARED / "portraits" / "astronaut.png"


def vispy_can_draw() -> tuple[bool, str]:
    if os.environ.get("QT_QPA_PLATFORM") != "xcb":
        return False, "vispy draws real pixels only in an X window (run under xvfb-run -a)"
    return True, ""


@pytest.fixture(scope="session", autouse=True)
def _vispy_backend():
    import vispy
    vispy.use("pyside6")


@pytest.fixture
def settings(tmp_path):
    from app.settings import AppSettings
    return AppSettings(tmp_path / "settings.ini")


def portrait() -> np.ndarray:
    """The public-domain astronaut portrait (RGB 512x512), or a synthetic face-less stand-in."""
    if PORTRAIT.is_file():
        return cv2.cvtColor(cv2.imread(str(PORTRAIT)), cv2.COLOR_BGR2RGB)
    rng = np.random.default_rng(0)
    img = (rng.random((512, 512, 3)) * 255).astype(np.uint8)
    return cv2.GaussianBlur(img, (9, 9), 3)


def make_video(path: Path, frames: int = 20, size: int = 128, fps: float = 10.0) -> Path:
    """A short synthetic clip: the portrait shifted a little each frame (mp4v)."""
    base = cv2.resize(portrait(), (size + 2 * frames, size + 2 * frames))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (size, size))
    assert writer.isOpened()
    for i in range(frames):
        crop = base[frames: frames + size, i: i + size]
        writer.write(cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture
def video(tmp_path) -> Path:
    return make_video(tmp_path / "clip.mp4")


@pytest.fixture
def project(tmp_path, video):
    from engine.pipeline import Project
    p = Project.open_or_create(tmp_path / "proj")
    p.import_source(video)
    return p
