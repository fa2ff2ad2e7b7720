"""Readers and writers of the preprocessing artifacts (the one place that knows their layout).

Stage folders (``cache/<stage>/<key>/``):

* keyframes: ``frames/<name>.png`` (RGB keyframes) and ``keyframes.json`` =
  ``{"width", "height", "fps", "source_kind", "frames": [{"name", "source_index", "time_s",
  "sharpness", "yaw_deg"}]}``;
* landmarks: ``landmarks.npz`` with ``names`` (K,) str, ``found`` (K,) bool, ``points``
  (K, 478, 3) float32 (x, y pixels; z relative depth times image width; NaN where not found),
  ``pose`` (K, 3) float32 yaw, pitch, roll degrees;
* masks: ``hair/<name>.png`` and ``bust/<name>.png``, 16-bit single-channel PNG, value / 65535;
* orientation: ``orientation/<name>.npz`` with ``angle`` (H, W) float32 radians in [0, pi) and
  ``confidence`` (H, W) float32 (0 outside the hair mask).

Every preprocessing stage folder also holds ``previews/<name>.png`` per keyframe and
``previews/sheet.png`` (a contact sheet), RGB PNGs for people to look at (keyframes: only the
sheet; landmarks: the mesh drawn; masks: hair red, bust blue; orientation: hue = angle).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engine.errors import InputError
from engine.io.media import read_image, write_image

KEYFRAMES_JSON = "keyframes.json"
LANDMARKS_NPZ = "landmarks.npz"
MASK_KINDS = ("hair", "bust")


def load_keyframes(path: Path) -> tuple[dict[str, Any], list[str]]:
    """``(meta, names)`` of a keyframes stage folder; ``meta`` is keyframes.json."""
    meta = json.loads((Path(path) / KEYFRAMES_JSON).read_text())
    return meta, [f["name"] for f in meta["frames"]]


def load_frame(path: Path, name: str) -> np.ndarray:
    """Keyframe ``name`` as (H, W, 3) uint8 RGB."""
    return read_image(Path(path) / "frames" / f"{name}.png")


def save_frame(path: Path, name: str, rgb: np.ndarray) -> None:
    out = Path(path) / "frames"
    out.mkdir(parents=True, exist_ok=True)
    _write(out / f"{name}.png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def load_landmarks(path: Path) -> dict[str, np.ndarray]:
    """Arrays of landmarks.npz: names, found, points (K, 478, 3), pose (K, 3)."""
    with np.load(Path(path) / LANDMARKS_NPZ, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def save_landmarks(path: Path, names: list[str], points: np.ndarray, found: np.ndarray,
                   pose: np.ndarray) -> None:
    np.savez_compressed(Path(path) / LANDMARKS_NPZ, names=np.array(names), found=found,
                        points=points.astype(np.float32), pose=pose.astype(np.float32))


def load_mask(path: Path, kind: str, name: str) -> np.ndarray:
    """Mask ``kind`` ("hair" or "bust") of keyframe ``name``: (H, W) float32 in [0, 1]."""
    file = Path(path) / kind / f"{name}.png"
    img = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f"{file}: missing or unreadable mask")
    return img.astype(np.float32) / 65535.0


def save_mask(path: Path, kind: str, name: str, mask: np.ndarray) -> None:
    out = Path(path) / kind
    out.mkdir(parents=True, exist_ok=True)
    _write(out / f"{name}.png", np.round(np.clip(mask, 0, 1) * 65535).astype(np.uint16))


def load_orientation(path: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(angle, confidence)`` of keyframe ``name``, each (H, W) float32."""
    with np.load(Path(path) / "orientation" / f"{name}.npz", allow_pickle=False) as data:
        return data["angle"], data["confidence"]


def save_orientation(path: Path, name: str, angle: np.ndarray, confidence: np.ndarray) -> None:
    out = Path(path) / "orientation"
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / f"{name}.npz", angle=angle.astype(np.float32),
                        confidence=confidence.astype(np.float32))


def load_mask_edit(edits_dir: Path, name: str) -> np.ndarray | None:
    """The user's corrected hair mask for ``name`` (uint8, 255 hair / 0 not hair / other keep),
    or None."""
    file = Path(edits_dir) / f"{name}.png"
    if not file.is_file():
        return None
    img = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise InputError(f"{file}: unreadable mask edit; delete it or paint it again")
    return img


def _write(file: Path, img: np.ndarray) -> None:
    write_image(file, img)
