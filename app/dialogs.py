"""Error dialog and the About box (versions and licences of bundled assets)."""

from __future__ import annotations

import importlib.metadata as md
import platform
from pathlib import Path

from PySide6 import QtWidgets

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
