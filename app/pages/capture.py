"""Capture page: live camera (or a video file standing in for one) with person mask, face
landmarks, a head-turn coverage guide and quality warnings; record into the project, or open
an existing video or image folder instead."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6 import QtCore, QtWidgets

from app.artifacts import check_source
from app.capture.analysis import WARN_BLUR, WARN_DARK, WARN_FACE, WARN_FAST
from app.capture.coverage import YawCoverage
from app.capture.job import CaptureFrame, Recorder, RecordingDone, capture_job
from app.capture.sources import CameraSource, FrameSource, VideoFileSource, list_cameras
from app.dialogs import show_error
from app.state import AppState
from app.views.image_view import CoverageWidget, ImageView
from app.worker import JobWorker

INSTRUCTIONS = """<b>Two ways to capture</b>
<p><b>Turn in front of a still camera.</b> Put the camera at head height about 1 m away, in even
light. Start recording, look at the lens, then turn slowly all the way round (on a swivel chair,
or standing; about 30 seconds for the full turn) and back to the lens, so the coverage guide
fills, the back included. Turning only from one shoulder to the other gives the front; the back
of the head is then inferred. Keep your hair out of your face.</p>
<p><b>Have someone walk around you.</b> Sit still and look ahead; the helper holds the phone or
camera at head height and walks a slow half circle (or full circle) around you, keeping your
whole head in frame. Avoid fast moves: the warning shows when the turn is too fast.</p>
<p>Either way: no hat, no hands near the hair, sharp focus, 20 to 60 seconds is plenty.</p>"""

WARNINGS = {WARN_FACE: "Face lost: look towards the camera",
            WARN_BLUR: "Blurry: hold still or add light",
            WARN_DARK: "Too dark: add light in front of you",
            WARN_FAST: "Turning too fast: turn slower"}
OK_TEXT = {WARN_FACE: "Face found", WARN_BLUR: "Sharp", WARN_DARK: "Enough light",
           WARN_FAST: "Turning speed fine"}


class CapturePage(QtWidgets.QWidget):
    """See module docstring. :meth:`start_source` runs any :class:`FrameSource` (tests use a
    video file); :attr:`coverage` is the yaw coverage model the guide shows."""

    def __init__(self, state: AppState, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.worker: JobWorker | None = None
        self.recorder = Recorder()
        self.coverage = YawCoverage()
        self.frames_seen = 0
        self.last_frame: CaptureFrame | None = None
        self.last_recording: Path | None = None

        self.view = ImageView(placeholder="No camera running.\nPick a source and press Start.")
        self.source = QtWidgets.QComboBox()
        for i in range(4):
            self.source.addItem(f"Camera {i}", i)
        self.source.addItem("Video file as camera…", "file")
        self.source.setCurrentIndex(min(self.state.prefs.camera_index, 3))
        self.resolution = QtWidgets.QComboBox()
        for w, h in ((640, 480), (1280, 720), (1920, 1080)):
            self.resolution.addItem(f"{w} x {h}", f"{w}x{h}")
        prefs = self.state.prefs
        self.resolution.setCurrentIndex(max(0, self.resolution.findData(
            f"{prefs.capture_width}x{prefs.capture_height}")))
        self.start_button = QtWidgets.QPushButton("Start camera")
        self.start_button.clicked.connect(self.toggle_source)
        self.record_button = QtWidgets.QPushButton("● Record")
        self.record_button.setEnabled(False)
        self.record_button.clicked.connect(self.toggle_record)
        self.record_label = QtWidgets.QLabel("Not recording.")
        self.open_video_button = QtWidgets.QPushButton("Open existing video…")
        self.open_video_button.clicked.connect(self.open_video)
        self.open_folder_button = QtWidgets.QPushButton("Open image folder…")
        self.open_folder_button.clicked.connect(self.open_folder)
        self.coverage_widget = CoverageWidget(self.coverage)
        self.missing_label = QtWidgets.QLabel()
        self.missing_label.setWordWrap(True)
        self.warning_labels: dict[str, QtWidgets.QLabel] = {}
        warn_box = QtWidgets.QGroupBox("Live checks")
        wl = QtWidgets.QVBoxLayout(warn_box)
        for key, text in WARNINGS.items():
            lab = QtWidgets.QLabel(text)
            self.warning_labels[key] = lab
            wl.addWidget(lab)
        self.stats_label = QtWidgets.QLabel("")
        wl.addWidget(self.stats_label)
        self._set_warnings([], idle=True)
        instructions = QtWidgets.QLabel(INSTRUCTIONS)
        instructions.setWordWrap(True)
        instructions.setTextFormat(QtCore.Qt.TextFormat.RichText)

        src_box = QtWidgets.QGroupBox("Source")
        form = QtWidgets.QFormLayout(src_box)
        self.find_button = QtWidgets.QPushButton("Find")
        self.find_button.setToolTip("Probe which cameras are connected")
        self.find_button.clicked.connect(self.find_cameras)
        cam_row = QtWidgets.QHBoxLayout()
        cam_row.addWidget(self.source, 1)
        cam_row.addWidget(self.find_button)
        form.addRow("Camera", cam_row)
        form.addRow("Resolution", self.resolution)
        self.source_label = QtWidgets.QLabel("No source running.")
        self.source_label.setWordWrap(True)
        form.addRow(self.source_label)
        form.addRow(self.start_button)
        form.addRow(self.record_button)
        form.addRow(self.record_label)
        alt = QtWidgets.QGroupBox("Or use footage you already have")
        al = QtWidgets.QVBoxLayout(alt)
        al.addWidget(self.open_video_button)
        al.addWidget(self.open_folder_button)
        cov_box = QtWidgets.QGroupBox("Coverage guide (head turn)")
        cl = QtWidgets.QVBoxLayout(cov_box)
        cl.addWidget(self.coverage_widget)
        cl.addWidget(self.missing_label)
        side = QtWidgets.QVBoxLayout()
        for w in (src_box, cov_box, warn_box, alt):
            side.addWidget(w)
        side.addStretch(1)
        side_w = QtWidgets.QWidget()
        side_w.setLayout(side)
        side_w.setFixedWidth(330)
        left = QtWidgets.QVBoxLayout()
        left.addWidget(self.view, 1)
        scroll = QtWidgets.QScrollArea()
        scroll.setWidget(instructions)
        scroll.setWidgetResizable(True)
        scroll.setMaximumHeight(150)
        left.addWidget(scroll)
        layout = QtWidgets.QHBoxLayout(self)
        layout.addLayout(left, 1)
        layout.addWidget(side_w)
        self._update_missing()

    # -- sources ---------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.worker is not None and self.worker.isRunning()

    def toggle_source(self) -> None:
        if self.running:
            self.stop_source()
            return
        data = self.source.currentData()
        if data == "file":
            path, _ = QtWidgets.QFileDialog.getOpenFileName(
                self, "Video to play as the camera", "", "Videos (*.mp4 *.mov *.avi *.mkv *.webm)")
            if not path:
                return
            self.start_source(VideoFileSource(path, realtime=True, loop=True))
        else:
            w, h = (int(v) for v in self.resolution.currentData().split("x"))
            self.start_source(CameraSource(int(data), w, h))

    def find_cameras(self) -> list[int]:
        """Probe cameras 0..3 and list the ones that open (plus the video-file entry)."""
        if self.running:
            return []
        QtWidgets.QApplication.setOverrideCursor(QtCore.Qt.CursorShape.WaitCursor)
        try:
            found = list_cameras(4)
        finally:
            QtWidgets.QApplication.restoreOverrideCursor()
        self.source.clear()
        for i in found:
            self.source.addItem(f"Camera {i}", i)
        self.source.addItem("Video file as camera…", "file")
        self.source_label.setText(f"Found {len(found)} camera(s)." if found else
                                  "No camera found: connect one, or play a video file.")
        return found

    def start_source(self, source: FrameSource, analysis_hz: float = 10.0,
                     segment: bool = True) -> None:
        """Start showing ``source`` (any :class:`FrameSource`) through the app's worker."""
        self.stop_source()
        self.coverage.reset()
        self.frames_seen = 0
        self.worker = JobWorker(capture_job(source, self.recorder, analysis_hz, segment),
                                parent=self)
        self.worker.item.connect(self.on_item)
        self.worker.failed.connect(self.on_failed)
        self.worker.finished.connect(self.on_finished)
        self.worker.finished.connect(self.worker.deleteLater)  # no finished workers pile up
        self.worker.start()
        self.start_button.setText("Stop")
        self.record_button.setEnabled(True)
        self.stats_label.setText(f"Starting {source.name}…")
        self.source_label.setText(f"Showing: {source.name}")

    def stop_source(self, wait_ms: int = 5000) -> None:
        if self.worker is None:
            return
        self.recorder.stop()
        self.worker.cancel()
        self.worker.wait(wait_ms)
        QtCore.QCoreApplication.sendPostedEvents()
        self.worker = None
        self._show_idle()

    # -- slots (GUI thread) ----------------------------------------------------------------
    @QtCore.Slot(object)
    def on_item(self, item: object) -> None:
        if isinstance(item, CaptureFrame):
            self.last_frame = item
            self.frames_seen += 1
            self.view.set_image(item.display)
            self.coverage.add(item.analysis.yaw_deg, item.time_s, item.analysis.person_in_view)
            self.coverage_widget.update()
            self._update_missing()
            a = item.analysis
            behind = self.coverage.behind  # turned away on purpose: no "face lost" warning
            self._set_warnings([w for w in a.warnings if not (behind and w == WARN_FACE)])
            yaw = ("back" if behind else "—") if a.yaw_deg is None else f"{a.yaw_deg:+.0f}°"
            self.stats_label.setText(f"yaw {yaw} · sharpness {a.sharpness:.0f} · "
                                     f"light {a.brightness:.0f} · {item.fps:.0f} fps")
            if item.recording:
                self.record_label.setText(f"Recording {Path(item.recording).name}: "
                                          f"{item.recorded_frames} frames")
        elif isinstance(item, RecordingDone):
            self.on_recording_done(item)

    @QtCore.Slot(str, str)
    def on_failed(self, message: str, details: str) -> None:
        show_error(self, "Capture failed", message, details)

    def _show_idle(self) -> None:
        """Controls and labels for 'no source running'."""
        self.start_button.setText("Start camera")
        self.record_button.setEnabled(False)
        self.record_button.setText("● Record")
        self.source_label.setText("No source running.")
        self._set_warnings([], idle=True)

    @QtCore.Slot()
    def on_finished(self) -> None:
        if self.worker is not None and self.sender() is not self.worker:
            return  # a stopped earlier source finishing late
        self.worker = None
        self._show_idle()

    def on_recording_done(self, done: RecordingDone) -> None:
        self.last_recording = done.path
        project = self.state.project
        if project is None or done.frames == 0 or self.state.busy:
            self.record_label.setText(f"Recorded {done.frames} frames to {done.path}.")
            return
        try:
            project.import_source(done.path)
        except Exception as exc:  # noqa: BLE001
            show_error(self, "Recording not imported", str(exc))
            return
        self.record_label.setText(f"Recorded {done.frames} frames; it is now the project's "
                                  "input. Review it on the Review page.")
        self.state.notify_changed()

    # -- recording and importing -----------------------------------------------------------
    def toggle_record(self) -> None:
        if self.recorder.target is not None:
            self.recorder.stop()
            self.record_button.setText("● Record")
            return
        project = self.state.project
        if project is None:
            show_error(self, "No project", "Create or open a project first (File ▸ New project); "
                       "recordings are saved inside it.")
            return
        path = project.root / "recordings" / time.strftime("capture-%Y%m%d-%H%M%S.mp4")
        self.recorder.start(path)
        self.record_button.setText("■ Stop recording")
        self.record_label.setText(f"Recording to {path.name}…")

    def open_video(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open a video", "", "Videos (*.mp4 *.mov *.avi *.mkv *.webm);;All files (*)")
        if path:
            self.import_source(Path(path))

    def open_folder(self) -> None:
        path = QtWidgets.QFileDialog.getExistingDirectory(self, "Open an image folder")
        if path:
            self.import_source(Path(path))

    def import_source(self, path: Path) -> bool:
        """Make ``path`` (video or image folder) the project's input; asks for a project
        folder first when none is open."""
        if self.state.busy:
            show_error(self, "Busy", "A reconstruction is running; wait for it or cancel it "
                       "before changing the project's input.")
            return False
        path = Path(path)
        try:
            # a README or a broken file must not become the input: cv2.VideoCapture has to
            # open it and decode a frame (an image folder: its first image has to read)
            check_source(path)
        except Exception as exc:  # noqa: BLE001
            show_error(self, "Cannot import", f"{exc}\n\nThe project's input is unchanged.")
            return False
        if self.state.project is None:
            window = self.window()
            if not hasattr(window, "new_project"):
                show_error(self, "No project", "Create or open a project first.")
                return False
            if not window.new_project():
                return False
        try:
            self.state.project.import_source(path)
        except Exception as exc:  # noqa: BLE001
            show_error(self, "Could not import", str(exc))
            return False
        self.record_label.setText(f"{path.name} is now the project's input.")
        self.state.notify_changed()
        return True

    # -- helpers ---------------------------------------------------------------------------
    def _update_missing(self) -> None:
        cov = self.coverage
        if not cov.missing_ranges():
            self.missing_label.setText("All head-turn ranges captured, the back included.")
            return
        text = f"Still missing: {cov.describe_missing()}."
        if cov.fraction("back") == 0.0:
            text += (" The back of the head has not been seen: keep turning past your shoulder "
                     "until the camera sees the back, or it will be inferred from the sides.")
        self.missing_label.setText(text)

    def _set_warnings(self, active: list[str], idle: bool = False) -> None:
        for key, lab in self.warning_labels.items():
            if idle:
                lab.setText(f"–  {WARNINGS[key]}")
                lab.setStyleSheet("color: #777;")
            elif key in active:
                lab.setText(f"⚠  {WARNINGS[key]}")
                lab.setStyleSheet("color: #e0442f; font-weight: bold;")
            else:
                lab.setText(f"✓  {OK_TEXT[key]}")
                lab.setStyleSheet("color: #2f9e4f;")
            lab.setToolTip("active" if key in active else "ok")

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.stop_source()
        super().closeEvent(event)
