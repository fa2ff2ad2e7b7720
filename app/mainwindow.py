"""The main window: a sidebar of pages (Capture, Review, Reconstruct, Export), the File menu
with recent projects, the settings dialog and the About box."""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from app.dialogs import AboutDialog, NewProjectDialog, confirm, show_error
from app.pages.capture import CapturePage
from app.pages.export import ExportPage
from app.pages.reconstruct import ReconstructPage
from app.pages.review import ReviewPage
from app.pages.welcome import WelcomePage, sample_capture
from app.settings import SettingsDialog
from app.state import AppState

PAGES = ("Capture", "Review", "Reconstruct", "Export")


class MainWindow(QtWidgets.QMainWindow):
    def __init__(self, state: AppState) -> None:
        super().__init__()
        self.state = state
        self.resize(1280, 820)
        self.sidebar = QtWidgets.QListWidget()
        self.sidebar.setFixedWidth(150)
        self.sidebar.setIconSize(QtCore.QSize(22, 22))
        self.sidebar.setStyleSheet("QListWidget { font-size: 15px; } "
                                   "QListWidget::item { padding: 10px 8px; }")
        self.stack = QtWidgets.QStackedWidget()
        self.capture = CapturePage(state)
        self.review = ReviewPage(state)
        self.reconstruct = ReconstructPage(state)
        self.export = ExportPage(state)
        icons = (QtWidgets.QStyle.StandardPixmap.SP_MediaPlay,
                 QtWidgets.QStyle.StandardPixmap.SP_FileDialogContentsView,
                 QtWidgets.QStyle.StandardPixmap.SP_BrowserReload,
                 QtWidgets.QStyle.StandardPixmap.SP_DialogSaveButton)
        for name, page, icon in zip(PAGES, self.pages, icons):
            self.sidebar.addItem(QtWidgets.QListWidgetItem(self.style().standardIcon(icon), name))
            self.stack.addWidget(page)
        self.sidebar.currentRowChanged.connect(self.stack.setCurrentIndex)
        self.sidebar.setCurrentRow(0)
        self.main_area = QtWidgets.QWidget()
        lay = QtWidgets.QHBoxLayout(self.main_area)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.sidebar)
        lay.addWidget(self.stack, 1)
        # the welcome screen while no project is open, then the pages
        self.welcome = WelcomePage()
        self.welcome.newRequested.connect(self.new_project)
        self.welcome.openRequested.connect(self.open_project_dialog)
        self.welcome.sampleRequested.connect(self.open_sample)
        self.welcome.recentRequested.connect(self.open_project)
        self.welcome.skipRequested.connect(self.show_pages)
        self.outer = QtWidgets.QStackedWidget()
        self.outer.addWidget(self.welcome)
        self.outer.addWidget(self.main_area)
        self.setCentralWidget(self.outer)
        self.project_label = QtWidgets.QLabel()
        self.statusBar().addPermanentWidget(self.project_label)
        self._build_menus()
        self.review.runRequested.connect(self.run_until)
        # one preset for the preprocessing (Review) and the run (Reconstruct), shown on both
        self.review.set_preset(self.reconstruct.preset.currentText())
        self.review.preset.currentTextChanged.connect(self.reconstruct.preset.setCurrentText)
        self.reconstruct.presetChanged.connect(self.review.set_preset)
        self.reconstruct.runFinished.connect(self._run_finished)
        self._close_pending = False   # closing waits for a cancelled run to stop
        state.projectChanged.connect(self.on_project_changed)
        self.on_project_changed(state.project)

    @property
    def pages(self) -> tuple[QtWidgets.QWidget, ...]:
        return (self.capture, self.review, self.reconstruct, self.export)

    def show_page(self, name: str) -> None:
        self.show_pages()
        self.sidebar.setCurrentRow(PAGES.index(name))

    @property
    def welcome_shown(self) -> bool:
        return self.outer.currentWidget() is self.welcome

    def show_welcome(self) -> None:
        self.welcome.set_recent(self.state.settings.recent_projects())
        self.outer.setCurrentWidget(self.welcome)

    @QtCore.Slot()
    def show_pages(self) -> None:
        self.outer.setCurrentWidget(self.main_area)

    # -- menus -----------------------------------------------------------------------------
    def _build_menus(self) -> None:
        m = self.menuBar().addMenu("&File")
        self._action(m, "&New project…", self.new_project, QtGui.QKeySequence.StandardKey.New)
        self._action(m, "&Open project…", self.open_project_dialog,
                     QtGui.QKeySequence.StandardKey.Open)
        self.sample_action = self._action(m, "Open the &sample", self.open_sample)
        self.sample_action.setEnabled(sample_capture() is not None)
        self.recent_menu = m.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        m.addSeparator()
        self._action(m, "Import &video…", self.capture.open_video)
        self._action(m, "Import &image folder…", self.capture.open_folder)
        m.addSeparator()
        self._action(m, "&Settings…", self.open_settings, QtGui.QKeySequence.StandardKey.Preferences)
        m.addSeparator()
        self._action(m, "&Quit", self.close, QtGui.QKeySequence.StandardKey.Quit)
        v = self.menuBar().addMenu("&View")
        for i, name in enumerate(PAGES):
            a = v.addAction(name)
            a.setShortcut(QtGui.QKeySequence(f"Ctrl+{i + 1}"))
            a.setData(name)
            a.triggered.connect(self._show_page_action)
        h = self.menuBar().addMenu("&Help")
        self._action(h, "&About Strandcap Studio", self.show_about)

    def _action(self, menu: QtWidgets.QMenu, text: str, slot, shortcut=None) -> QtGui.QAction:
        a = menu.addAction(text)
        a.triggered.connect(slot)
        if shortcut is not None:
            a.setShortcut(shortcut)
        return a

    @QtCore.Slot()
    def _show_page_action(self) -> None:
        action = self.sender()
        if isinstance(action, QtGui.QAction):
            self.show_page(action.data())

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.state.settings.recent_projects()
        for path in recent:
            a = self.recent_menu.addAction(path)
            a.setData(path)
            a.triggered.connect(self._open_recent)
            a.setEnabled(Path(path, "project.json").is_file())
        if not recent:
            self.recent_menu.addAction("(none)").setEnabled(False)
        self.recent_menu.addSeparator()
        self.recent_menu.addAction("Clear list").triggered.connect(self._clear_recent)

    @QtCore.Slot()
    def _open_recent(self) -> None:
        action = self.sender()
        if isinstance(action, QtGui.QAction):
            self.open_project(action.data())

    @QtCore.Slot()
    def _clear_recent(self) -> None:
        self.state.settings.clear_recent_projects()

    # -- projects --------------------------------------------------------------------------
    def new_project(self, name: str = "") -> bool:
        """Ask for a project name and the folder to create it in (the project folder itself
        is created, it need not exist), then open it."""
        base = Path(self.state.prefs.projects_dir)
        dlg = NewProjectDialog(base if base.is_dir() else Path.home(), self, name=name)
        if dlg.exec() != QtWidgets.QDialog.DialogCode.Accepted:
            return False
        path = dlg.project_path()
        return path is not None and self.open_project(path)

    def open_sample(self) -> bool:
        """A new project (named "sample" unless the user renames it) whose input is the
        embedded sample capture; then the Review page."""
        clip = sample_capture()
        if clip is None:
            show_error(self, "No sample", "This build has no sample capture "
                       "(resources/sample/capture.mp4).")
            return False
        base = Path(self.state.prefs.projects_dir)
        name = "sample"
        if base.is_dir():
            i = 2
            while (base / name).exists() and not (base / name / "project.json").is_file():
                name, i = f"sample-{i}", i + 1
        if not self.new_project(name):
            return False
        project = self.state.project
        if project.manifest.get("source") is None:
            try:
                project.import_source(clip)
            except Exception as exc:  # noqa: BLE001
                show_error(self, "Sample not imported", str(exc))
                return False
            self.state.notify_changed()
        self.show_page("Review")
        return True

    def open_project_dialog(self) -> bool:
        d = QtWidgets.QFileDialog.getExistingDirectory(self, "Open a Strandcap project")
        return bool(d) and self.open_project(d)

    def open_project(self, path: str | Path) -> bool:
        if self.state.busy:
            show_error(self, "Busy", "A run is in progress; cancel it before switching projects.")
            return False
        try:
            self.state.open_project(path)
        except Exception as exc:  # noqa: BLE001
            show_error(self, "Cannot open project", str(exc))
            return False
        return True

    @QtCore.Slot(object)
    def on_project_changed(self, project) -> None:
        if project is None:
            self.setWindowTitle("Strandcap Studio")
            self.project_label.setText("No project")
            self.show_welcome()
            return
        if self.welcome_shown:
            self.show_pages()
        self.setWindowTitle(f"Strandcap Studio — {project.root.name}")
        src = project.manifest.get("source") or {}
        name = Path(src.get("original") or src["path"]).name if src else "none yet"
        self.project_label.setText(f"{project.root}  ·  input: {name}")

    @QtCore.Slot(str)
    def run_until(self, stage: str) -> None:
        """Switch to the Reconstruct page and run the graph up to ``stage``."""
        self.show_page("Reconstruct")
        self.reconstruct.start_until(stage)

    # -- dialogs ---------------------------------------------------------------------------
    def open_settings(self) -> None:
        dlg = SettingsDialog(self.state.prefs, self)
        if dlg.exec() == QtWidgets.QDialog.DialogCode.Accepted:
            prefs = dlg.preferences()
            self.state.settings.set_preferences(prefs)
            self.reconstruct.strand_view.max_strands = prefs.max_display_strands

    def show_about(self) -> None:
        AboutDialog(self).exec()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802
        """During a run: ask; on yes, cancel it cooperatively and close once it has stopped
        (finished stages stay in the cache), the window staying responsive meanwhile."""
        if self.reconstruct.running:
            if not self._close_pending:
                if not confirm(self, "Reconstruction running",
                               "A reconstruction is running. Cancel it and close Strandcap "
                               "Studio?\n\nFinished stages are kept; the next start resumes "
                               "from them.", yes_text="Cancel run and close",
                               no_text="Keep running"):
                    event.ignore()
                    return
                self._close_pending = True
                self.reconstruct.cancel()
                self.statusBar().showMessage("Cancelling the run; the window closes when it "
                                             "has stopped…")
            event.ignore()   # closes from _run_finished
            return
        self.capture.stop_source()
        self.reconstruct.shutdown()
        if self.export.worker is not None:
            self.export.worker.wait(10000)
        super().closeEvent(event)

    @QtCore.Slot(str)
    def _run_finished(self, _outcome: str) -> None:
        if self._close_pending:
            self._close_pending = False
            QtCore.QTimer.singleShot(0, self.close)
