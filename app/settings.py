"""User settings (QSettings) and the settings dialog; recent projects live here too."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from PySide6 import QtCore, QtWidgets

from engine.pipeline import PRESETS

ORGANIZATION = "Strandcap"
APPLICATION = "Strandcap Studio"
MAX_RECENT = 8


@dataclass
class Preferences:
    """Values the settings dialog edits.

    Attributes:
        preset: default reconstruction preset ("preview", "standard", "high").
        device: "auto", "cpu" or "cuda" (CUDA only when this torch build sees a GPU).
        preview_rate: most 3D/preview updates per second during a run (1..30).
        max_display_strands: strands drawn in the live 3D view at most (a random subset beyond).
        camera_index: OpenCV camera index used by the Capture page.
        capture_width: requested camera width in pixels (height follows from the resolution list).
        capture_height: requested camera height in pixels.
        projects_dir: default folder offered for new projects.
    """

    preset: str = "standard"
    device: str = "auto"
    preview_rate: float = 4.0
    max_display_strands: int = 20000
    camera_index: int = 0
    capture_width: int = 1280
    capture_height: int = 720
    projects_dir: str = str(Path.home() / "Strandcap")


class AppSettings:
    """Typed access to QSettings. ``path`` selects an INI file (tests use a temporary one)."""

    def __init__(self, path: str | Path | None = None) -> None:
        if path is None:
            self.qs = QtCore.QSettings(ORGANIZATION, APPLICATION)
        else:
            self.qs = QtCore.QSettings(str(path), QtCore.QSettings.Format.IniFormat)

    def preferences(self) -> Preferences:
        prefs = Preferences()
        for f in fields(Preferences):
            raw = self.qs.value(f"prefs/{f.name}")
            if raw is None:
                continue
            try:
                value = type(getattr(prefs, f.name))(raw)
            except (TypeError, ValueError):
                continue
            setattr(prefs, f.name, value)
        return prefs

    def set_preferences(self, prefs: Preferences) -> None:
        for f in fields(Preferences):
            self.qs.setValue(f"prefs/{f.name}", getattr(prefs, f.name))
        self.qs.sync()

    def recent_projects(self) -> list[str]:
        raw = self.qs.value("recent/projects") or []
        if isinstance(raw, str):
            raw = [raw]
        return [str(p) for p in raw if p]

    def add_recent_project(self, path: str | Path) -> None:
        path = str(Path(path).resolve())
        items = [p for p in self.recent_projects() if p != path]
        self.qs.setValue("recent/projects", [path, *items][:MAX_RECENT])
        self.qs.sync()

    def clear_recent_projects(self) -> None:
        self.qs.setValue("recent/projects", [])
        self.qs.sync()


def cuda_available() -> bool:
    try:
        import torch
        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001 - a broken torch install only hides the CUDA choice
        return False


class SettingsDialog(QtWidgets.QDialog):
    """Edits :class:`Preferences`; :meth:`preferences` returns the values shown."""

    def __init__(self, prefs: Preferences, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        form = QtWidgets.QFormLayout()
        self.preset = QtWidgets.QComboBox()
        self.preset.addItems(list(PRESETS))
        self.preset.setCurrentText(prefs.preset)
        self.device = QtWidgets.QComboBox()
        self.device.addItems(["auto", "cpu"] + (["cuda"] if cuda_available() else []))
        self.device.setCurrentText(prefs.device if self.device.findText(prefs.device) >= 0
                                   else "auto")
        self.rate = QtWidgets.QDoubleSpinBox()
        self.rate.setRange(1.0, 30.0)
        self.rate.setValue(prefs.preview_rate)
        self.rate.setSuffix(" per s")
        self.strands = QtWidgets.QSpinBox()
        self.strands.setRange(100, 200000)
        self.strands.setSingleStep(1000)
        self.strands.setValue(prefs.max_display_strands)
        self.camera = QtWidgets.QSpinBox()
        self.camera.setRange(0, 15)
        self.camera.setValue(prefs.camera_index)
        self.resolution = QtWidgets.QComboBox()
        for w, h in ((640, 480), (1280, 720), (1920, 1080)):
            self.resolution.addItem(f"{w} x {h}", f"{w}x{h}")
        idx = self.resolution.findData(f"{prefs.capture_width}x{prefs.capture_height}")
        self.resolution.setCurrentIndex(max(idx, 0))
        self.projects_dir = QtWidgets.QLineEdit(prefs.projects_dir)
        browse = QtWidgets.QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.projects_dir)
        row.addWidget(browse)
        form.addRow("Default preset", self.preset)
        form.addRow("Device", self.device)
        form.addRow("Live preview updates", self.rate)
        form.addRow("Strands drawn in 3D view", self.strands)
        form.addRow("Camera index", self.camera)
        form.addRow("Camera resolution", self.resolution)
        form.addRow("Projects folder", row)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Ok
                                             | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def _browse(self) -> None:
        d = QtWidgets.QFileDialog.getExistingDirectory(self, "Projects folder",
                                                       self.projects_dir.text())
        if d:
            self.projects_dir.setText(d)

    def preferences(self) -> Preferences:
        w, h = (int(v) for v in self.resolution.currentData().split("x"))
        return Preferences(preset=self.preset.currentText(), device=self.device.currentText(),
                           preview_rate=float(self.rate.value()),
                           max_display_strands=int(self.strands.value()),
                           camera_index=int(self.camera.value()), capture_width=int(w),
                           capture_height=int(h), projects_dir=self.projects_dir.text())
