"""Reconstruct page: preset and device; start, pause, cancel, resume from the project's cache;
the stage list with status read from disk; progress with ETA; live loss curves; a live 3D view
of the head mesh and the current strands.

The run goes through the one worker (:class:`app.worker.JobWorker`) running
:func:`engine.pipeline.run_pipeline` on the stage graph of :class:`app.state.AppState`
(``engine.registry.default_stages`` in the app)."""

from __future__ import annotations

import functools
import time
from collections import Counter

from PySide6 import QtCore, QtWidgets

from engine.pipeline import (PRESETS, Log, Loss, Preview, Progress, StageFinished,
                             StageStarted, run_pipeline, stage_status)
from app.dialogs import show_error
from app.settings import cuda_available
from app.state import AppState
from app.views.image_view import ImageView
from app.views.loss_plot import LossPlot
from app.views.strand_view import StrandView, load_mesh_file, template_head
from app.worker import JobWorker


_NO_RESTORE = object()
COARSE_STAGE = "coarse"
HAIR_MESH_FILE = "hair_mesh.ply"
GROOM_FILE = "groom.npz"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(round(max(seconds, 0.0)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class ReconstructPage(QtWidgets.QWidget):
    """See module docstring. :attr:`counts` counts the events received per type (tests and the
    status line read it); :attr:`cached` lists stages the last run found finished on disk."""

    runFinished = QtCore.Signal(str)  # "succeeded" | "cancelled" | "failed"
    presetChanged = QtCore.Signal(str)  # the preset a Start would use (shown on other pages)

    def __init__(self, state: AppState, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.worker: JobWorker | None = None
        self.counts: Counter[str] = Counter()
        self.cached: list[str] = []
        self.ran: list[str] = []
        self.last_outcome: str | None = None
        self._last_run: dict[str, tuple[str, str]] = {}  # stage -> (status, time) of last run
        self._t_start = 0.0
        self._shown = None  # the project the stage list was last filled for
        self._stage_index = 0
        self._stage_count = 0
        self._stage_names: list[str] = []
        self._restore_until: object = _NO_RESTORE  # "Run up to" to put back after start_until

        self.preset = QtWidgets.QComboBox()
        self.preset.addItems(list(PRESETS))
        self.preset.setCurrentText(state.prefs.preset)
        self.preset.currentTextChanged.connect(self.refresh_status)
        self.preset.currentTextChanged.connect(self.presetChanged)
        self.device = QtWidgets.QComboBox()
        self.device.addItem("CPU", "cpu")
        if cuda_available():
            self.device.addItem("CUDA", "cuda")
            if state.prefs.device in ("auto", "cuda"):
                self.device.setCurrentIndex(1)
        self.until = QtWidgets.QComboBox()
        self.until.currentIndexChanged.connect(self.refresh_status)
        self.start_button = QtWidgets.QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        self.pause_button = QtWidgets.QPushButton("Pause")
        self.pause_button.clicked.connect(self.toggle_pause)
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        top = QtWidgets.QHBoxLayout()
        for label, w in (("Preset", self.preset), ("Device", self.device), ("Run up to", self.until)):
            top.addWidget(QtWidgets.QLabel(label))
            top.addWidget(w)
        top.addStretch(1)
        for b in (self.start_button, self.pause_button, self.cancel_button):
            top.addWidget(b)

        self.stage_list = QtWidgets.QTreeWidget()
        self.stage_list.setHeaderLabels(["Stage", "Status", "Time"])
        self.stage_list.setRootIsDecorated(False)
        header = self.stage_list.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.progress_bar = QtWidgets.QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_label = QtWidgets.QLabel("Idle.")
        self.progress_label.setWordWrap(True)
        self.log_view = QtWidgets.QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(2000)
        self.checks_label = QtWidgets.QLabel()
        self.checks_label.setWordWrap(True)
        self.checks_label.setStyleSheet("background:#3a2a1c; color:#f0b35a; padding:4px;")
        self.checks_label.setVisible(False)
        left = QtWidgets.QVBoxLayout()
        left.addWidget(self.checks_label)
        left.addWidget(self.stage_list, 2)
        left.addWidget(self.progress_bar)
        left.addWidget(self.progress_label)
        left.addWidget(QtWidgets.QLabel("Log"))
        left.addWidget(self.log_view, 1)
        left_w = QtWidgets.QWidget()
        left_w.setLayout(left)

        self.loss_plot = LossPlot()
        self.strand_view = StrandView(max_strands=state.prefs.max_display_strands)
        right = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        right.addWidget(self._titled("Losses (log scale)", self.loss_plot))
        self.image_view = ImageView(placeholder="Image previews of the running stage appear here.")
        self.views = QtWidgets.QTabWidget()
        self.views.addTab(self.strand_view, "Head and strands (drag to turn)")
        self.views.addTab(self.image_view, "Images")
        right.addWidget(self.views)
        right.setSizes([300, 420])
        split = QtWidgets.QSplitter()
        split.addWidget(left_w)
        split.addWidget(right)
        split.setSizes([380, 700])
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(split, 1)
        state.projectChanged.connect(self.refresh_status)
        state.editsChanged.connect(self.on_edits_changed)
        state.warningsChanged.connect(self.update_checks)
        self._fill_until()
        self._set_running(False)
        self.refresh_status()
        if self.state.project is None:
            self.show_template_head()

    @staticmethod
    def _titled(title: str, w: QtWidgets.QWidget) -> QtWidgets.QWidget:
        box = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(box)
        lay.setContentsMargins(0, 0, 0, 0)
        lab = QtWidgets.QLabel(f"<b>{title}</b>")
        lay.addWidget(lab)
        lay.addWidget(w, 1)
        return box

    def _fill_until(self) -> None:
        self.until.blockSignals(True)
        self.until.clear()
        self.until.addItem("all stages", None)
        for s in self.state.stages():
            self.until.addItem(s.title or s.name, s.name)
        self.until.blockSignals(False)

    # -- status from disk ------------------------------------------------------------------
    def current_stages(self) -> list:
        return self.state.stages(self.until.currentData())

    def current_config(self, stages: list):
        return self.state.config(stages, self.preset.currentText(), self.device.currentData())

    @QtCore.Slot()
    def refresh_status(self, *_args: object) -> None:
        """Fill the stage list from disk (finished or not, for the chosen preset); a finished
        stage shows how the last run got it ("cached" or "finished" with its time)."""
        if self.running:
            return
        new_project = self.state.project is not self._shown
        if self.sender() in (self.preset, self.until) or new_project:
            self._last_run = {}
        if self.state.project is not None and new_project:
            saved = (self.state.project.manifest.get("config") or {}).get("preset")
            if saved in PRESETS:  # the preset of the project's last run
                self.preset.blockSignals(True)
                self.preset.setCurrentText(saved)
                self.preset.blockSignals(False)
                self.presetChanged.emit(saved)
        self._shown = self.state.project
        if new_project:
            self.show_result()
        stages = self.current_stages()
        self.stage_list.clear()
        self._stage_names = [s.name for s in stages]
        if not stages:
            self.progress_label.setText("No reconstruction stages are available in this build "
                                        "yet; the list fills as stages land.")
            self.start_button.setEnabled(False)
            return
        self.update_checks()
        project = self.state.project
        statuses = None
        reason = ""
        if project is None:
            reason = "open a project"
        else:
            try:
                statuses = stage_status(project, stages, self.current_config(stages))
            except Exception as exc:  # noqa: BLE001 - e.g. the project has no input yet
                reason = str(exc)
        done = 0
        for i, s in enumerate(stages):
            st = statuses[i] if statuses else None
            text = "finished" if st and st.finished else ("not run" if st else "—")
            took = ""
            if st and st.finished and s.name in self._last_run:
                text, took = self._last_run[s.name]
            done += bool(st and st.finished)
            item = QtWidgets.QTreeWidgetItem([s.title or s.name, text, took])
            item.setData(0, QtCore.Qt.ItemDataRole.UserRole, s.name)
            if st and st.finished:
                item.setToolTip(0, self._summary_tip(project, st))
            self.stage_list.addTopLevelItem(item)
        self.start_button.setEnabled(project is not None and statuses is not None)
        if statuses is None:
            self.progress_label.setText(f"Cannot run yet: {reason}.")
        elif 0 < done < len(stages):
            self.start_button.setText(f"Resume ({done} of {len(stages)} cached)")
            self.progress_label.setText("Finished stages are reused from the project's cache.")
        elif done == len(stages):
            self.start_button.setText("Run again (all cached)")
            self.progress_label.setText("Every stage is finished for this preset.")
        else:
            self.start_button.setText("Start")
            self.progress_label.setText("Idle.")

    @QtCore.Slot()
    def update_checks(self) -> None:
        """One line naming the capture warnings (the Review page lists them)."""
        from app import quality

        project, stages = self.state.project, self.state.stages()
        warnings = []
        if project is not None and stages:
            try:
                config = self.state.config(stages, self.preset.currentText(), device="cpu")
                warnings = [w.text for w in quality.project_warnings(project, stages, config)]
            except Exception:  # noqa: BLE001
                warnings = []
        warnings += [f"{st}: {m}" for st, m in self.state.log_warnings
                     if not any(m in w for w in warnings)]
        self.checks_label.setVisible(bool(warnings))
        if warnings:
            self.checks_label.setText(f"⚠ {len(warnings)} capture warning"
                                      f"{'s' if len(warnings) != 1 else ''} (listed on the "
                                      f"Review page): {warnings[0]}")
            self.checks_label.setToolTip("\n".join(warnings))

    @QtCore.Slot()
    def on_edits_changed(self) -> None:
        """A mask edit or an excluded frame changes the keys of the stages that read them:
        re-read which stages are finished (the last run's "finished" labels no longer hold)."""
        if self.running:
            return
        self._last_run = {}
        self.refresh_status()

    @staticmethod
    def _summary_tip(project, st) -> str:
        """The finished stage's summary from its done.json, one ``key: value`` per line."""
        found = project.artifact(st.name, st.key)
        if found is None:
            return ""
        lines = [f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}"
                 for k, v in (found.done.get("summary") or {}).items()]
        wall = found.done.get("wall_s")
        if isinstance(wall, (int, float)):
            lines.append(f"time: {fmt_duration(wall)} on {found.done.get('device', '?')}")
        return "\n".join(lines)

    def _item(self, name: str) -> QtWidgets.QTreeWidgetItem | None:
        for i in range(self.stage_list.topLevelItemCount()):
            it = self.stage_list.topLevelItem(i)
            if it.data(0, QtCore.Qt.ItemDataRole.UserRole) == name:
                return it
        return None

    # -- control ---------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.worker is not None

    def start(self) -> None:
        """Run the chosen stages through the worker (finished ones come from the cache)."""
        if self.running:
            return
        project = self.state.project
        if project is None:
            show_error(self, "No project", "Open or create a project first.")
            return
        stages = self.current_stages()
        try:
            config = self.current_config(stages)
        except Exception as exc:  # noqa: BLE001
            show_error(self, "Cannot start", str(exc))
            return
        self.refresh_status()
        self.counts.clear()
        self.cached, self.ran = [], []
        self._last_run = {}
        self.last_outcome = None
        self.loss_plot.clear()
        self.strand_view.clear()
        self.image_view.set_image(None)
        self.views.setTabText(1, "Images")
        self.show_template_head()
        self.log_view.clear()
        self._t_start = time.monotonic()
        self.worker = JobWorker(functools.partial(run_pipeline, project, stages, config),
                                preview_rate=self.state.prefs.preview_rate, parent=self)
        w = self.worker
        w.stageStarted.connect(self.on_stage_started)
        w.progress.connect(self.on_progress)
        w.loss.connect(self.on_loss)
        w.preview.connect(self.on_preview)
        w.log.connect(self.on_log)
        w.stageFinished.connect(self.on_stage_finished)
        w.succeeded.connect(self.on_succeeded)
        w.cancelled.connect(self.on_cancelled)
        w.failed.connect(self.on_failed)
        w.finished.connect(self.on_thread_finished)
        w.finished.connect(w.deleteLater)  # no finished workers pile up
        self._set_running(True)
        self.state.set_busy(True)
        self.progress_label.setText(f"Starting ({config.preset} preset on {config.device})…")
        w.start()

    @QtCore.Slot(str)
    def start_until(self, stage: str) -> None:
        """Run the graph up to ``stage`` (the Review page's "Run preprocessing"); "Run up to"
        shows it during the run and goes back to the user's choice afterwards, so the next
        Start runs what the user had chosen, not the preprocessing again."""
        index = self.until.findData(stage)
        previous = self.until.currentIndex()
        if index >= 0:
            self.until.setCurrentIndex(index)
        self.start()
        if self.running and index >= 0 and index != previous:
            self._restore_until = previous
        elif index >= 0 and index != previous:  # did not start: put the choice back now
            self.until.setCurrentIndex(previous)

    def show_result(self) -> bool:
        """Show the project's finished groom (with its fitted head, else the template head)
        when there is one on disk, else the template head; False when there is none."""
        if self.running:
            return False
        self.strand_view.clear()
        found = None
        try:
            found = self.state.find_groom()
            if found is not None:
                from engine.io.export import load_groom

                groom = load_groom(found.path)
                if groom.has_head:
                    self.strand_view.set_mesh(groom.head_vertices, groom.head_faces)
                else:
                    self.show_template_head()
                self.strand_view.set_strands(groom.strands)
                self.strand_view.apply_pending()
                return True
            coarse = self._finished_coarse()
            if coarse is not None:
                self.show_template_head()
                self.show_hair_mesh(coarse)
                return False
        except Exception as exc:  # noqa: BLE001 - an unreadable groom: say so, show the head
            self.log_view.appendPlainText(f"Cannot show the finished groom "
                                          f"{found.path if found else ''}: {exc}")
        self.show_template_head()
        return False

    def show_groom_file(self, path) -> bool:
        """Show the strands (and the head, when it has one) of the groom file ``path``."""
        try:
            from engine.io.export import load_groom

            groom = load_groom(path)
        except Exception as exc:  # noqa: BLE001
            self.log_view.appendPlainText(f"Cannot show the groom {path}: {exc}")
            return False
        if groom.has_head:
            self.strand_view.set_mesh(groom.head_vertices, groom.head_faces)
        self.strand_view.set_strands(groom.strands)
        return True

    def _finished_coarse(self):
        """The folder of the project's finished coarse stage for the current config, else None."""
        from engine.pipeline import resolve_artifact

        stages = self.state.stages()
        if self.state.project is None or COARSE_STAGE not in {s.name for s in stages}:
            return None
        try:
            a = resolve_artifact(self.state.project, stages,
                                 self.state.config(stages, device="cpu"), COARSE_STAGE)
        except Exception:  # noqa: BLE001 - no input yet, a bad saved config
            return None
        return None if a is None else a.path

    def show_hair_mesh(self, folder) -> bool:
        """Show the coarse hair surface (``hair_mesh.ply`` in the coarse stage's ``folder``)."""
        mesh = load_mesh_file(folder / HAIR_MESH_FILE) if folder is not None else None
        if mesh is None:
            return False
        self.strand_view.set_hair_mesh(*mesh, "coarse hair mesh")
        self.strand_view.apply_pending()
        return True

    def show_template_head(self) -> bool:
        """Show the template head until a stage sends its fitted head mesh."""
        head = template_head()
        if head is not None:
            self.strand_view.set_mesh(*head)
        return head is not None

    def toggle_pause(self) -> None:
        if self.worker is None:
            return
        if self.worker.paused:
            self.worker.resume()
            self.pause_button.setText("Pause")
            self.progress_label.setText("Resumed.")
        else:
            self.worker.pause()
            self.pause_button.setText("Continue")
            self.progress_label.setText("Paused: the run waits at its next step.")

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.progress_label.setText("Cancelling: stopping at the next step…")

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.pause_button.setEnabled(running)
        self.pause_button.setText("Pause")
        self.cancel_button.setEnabled(running)
        for w in (self.preset, self.device, self.until):
            w.setEnabled(not running)

    # -- slots (GUI thread) ----------------------------------------------------------------
    @QtCore.Slot(object)
    def on_stage_started(self, ev: StageStarted) -> None:
        self.counts["stage_started"] += 1
        self._stage_index, self._stage_count = ev.index, ev.count
        if not ev.cached:
            self.state.clear_log_warnings(ev.stage)
        it = self._item(ev.stage)
        if it is not None:
            it.setText(1, "cached" if ev.cached else "running")
        self.progress_bar.setValue(0)
        self.progress_label.setText(f"Stage {ev.index + 1}/{ev.count}: {ev.stage}"
                                    + (" (from cache)" if ev.cached else ""))

    @QtCore.Slot(object)
    def on_progress(self, ev: Progress) -> None:
        self.counts["progress"] += 1
        frac = ev.done / ev.total if ev.total else 0.0
        self.progress_bar.setValue(int(1000 * min(max(frac, 0.0), 1.0)))
        it = self._item(ev.stage)
        if it is not None:
            it.setText(1, f"running {100 * frac:.0f}%")
        msg = f" · {ev.message}" if ev.message else ""
        self.progress_label.setText(
            f"Stage {self._stage_index + 1}/{self._stage_count}: {ev.stage} · {ev.done}/{ev.total}"
            f"{msg} · ETA {fmt_duration(ev.eta_s)} · elapsed "
            f"{fmt_duration(time.monotonic() - self._t_start)}")

    @QtCore.Slot(object)
    def on_loss(self, ev: Loss) -> None:
        self.counts["loss"] += 1
        self.loss_plot.add(ev.stage, ev.step, dict(ev.values))

    @QtCore.Slot(object)
    def on_preview(self, ev: Preview) -> None:
        self.counts["preview"] += 1
        self.counts[f"preview:{ev.kind}"] += 1
        if ev.kind == "strands":
            self.strand_view.set_strands(ev.data)
        elif ev.kind == "mesh":
            label = (ev.label or "").lower()
            if label.startswith("hair"):     # the coarse stage's hair surface
                self.strand_view.set_hair_mesh(ev.data["vertices"], ev.data["faces"],
                                               f"{ev.stage} {ev.label}")
            elif label.startswith("bust"):   # the coarse bust: the head mesh stays
                pass
            else:                            # a head mesh
                self.strand_view.set_mesh(ev.data["vertices"], ev.data["faces"])
        elif ev.kind == "image":
            self.image_view.set_image(ev.data)
            self.views.setTabText(1, f"Images ({ev.stage}{': ' + ev.label if ev.label else ''})")

    @QtCore.Slot(object)
    def on_log(self, ev: Log) -> None:
        self.counts["log"] += 1
        self.log_view.appendPlainText(f"[{ev.stage or 'pipeline'}] {ev.level}: {ev.message}")
        if ev.level == "warning":
            self.state.add_log_warning(ev.stage or "pipeline", ev.message)

    @QtCore.Slot(object)
    def on_stage_finished(self, ev: StageFinished) -> None:
        self.counts["stage_finished"] += 1
        (self.cached if ev.cached else self.ran).append(ev.stage)
        self._last_run[ev.stage] = (("cached", "") if ev.cached
                                    else ("finished", fmt_duration(ev.wall_s)))
        it = self._item(ev.stage)
        if it is not None:
            it.setText(1, self._last_run[ev.stage][0])
            it.setText(2, self._last_run[ev.stage][1])
        self.progress_bar.setValue(1000)
        if ev.stage == COARSE_STAGE and not self.strand_view.hair_mesh_faces:
            self.show_hair_mesh(ev.path)   # from the cache, or no preview came
        if (ev.path / GROOM_FILE).is_file():
            # the finished groom itself: the stage's last preview is a thinned copy, and the
            # view's line must count the groom's strands, not the preview's
            self.show_groom_file(ev.path / GROOM_FILE)

    @QtCore.Slot()
    def on_succeeded(self) -> None:
        self.last_outcome = "succeeded"
        self.log_view.appendPlainText(f"Run finished in {fmt_duration(time.monotonic() - self._t_start)}.")

    @QtCore.Slot(str)
    def on_cancelled(self, message: str) -> None:
        self.last_outcome = "cancelled"
        self.log_view.appendPlainText(f"Cancelled: {message}")

    @QtCore.Slot(str, str)
    def on_failed(self, message: str, details: str) -> None:
        self.last_outcome = "failed"
        self.log_view.appendPlainText(f"Failed: {message}")
        show_error(self, "Reconstruction failed", message, details)

    @QtCore.Slot()
    def on_thread_finished(self) -> None:
        if self.sender() is not self.worker:
            return
        self.worker = None
        self._set_running(False)
        if self._restore_until is not _NO_RESTORE:
            self.until.blockSignals(True)
            self.until.setCurrentIndex(self._restore_until)
            self.until.blockSignals(False)
            self._restore_until = _NO_RESTORE
        self.state.set_busy(False)
        outcome = self.last_outcome or "failed"
        self.loss_plot.redraw()
        self.strand_view.apply_pending()
        self.refresh_status()
        self.progress_label.setText({"succeeded": "Finished.",
                                     "cancelled": "Cancelled; finished stages are kept and the "
                                                  "next start resumes from them.",
                                     "failed": "Failed; see the log."}[outcome])
        self.state.notify_changed()
        self.runFinished.emit(outcome)

    def shutdown(self, wait_ms: int = 10000) -> None:
        """Cancel a running job and wait for its thread (window closing)."""
        if self.worker is not None:
            self.worker.cancel()
            self.worker.wait(wait_ms)
