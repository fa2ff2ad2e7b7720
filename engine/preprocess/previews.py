"""Preview images of the preprocessing stages (RGB uint8), for people to look at."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from engine.io.media import write_image
from engine.preprocess.orientation import angle_to_rgb


def mask_overlay(rgb: np.ndarray, hair: np.ndarray, bust: np.ndarray) -> np.ndarray:
    """Hair tinted red, bust tinted blue over the frame."""
    out = rgb.astype(np.float32)
    out = out * (1 - 0.55 * hair[..., None]) + np.array([255, 40, 40]) * 0.55 * hair[..., None]
    out = out * (1 - 0.45 * bust[..., None]) + np.array([40, 90, 255]) * 0.45 * bust[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


def landmarks_overlay(rgb: np.ndarray, points: np.ndarray | None, label: str = "") -> np.ndarray:
    """The 478 landmarks as green dots (iris in yellow) and a text label."""
    out = rgb.copy()
    if points is not None and np.all(np.isfinite(points)):
        r = max(1, round(max(rgb.shape[:2]) / 400))
        for i, (x, y) in enumerate(points[:, :2]):
            colour = (255, 230, 0) if i >= 468 else (0, 255, 60)
            cv2.circle(out, (int(round(x)), int(round(y))), r, colour, -1, cv2.LINE_AA)
    if label:
        cv2.putText(out, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2,
                    cv2.LINE_AA)
    return out


def orientation_overlay(rgb: np.ndarray, angle: np.ndarray, confidence: np.ndarray,
                        mask: np.ndarray) -> np.ndarray:
    """Orientation coloured by angle (hue) inside the hair mask over the dimmed frame."""
    colour = angle_to_rgb(angle, confidence).astype(np.float32)
    base = rgb.astype(np.float32) * 0.35
    m = np.clip(mask, 0, 1)[..., None]
    return np.clip(base * (1 - m) + colour * m, 0, 255).astype(np.uint8)


def contact_sheet(images: list[np.ndarray], columns: int = 4, width: int = 256) -> np.ndarray:
    """Tile images (each resized to ``width`` pixels wide) into one RGB sheet."""
    tiles = []
    for img in images:
        h, w = img.shape[:2]
        tiles.append(cv2.resize(img, (width, max(1, round(h * width / w))),
                                interpolation=cv2.INTER_AREA))
    th = max(t.shape[0] for t in tiles)
    rows = []
    for i in range(0, len(tiles), columns):
        row = [np.pad(t, ((0, th - t.shape[0]), (0, 0), (0, 0))) for t in tiles[i:i + columns]]
        row += [np.zeros((th, width, 3), np.uint8)] * (columns - len(row))
        rows.append(np.concatenate(row, 1))
    return np.concatenate(rows, 0)


def save_preview(folder: Path, name: str, rgb: np.ndarray) -> Path:
    """Write ``previews/<name>.png`` (RGB uint8 in) under ``folder``; returns its path."""
    out = Path(folder) / "previews"
    out.mkdir(parents=True, exist_ok=True)
    file = out / f"{name}.png"

    return write_image(file, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                       [cv2.IMWRITE_PNG_COMPRESSION, 3])
