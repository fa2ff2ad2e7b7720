"""Review page: the keyframe strip; for the selected frame, layers (image, hair and bust masks,
landmarks, orientation map); a brush that adds or removes hair-mask pixels, saved into the
project and used by the next run; excluding a frame.

Works with whatever preprocessing stages exist: a layer whose stage is not in this build, or
has not run yet for the project's config, is disabled and the banner says which. Without a
keyframes result the strip shows evenly spaced frames of the project's input (excluding works;
masks and the brush need the keyframes stage)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from engine.pipeline import PRESETS

from app import artifacts as art
from app import quality
from app.dialogs import show_error
from app.state import AppState
from app.views.image_view import ImageView, to_qimage

CAMERA_MODES = (
    ("auto", "Automatic", "Chooses from the footage: orbit when the background moves, turn when "
     "the head turns, else landmark poses"),
    ("turn", "Head turns, camera still", "Structure from motion on the person only"),
    ("orbit", "Camera moves around", "Structure from motion on the whole frame"),
    ("landmarks", "Face landmarks only", "Head poses from the face landmarks, no structure from "
     "motion (fast, less accurate)"),
    ("colmap", "Import COLMAP model", "Known cameras from a COLMAP sparse model folder"),
    ("transforms", "Import transforms.json", "Known cameras from a nerfstudio / instant-ngp "
     "transforms.json"))
CHECK_STYLE_WARN = "background:#3a2a1c; color:#f0b35a; padding:6px; border-radius:3px;"
CHECK_STYLE_OK = "background:#1f2b22; color:#8fd19e; padding:6px; border-radius:3px;"

LAYER_STAGES = {"hair": "masks", "bust": "masks", "landmarks": "landmarks",
                "orientation": "orientation"}
HAIR_TINT = np.array([255, 60, 170], np.float32)
BUST_TINT = np.array([60, 140, 255], np.float32)


def newest_artifact(project, stage: str, inputs: dict[str, str]):
    """The most recently finished artifact of ``stage`` whose done.json records these input
    keys (any config), or None."""
    from engine.pipeline import DONE, Artifact, read_json

    best = None
    folder = project.cache_dir / stage
    if not folder.is_dir():
        return None
    for done_file in folder.glob(f"*/{DONE}"):
        try:
            done = read_json(done_file)
        except (OSError, ValueError):
            continue
        if any((done.get("inputs") or {}).get(k) != v for k, v in inputs.items()):
            continue
        t = float(done.get("finished_at", 0.0))
        if best is None or t > best[0]:
            best = (t, Artifact(stage, done_file.parent.name, done_file.parent, done))
    return None if best is None else best[1]


@dataclass
class FrameEntry:
    name: str                 # keyframe name ("000"), or "src-<index>" in source mode
    source_index: int
    image: np.ndarray | None  # filled in source mode; keyframes load on demand


class BrushCanvas(ImageView):
    """An :class:`ImageView` that paints into an edit mask (uint8, image size) with the mouse.

    ``value`` is the value painted (255 add hair, 0 remove, 128 restore computed; None = off).
    Emits :attr:`stroked` while painting and :attr:`strokeFinished` on release. Before each
    stroke (and before :meth:`push_undo` by a caller, e.g. "Clear edits") the edit is copied
    onto an undo stack of at most :attr:`undo_limit` steps; :meth:`undo` takes the newest back.
    The stack belongs to the frame being edited: setting :attr:`edit` to another frame's edit
    empties it.
    """

    stroked = QtCore.Signal()
    strokeFinished = QtCore.Signal()
    undoRequested = QtCore.Signal()   # Ctrl+Z while the canvas has the keyboard focus

    undo_limit = 30

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent, placeholder="No frame selected.")
        self._edit: np.ndarray | None = None
        self.undo_stack: list[np.ndarray] = []
        self._in_stroke = False
        self.value: int | None = None
        self.radius = 12
        self._last: tuple[int, int] | None = None
        self._hover: QtCore.QPointF | None = None
        self.setMouseTracking(True)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)

    def keyPressEvent(self, e: QtGui.QKeyEvent) -> None:  # noqa: N802
        # the page's Ctrl+Z shortcut needs an active window; a key press on the focused
        # canvas (e.g. a window manager that has not activated the window yet) undoes too
        if e.matches(QtGui.QKeySequence.StandardKey.Undo):
            self.undoRequested.emit()
            e.accept()
            return
        super().keyPressEvent(e)

    def paintEvent(self, e: QtGui.QPaintEvent) -> None:  # noqa: N802 - brush outline on top
        super().paintEvent(e)
        r = self.target_rect()
        if self._hover is None or self.value is None or r.isEmpty() or not self.image_shape:
            return
        scale = r.width() / self.image_shape[1]
        p = QtGui.QPainter(self)
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        p.setPen(QtGui.QPen(QtGui.QColor(255, 255, 255, 200), 1.5))
        p.drawEllipse(self._hover, self.radius * scale, self.radius * scale)
        p.end()

    @property
    def edit(self) -> np.ndarray | None:
        return self._edit

    @edit.setter
    def edit(self, value: np.ndarray | None) -> None:
        self._edit = value
        self.undo_stack = []
        self._in_stroke = False

    def push_undo(self) -> None:
        """Remember the edit as it is now (one undo step)."""
        if self._edit is None:
            return
        self.undo_stack.append(self._edit.copy())
        del self.undo_stack[:-self.undo_limit]

    def undo(self) -> bool:
        """Put the edit back as it was before the last stroke; False when there is nothing to
        undo. The caller saves the edit (as after a stroke)."""
        if self._edit is None or not self.undo_stack:
            return False
        self._edit[:] = self.undo_stack.pop()
        self._last = None
        self._in_stroke = False
        return True

    def paint_at(self, x: float, y: float, connect: bool = False) -> None:
        """Paint a disc of :attr:`radius` at image pixel (x, y) (a line from the previous
        point when ``connect``); the first point of a stroke records an undo step."""
        if self.edit is None or self.value is None:
            return
        if not self._in_stroke:
            self.push_undo()
            self._in_stroke = True
        p = (int(round(x)), int(round(y)))
        if connect and self._last is not None:
            cv2.line(self.edit, self._last, p, int(self.value), thickness=2 * self.radius)
        cv2.circle(self.edit, p, self.radius, int(self.value), -1)
        self._last = p
        self.stroked.emit()

    def end_stroke(self) -> None:
        self._in_stroke = False
        if self._last is not None:
            self._last = None
            self.strokeFinished.emit()

    def mousePressEvent(self, e: QtGui.QMouseEvent) -> None:  # noqa: N802
        pos = self.widget_to_image(e.position())
        self.setFocus()
        if pos and e.button() == QtCore.Qt.MouseButton.LeftButton:
            self._last = None
            self.paint_at(*pos)

    def mouseMoveEvent(self, e: QtGui.QMouseEvent) -> None:  # noqa: N802
        self._hover = e.position()
        self.update()
        pos = self.widget_to_image(e.position())
        if pos and e.buttons() & QtCore.Qt.MouseButton.LeftButton:
            self.paint_at(*pos, connect=True)

    def mouseReleaseEvent(self, e: QtGui.QMouseEvent) -> None:  # noqa: N802
        self.end_stroke()

    def leaveEvent(self, e: QtCore.QEvent) -> None:  # noqa: N802
        self._hover = None
        self.update()


class ReviewPage(QtWidgets.QWidget):
    """See module docstring. :attr:`runRequested` asks the window to run the graph up to the
    named stage (the last preprocessing stage in this build)."""

    runRequested = QtCore.Signal(str)

    def __init__(self, state: AppState, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.mode = "none"          # "keyframes" | "source" | "none"
        self.entries: list[FrameEntry] = []
        self.paths: dict[str, Path | None] = {}
        self.current: FrameEntry | None = None
        self._frame: np.ndarray | None = None
        self._hair: np.ndarray | None = None
        self._bust: np.ndarray | None = None
        self._orient: np.ndarray | None = None
        self._points: np.ndarray | None = None
        self._landmarks: dict[str, np.ndarray] | None = None
        self._undo: dict[str, list[np.ndarray]] = {}   # frame name -> its undo steps
        self.warnings: list[quality.Warning_] = []

        self.banner = QtWidgets.QLabel()
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("background:#2a2d33; color:#e6c86e; padding:6px;")
        self._shown = None  # the project the page was last filled for
        self.preset = QtWidgets.QComboBox()
        self.preset.addItems(list(PRESETS))
        self.preset.setCurrentText(state.prefs.preset)
        self.preset.setToolTip("The preset the preprocessing runs with and whose results are "
                               "shown; the same preset as on the Reconstruct page")
        self.preset.currentTextChanged.connect(self._preset_changed)
        self.run_button = QtWidgets.QPushButton("Run preprocessing")
        self.run_button.setToolTip("Run the preprocessing stages with this preset (on the "
                                   "Reconstruct page)")
        self.run_button.clicked.connect(self.request_run)
        self.strip = QtWidgets.QListWidget()
        self.strip.setViewMode(QtWidgets.QListView.ViewMode.IconMode)
        self.strip.setFlow(QtWidgets.QListView.Flow.LeftToRight)
        self.strip.setWrapping(False)
        self.strip.setIconSize(QtCore.QSize(96, 96))
        self.strip.setFixedHeight(140)
        self.strip.setMovement(QtWidgets.QListView.Movement.Static)
        self.strip.currentRowChanged.connect(self.select_frame)
        self.canvas = BrushCanvas()
        self.canvas.stroked.connect(self.redraw)
        self.canvas.strokeFinished.connect(self.save_edit)
        self.canvas.strokeFinished.connect(self._update_undo)
        self.canvas.undoRequested.connect(self.undo_edit)

        self._build_layout(self._layers_box(), self._brush_box(), self._frame_box(),
                           self._cameras_box())
        state.projectChanged.connect(self.refresh)
        state.busyChanged.connect(self._update_controls)
        state.editsChanged.connect(self.on_edits_changed)
        state.warningsChanged.connect(self.update_checks)
        self.refresh()

    def _layers_box(self) -> QtWidgets.QGroupBox:
        """The layer check boxes ("Show")."""
        self.layer_boxes: dict[str, QtWidgets.QCheckBox] = {}
        layers = QtWidgets.QGroupBox("Show")
        ll = QtWidgets.QGridLayout(layers)   # two columns: the side panel fits the window
        for i, (key, text) in enumerate((("image", "Image"), ("hair", "Hair mask"),
                                         ("bust", "Bust mask"), ("landmarks", "Landmarks"),
                                         ("orientation", "Orientation map"))):
            box = QtWidgets.QCheckBox(text)
            box.setChecked(key in ("image", "hair"))
            box.toggled.connect(self.redraw)
            self.layer_boxes[key] = box
            ll.addWidget(box, i // 2, i % 2)
        return layers

    def _brush_box(self) -> QtWidgets.QGroupBox:
        """The hair-mask brush: mode, size, undo and clear."""
        brush = QtWidgets.QGroupBox("Hair-mask brush")
        bl = QtWidgets.QVBoxLayout(brush)
        radios = QtWidgets.QGridLayout()
        self.brush_size = QtWidgets.QSpinBox()
        self.brush_size.setRange(1, 200)
        self.brush_size.setValue(12)
        self.brush_size.setSuffix(" px radius")
        self.brush_size.valueChanged.connect(self._brush_changed)
        self.brush_buttons: dict[str, QtWidgets.QRadioButton] = {}
        group = QtWidgets.QButtonGroup(self)
        for i, (key, text) in enumerate((("off", "Off"), ("add", "Add hair"),
                                         ("remove", "Remove hair"), ("restore", "Restore"))):
            b = QtWidgets.QRadioButton(text)
            b.toggled.connect(self._brush_changed)
            group.addButton(b)
            self.brush_buttons[key] = b
            radios.addWidget(b, i // 2, i % 2)
        self.brush_buttons["restore"].setToolTip("Paint back the computed mask")
        bl.addLayout(radios)
        self.brush_buttons["off"].setChecked(True)
        bl.addWidget(self.brush_size)
        self.undo_button = QtWidgets.QPushButton("Undo stroke")
        self.undo_button.setToolTip("Undo the last brush stroke on this frame (Ctrl+Z)")
        self.undo_button.clicked.connect(self.undo_edit)
        self.clear_edit_button = QtWidgets.QPushButton("Clear edits")
        self.clear_edit_button.setToolTip("Remove every edit of this frame (undo brings them "
                                          "back)")
        self.clear_edit_button.clicked.connect(self.clear_edit)
        edit_row = QtWidgets.QHBoxLayout()
        edit_row.addWidget(self.undo_button)
        edit_row.addWidget(self.clear_edit_button)
        bl.addLayout(edit_row)
        self.undo_shortcut = QtGui.QShortcut(QtGui.QKeySequence.StandardKey.Undo, self)
        self.undo_shortcut.setContext(QtCore.Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.undo_shortcut.activated.connect(self.undo_edit)
        self.brush_note = QtWidgets.QLabel("Saved when you release the mouse; used by the "
                                           "next run.")
        self.brush_note.setWordWrap(True)
        bl.addWidget(self.brush_note)
        self.brush_group = brush
        return brush

    def _frame_box(self) -> QtWidgets.QGroupBox:
        """The frame's exclude box and information."""
        frame_box = QtWidgets.QGroupBox("Frame")
        fl = QtWidgets.QVBoxLayout(frame_box)
        self.exclude_box = QtWidgets.QCheckBox("Exclude this frame")
        self.exclude_box.toggled.connect(self.set_excluded)
        self.frame_info = QtWidgets.QLabel()
        self.frame_info.setWordWrap(True)
        fl.addWidget(self.exclude_box)
        fl.addWidget(self.frame_info)
        return frame_box

    def _cameras_box(self) -> QtWidgets.QGroupBox:
        """The cameras mode and the import path."""
        self.cameras_box = QtWidgets.QGroupBox("Cameras")
        cb = QtWidgets.QFormLayout(self.cameras_box)
        self.cameras_mode = QtWidgets.QComboBox()
        for key, text, tip in CAMERA_MODES:
            self.cameras_mode.addItem(text, key)
            self.cameras_mode.setItemData(self.cameras_mode.count() - 1, tip,
                                          QtCore.Qt.ItemDataRole.ToolTipRole)
        self.cameras_mode.setToolTip("How the cameras stage finds the cameras (the option "
                                     "cameras.mode of the project's config)")
        self.cameras_mode.currentIndexChanged.connect(self._cameras_mode_changed)
        self.import_path = QtWidgets.QLineEdit()
        self.import_path.setPlaceholderText("COLMAP sparse folder or transforms.json")
        self.import_path.editingFinished.connect(self._import_path_changed)
        self.import_browse = QtWidgets.QPushButton("…")
        self.import_browse.setFixedWidth(28)
        self.import_browse.setToolTip("Pick the COLMAP model folder or the transforms.json")
        self.import_browse.clicked.connect(self._browse_import)
        path_row = QtWidgets.QHBoxLayout()
        path_row.addWidget(self.import_path, 1)
        path_row.addWidget(self.import_browse)
        cb.addRow("Mode", self.cameras_mode)
        self.import_label = QtWidgets.QLabel("Import")
        cb.addRow(self.import_label, path_row)
        return self.cameras_box

    def _build_layout(self, *side_boxes: QtWidgets.QGroupBox) -> None:
        """The page: banner, preset and run button on top, the checks line, the canvas with
        the side panel (``side_boxes``, scrolled), the frame strip at the bottom."""
        side = QtWidgets.QVBoxLayout()
        for w in side_boxes:
            side.addWidget(w)
        side.addStretch(1)
        side_w = QtWidgets.QWidget()
        side_w.setLayout(side)
        side_scroll = QtWidgets.QScrollArea()   # scrolls rather than forcing a taller window
        side_scroll.setWidget(side_w)
        side_scroll.setWidgetResizable(True)
        side_scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        side_scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        side_scroll.setFixedWidth(300)
        middle = QtWidgets.QHBoxLayout()
        middle.addWidget(self.canvas, 1)
        middle.addWidget(side_scroll)
        layout = QtWidgets.QVBoxLayout(self)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.banner, 1)
        self.preset_label = QtWidgets.QLabel("Preset")
        top.addWidget(self.preset_label)
        top.addWidget(self.preset)
        top.addWidget(self.run_button)
        layout.addLayout(top)
        self.checks = QtWidgets.QLabel()
        self.checks.setWordWrap(True)
        self.checks.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.checks.setVisible(False)
        layout.addWidget(self.checks)
        layout.addLayout(middle, 1)
        layout.addWidget(self.strip)

    # -- loading ---------------------------------------------------------------------------
    @QtCore.Slot()
    def refresh(self, *_args: object) -> None:
        """Re-read the project's artifacts and rebuild the strip."""
        project = self.state.project
        if project is not None and project is not self._shown:
            saved = (project.manifest.get("config") or {}).get("preset")
            if saved in PRESETS:  # the preset of the project's last run
                self.preset.blockSignals(True)
                self.preset.setCurrentText(saved)
                self.preset.blockSignals(False)
        if project is not self._shown:
            self._undo = {}   # undo steps are per project and frame
        self._shown = project
        self.entries, self.paths, self.current = [], {}, None
        self.mode = "none"
        self.stale: set[str] = set()
        self._landmarks = None
        self.strip.blockSignals(True)
        self.strip.clear()
        self.strip.blockSignals(False)
        self.canvas.edit = None
        self.canvas.set_image(None)
        notes: list[str] = []
        if project is None:
            self.mode = "none"
            self.banner.setText("No project open. Create one (File ▸ New project) or record on "
                                "the Capture page.")
            self._update_controls()
            self._load_cameras_options()
            self.update_checks()
            return
        self.paths, notes, self.stale = self._resolve(project)
        if self.paths.get("keyframes") is not None:
            try:
                meta, frame_names = art.load_keyframes(self.paths["keyframes"])
                by_name = {str(f["name"]): f for f in meta.get("frames", [])}
                self.entries = [FrameEntry(n, int(by_name.get(n, {}).get("source_index", i)),
                                           None) for i, n in enumerate(frame_names)]
                self.mode = "keyframes"
            except Exception as exc:  # noqa: BLE001
                notes.append(f"keyframes unreadable: {exc}")
        if self.mode != "keyframes" or not self.entries:
            self.mode = "source"
            try:
                frames = art.sample_source_frames(project.source_path)
                self.entries = [FrameEntry(f"src-{i}", i, img) for i, img in frames]
                notes.insert(0, "Showing evenly spaced frames of the input until keyframes are "
                             "computed; masks and the brush need the preprocessing stages.")
            except Exception as exc:  # noqa: BLE001
                self.mode = "none"
                notes.insert(0, str(exc))
        else:
            self.mode = "keyframes"
        self.banner.setText(" · ".join(notes) if notes else
                            "All preprocessing results are available.")
        self.banner.setVisible(True)
        self._fill_strip()
        self._update_controls()
        self._load_cameras_options()
        self.update_checks()
        if self.entries:
            self.strip.setCurrentRow(0)

    @QtCore.Slot(str)
    def set_preset(self, preset: str) -> None:
        """Show ``preset`` (the Reconstruct page's); re-reads the results when it changes."""
        if preset and preset != self.preset.currentText():
            self.preset.setCurrentText(preset)

    @QtCore.Slot(str)
    def _preset_changed(self, _preset: str) -> None:
        self._refresh_keeping_row()

    def _refresh_keeping_row(self) -> None:
        row = self.strip.currentRow()
        self.refresh()
        if 0 <= row < self.strip.count() and row != self.strip.currentRow():
            self.strip.setCurrentRow(row)

    @QtCore.Slot()
    def on_edits_changed(self) -> None:
        """A mask edit or exclusion changed stage keys: re-read which results are current (the
        banner, the layers, "Run preprocessing") without rebuilding the frame being edited."""
        project = self.state.project
        if project is None:
            return
        paths, notes, stale = self._resolve(project)
        if self.mode != "keyframes" or paths != self.paths:
            self._refresh_keeping_row()
            return
        self.stale = stale
        self.banner.setText(" · ".join(notes) if notes else
                            "All preprocessing results are available.")
        self._update_controls()
        self._load_cameras_options()
        self.update_checks()

    # -- capture checks and the cameras option ---------------------------------------------
    @QtCore.Slot()
    def update_checks(self) -> None:
        """The capture-quality and coverage warnings of the finished stages (and those the
        runs logged), shown above the frame before the recording is used."""
        project = self.state.project
        stages = self.state.stages()
        warnings: list[quality.Warning_] = []
        facts: list[str] = []
        have = False
        if project is not None and stages:
            try:
                config = self.state.config(stages, self.preset.currentText(), device="cpu")
            except Exception:  # noqa: BLE001 - a bad saved config: the run says why
                config = None
            if config is not None:
                warnings = quality.project_warnings(project, stages, config)
                facts = quality.capture_facts(project, stages, config)
            have = self.mode == "keyframes"
        for stage, message in self.state.log_warnings:
            if not any(message in w.text for w in warnings):
                warnings.append(quality.Warning_("log", stage, f"{stage}: {message}"))
        self.warnings = warnings
        if not warnings and not have:
            self.checks.setVisible(False)
            return
        if warnings:
            items = "".join(f"<li>{w.text}</li>" for w in warnings)
            self.checks.setText(f"<b>⚠ Capture checks: {len(warnings)} problem"
                                f"{'s' if len(warnings) != 1 else ''} before this recording is "
                                f"used</b><ul style='margin:2px 0 0 -20px'>{items}</ul>")
            self.checks.setStyleSheet(CHECK_STYLE_WARN)
        else:
            extra = f": {'; '.join(facts)}" if facts else ""
            self.checks.setText(f"✓ Capture checks: head turn, face and light look fine{extra}.")
            self.checks.setStyleSheet(CHECK_STYLE_OK)
        self.checks.setVisible(True)

    def _load_cameras_options(self) -> None:
        has = "cameras" in {s.name for s in self.state.stages()}
        self.cameras_box.setVisible(has)
        mode = str(self.state.override("cameras", "mode", "auto"))
        path = str(self.state.override("cameras", "import_path", "") or "")
        self.cameras_mode.blockSignals(True)
        self.cameras_mode.setCurrentIndex(max(0, self.cameras_mode.findData(mode)))
        self.cameras_mode.blockSignals(False)
        self.import_path.setText(path)
        self._show_import_row()

    def _show_import_row(self) -> None:
        importing = self.cameras_mode.currentData() in ("colmap", "transforms")
        for w in (self.import_label, self.import_path, self.import_browse):
            w.setVisible(importing)
        self.cameras_box.setEnabled(self.state.project is not None and not self.state.busy)

    @QtCore.Slot(int)
    def _cameras_mode_changed(self, _index: int) -> None:
        self._show_import_row()
        self.set_cameras_mode(self.cameras_mode.currentData())

    def set_cameras_mode(self, mode: str, import_path: str | None = None) -> bool:
        """Store ``cameras.mode`` (and, for the import modes, ``cameras.import_path``) in the
        project's config overrides; "auto" removes the override. False (with an error box) when
        the engine refuses the value."""
        if self.state.project is None:
            return False
        if import_path is not None:
            self.import_path.setText(import_path)
        path = self.import_path.text().strip() if mode in ("colmap", "transforms") else ""
        try:
            self.state.set_overrides("cameras", {"mode": None if mode == "auto" else mode,
                                                 "import_path": path or None})
        except Exception as exc:  # noqa: BLE001
            show_error(self, "Cameras option not saved", str(exc))
            self._load_cameras_options()
            return False
        idx = self.cameras_mode.findData(mode)
        if idx >= 0 and idx != self.cameras_mode.currentIndex():
            self.cameras_mode.blockSignals(True)
            self.cameras_mode.setCurrentIndex(idx)
            self.cameras_mode.blockSignals(False)
            self._show_import_row()
        return True

    @QtCore.Slot()
    def _import_path_changed(self) -> None:
        if self.cameras_mode.currentData() in ("colmap", "transforms"):
            self.set_cameras_mode(self.cameras_mode.currentData())

    def _browse_import(self) -> None:
        if self.cameras_mode.currentData() == "transforms":
            path, _ = QtWidgets.QFileDialog.getOpenFileName(
                self, "transforms.json", "", "transforms.json (*.json)")
        else:
            path = QtWidgets.QFileDialog.getExistingDirectory(self, "COLMAP sparse model folder")
        if path:
            self.set_cameras_mode(self.cameras_mode.currentData(), path)

    def _resolve(self, project) -> tuple[dict[str, Path | None], list[str], set[str]]:
        """Folders of the preprocessing results to show (current config, else an earlier
        run's marked stale), the banner notes, and the stale stages."""
        stages = self.state.stages()
        paths: dict[str, Path | None] = {}
        notes: list[str] = []
        stale: set[str] = set()
        names = [s.name for s in stages]
        try:
            from engine.pipeline import Project, resolve_artifact

            config = self.state.config(stages, self.preset.currentText())
            keyframes_key = None
            for stage in ("keyframes", "landmarks", "masks", "orientation"):
                if stage not in names:
                    paths[stage] = None
                    notes.append(f"{stage}: not available in this build yet")
                    continue
                a = resolve_artifact(project, stages, config, stage)
                if a is None and stage == "keyframes" and project.manifest.get("excluded_frames"):
                    # frames excluded since the last run: show the keyframes made without
                    # exclusions (excluded ones are marked) until the stages run again
                    probe = Project(project.root, {**project.manifest, "excluded_frames": []})
                    a = resolve_artifact(probe, stages, config, stage)
                    if a is not None:
                        stale.add(stage)
                        notes.append("keyframes: from an earlier run (excluded frames are left "
                                     "out when the stages run again)")
                if a is None and stage != "keyframes" and keyframes_key is not None:
                    # e.g. masks after a brush edit: show the last result made from the same
                    # keyframes until the stage runs again
                    a = newest_artifact(project, stage, {"keyframes": keyframes_key})
                    if a is not None:
                        stale.add(stage)
                        notes.append(f"{stage}: from an earlier run (run again to apply your "
                                     "changes)")
                if stage == "keyframes" and a is not None:
                    keyframes_key = a.key
                paths[stage] = a.path if a is not None else None
                if a is None:
                    notes.append(f"{stage}: not run yet (run it on the Reconstruct page)")
        except Exception as exc:  # noqa: BLE001 - e.g. no source yet
            paths = {k: None for k in ("keyframes", "landmarks", "masks", "orientation")}
            notes = [str(exc)]
        return paths, notes, stale

    def _fill_strip(self) -> None:
        excluded = set(self._excluded())
        self.strip.blockSignals(True)
        for e in self.entries:
            img = e.image
            if img is None:
                try:
                    img = art.load_frame(self.paths["keyframes"], e.name)
                except Exception:  # noqa: BLE001
                    img = np.zeros((96, 96, 3), np.uint8)
            h, w = img.shape[:2]
            s = 96 / max(h, w)
            thumb = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))))
            if e.source_index in excluded:
                thumb = (thumb * 0.35).astype(np.uint8)
            item = QtWidgets.QListWidgetItem(
                QtGui.QIcon(QtGui.QPixmap.fromImage(to_qimage(thumb))),
                f"#{e.source_index}" + (" ✕" if e.source_index in excluded else ""))
            self.strip.addItem(item)
        self.strip.blockSignals(False)

    def _excluded(self) -> list[int]:
        p = self.state.project
        return list(p.manifest.get("excluded_frames", [])) if p is not None else []

    @QtCore.Slot(int)
    def select_frame(self, row: int) -> None:
        if row < 0 or row >= len(self.entries):
            return
        e = self.current = self.entries[row]
        self._hair = self._bust = self._orient = self._points = None
        if self.mode == "keyframes":
            kf = self.paths["keyframes"]
            self._frame = art.load_frame(kf, e.name)
            shape = self._frame.shape[:2]
            if self.paths.get("masks") is not None:
                try:
                    self._hair = art.load_mask(self.paths["masks"], "hair", e.name)
                    self._bust = art.load_mask(self.paths["masks"], "bust", e.name)
                except Exception as exc:  # noqa: BLE001
                    self.frame_info.setText(f"masks unreadable: {exc}")
            if self.paths.get("orientation") is not None:
                try:
                    self._orient = art.orientation_rgb(
                        *art.load_orientation(self.paths["orientation"], e.name))
                except Exception:  # noqa: BLE001
                    self._orient = None
            if self.paths.get("landmarks") is not None:
                try:
                    if self._landmarks is None:
                        self._landmarks = art.load_landmarks(self.paths["landmarks"])
                    lm = self._landmarks
                    idx = [str(n) for n in lm["names"]].index(e.name)
                    if bool(lm["found"][idx]):
                        self._points = lm["points"][idx, :, :2]
                except Exception:  # noqa: BLE001
                    self._points = None
            try:
                self.canvas.edit = art.load_mask_edit(self.state.project.mask_edits_dir,
                                                      e.name, shape)
            except Exception as exc:  # noqa: BLE001
                show_error(self, "Mask edit ignored", str(exc))
                self.canvas.edit = np.full(shape, art.EDIT_KEEP, np.uint8)
            # the frame's undo steps survive re-reading the page (same list, kept per frame)
            steps = self._undo.setdefault(e.name, [])
            if steps and steps[-1].shape != shape:
                steps.clear()
            self.canvas.undo_stack = steps
        else:
            self._frame = e.image
            self.canvas.edit = None
        self._update_undo()
        self.exclude_box.blockSignals(True)
        self.exclude_box.setChecked(e.source_index in self._excluded())
        self.exclude_box.blockSignals(False)
        h, w = self._frame.shape[:2]
        self.frame_info.setText(f"source frame {e.source_index} · {w}x{h}"
                                + (f" · keyframe {e.name}" if self.mode == "keyframes" else ""))
        self._update_controls()
        self.redraw()

    # -- drawing ---------------------------------------------------------------------------
    def composite(self) -> np.ndarray | None:
        """The frame as shown now (RGB uint8) with the enabled layers."""
        if self._frame is None:
            return None
        on = {k: b.isChecked() and b.isEnabled() for k, b in self.layer_boxes.items()}
        out = (self._frame.astype(np.float32) if on["image"]
               else np.full(self._frame.shape, 40.0, np.float32))
        if on["orientation"] and self._orient is not None:
            o = self._orient.astype(np.float32)
            lit = o.max(axis=2, keepdims=True) > 0
            out = np.where(lit, 0.25 * out + 0.75 * o, out)
        if on["bust"] and self._bust is not None:
            a = 0.45 * self._bust[..., None]
            out = out * (1 - a) + BUST_TINT * a
        if on["hair"] and (self._hair is not None or self.canvas.edit is not None):
            mask = (art.apply_edit(self._hair, self.canvas.edit) if self.canvas.edit is not None
                    else self._hair)
            a = 0.5 * mask[..., None]
            out = out * (1 - a) + HAIR_TINT * a
        img = out.clip(0, 255).astype(np.uint8)
        if on["landmarks"] and self._points is not None:
            r = max(1, round(max(img.shape[:2]) / 350))
            for x, y in self._points:
                if np.isfinite(x) and np.isfinite(y):
                    cv2.circle(img, (int(x), int(y)), r, (255, 230, 60), -1)
        return img

    @QtCore.Slot()
    def redraw(self, *_args: object) -> None:
        self.canvas.set_image(self.composite())

    # -- edits -----------------------------------------------------------------------------
    @QtCore.Slot()
    def _brush_changed(self, *_args: object) -> None:
        values = {"off": None, "add": art.EDIT_HAIR, "remove": art.EDIT_NOT_HAIR,
                  "restore": art.EDIT_KEEP}
        for key, b in self.brush_buttons.items():
            if b.isChecked():
                self.canvas.value = values[key]
        self.canvas.radius = int(self.brush_size.value())
        cursor = (QtCore.Qt.CursorShape.CrossCursor if self.canvas.value is not None
                  else QtCore.Qt.CursorShape.ArrowCursor)
        self.canvas.setCursor(cursor)

    @QtCore.Slot()
    def save_edit(self) -> Path | None:
        """Save the current frame's edit into ``project.mask_edits_dir/<name>.png``."""
        if self.current is None or self.canvas.edit is None or self.state.project is None:
            return None
        try:
            saved = art.save_mask_edit(self.state.project.mask_edits_dir, self.current.name,
                                       self.canvas.edit)
        except Exception as exc:  # noqa: BLE001
            show_error(self, "Mask edit not saved", str(exc))
            return None
        self.state.notify_edits()   # the masks (and later stages) are no longer current
        return saved

    def clear_edit(self) -> None:
        if self.canvas.edit is not None and (self.canvas.edit != art.EDIT_KEEP).any():
            self.canvas.push_undo()
            self.canvas.edit[:] = art.EDIT_KEEP
            self.save_edit()
            self.redraw()
        self._update_undo()

    @QtCore.Slot()
    def undo_edit(self) -> bool:
        """Undo the last stroke (or "Clear edits") on this frame and save the result."""
        if self.state.busy or not self.brush_group.isEnabled() or not self.canvas.undo():
            return False
        self.save_edit()
        self.redraw()
        self._update_undo()
        return True

    def _update_undo(self, *_args: object) -> None:
        n = len(self.canvas.undo_stack)
        self.undo_button.setEnabled(n > 0)
        self.undo_button.setText(f"Undo stroke ({n})" if n else "Undo stroke")

    @QtCore.Slot(bool)
    def set_excluded(self, excluded: bool) -> None:
        """Add or remove the current frame's source index in ``excluded_frames`` and save."""
        project, e = self.state.project, self.current
        if project is None or e is None:
            return
        frames = set(int(i) for i in project.manifest.get("excluded_frames", []))
        frames.add(e.source_index) if excluded else frames.discard(e.source_index)
        project.manifest["excluded_frames"] = sorted(frames)
        project.save()
        row = self.entries.index(e)
        item = self.strip.item(row)
        if item is not None:
            item.setText(f"#{e.source_index}" + (" ✕" if excluded else ""))
        self.state.notify_edits()

    def preprocess_target(self) -> str | None:
        """The last preprocessing stage in this build's graph, or None if there is none."""
        names = [s.name for s in self.state.stages()]
        present = [n for n in ("keyframes", "landmarks", "masks", "orientation") if n in names]
        return max(present, key=names.index) if present else None

    @QtCore.Slot()
    def request_run(self) -> None:
        target = self.preprocess_target()
        if target is not None:
            self.runRequested.emit(target)

    @QtCore.Slot()
    def _update_controls(self, *_args: object) -> None:
        """Enable what the loaded results allow; editing waits while a run is in progress
        (the run reads the edits and the excluded frames)."""
        have_kf = self.mode == "keyframes"
        busy = self.state.busy
        for key, box in self.layer_boxes.items():
            if key == "image":
                box.setEnabled(self.mode != "none")
                continue
            stage = LAYER_STAGES[key]
            ok = have_kf and (key == "hair" or self.paths.get(stage) is not None)
            box.setEnabled(ok)
            box.setToolTip("" if ok else f"needs the {stage} stage"
                           + (" (not in this build yet)" if stage not in
                              {s.name for s in self.state.stages()} else " (not run yet)"))
        brush_ok = have_kf and not busy
        self.brush_group.setEnabled(brush_ok)
        self.brush_group.setToolTip("" if brush_ok else
                                    "wait for the run to finish" if busy else
                                    "the brush edits keyframe masks: run the keyframes stage first")
        self.exclude_box.setEnabled(self.current is not None and not busy)
        target = self.preprocess_target()
        missing = any(self.paths.get(n) is None for n in ("keyframes", "landmarks", "masks",
                                                          "orientation")
                      if n in {s.name for s in self.state.stages()})
        self.run_button.setVisible(target is not None)
        self.preset.setVisible(target is not None)
        self.preset_label.setVisible(target is not None)
        self.run_button.setEnabled(target is not None and self.state.project is not None
                                   and not busy
                                   and (missing or bool(self.stale) or self.mode != "keyframes"))
        self.preset.setEnabled(not busy)
        self.cameras_box.setEnabled(self.state.project is not None and not busy)
        self.undo_button.setEnabled(bool(self.canvas.undo_stack) and not busy)
        self.exclude_box.setToolTip("wait for the run to finish" if busy else
                                    "Excluded frames are left out of the next reconstruction run")
