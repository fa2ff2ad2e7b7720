"""Frame sources for the Capture page: a camera, or a video file standing in for one.

A source is opened, read frame by frame, and closed, all in the capture worker thread.
``read()`` returns a :class:`SourceFrame` or None at the end of the stream. A source may
attach a known head yaw to a frame (a synthetic or motion-tracked input); the analyser then
uses it instead of estimating the yaw from face landmarks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from engine.errors import InputError


@dataclass
class SourceFrame:
    """One frame: ``image`` RGB uint8 (H, W, 3); ``time_s`` seconds since the source opened;
    ``yaw_deg`` the head yaw when the source knows it (None: estimate from landmarks)."""

    image: np.ndarray
    time_s: float
    yaw_deg: float | None = None


class FrameSource(Protocol):
    """What the capture loop needs from a camera-like input."""

    name: str
    fps: float

    def open(self) -> None: ...
    def read(self) -> SourceFrame | None: ...
    def close(self) -> None: ...


class CameraSource:
    """An OpenCV camera (``cv2.VideoCapture(index)``) at a requested resolution.

    Raises:
        InputError: (from :meth:`open`) the camera cannot be opened.
    """

    def __init__(self, index: int = 0, width: int = 1280, height: int = 720) -> None:
        self.index, self.width, self.height = int(index), int(width), int(height)
        self.name = f"Camera {index}"
        self.fps = 30.0
        self._cap: cv2.VideoCapture | None = None
        self._t0 = 0.0

    def open(self) -> None:
        cap = cv2.VideoCapture(self.index)
        if not cap.isOpened():
            raise InputError(f"camera {self.index}: cannot be opened (not connected, or in use "
                             "by another program)")
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and fps > 1 else 30.0
        self._cap = cap
        self._t0 = time.monotonic()

    def read(self) -> SourceFrame | None:
        if self._cap is None:
            return None
        ok, bgr = self._cap.read()
        if not ok:
            return None
        return SourceFrame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), time.monotonic() - self._t0)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def list_cameras(max_index: int = 4) -> list[int]:
    """Indices of cameras OpenCV can open (probes 0..max_index-1; takes a moment)."""
    found = []
    for i in range(max_index):
        cap = cv2.VideoCapture(i)
        if cap.isOpened():
            found.append(i)
        cap.release()
    return found


class VideoFileSource:
    """A video file played as if it were a camera.

    Args:
        path: the video file.
        realtime: pace frames at the file's frame rate (False: as fast as they decode).
        loop: start over at the end instead of ending the stream.
        stride: deliver every ``stride``-th frame (time stamps stay those of the file).

    Raises:
        InputError: (from :meth:`open`) the file is missing or not a readable video.
    """

    def __init__(self, path: str | Path, realtime: bool = True, loop: bool = False,
                 stride: int = 1) -> None:
        self.path = Path(path)
        self.realtime, self.loop = realtime, loop
        self.stride = max(1, int(stride))
        self.name = self.path.name
        self.fps = 30.0
        self._cap: cv2.VideoCapture | None = None
        self._index = 0
        self._t0 = 0.0

    def open(self) -> None:
        if not self.path.is_file():
            raise InputError(f"{self.path}: no such video file")
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise InputError(f"{self.path}: not a video OpenCV can read")
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and fps > 1 else 30.0
        self._cap, self._index, self._t0 = cap, 0, time.monotonic()

    def read(self) -> SourceFrame | None:
        if self._cap is None:
            return None
        ok, bgr = self._cap.read()
        if not ok and self.loop and self._index > 0:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._index, self._t0 = 0, time.monotonic()
            ok, bgr = self._cap.read()
        if not ok:
            return None
        t = self._index / self.fps
        self._index += 1
        for _ in range(self.stride - 1):  # skip to the next delivered frame
            if not self._cap.grab():
                break
            self._index += 1
        if self.realtime:
            delay = self._t0 + t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        return SourceFrame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), t)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
