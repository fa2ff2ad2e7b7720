"""What the Review page reads and writes of a project, through the engine's own readers.

The preprocessing artifacts are read with :mod:`engine.preprocess.artifacts` (the one place
that knows their layout); this module adds what only the app does: the user's hair-mask edits
(``Project.mask_edits_dir/<name>.png``, uint8: 255 hair, 0 not hair, 128 keep the computed
value, written atomically) and a few input frames to show before any stage has run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engine.errors import InputError
from engine.io.media import probe_source, read_frames
from engine.pipeline import DONE, read_json, resolve_artifact
from engine.preprocess.artifacts import (load_frame, load_keyframes, load_landmarks,  # noqa: F401
                                         load_mask, load_mask_edit as _engine_mask_edit,
                                         load_orientation)
from engine.preprocess.keyframes import resize_long_side
from engine.preprocess.masks import apply_user_edit
from engine.preprocess.orientation import angle_to_rgb as orientation_rgb  # noqa: F401

EDIT_KEEP, EDIT_HAIR, EDIT_NOT_HAIR = 128, 255, 0


def load_mask_edit(edits_dir: Path, name: str, shape: tuple[int, int]) -> np.ndarray:
    """The user's edit of frame ``name``: uint8 (H, W), ``EDIT_KEEP`` everywhere when none is
    saved.

    Raises:
        InputError: the saved edit is unreadable or its size differs from ``shape``.
    """
    edit = _engine_mask_edit(edits_dir, name)
    if edit is None:
        return np.full(shape, EDIT_KEEP, np.uint8)
    if edit.shape != tuple(shape):
        raise InputError(f"{Path(edits_dir) / (name + '.png')}: mask edit is "
                         f"{edit.shape[1]}x{edit.shape[0]} but the frame is {shape[1]}x{shape[0]}")
    return edit


def save_mask_edit(edits_dir: Path, name: str, edit: np.ndarray) -> Path | None:
    """Write (or, when it keeps everything, remove) the edit PNG atomically; returns the path
    written, or None when no edit remains.

    Raises:
        InputError: the PNG cannot be written.
    """
    d = Path(edits_dir)
    f = d / f"{name}.png"
    if (edit == EDIT_KEEP).all():
        if f.exists():
            f.unlink()
        return None
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f".{name}.tmp.png"
    if not cv2.imwrite(str(tmp), edit.astype(np.uint8)):
        raise InputError(f"{tmp}: cannot write the mask edit")
    tmp.replace(f)
    return f


def apply_edit(mask: np.ndarray | None, edit: np.ndarray) -> np.ndarray:
    """Computed hair mask (float32 (H, W), or None = zeros) with the user's edit applied, as
    the masks stage will apply it on the next run."""
    base = np.zeros(edit.shape, np.float32) if mask is None else mask.astype(np.float32)
    return apply_user_edit(base, np.ones_like(base), edit)[0]


def sample_source_frames(source: Path, count: int = 16,
                         max_side: int = 512) -> list[tuple[int, np.ndarray]]:
    """Evenly spaced ``(source frame index, RGB image)`` from a video file or image folder,
    downscaled to ``max_side``; shown when no keyframes stage has run yet.

    Raises:
        InputError: the source cannot be read.
    """
    info = probe_source(source)
    idx = np.unique(np.linspace(0, max(info.frame_count - 1, 0), count).round().astype(int))
    try:
        frames = read_frames(source, idx.tolist())
    except InputError:  # the container over-reported its length: take what decodes
        frames = read_frames(source, [0])
    return [(i, resize_long_side(frames[i], max_side)) for i in sorted(frames)]


def check_source(path: Path) -> None:
    """Check that ``path`` is a video OpenCV opens and decodes a frame from (or an image
    folder whose first image reads) before it becomes a project's input.

    Raises:
        InputError: naming the file and the problem (e.g. a README picked as a video).
    """
    probe_source(path)   # cv2.VideoCapture must open the file and yield a frame


GROOM_STAGE = "strands"   # as the CLI: the stage whose folder holds the final groom.npz
GROOM_FILE = "groom.npz"


@dataclass(frozen=True)
class FoundGroom:
    """A finished groom in a project's cache. ``current``: made by the config the project
    would run now (else by an earlier run, e.g. before a later run was started and cancelled)."""

    path: Path           # .../cache/<stage>/<key>/groom.npz
    stage: str
    key: str
    finished_at: float
    current: bool


def _finished_grooms(project, stage: str | None) -> list[FoundGroom]:
    cache = project.cache_dir
    if not cache.is_dir():
        return []
    out = []
    for done in cache.glob(f"{stage or '*'}/*/{DONE}"):
        found = done.parent / GROOM_FILE
        if not found.is_file():
            continue
        try:
            t = float(read_json(done).get("finished_at", 0.0))
        except (OSError, ValueError, TypeError, AttributeError):
            t = done.stat().st_mtime
        out.append(FoundGroom(found, done.parent.parent.name, done.parent.name, t, False))
    return out


def find_groom(project, stages=None, config=None) -> FoundGroom | None:
    """The project's finished groom (``groom.npz``), read from disk, or None.

    In order: the ``strands`` artifact of ``config`` (the project's current config) when it is
    finished; else the newest finished ``strands`` artifact of any config key (a later run
    that was cancelled, or a changed preset, must not hide a finished groom); else, for a graph
    without a ``strands`` stage, the newest finished artifact of any stage holding a
    ``groom.npz``.
    """
    if project is None:
        return None
    if stages is not None and config is not None and GROOM_STAGE in {s.name for s in stages}:
        try:
            a = resolve_artifact(project, stages, config, GROOM_STAGE)
        except Exception:  # noqa: BLE001 - e.g. no input yet: fall back to what is on disk
            a = None
        if a is not None and (a.path / GROOM_FILE).is_file():
            return FoundGroom(a.path / GROOM_FILE, GROOM_STAGE, a.key,
                              float(a.done.get("finished_at", 0.0)), True)
    found = _finished_grooms(project, GROOM_STAGE) or _finished_grooms(project, None)
    return max(found, key=lambda g: g.finished_at) if found else None
