"""Shared app state: the open project, preferences, and the stage graph in use."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6 import QtCore

from engine.pipeline import PipelineConfig, Project, Stage
from app.settings import AppSettings, Preferences

StagesFactory = Callable[..., list[Stage]]


def installed_stages(until: str | None = None) -> list[Stage]:
    """The engine's default stage graph (``engine.pipeline.default_stages``), [] if it fails
    to load (a stage module that is not there yet)."""
    from engine.pipeline import default_stages

    try:
        return list(default_stages(until))
    except ImportError:
        return []


class AppState(QtCore.QObject):
    """Holds what every page needs; emits :attr:`projectChanged` when a project is opened,
    its source changes, or its frames/edits change (pages then re-read from disk)."""

    projectChanged = QtCore.Signal(object)
    busyChanged = QtCore.Signal(bool)   # a run is in progress (pages avoid clashing writes)
    editsChanged = QtCore.Signal()      # mask edits or excluded frames changed (stage keys too)

    def __init__(self, settings: AppSettings, stages: StagesFactory = installed_stages,
                 parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.stages_factory = stages
        self.project: Project | None = None
        self.busy = False

    @property
    def prefs(self) -> Preferences:
        return self.settings.preferences()

    def set_project(self, project: Project | None) -> None:
        self.project = project
        if project is not None:
            self.settings.add_recent_project(project.root)
        self.projectChanged.emit(project)

    def open_project(self, path: str | Path) -> Project:
        """Open (or create, for a missing/empty folder) the project at ``path``.

        Raises:
            ProjectError: the folder is not a project and not empty.
        """
        project = Project.open_or_create(path)
        self.set_project(project)
        return project

    def notify_changed(self) -> None:
        self.projectChanged.emit(self.project)

    def notify_edits(self) -> None:
        """The user's mask edits or excluded frames changed: stages keyed on them are no longer
        finished for the current config, so pages re-read their status (without rebuilding
        what the user is looking at)."""
        self.editsChanged.emit()

    def set_busy(self, busy: bool) -> None:
        self.busy = busy
        self.busyChanged.emit(busy)

    def stages(self, until: str | None = None) -> list[Stage]:
        try:
            return list(self.stages_factory(until)) if until else list(self.stages_factory())
        except ImportError:
            return []

    def find_groom(self):
        """The open project's finished groom (:class:`app.artifacts.FoundGroom`) or None: the
        current config's ``strands`` result, else the newest finished one of any config."""
        from app.artifacts import find_groom

        if self.project is None:
            return None
        stages = self.stages()
        try:
            config = self.config(stages, device="cpu")
        except Exception:  # noqa: BLE001 - e.g. a bad saved config: look at the disk only
            config = None
        return find_groom(self.project, stages, config)

    def config(self, stages: list[Stage], preset: str | None = None,
               device: str | None = None) -> PipelineConfig:
        """The pipeline config: ``preset`` (else the project's last, else the preference);
        device from the argument or the preference."""
        if preset is None:
            saved = (self.project.manifest.get("config") or {}) if self.project else {}
            preset = saved.get("preset") or self.prefs.preset
        overrides = {}
        if self.project is not None:
            saved = self.project.manifest.get("config") or {}
            names = {s.name for s in stages}
            overrides = {k: v for k, v in (saved.get("overrides") or {}).items() if k in names}
        return PipelineConfig(stages, preset, overrides, device or self.prefs.device)
