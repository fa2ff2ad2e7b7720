"""The capture job: a generator the app's worker runs (read, analyse, record, report).

Runs in the worker thread. Each loop reads a frame from the source; while recording, every
frame is written to the video file (cv2.VideoWriter, mp4v); at most ``analysis_hz`` times per
second the frame is analysed and a :class:`CaptureFrame` is yielded for display. The job ends
when the source ends or the token is cancelled; the recording is closed in either case.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from engine.errors import Cancelled, InputError
from engine.pipeline import CancelToken
from app.capture.analysis import FrameAnalysis, FrameAnalyzer, draw_overlay
from app.capture.sources import FrameSource


@dataclass
class CaptureFrame:
    """What the Capture page shows: ``display`` RGB uint8 with overlays; ``analysis``;
    ``index`` frame number; ``fps`` measured input rate; ``recording`` path or None;
    ``recorded_frames`` frames written so far; ``time_s`` the frame's time in seconds."""

    display: np.ndarray
    analysis: FrameAnalysis
    index: int
    fps: float
    recording: str | None
    recorded_frames: int
    time_s: float | None = None


@dataclass
class RecordingDone:
    """Yielded when a recording file is closed: ``path`` and ``frames`` written."""

    path: Path
    frames: int


class Recorder:
    """Thread-safe start/stop requests from the GUI; the job applies them between frames."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._target: Path | None = None

    def start(self, path: str | Path) -> None:
        with self._lock:
            self._target = Path(path)

    def stop(self) -> None:
        with self._lock:
            self._target = None

    @property
    def target(self) -> Path | None:
        with self._lock:
            return self._target


def capture_job(source: FrameSource, recorder: Recorder | None = None,
                analysis_hz: float = 10.0, segment: bool = True,
                analyzer: FrameAnalyzer | None = None):
    """Return ``job(token)`` for :class:`app.worker.JobWorker`.

    Raises (inside the job):
        InputError: the source cannot be opened or the video file cannot be written.
    """

    def job(token: CancelToken) -> Iterator[object]:
        source.open()
        az = analyzer or FrameAnalyzer(segment=segment)
        writer: cv2.VideoWriter | None = None
        writing: Path | None = None
        written = 0
        index = 0
        last_analysis = -1e9
        stamps: list[float] = []
        try:
            while True:
                try:
                    token.check()
                except Cancelled:
                    break
                frame = source.read()
                if frame is None:
                    break
                now = time.monotonic()
                stamps = [t for t in stamps if now - t < 1.0] + [now]
                target = recorder.target if recorder is not None else None
                if target != writing and writer is not None:
                    writer.release()
                    yield RecordingDone(writing, written)
                    writer, writing, written = None, None, 0
                if target is not None and writer is None:
                    h, w = frame.image.shape[:2]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"),
                                             float(source.fps), (w, h))
                    if not writer.isOpened():
                        raise InputError(f"{target}: cannot write a video file here")
                    writing = target
                if writer is not None:
                    writer.write(cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
                    written += 1
                index += 1
                if analysis_hz > 0 and now - last_analysis < 1.0 / analysis_hz:
                    continue
                last_analysis = now
                result = az.analyze(frame)
                yield CaptureFrame(draw_overlay(frame.image, result), result, index,
                                   float(len(stamps)) if len(stamps) > 1 else source.fps,
                                   str(writing) if writing else None, written, frame.time_s)
        finally:
            source.close()
            if analyzer is None:
                az.close()
            if writer is not None:
                writer.release()
        if writing is not None:
            yield RecordingDone(writing, written)

    return job
