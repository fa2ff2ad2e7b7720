"""Welcome screen, shown while no project is open: New project, Open project, Open the sample
(the embedded capture ``resources/sample/capture.mp4``, as ``strandcap demo`` uses it), and the
recent projects."""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtWidgets


def sample_capture() -> Path | None:
    """The embedded sample capture (``engine.resources.sample_dir() / "capture.mp4"``), or None
    when this build has none."""
    try:
        from engine.resources import sample_dir

        p = Path(sample_dir()) / "capture.mp4"
    except Exception:  # noqa: BLE001 - no resources in this build
        return None
    return p if p.is_file() else None


class WelcomePage(QtWidgets.QWidget):
    """Three big buttons and the recent projects. Emits what the user picked; the main window
    does it (:attr:`newRequested`, :attr:`openRequested`, :attr:`sampleRequested`,
    :attr:`recentRequested` with the folder, :attr:`skipRequested`)."""

    newRequested = QtCore.Signal()
    openRequested = QtCore.Signal()
    sampleRequested = QtCore.Signal()
    recentRequested = QtCore.Signal(str)
    skipRequested = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        title = QtWidgets.QLabel("<h1>Strandcap Studio</h1>")
        title.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        intro = QtWidgets.QLabel("Film a head turning in front of a still camera (or walk around "
                                 "it), then turn the video into 3D hair strands and export them "
                                 "to Alembic, USD or OBJ.")
        intro.setWordWrap(True)
        intro.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.new_button = self._big("New project…", "A named project folder; then record or "
                                    "open a video on the Capture page")
        self.open_button = self._big("Open project…", "A project folder made earlier")
        self.sample_button = self._big("Open the sample", "A short rendered head turn shipped "
                                       "with Strandcap, as a new project")
        self.sample_button.setEnabled(sample_capture() is not None)
        if not self.sample_button.isEnabled():
            self.sample_button.setToolTip("This build has no sample capture")
        self.new_button.clicked.connect(self.newRequested)
        self.open_button.clicked.connect(self.openRequested)
        self.sample_button.clicked.connect(self.sampleRequested)
        buttons = QtWidgets.QHBoxLayout()
        for b in (self.new_button, self.open_button, self.sample_button):
            buttons.addWidget(b)
        self.recent = QtWidgets.QListWidget()
        self.recent.setMaximumHeight(150)
        self.recent.itemActivated.connect(self._recent_activated)
        self.recent_label = QtWidgets.QLabel("<b>Recent projects</b> (double-click to open)")
        self.skip_button = QtWidgets.QPushButton("Continue without a project (try the camera)")
        self.skip_button.setFlat(True)
        self.skip_button.clicked.connect(self.skipRequested)
        col = QtWidgets.QVBoxLayout()
        col.addStretch(1)
        col.addWidget(title)
        col.addWidget(intro)
        col.addSpacing(18)
        col.addLayout(buttons)
        col.addSpacing(18)
        col.addWidget(self.recent_label)
        col.addWidget(self.recent)
        col.addWidget(self.skip_button, 0, QtCore.Qt.AlignmentFlag.AlignCenter)
        col.addStretch(2)
        box = QtWidgets.QWidget()
        box.setLayout(col)
        box.setMaximumWidth(760)
        layout = QtWidgets.QHBoxLayout(self)
        layout.addStretch(1)
        layout.addWidget(box, 4)
        layout.addStretch(1)

    @staticmethod
    def _big(text: str, tip: str) -> QtWidgets.QPushButton:
        b = QtWidgets.QPushButton(text)
        b.setToolTip(tip)
        b.setMinimumHeight(64)
        b.setStyleSheet("QPushButton { font-size: 15px; padding: 8px 14px; }")
        return b

    def set_recent(self, paths: list[str]) -> None:
        self.recent.clear()
        for p in paths:
            item = QtWidgets.QListWidgetItem(p)
            ok = Path(p, "project.json").is_file()
            if not ok:
                item.setFlags(item.flags() & ~QtCore.Qt.ItemFlag.ItemIsEnabled)
                item.setToolTip("No project there any more")
            self.recent.addItem(item)
        self.recent.setVisible(bool(paths))
        self.recent_label.setVisible(bool(paths))

    @QtCore.Slot(QtWidgets.QListWidgetItem)
    def _recent_activated(self, item: QtWidgets.QListWidgetItem) -> None:
        self.recentRequested.emit(item.text())
