"""Shared app state: the open project, preferences, and the stage graph in use."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6 import QtCore

from engine.pipeline import PipelineConfig, Project, Stage
from app.settings import AppSettings, Preferences

StagesFactory = Callable[..., list[Stage]]


def installed_stages(until: str | None = None) -> list[Stage]:
    """The engine's default stage graph (``engine.registry.default_stages``), imported on first
    use (the stage modules load torch)."""
    from engine.registry import default_stages

    return list(default_stages(until))


class AppState(QtCore.QObject):
    """Holds what every page needs; emits :attr:`projectChanged` when a project is opened,
    its source changes, or its frames/edits change (pages then re-read from disk)."""

    projectChanged = QtCore.Signal(object)
    busyChanged = QtCore.Signal(bool)   # a run is in progress (pages avoid clashing writes)
    editsChanged = QtCore.Signal()      # mask edits or excluded frames changed (stage keys too)
    warningsChanged = QtCore.Signal()   # a run logged a warning (see :attr:`log_warnings`)

    def __init__(self, settings: AppSettings, stages: StagesFactory = installed_stages,
                 parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.stages_factory = stages
        self.project: Project | None = None
        self.busy = False
        self.log_warnings: list[tuple[str, str]] = []   # (stage, message) logged by runs

    @property
    def prefs(self) -> Preferences:
        return self.settings.preferences()

    def set_project(self, project: Project | None) -> None:
        if project is not self.project:
            self.log_warnings = []
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

    def add_log_warning(self, stage: str, message: str) -> None:
        """A run logged a warning (e.g. the cameras stage falling back from structure from
        motion): kept for this session's project and shown with the capture checks."""
        if (stage, message) not in self.log_warnings:
            self.log_warnings.append((stage, message))
            self.warningsChanged.emit()

    def clear_log_warnings(self, stage: str) -> None:
        """``stage`` runs again: the warnings its last run logged no longer hold."""
        kept = [w for w in self.log_warnings if w[0] != stage]
        if len(kept) != len(self.log_warnings):
            self.log_warnings = kept
            self.warningsChanged.emit()

    # -- stage options (the project's PipelineConfig overrides) ----------------------------
    def override(self, stage: str, name: str, default=None):
        """The project's saved override ``stage.name`` (``project.json`` config overrides, the
        one config system of CLI and app), else ``default``."""
        if self.project is None:
            return default
        saved = (self.project.manifest.get("config") or {}).get("overrides") or {}
        return (saved.get(stage) or {}).get(name, default)

    def set_override(self, stage: str, name: str, value) -> None:
        """Save ``stage.name = value`` (see :meth:`set_overrides`)."""
        self.set_overrides(stage, {name: value})

    def set_overrides(self, stage: str, values: dict) -> None:
        """Save ``stage.<name> = value`` for each item as overrides in the project's config
        (a value ``None`` removes it, back to the preset's value), all checked against the
        stage's config type first, then saved at once.

        Raises:
            ConfigError: no such stage or option, or a value out of its range or choices.
        """
        from engine.pipeline import config_from_dict

        if self.project is None:
            return
        by_name = {s.name: s for s in self.stages()}
        if stage not in by_name:
            from engine.errors import ConfigError
            raise ConfigError(f"no stage named {stage!r} in this build")
        config = dict(self.project.manifest.get("config") or {})
        overrides = {k: dict(v) for k, v in (config.get("overrides") or {}).items()}
        new = dict(values)
        values = overrides.setdefault(stage, {})
        for name, value in new.items():
            if value is None:
                values.pop(name, None)
            else:
                values[name] = value
        config_from_dict(by_name[stage].config_type, values)   # raises on a bad value
        if not values:
            overrides.pop(stage)
        config["overrides"] = overrides
        config.setdefault("preset", self.prefs.preset)
        if config == self.project.manifest.get("config"):
            return
        self.project.manifest["config"] = config
        self.project.save()
        self.notify_edits()   # the stage's key changed: pages re-read what is finished

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
