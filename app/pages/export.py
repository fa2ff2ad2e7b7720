"""Export page: format, units, up axis, strand count; writes through the engine's exporters
(:func:`engine.io.export.export_groom`) in the app's worker; opens the folder.

The groom comes from the project's finished ``strands`` stage (``groom.npz``, as
``strandcap export --project`` reads it; the newest finished one of any config when the current
config has none, see :func:`app.artifacts.find_groom`), or from a groom file the user opens
(conversion between formats). Opening another project resets the groom and the export folder
to that project's. When the engine has no exporters the
page says that export is not available yet."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Iterator

from PySide6 import QtCore, QtGui, QtWidgets

from engine.pipeline import CancelToken, Log
from app.dialogs import show_error
from app.state import AppState
from app.worker import JobWorker

FORMATS = (("abc", "Alembic (.abc) – Unreal, Maya, Houdini", ".abc"),
           ("usd", "USD BasisCurves (.usda)", ".usda"),
           ("obj", "OBJ lines (.obj)", ".obj"),
           ("ply", "PLY with edges (.ply)", ".ply"),
           ("hair", "Cem Yuksel .hair", ".hair"),
           ("npz", "Strandcap groom (.npz)", ".npz"))


def exporters_available() -> bool:
    """True when ``engine.io.export`` (the engine's exporters) is installed."""
    try:
        return importlib.util.find_spec("engine.io.export") is not None
    except (ImportError, ValueError):
        return False


def find_project_groom(state: AppState) -> tuple[Path, str] | None:
    """``(groom file, stage name)`` of the project's finished groom, or None: the current
    config's ``strands`` result when finished, else the newest finished one of any config
    (:meth:`app.state.AppState.find_groom`)."""
    found = state.find_groom()
    return None if found is None else (found.path, found.stage)


def load_any_groom(path: Path):
    """A :class:`engine.io.groom.Groom` from any groom file the engine reads.

    Raises:
        InputError: unreadable or malformed file.
    """
    from engine.io.export import load_groom

    return load_groom(path)


def export_job(source: Path, dest: Path, fmt: str, units: str, up: str, guides: int | None,
               head: bool, token: CancelToken) -> Iterator[object]:
    """The export as a worker job: load, write (atomically, by the engine), report."""
    from engine.io.export import export_groom
    from engine.io.groom import farthest_root_sample

    yield Log("export", f"reading {source.name}")
    groom = load_any_groom(source)
    token.check()
    if guides and guides < groom.num_strands:
        # a lighter groom of K strands whose roots cover the scalp evenly (not Unreal guides,
        # which the engine writes in addition to every strand)
        groom = groom.subset(farthest_root_sample(groom.strands[:, 0], guides))
    yield Log("export", f"writing {groom.num_strands:,} strands to {dest.name}")
    out = export_groom(groom, dest, fmt, units=units, up=up, head=head,
                       head_file=head and out_is_abc(dest, fmt))
    yield Log("export", f"wrote {out}")
    yield {"written": str(out), "strands": groom.num_strands}


def out_is_abc(dest: Path, fmt: str | None) -> bool:
    """Whether the export goes to Alembic (the head then goes to its own file)."""
    return (fmt or Path(dest).suffix.lstrip(".")).lower() == "abc"


class ExportPage(QtWidgets.QWidget):
    """See module docstring. :attr:`last_written` is the path of the last exported file."""

    def __init__(self, state: AppState, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.worker: JobWorker | None = None
        self.source: Path | None = None
        self.source_is_file = False   # the user picked a groom file (conversion)
        self.last_written: Path | None = None
        self._project_root: Path | None = None   # the project the folder and source are for
        self.available = exporters_available()

        self.banner = QtWidgets.QLabel()
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("background:#2a2d33; color:#e6c86e; padding:6px;")
        self.source_label = QtWidgets.QLabel()
        self.source_label.setWordWrap(True)
        self.open_groom_button = QtWidgets.QPushButton("Convert a groom file instead…")
        self.open_groom_button.clicked.connect(self.pick_groom_file)
        self.format = QtWidgets.QComboBox()
        writable = {f[0] for f in FORMATS}
        if self.available:
            from engine.io.export import WRITE_FORMATS
            writable = set(WRITE_FORMATS)
        self.formats = [f for f in FORMATS if f[0] in writable]
        for key, text, _suffix in self.formats:
            self.format.addItem(text, key)
        self.format.currentIndexChanged.connect(self._suggest_name)
        self.units = QtWidgets.QComboBox()
        for key, text in (("cm", "centimetres (DCC tools, Unreal)"), ("m", "metres"),
                          ("mm", "millimetres")):
            self.units.addItem(text, key)
        self.up = QtWidgets.QComboBox()
        self.up.addItem("Y up (Maya, Unreal import, Houdini)", "y")
        self.up.addItem("Z up (Blender)", "z")
        self.all_strands = QtWidgets.QCheckBox("All strands")
        self.all_strands.setChecked(True)
        self.strand_count = QtWidgets.QSpinBox()
        self.strand_count.setRange(1, 1_000_000)
        self.strand_count.setValue(1000)
        self.strand_count.setSuffix(" guide strands")
        self.strand_count.setEnabled(False)
        self.all_strands.toggled.connect(self._all_toggled)
        self.head = QtWidgets.QCheckBox("Include the head mesh (Alembic, USD, OBJ)")
        self.head.setChecked(True)
        self.folder = QtWidgets.QLineEdit()
        self.folder.textChanged.connect(self.folder.setToolTip)
        browse = QtWidgets.QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        folder_row = QtWidgets.QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(browse)
        self.file_name = QtWidgets.QLineEdit("groom.abc")
        self.export_button = QtWidgets.QPushButton("Export")
        self.export_button.clicked.connect(self.export)
        self.open_folder_button = QtWidgets.QPushButton("Open folder")
        self.open_folder_button.clicked.connect(self.open_folder)
        self.status = QtWidgets.QLabel("")
        self.status.setWordWrap(True)

        form = QtWidgets.QFormLayout()
        form.addRow("Format", self.format)
        form.addRow("Units", self.units)
        form.addRow("Up axis", self.up)
        count_row = QtWidgets.QHBoxLayout()
        count_row.addWidget(self.all_strands)
        count_row.addWidget(self.strand_count, 1)
        form.addRow("Strand count", count_row)
        form.addRow("", self.head)
        form.addRow("Folder", folder_row)
        form.addRow("File name", self.file_name)
        src_box = QtWidgets.QGroupBox("Groom")
        sl = QtWidgets.QVBoxLayout(src_box)
        sl.addWidget(self.source_label)
        sl.addWidget(self.open_groom_button)
        opts = QtWidgets.QGroupBox("Options")
        opts.setLayout(form)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.open_folder_button)
        buttons.addStretch(1)
        col = QtWidgets.QVBoxLayout()
        col.addWidget(self.banner)
        col.addWidget(src_box)
        col.addWidget(opts)
        col.addLayout(buttons)
        col.addWidget(self.status)
        col.addStretch(1)
        box = QtWidgets.QWidget()
        box.setLayout(col)
        box.setMaximumWidth(720)
        box.setMinimumWidth(560)   # room for the export folder's path
        layout = QtWidgets.QHBoxLayout(self)
        layout.addWidget(box, 3)
        layout.addStretch(1)
        state.projectChanged.connect(self.refresh)
        self.refresh()

    @QtCore.Slot()
    def refresh(self, *_args: object) -> None:
        self.available = exporters_available()
        project = self.state.project
        root = project.root if project is not None else None
        if root != self._project_root:
            # another project: its own exports folder and groom, nothing of the previous one
            self._project_root = root
            self.source, self.source_is_file, self.last_written = None, False, None
            self.status.setText("")
            self.folder.setText(str(root / "exports") if root is not None else "")
        elif project is not None and not self.folder.text():
            self.folder.setText(str(project.root / "exports"))
        if not self.available:
            self.banner.setText("Export is not available yet in this build (the engine's "
                                "exporters, engine/io/export.py, are missing).")
            self.banner.show()
            for w in (self.export_button, self.open_groom_button):
                w.setEnabled(False)
            self.source_label.setText("—")
            return
        self.banner.hide()
        self.open_groom_button.setEnabled(True)
        if self.source is not None and not self.source.is_file():
            self.source, self.source_is_file = None, False
        if not self.source_is_file:   # re-read the project's groom: a run may have finished
            found = self.state.find_groom()
            if found is not None:
                self.source = found.path
                when = ("" if found.current else
                        " (from an earlier run; the current settings have no finished groom)")
                self.source_label.setText(f"Result of the <b>{found.stage}</b> stage: "
                                          f"{found.path.name}{when}")
                self.source_label.setToolTip(str(found.path))
            else:
                self.source = None
                self.banner.setText("No reconstructed groom in this project yet: the strand "
                                    "stages are not available in this build or have not run. "
                                    "You can still convert a groom file.")
                self.banner.show()
                self.source_label.setText("No groom selected.")
        self.export_button.setEnabled(self.source is not None and self.worker is None)

    def set_source(self, path: Path) -> None:
        """Export from a groom file (any format ``engine.io.export.load_groom`` reads)."""
        self.source = Path(path)
        self.source_is_file = True
        self.source_label.setText(f"File: {self.source}")
        self.banner.hide()
        if not self.folder.text():
            self.folder.setText(str(self.source.parent))
        self.export_button.setEnabled(self.available and self.worker is None)

    def pick_groom_file(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Groom file", "",
            "Grooms (*.abc *.usd *.usda *.usdc *.obj *.ply *.hair *.data *.tfx *.npz)")
        if path:
            self.set_source(Path(path))

    @QtCore.Slot(bool)
    def _all_toggled(self, on: bool) -> None:
        self.strand_count.setEnabled(not on)

    def _suggest_name(self) -> None:
        suffix = self.formats[self.format.currentIndex()][2]
        stem = Path(self.file_name.text() or "groom").stem
        self.file_name.setText(stem + suffix)

    def _browse(self) -> None:
        d = QtWidgets.QFileDialog.getExistingDirectory(self, "Export folder", self.folder.text())
        if d:
            self.folder.setText(d)

    def destination(self) -> Path:
        return Path(self.folder.text()) / self.file_name.text()

    def export(self) -> None:
        """Write the groom with the chosen options through the worker."""
        if self.source is None or self.worker is not None or not self.available:
            return
        dest = self.destination()
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            show_error(self, "Cannot export", f"{dest.parent}: cannot create the folder ({exc})")
            return
        guides = None if self.all_strands.isChecked() else int(self.strand_count.value())
        job = functools.partial(export_job, self.source, dest, self.format.currentData(),
                                self.units.currentData(), self.up.currentData(), guides,
                                self.head.isChecked())
        self.worker = JobWorker(job, parent=self)
        self.worker.log.connect(self.on_log)
        self.worker.item.connect(self.on_item)
        self.worker.failed.connect(self.on_failed)
        self.worker.finished.connect(self.on_finished)
        self.worker.finished.connect(self.worker.deleteLater)  # no finished workers pile up
        self.export_button.setEnabled(False)
        self.worker.start()

    @QtCore.Slot(object)
    def on_log(self, ev: Log) -> None:
        self.status.setText(ev.message)

    @QtCore.Slot(object)
    def on_item(self, item: object) -> None:
        if isinstance(item, dict) and "written" in item:
            self.last_written = Path(item["written"])
            self.status.setText(f"Wrote {item['strands']:,} strands to {self.last_written}")

    @QtCore.Slot(str, str)
    def on_failed(self, message: str, details: str) -> None:
        self.status.setText(f"Export failed: {message}")
        show_error(self, "Export failed", message, details)

    @QtCore.Slot()
    def on_finished(self) -> None:
        self.worker = None
        self.export_button.setEnabled(self.source is not None and self.available)

    def open_folder(self) -> bool:
        """Open the export folder in the system file manager."""
        folder = self.last_written.parent if self.last_written else Path(self.folder.text())
        if not folder.is_dir():
            self.status.setText(f"{folder} does not exist yet.")
            return False
        return QtGui.QDesktopServices.openUrl(QtCore.QUrl.fromLocalFile(str(folder)))
