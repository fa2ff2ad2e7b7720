"""Capture page: a video file stands in for the camera (the source is an interface), the
coverage guide fills as the input turns, live warnings, recording into the project."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.capture.analysis import (WARN_BLUR, WARN_DARK, WARN_FACE, WARN_FAST, FrameAnalyzer,
                                  estimate_yaw)
from app.capture.coverage import YawCoverage
from app.capture.sources import SourceFrame, VideoFileSource
from tests.app.conftest import PORTRAIT, make_video, portrait

SAMPLE = Path(__file__).resolve().parents[2] / "resources" / "sample"


class TurningSource(VideoFileSource):
    """A video file whose frames carry a known head yaw (as a tracked or synthetic source
    would), sweeping ``yaws`` in order."""

    def __init__(self, path, yaws):
        super().__init__(path, realtime=False)
        self.yaws = list(yaws)
        self.name = "turning test clip"

    def read(self):
        frame = super().read()
        if frame is not None and self.yaws:
            frame.yaw_deg = self.yaws.pop(0)
        return frame


@pytest.fixture
def capture(qtbot, settings):
    from app.pages.capture import CapturePage
    from app.state import AppState

    state = AppState(settings, stages=lambda until=None: [])
    page = CapturePage(state)
    qtbot.addWidget(page)
    page.resize(1000, 700)
    page.show()
    yield page
    page.stop_source()


def run_source(qtbot, page, source, segment=True):
    page.start_source(source, analysis_hz=0, segment=segment)
    worker = page.worker
    with qtbot.waitSignal(worker.finished, timeout=30000):
        pass
    qtbot.waitUntil(lambda: page.worker is None, timeout=5000)


def test_video_file_as_camera_fills_coverage(qtbot, capture, tmp_path):
    video = make_video(tmp_path / "turn.mp4", frames=24, size=192)
    yaws = np.linspace(-85, 85, 24)
    capture.coverage.min_frames = 2
    assert capture.coverage.fraction() == 0.0
    run_source(qtbot, capture, TurningSource(video, yaws))
    assert capture.frames_seen == 24
    assert capture.coverage.counts.sum() == 24
    assert capture.coverage.fraction("front") == 1.0
    assert capture.coverage.fraction("back") == 0.0 and capture.coverage.fraction() == 0.5
    # a turn from shoulder to shoulder leaves the back: the guide says so before the user stops
    assert capture.missing_label.text().startswith("Still missing: +90° to -90° over the back.")
    assert "back of the head has not been seen" in capture.missing_label.text()
    frame = capture.last_frame
    assert frame.display.shape == (192, 192, 3)
    assert frame.analysis.person_mask is not None and frame.analysis.person_mask.shape == (192, 192)
    if PORTRAIT.is_file():
        assert frame.analysis.landmarks is not None and frame.analysis.landmarks.shape == (478, 2)
        assert WARN_FACE not in frame.analysis.warnings
    # after the clip ends the checks go idle and the source is released
    assert capture.source_label.text() == "No source running."
    assert capture.warning_labels[WARN_FACE].text().startswith("–")


def test_half_turn_leaves_the_other_side_missing(qtbot, capture, tmp_path):
    video = make_video(tmp_path / "half.mp4", frames=12, size=128)
    capture.coverage.min_frames = 1
    run_source(qtbot, capture, TurningSource(video, np.linspace(-89, -1, 12)), segment=False)
    assert capture.coverage.missing_ranges() == [(0.0, 270.0)]  # 0 -> +180 -> -90
    assert "+0° to -90° over the back" in capture.missing_label.text()


def test_coverage_model_bins():
    cov = YawCoverage(bin_deg=30, min_frames=2)
    assert cov.bins == 12
    for y in (-80, -75, 10, 12, 100, 100, 190):  # 190 wraps to -170
        cov.add(y)
    cov.add(None)
    centres = (cov.edges[:-1] + cov.edges[1:]) / 2
    assert centres[cov.covered()].tolist() == [-75.0, 15.0, 105.0]
    assert cov.missing_ranges() == [(-60.0, 0.0), (30.0, 90.0), (120.0, 270.0)]
    assert cov.describe_missing() == ("-60° to +0°, +30° to +90°, +120° to -90° over the back")


def _turn(cov, yaws, t0=0.0, fps=10.0, person=True):
    """Feed ``yaws`` (None: no face) at ``fps``; returns the time after the last frame."""
    for i, y in enumerate(yaws):
        cov.add(y, t0 + i / fps, person)
    return t0 + len(yaws) / fps


def test_coverage_counts_the_back_of_a_full_turn():
    """Face lost turned to +80, found again at -80: the head went round the back, and the
    faceless frames fill the back bins evenly."""
    cov = YawCoverage(bin_deg=15, min_frames=2)
    t = _turn(cov, np.linspace(0, 80, 20))
    t = _turn(cov, [None] * 36, t)
    assert cov.behind and cov.fraction("back") == 0.0  # pending until the face returns
    _turn(cov, np.linspace(-80, 0, 20), t)
    assert not cov.behind
    assert cov.fraction("back") == 1.0 and cov.fraction() == 1.0
    assert cov.missing_ranges() == [] and cov.describe_missing() == ""
    back = np.abs((cov.edges[:-1] + cov.edges[1:]) / 2) > 90
    assert cov.counts[back].min() >= 2 and cov.counts[back].max() - cov.counts[back].min() <= 1


def test_coverage_turn_into_the_back_and_return():
    """Face lost at +80 turning at 40 deg/s, back on the same side after 1 s: the head went
    about 20 deg further (half the faceless time at the last rate), not round the back."""
    cov = YawCoverage(bin_deg=15, min_frames=1)
    t = _turn(cov, np.linspace(0, 80, 21), fps=10.0)  # 4 deg per 0.1 s = 40 deg/s
    t = _turn(cov, [None] * 10, t)
    _turn(cov, np.linspace(80, 0, 21), t)
    centres = (cov.edges[:-1] + cov.edges[1:]) / 2
    assert centres[cov.covered() & (centres > 90)].tolist() == [97.5]
    assert cov.fraction("back") == 1 / 12


def test_coverage_ignores_faceless_frames_facing_the_camera_or_without_a_person():
    cov = YawCoverage(bin_deg=15, min_frames=1)
    t = _turn(cov, [0.0, 5.0, 10.0])
    t = _turn(cov, [None] * 20, t)          # a hand over the face while facing the camera
    t = _turn(cov, [-70.0, -80.0], t)
    t = _turn(cov, [None] * 20, t, person=False)  # turned away, but nobody in the frame
    _turn(cov, [80.0], t)
    assert cov.counts.sum() == 6 and cov.fraction("back") == 0.0


@pytest.mark.skipif(not PORTRAIT.is_file(), reason="needs ../shared/data/portraits/astronaut.png")
def test_analyzer_warnings_on_real_portrait():
    img = cv2.resize(portrait(), (256, 256))
    az = FrameAnalyzer(segment=False)
    try:
        good = az.analyze(SourceFrame(img, 0.0))
        assert good.landmarks is not None and good.warnings == []
        fast = az.analyze(SourceFrame(img, 0.1, yaw_deg=good.yaw_deg + 30))  # 300 deg/s
        assert WARN_FAST in fast.warnings
        dark = az.analyze(SourceFrame((img * 0.12).astype(np.uint8), 0.2))
        assert WARN_DARK in dark.warnings
        blurred = az.analyze(SourceFrame(cv2.GaussianBlur(img, (0, 0), 6), 1.0))
        assert WARN_BLUR in blurred.warnings
        noise = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
        az2 = FrameAnalyzer(segment=False)
        assert WARN_FACE in az2.analyze(SourceFrame(noise, 0.0)).warnings
        az2.close()
        # yaw from landmarks: mirroring the face mirrors its yaw
        mirrored = FrameAnalyzer(segment=False)
        m = mirrored.analyze(SourceFrame(np.ascontiguousarray(img[:, ::-1]), 0.0))
        mirrored.close()
        assert abs(m.yaw_deg + good.yaw_deg) < 4.0
    finally:
        az.close()


@pytest.mark.parametrize("yaw", [-40.0, 0.0, 25.0])
def test_estimate_yaw_sign(yaw):
    """A face turned by ``yaw`` towards image +x: cheeks (234 -> 454) along (cos, 0, sin),
    forehead 10 above chin 152 (image rows grow downwards, depth grows away from the camera)."""
    t = np.radians(yaw)
    pts = np.zeros((478, 3))
    pts[234] = (-np.cos(t), 0, -np.sin(t))
    pts[454] = (np.cos(t), 0, np.sin(t))
    pts[10] = (0, -1.2, 0)
    pts[152] = (0, 1.2, 0)
    pts *= 50
    assert estimate_yaw(pts) == pytest.approx(yaw, abs=1e-6)


def test_record_into_project(qtbot, capture, tmp_path, project):
    capture.state.set_project(project)
    old_source = project.source_path
    capture.toggle_record()
    assert capture.recorder.target is not None
    video = make_video(tmp_path / "rec.mp4", frames=15, size=128)
    run_source(qtbot, capture, VideoFileSource(video, realtime=False), segment=False)
    assert capture.last_recording is not None and capture.last_recording.is_file()
    assert capture.last_recording.parent == project.root / "recordings"
    assert project.source_path != old_source  # the recording became the project's input
    cap = cv2.VideoCapture(str(project.source_path))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 15
    cap.release()


def test_missing_video_reaches_dialog(qtbot, capture, tmp_path, monkeypatch):
    from PySide6 import QtWidgets

    shown = []
    monkeypatch.setattr(QtWidgets.QMessageBox, "exec", lambda box: shown.append(box.text()))
    capture.start_source(VideoFileSource(tmp_path / "nope.mp4"))
    qtbot.waitUntil(lambda: capture.worker is None, timeout=10000)
    assert shown == [f"{tmp_path / 'nope.mp4'}: no such video file"]


def test_find_cameras_without_hardware(qtbot, capture):
    found = capture.find_cameras()
    # no camera on the test machine: only the video-file entry remains, and the page says so
    assert capture.source.count() == len(found) + 1
    assert capture.source.itemData(capture.source.count() - 1) == "file"
    if not found:
        assert "No camera found" in capture.source_label.text()


@pytest.mark.skipif(not (SAMPLE / "capture.mp4").is_file(), reason="no embedded sample capture")
def test_real_turning_capture_fills_coverage_with_estimated_yaw(qtbot, capture):
    """The embedded sample (rendered head turning from -50 to +50 degrees) played as the camera:
    the yaw comes from mediapipe's landmarks only, and the guide fills the turned range."""
    truth = {f["index"]: f["yaw_deg"] for f in
             json.loads((SAMPLE / "cameras.json").read_text())["frames"].values()}
    capture.coverage.min_frames = 1
    run_source(qtbot, capture, VideoFileSource(SAMPLE / "capture.mp4", realtime=False, stride=3),
               segment=False)
    assert capture.frames_seen == 30
    covered = capture.coverage.covered()
    edges = capture.coverage.edges
    centres = (edges[:-1] + edges[1:]) / 2
    assert covered[np.abs(centres) < 30].all()      # -30..+30 all seen
    assert not covered[np.abs(centres) > 60].any()  # beyond the turn nothing
    f = capture.last_frame
    assert f.analysis.landmarks is not None
    # frames 0, 3, ..., 87 were analysed: the last estimated yaw is close to the true one
    assert abs(f.analysis.yaw_deg - truth[87]) < 10, (f.analysis.yaw_deg, truth[87])
    assert f.index == 30
