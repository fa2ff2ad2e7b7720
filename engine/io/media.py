"""Reading videos and image folders (OpenCV).

A *source* is a video file (any container/codec the installed OpenCV reads) or a folder of
images (``IMAGE_SUFFIXES``, read in name order). Frames are returned as RGB uint8 ``(H, W, 3)``,
upright: a phone video's rotation metadata is applied (see :func:`upright`).

Messages name ``label`` when one is given (the user's file name, where ``path`` is the project's
copy of it), else ``path``.
"""

from __future__ import annotations

import errno
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from engine.errors import InputError
from engine.io.files import atomic_path

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


_ROTATE = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


def rotation_from_meta(meta: float | int | None) -> int:
    """Clockwise rotation (0, 90, 180 or 270 degrees) that makes a frame upright, from a video's
    rotation metadata (``CAP_PROP_ORIENTATION_META``, the container's display rotation in
    degrees; negative and >= 360 values are wrapped; values off a multiple of 90 round to the
    nearest)."""
    if meta is None:
        return 0
    try:
        value = float(meta)
    except (TypeError, ValueError):
        return 0
    if value != value:  # NaN
        return 0
    return int(round(value / 90.0)) % 4 * 90


def upright(frame: np.ndarray, rotation: int) -> np.ndarray:
    """``frame`` (H, W, C) turned clockwise by ``rotation`` degrees (0, 90, 180, 270)."""
    rotation = int(rotation) % 360
    return frame if rotation == 0 else cv2.rotate(frame, _ROTATE[rotation])


def _open_video(path: Path) -> tuple[cv2.VideoCapture, int]:
    """Open ``path`` with OpenCV's own rotation handling off, and return the rotation that
    :func:`upright` must apply (so frames are upright whatever the backend does)."""
    cap = cv2.VideoCapture(str(path))
    rotation = 0
    if cap.isOpened() and hasattr(cv2, "CAP_PROP_ORIENTATION_META"):
        rotation = rotation_from_meta(cap.get(cv2.CAP_PROP_ORIENTATION_META))
        if rotation and not cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0):
            # this backend cannot switch it off: trust it only if it reports applying it
            if cap.get(cv2.CAP_PROP_ORIENTATION_AUTO):
                rotation = 0
            else:
                warnings.warn(f"{path}: rotation metadata {rotation} deg could not be checked; "
                              "frames may be sideways", stacklevel=2)
    return cap, rotation


def write_image(path: Path | str, img: np.ndarray, params: list[int] | None = None) -> Path:
    """Write ``img`` (BGR or grey uint8/uint16, as ``cv2.imwrite``) to ``path`` atomically (a
    temporary file with the same suffix, then ``os.replace``); the format follows the suffix.

    Raises:
        OSError: naming ``path`` when OpenCV cannot encode or write it (missing or read-only
            folder, full disk, an unknown suffix).
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        try:
            ok, buf = cv2.imencode(path.suffix or ".png", img, params or [])
        except cv2.error:
            ok = False
        if not ok:
            raise OSError(errno.EINVAL, "OpenCV cannot encode this image", str(path))
        with open(tmp, "wb") as fh:  # open() handles non-ASCII Windows paths, cv2.imwrite not
            fh.write(buf.tobytes())
    return path


def image_files(folder: Path) -> list[Path]:
    """The images of an image-folder source in frame order (sorted by file name): frame ``i``
    of :func:`iter_frames` is ``image_files(folder)[i]``."""
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


def probe_source(path: Path | str, label: str | None = None) -> SourceInfo:
    """Check that ``path`` is a readable video or image folder and describe it (``width`` and
    ``height`` of upright frames).

    Raises:
        InputError: missing path, a file OpenCV cannot decode as a video, a video with no
            decodable frame, a folder without images, an unreadable first image.
    """
    path = Path(path)
    name = label or path
    if not path.exists():
        raise InputError(f"{name}: no such file or folder")
    if path.is_dir():
        files = image_files(path)
        if not files:
            raise InputError(f"{name}: folder has no images ({', '.join(IMAGE_SUFFIXES)})")
        first = read_image(files[0])
        return SourceInfo(path, "images", len(files), first.shape[1], first.shape[0], None)
    cap, rotation = _open_video(path)
    try:
        if not cap.isOpened():
            raise InputError(f"{name}: not a video OpenCV can read (unknown or broken format)")
        ok, frame = cap.read()
        if not ok or frame is None:
            raise InputError(f"{name}: not a video OpenCV can read (no decodable frame)")
        frame = upright(frame, rotation)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0) or None
        return SourceInfo(path, "video", max(count, 1), frame.shape[1], frame.shape[0], fps)
    finally:
        cap.release()


def iter_frames(path: Path | str, stride: int = 1,
                label: str | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(index, rgb)`` for every ``stride``-th frame (video) or image (folder).

    ``index`` is the frame's position in the source (0-based). Videos are decoded
    sequentially (``grab`` for skipped frames, which avoids colour conversion).

    Raises:
        InputError: as :func:`probe_source`; an image in a folder that cannot be read.
    """
    info = probe_source(path, label)
    stride = max(int(stride), 1)
    if info.kind == "images":
        for i, f in enumerate(image_files(info.path)):
            if i % stride == 0:
                yield i, read_image(f)
        return
    cap, rotation = _open_video(info.path)
    try:
        index = 0
        while True:
            if index % stride == 0:
                ok, bgr = cap.read()
                if not ok:
                    break
                yield index, cv2.cvtColor(upright(bgr, rotation), cv2.COLOR_BGR2RGB)
            elif not cap.grab():
                break
            index += 1
    finally:
        cap.release()


def read_frames(path: Path | str, indices: list[int],
                label: str | None = None) -> dict[int, np.ndarray]:
    """Decode the frames with the given source indices; returns ``{index: rgb}``.

    Raises:
        InputError: as :func:`iter_frames`, or when an index is past the end of the source.
    """
    wanted = set(indices)
    out: dict[int, np.ndarray] = {}
    last = max(wanted) if wanted else -1
    for i, rgb in iter_frames(path, label=label):
        if i in wanted:
            out[i] = rgb
        if i >= last:
            break
    missing = sorted(wanted - set(out))
    if missing:
        raise InputError(f"{label or path}: frame(s) {missing[:5]} could not be decoded")
    return out
