"""Reading videos and image folders (OpenCV).

A *source* is a video file (any container/codec the installed OpenCV reads) or a folder of
images (``IMAGE_SUFFIXES``, read in name order). Frames are returned as RGB uint8 ``(H, W, 3)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from engine.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class SourceInfo:
    """What :func:`probe_source` learns: ``kind`` is "video" or "images"; ``fps`` is None for
    images; ``frame_count`` is the container's count for videos (it can be off by a few) and
    the number of images for folders."""

    path: Path
    kind: str
    frame_count: int
    width: int
    height: int
    fps: float | None


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def read_image(path: Path) -> np.ndarray:
    """Read an image file as RGB uint8 ``(H, W, 3)``.

    Raises:
        InputError: the file is missing or is not an image OpenCV can decode.
    """
    data = np.fromfile(str(path), dtype=np.uint8) if Path(path).is_file() else None
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data is not None and data.size else None
    if bgr is None:
        raise InputError(f"{path}: missing or not a readable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def probe_source(path: Path | str) -> SourceInfo:
    """Check that ``path`` is a readable video or image folder and describe it.

    Raises:
        InputError: missing path, a file OpenCV cannot decode as a video, a video with no
            decodable frame, a folder without images, an unreadable first image.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir():
        files = _image_files(path)
        if not files:
            raise InputError(f"{path}: folder has no images ({', '.join(IMAGE_SUFFIXES)})")
        first = read_image(files[0])
        return SourceInfo(path, "images", len(files), first.shape[1], first.shape[0], None)
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise InputError(f"{path}: not a video OpenCV can read (unknown or broken format)")
        ok, frame = cap.read()
        if not ok or frame is None:
            raise InputError(f"{path}: not a video OpenCV can read (no decodable frame)")
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0) or None
        return SourceInfo(path, "video", max(count, 1), frame.shape[1], frame.shape[0], fps)
    finally:
        cap.release()


def iter_frames(path: Path | str, stride: int = 1) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(index, rgb)`` for every ``stride``-th frame (video) or image (folder).

    ``index`` is the frame's position in the source (0-based). Videos are decoded
    sequentially (``grab`` for skipped frames, which avoids colour conversion).

    Raises:
        InputError: as :func:`probe_source`; an image in a folder that cannot be read.
    """
    info = probe_source(path)
    stride = max(int(stride), 1)
    if info.kind == "images":
        for i, f in enumerate(_image_files(info.path)):
            if i % stride == 0:
                yield i, read_image(f)
        return
    cap = cv2.VideoCapture(str(info.path))
    try:
        index = 0
        while True:
            if index % stride == 0:
                ok, bgr = cap.read()
                if not ok:
                    break
                yield index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            elif not cap.grab():
                break
            index += 1
    finally:
        cap.release()


def read_frames(path: Path | str, indices: list[int]) -> dict[int, np.ndarray]:
    """Decode the frames with the given source indices; returns ``{index: rgb}``.

    Raises:
        InputError: as :func:`iter_frames`, or when an index is past the end of the source.
    """
    wanted = set(indices)
    out: dict[int, np.ndarray] = {}
    last = max(wanted) if wanted else -1
    for i, rgb in iter_frames(path):
        if i in wanted:
            out[i] = rgb
        if i >= last:
            break
    missing = sorted(wanted - set(out))
    if missing:
        raise InputError(f"{path}: frame(s) {missing[:5]} could not be decoded")
    return out
