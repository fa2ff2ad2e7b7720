"""Read-only access to the preprocessing artifacts for the Review page.

Uses the engine's loaders (``engine.preprocess.artifacts``) when that module exists and falls
back to reading the documented formats (notes/common.md, "Artifact formats of the
preprocessing stages") directly otherwise:

* keyframes: ``frames/<name>.png`` and ``keyframes.json``;
* landmarks: ``landmarks.npz`` (names, found, points (K, 478, 3), pose (K, 3));
* masks: ``hair/<name>.png``, ``bust/<name>.png``, 16-bit PNG, value / 65535;
* orientation: ``orientation/<name>.npz`` with ``angle`` and ``confidence``.

Also reads and writes the user's hair-mask edits (``Project.mask_edits_dir/<name>.png``,
uint8: 255 hair, 0 not hair, 128 keep the computed value).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engine.errors import InputError

EDIT_KEEP, EDIT_HAIR, EDIT_NOT_HAIR = 128, 255, 0

try:  # the preprocessing helper's loaders, when they have landed
    from engine.preprocess import artifacts as _engine_artifacts  # type: ignore
except ImportError:  # pragma: no cover - depends on what is installed
    _engine_artifacts = None


def _imread_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError(f"{path}: missing or not an image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def load_keyframes(path: Path) -> tuple[dict[str, Any], list[str]]:
    """(meta dict of keyframes.json, list of frame names) of a keyframes stage folder."""
    if _engine_artifacts is not None and hasattr(_engine_artifacts, "load_keyframes"):
        return _engine_artifacts.load_keyframes(path)
    f = Path(path) / "keyframes.json"
    try:
        meta = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{f}: unreadable keyframes list ({exc})") from exc
    return meta, [str(fr["name"]) for fr in meta.get("frames", [])]


def load_frame(path: Path, name: str) -> np.ndarray:
    """Keyframe ``name`` as RGB uint8 (H, W, 3)."""
    if _engine_artifacts is not None and hasattr(_engine_artifacts, "load_frame"):
        return _engine_artifacts.load_frame(path, name)
    return _imread_rgb(Path(path) / "frames" / f"{name}.png")


def load_landmarks(path: Path) -> dict[str, np.ndarray]:
    """Arrays of ``landmarks.npz``: names (K,), found (K,), points (K, 478, 3), pose (K, 3)."""
    if _engine_artifacts is not None and hasattr(_engine_artifacts, "load_landmarks"):
        return _engine_artifacts.load_landmarks(path)
    f = Path(path) / "landmarks.npz"
    try:
        with np.load(f, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise InputError(f"{f}: unreadable landmarks ({exc})") from exc


def load_mask(path: Path, kind: str, name: str) -> np.ndarray:
    """Mask ``kind`` ("hair" or "bust") of frame ``name``, float32 (H, W) in [0, 1]."""
    if _engine_artifacts is not None and hasattr(_engine_artifacts, "load_mask"):
        return _engine_artifacts.load_mask(path, kind, name)
    f = Path(path) / kind / f"{name}.png"
    m = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
    if m is None:
        raise InputError(f"{f}: missing or not an image")
    if m.ndim == 3:
        m = m[..., 0]
    scale = 65535.0 if m.dtype == np.uint16 else 255.0
    return (m.astype(np.float32) / scale).clip(0, 1)


def load_orientation(path: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(angle radians [0, pi), confidence) float32 (H, W) of frame ``name``."""
    if _engine_artifacts is not None and hasattr(_engine_artifacts, "load_orientation"):
        return _engine_artifacts.load_orientation(path, name)
    f = Path(path) / "orientation" / f"{name}.npz"
    try:
        with np.load(f, allow_pickle=False) as z:
            return z["angle"].astype(np.float32), z["confidence"].astype(np.float32)
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{f}: unreadable orientation map ({exc})") from exc


def load_mask_edit(edits_dir: Path, name: str, shape: tuple[int, int]) -> np.ndarray:
    """The user's edit of frame ``name``: uint8 (H, W), 128 everywhere when none is saved.

    Raises:
        InputError: the saved edit is unreadable or its size differs from ``shape``.
    """
    f = Path(edits_dir) / f"{name}.png"
    if not f.is_file():
        return np.full(shape, EDIT_KEEP, np.uint8)
    m = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
    if m is None:
        raise InputError(f"{f}: unreadable mask edit")
    if m.shape != tuple(shape):
        raise InputError(f"{f}: mask edit is {m.shape[1]}x{m.shape[0]} but the frame is "
                         f"{shape[1]}x{shape[0]}")
    return m


def save_mask_edit(edits_dir: Path, name: str, edit: np.ndarray) -> Path | None:
    """Write (or, when it keeps everything, remove) the edit PNG atomically; returns the path
    written, or None when no edit remains."""
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
    """Computed mask (float32 (H, W) or None = zeros) with the user's edit applied."""
    base = np.zeros(edit.shape, np.float32) if mask is None else mask.astype(np.float32)
    return np.where(edit == EDIT_KEEP, base, edit.astype(np.float32) / 255.0)


def orientation_rgb(angle: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """Colour-coded orientation map: hue = 2 * angle (so 0 and pi meet), value = confidence
    normalised to its 99th percentile. RGB uint8 (H, W, 3)."""
    hue = ((angle % np.pi) / np.pi * 180.0).astype(np.float32)  # OpenCV hue is 0..180
    c = confidence.astype(np.float32)
    top = float(np.percentile(c[c > 0], 99)) if (c > 0).any() else 1.0
    val = np.clip(c / max(top, 1e-12), 0, 1) * 255
    hsv = np.stack([hue, np.full_like(hue, 255), val], axis=-1).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def sample_source_frames(source: Path, count: int = 16,
                         max_side: int = 512) -> list[tuple[int, np.ndarray]]:
    """Evenly spaced ``(source frame index, RGB image)`` from a video file or image folder,
    downscaled to ``max_side``; used when no keyframes stage has run yet.

    Raises:
        InputError: the source cannot be read.
    """
    from engine.io.media import IMAGE_SUFFIXES

    def shrink(img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        s = min(1.0, max_side / max(h, w))
        return cv2.resize(img, (round(w * s), round(h * s))) if s < 1 else img

    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        idx = np.unique(np.linspace(0, len(files) - 1, min(count, len(files))).round().astype(int))
        return [(int(i), shrink(_imread_rgb(files[i]))) for i in idx] if files else []
    cap = cv2.VideoCapture(str(source))
    if not cap.isOpened():
        raise InputError(f"{source}: not a video OpenCV can read")
    frames: list[tuple[int, np.ndarray]] = []
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        wanted = set(np.unique(np.linspace(0, max(total - 1, 0), count).round().astype(int))
                     .tolist()) if total > 0 else None
        i = 0
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            if wanted is None or i in wanted:
                frames.append((i, shrink(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))))
                if wanted is None and len(frames) >= count:
                    break
            i += 1
    finally:
        cap.release()
    return frames
