"""Error and question dialogs, the New project dialog and the About box (versions and
licences of bundled assets).

Every modal box here goes through ``QMessageBox.exec`` / ``QDialog.exec``, so tests replace
those and never block."""

from __future__ import annotations

import importlib.metadata as md
import platform
from pathlib import Path

from PySide6 import QtCore, QtWidgets

REPO_ROOT = Path(__file__).resolve().parents[1]


def show_error(parent: QtWidgets.QWidget | None, title: str, message: str,
               details: str = "") -> None:
    """A modal error box: ``message`` is the one-line text, ``details`` (a traceback) folds out."""
    box = QtWidgets.QMessageBox(parent)
    box.setIcon(QtWidgets.QMessageBox.Icon.Critical)
    box.setWindowTitle(title)
    box.setText(message)
    if details:
        box.setDetailedText(details)
    box.exec()


def confirm(parent: QtWidgets.QWidget | None, title: str, message: str,
            yes_text: str = "Yes", no_text: str = "No") -> bool:
    """A modal question; True when the user picks ``yes_text`` (No is the default button)."""
    box = QtWidgets.QMessageBox(parent)
    box.setIcon(QtWidgets.QMessageBox.Icon.Question)
    box.setWindowTitle(title)
    box.setText(message)
    box.setStandardButtons(QtWidgets.QMessageBox.StandardButton.Yes
                           | QtWidgets.QMessageBox.StandardButton.No)
    box.setDefaultButton(QtWidgets.QMessageBox.StandardButton.No)
    box.button(QtWidgets.QMessageBox.StandardButton.Yes).setText(yes_text)
    box.button(QtWidgets.QMessageBox.StandardButton.No).setText(no_text)
    return box.exec() == QtWidgets.QMessageBox.StandardButton.Yes


class NewProjectDialog(QtWidgets.QDialog):
    """Where a new project goes: a parent folder (must exist) and a project name (a new
    folder, created by the app). :meth:`project_path` is ``location / name``; Enter in either
    field accepts only when the name is filled in, so the parent folder itself never becomes
    the project by accident."""

    def __init__(self, location: Path, parent: QtWidgets.QWidget | None = None,
                 name: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle("New project")
        self.location = QtWidgets.QLineEdit(str(location))
        browse = QtWidgets.QPushButton("Browse…")
        browse.setAutoDefault(False)
        browse.clicked.connect(self._browse)
        loc_row = QtWidgets.QHBoxLayout()
        loc_row.addWidget(self.location, 1)
        loc_row.addWidget(browse)
        self.name = QtWidgets.QLineEdit(name)
        self.name.setPlaceholderText("e.g. anna-curly")
        self.result_label = QtWidgets.QLabel()
        self.result_label.setWordWrap(True)
        form = QtWidgets.QFormLayout()
        form.addRow("Project name", self.name)
        form.addRow("Create in", loc_row)
        form.addRow("", self.result_label)
        self.buttons = QtWidgets.QDialogButtonBox(
            QtWidgets.QDialogButtonBox.StandardButton.Ok
            | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        self.ok_button = self.buttons.button(QtWidgets.QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText("Create")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.buttons)
        self.name.textChanged.connect(self._validate)
        self.location.textChanged.connect(self._validate)
        self.name.setFocus()
        self._validate()

    def project_path(self) -> Path | None:
        """``location / name`` when both make a valid new (or empty, or existing project)
        folder, else None."""
        return self._check()[0]

    def _check(self) -> tuple[Path | None, str]:
        name = self.name.text().strip()
        loc = Path(self.location.text().strip()).expanduser()
        if not name:
            return None, "Type a name for the project folder."
        if name in (".", "..") or any(c in name for c in '/\\:*?"<>|'):
            return None, f"\"{name}\" cannot be a folder name."
        if not self.location.text().strip() or not loc.is_dir():
            return None, f"{loc}: no such folder to create the project in."
        path = loc / name
        if path.exists() and not path.is_dir():
            return None, f"{path} is a file."
        if path.is_dir() and any(path.iterdir()) and not (path / "project.json").is_file():
            return None, f"{path} exists and is not empty: choose another name."
        if (path / "project.json").is_file():
            return path, f"Opens the existing project {path}."
        return path, f"Creates {path}."

    @QtCore.Slot()
    def _validate(self, *_args: object) -> None:
        path, text = self._check()
        self.result_label.setText(text)
        self.ok_button.setEnabled(path is not None)

    def accept(self) -> None:  # Enter with an incomplete form does nothing
        if self.project_path() is not None:
            super().accept()

    def _browse(self) -> None:
        d = QtWidgets.QFileDialog.getExistingDirectory(self, "Create the project in",
                                                       self.location.text())
        if d:
            self.location.setText(d)


VERSION_PACKAGES = ("strandcap", "torch", "numpy", "opencv-python-headless", "mediapipe",
                    "PySide6-Essentials", "pyqtgraph", "vispy", "scipy", "scikit-image",
                    "trimesh", "safetensors", "pycolmap", "alembic3d", "usd-core")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages Strandcap is built on ("not installed" if absent)."""
    out = {"Python": platform.python_version()}
    for name in VERSION_PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out


def bundled_licences(resources: Path | None = None) -> list[tuple[str, str]]:
    """``(relative path, text)`` of every ``LICENSE*`` file under ``resources/`` (sorted)."""
    root = resources if resources is not None else REPO_ROOT / "resources"
    if not root.is_dir():
        return []
    out = []
    for p in sorted(root.rglob("LICENSE*")):
        if p.is_file():
            try:
                out.append((p.relative_to(root).as_posix(), p.read_text(encoding="utf-8",
                                                                       errors="replace")))
            except OSError:
                continue
    return out


class AboutDialog(QtWidgets.QDialog):
    """Versions of the stack and the licence text of each bundled asset."""

    def __init__(self, parent: QtWidgets.QWidget | None = None,
                 resources: Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About Strandcap Studio")
        self.resize(640, 520)
        layout = QtWidgets.QVBoxLayout(self)
        head = QtWidgets.QLabel(
            "<h2>Strandcap Studio</h2><p>Monocular head video to 3D hair strands, following "
            "Neural Haircut (Sklyarova et al., ICCV 2023).</p>")
        head.setWordWrap(True)
        layout.addWidget(head)
        tabs = QtWidgets.QTabWidget()
        versions = package_versions()
        table = QtWidgets.QTableWidget(len(versions), 2)
        table.setHorizontalHeaderLabels(["Component", "Version"])
        for i, (k, v) in enumerate(versions.items()):
            table.setItem(i, 0, QtWidgets.QTableWidgetItem(k))
            table.setItem(i, 1, QtWidgets.QTableWidgetItem(v))
        table.resizeColumnsToContents()
        table.horizontalHeader().setStretchLastSection(True)
        table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        table.verticalHeader().setVisible(False)
        tabs.addTab(table, "Versions")
        self.licences = bundled_licences(resources)
        text = QtWidgets.QPlainTextEdit()
        text.setReadOnly(True)
        if self.licences:
            text.setPlainText("\n\n".join(f"=== resources/{name} ===\n{body}"
                                          for name, body in self.licences))
        else:
            text.setPlainText("No bundled assets with licence files were found in resources/.")
        tabs.addTab(text, f"Licences of bundled assets ({len(self.licences)})")
        layout.addWidget(tabs)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        layout.addWidget(buttons)
