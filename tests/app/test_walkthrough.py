"""State bugs a new user's walkthrough found (issue 22), each on the real widgets: a finished
groom survives a later cancelled run (Export and the 3D view), the Export folder follows the
project, a non-video file is refused, a brush edit refreshes the stage status, "Run
preprocessing" shows its preset and gives "Run up to" back, closing during a run asks and
cancels, and a new project is a named folder the app creates."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets

from tests.app import toy_stages

YES = int(QtWidgets.QMessageBox.StandardButton.Yes)
NO = int(QtWidgets.QMessageBox.StandardButton.No)

needs_exporters = pytest.mark.skipif(importlib.util.find_spec("engine.io.export") is None,
                                     reason="engine/io/export.py has not landed")


class Boxes:
    """QMessageBox.exec replaced: records each box; questions get :attr:`answer`."""

    def __init__(self) -> None:
        self.shown: list[dict] = []
        self.answer = NO

    def __call__(self, box: QtWidgets.QMessageBox) -> int:
        self.shown.append({"title": box.windowTitle(), "text": box.text(),
                           "question": box.icon() == QtWidgets.QMessageBox.Icon.Question})
        return self.answer if box.icon() == QtWidgets.QMessageBox.Icon.Question else 0


@pytest.fixture
def boxes(monkeypatch) -> Boxes:
    b = Boxes()
    monkeypatch.setattr(QtWidgets.QMessageBox, "exec", lambda box: b(box))
    return b


def make_window(qtbot, settings, stages_fn):
    from app.mainwindow import MainWindow
    from app.state import AppState

    w = MainWindow(AppState(settings, stages=toy_stages.factory(stages_fn)))
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    return w


def slow_overrides(project, stage: str, step_s: float) -> None:
    config = dict(project.manifest.get("config") or {})
    config["overrides"] = {stage: {"step_s": step_s}}
    project.manifest["config"] = config
    project.save()


@needs_exporters
def test_finished_groom_survives_a_later_cancelled_run(qtbot, settings, project, boxes):
    w = make_window(qtbot, settings, toy_stages.groom_stages)
    assert w.open_project(project.root)
    w.reconstruct.preset.setCurrentText("preview")
    with qtbot.waitSignal(w.reconstruct.runFinished, timeout=20000) as done:
        w.reconstruct.start()
    assert done.args == ["succeeded"], boxes.shown
    first = w.export.source
    assert first is not None and first.name == "groom.npz"

    # a later run with another preset, then the window is closed during it
    slow_overrides(w.state.project, "strands", 0.05)
    w.reconstruct.preset.setCurrentText("standard")
    w.reconstruct.start()
    qtbot.waitUntil(lambda: w.reconstruct.counts["progress"] >= 3, timeout=20000)
    boxes.answer = NO                         # "Keep running": nothing happens
    w.close()
    assert w.isVisible() and w.reconstruct.running
    assert boxes.shown[-1]["question"] and "running" in boxes.shown[-1]["text"]
    boxes.answer = YES                        # "Cancel run and close"
    w.close()
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=20000)
    assert not w.reconstruct.running and w.reconstruct.last_outcome == "cancelled"
    assert w.state.project.manifest["config"]["preset"] == "standard"
    # the loss plot was reset by the restart: only this run's steps, one plot per stage
    w.reconstruct.loss_plot.redraw()
    assert list(w.reconstruct.loss_plot.plots) == ["strands"]
    assert 3 <= w.reconstruct.loss_plot.point_count("strands: total") == w.reconstruct.counts["loss"]

    # reopened: the finished (preview) groom is found although the current config has none
    w2 = make_window(qtbot, settings, toy_stages.groom_stages)
    assert w2.open_project(project.root)
    assert w2.reconstruct.preset.currentText() == "standard"
    assert w2.export.source == first
    assert w2.export.export_button.isEnabled()
    assert "No reconstructed groom" not in w2.export.banner.text() or w2.export.banner.isHidden()
    assert "earlier run" in w2.export.source_label.text()
    # the 3D view shows that groom and its head, not only the template head
    view = w2.reconstruct.strand_view
    assert view.strand_count == 120 and view.segment_count == 120 * 15
    assert "120 strands" in view.hint.text()
    if view.available:
        assert view.mesh.visible and len(view.mesh.mesh_data.get_vertices()) == 12 * 16


@needs_exporters
def test_export_folder_and_groom_follow_the_project(qtbot, settings, project, tmp_path, boxes):
    w = make_window(qtbot, settings, toy_stages.groom_stages)
    assert w.open_project(project.root)
    with qtbot.waitSignal(w.reconstruct.runFinished, timeout=20000):
        w.reconstruct.start()
    assert w.export.folder.text() == str(project.root / "exports")
    assert w.export.source is not None
    other = tmp_path / "other"
    assert w.open_project(other)
    assert w.export.folder.text() == str(other.resolve() / "exports")
    assert w.export.source is None and not w.export.export_button.isEnabled()
    assert "No reconstructed groom" in w.export.banner.text()
    # and back: the first project's groom again
    assert w.open_project(project.root)
    assert w.export.folder.text() == str(project.root / "exports")
    assert w.export.source is not None and w.export.source.is_relative_to(project.root)


def test_non_video_file_is_refused_with_an_error(qtbot, settings, project, tmp_path, boxes,
                                                 monkeypatch):
    w = make_window(qtbot, settings, toy_stages.run_stages)
    assert w.open_project(project.root)
    before = dict(w.state.project.manifest["source"])
    readme = tmp_path / "README.md"
    readme.write_text("# not a video\n")
    monkeypatch.setattr(QtWidgets.QFileDialog, "getOpenFileName",
                        lambda *a, **k: (str(readme), ""))
    w.capture.open_video()                    # "Open existing video…" with README.md
    assert len(boxes.shown) == 1 and boxes.shown[0]["title"] == "Cannot import"
    assert str(readme) in boxes.shown[0]["text"]
    assert w.state.project.manifest["source"] == before
    assert not any("README" in p.name for p in w.state.project.input_dir.iterdir())
    # a real video still imports
    from tests.app.conftest import make_video
    clip = make_video(tmp_path / "other.mp4", frames=12)
    assert w.capture.import_source(clip)
    assert w.state.project.manifest["source"]["original"] == str(clip.resolve())


def test_brush_edit_refreshes_stage_status(qtbot, settings, project, boxes):
    w = make_window(qtbot, settings, lambda: toy_stages.preprocess_stages()
                    + toy_stages.run_stages())
    assert w.open_project(project.root)
    with qtbot.waitSignal(w.reconstruct.runFinished, timeout=20000):
        w.review.run_button.click()
    review, rec = w.review, w.reconstruct
    assert review.banner.text() == "All preprocessing results are available."
    assert not review.run_button.isEnabled()
    status = {rec.stage_list.topLevelItem(i).data(0, QtCore.Qt.ItemDataRole.UserRole):
              rec.stage_list.topLevelItem(i).text(1) for i in range(rec.stage_list.topLevelItemCount())}
    assert status["masks"] == "finished"
    review.strip.setCurrentRow(1)
    review.brush_buttons["add"].setChecked(True)
    review.canvas.paint_at(10, 10)
    review.canvas.end_stroke()                # saves the edit
    assert (project.mask_edits_dir / "001.png").is_file()
    assert review.strip.currentRow() == 1     # the frame being edited stays selected
    assert "masks: from an earlier run" in review.banner.text()
    assert review.run_button.isEnabled()
    status = {rec.stage_list.topLevelItem(i).data(0, QtCore.Qt.ItemDataRole.UserRole):
              rec.stage_list.topLevelItem(i).text(1) for i in range(rec.stage_list.topLevelItemCount())}
    assert status["keyframes"] == "finished" and status["landmarks"] == "finished"
    assert status["masks"] == "not run" and status["orientation"] == "not run"
    assert rec.start_button.text().startswith("Resume")


def test_run_preprocessing_shows_its_preset_and_gives_back_run_up_to(qtbot, settings, project,
                                                                     boxes):
    w = make_window(qtbot, settings, lambda: toy_stages.preprocess_stages()
                    + toy_stages.run_stages())
    assert w.open_project(project.root)
    review, rec = w.review, w.reconstruct
    # one preset, visible on both pages
    rec.preset.setCurrentText("high")
    assert review.preset.currentText() == "high" and not review.preset.isHidden()
    review.preset.setCurrentText("preview")
    assert rec.preset.currentText() == "preview"
    assert rec.until.currentData() is None    # "all stages"
    with qtbot.waitSignal(rec.runFinished, timeout=20000) as done:
        review.run_button.click()
    assert done.args == ["succeeded"]
    assert rec.ran == ["keyframes", "landmarks", "masks", "orientation"]
    assert w.state.project.manifest["config"]["preset"] == "preview"
    # "Run up to" is back on "all stages": the next Start runs the rest
    assert rec.until.currentData() is None
    assert rec.stage_list.topLevelItemCount() == 6
    with qtbot.waitSignal(rec.runFinished, timeout=20000) as done:
        rec.start()
    assert done.args == ["succeeded"]
    assert rec.cached == ["keyframes", "landmarks", "masks", "orientation"]
    assert rec.ran == ["toy_quick", "toy_strands"]


def test_close_without_a_run_asks_nothing(qtbot, settings, project, boxes):
    w = make_window(qtbot, settings, toy_stages.run_stages)
    assert w.open_project(project.root)
    w.close()
    assert not w.isVisible() and boxes.shown == []


def test_new_project_is_a_named_folder_the_app_creates(qtbot, settings, tmp_path, boxes,
                                                       monkeypatch):
    from app.dialogs import NewProjectDialog

    base = tmp_path / "projects"
    base.mkdir()
    dlg = NewProjectDialog(base)
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.waitExposed(dlg)
    # Enter in the location field with no name: nothing is accepted (never the parent)
    qtbot.keyClick(dlg.location, QtCore.Qt.Key.Key_Return)
    assert dlg.result() == 0 and dlg.isVisible() and dlg.project_path() is None
    assert not dlg.ok_button.isEnabled()
    dlg.name.setText("anna")
    assert dlg.project_path() == base / "anna" and "Creates" in dlg.result_label.text()
    qtbot.keyClick(dlg.name, QtCore.Qt.Key.Key_Return)
    assert dlg.result() == QtWidgets.QDialog.DialogCode.Accepted
    # a non-empty folder that is not a project is refused before the dialog closes
    (base / "busy").mkdir()
    (base / "busy" / "x.txt").write_text("x")
    dlg2 = NewProjectDialog(base, name="busy")
    qtbot.addWidget(dlg2)
    assert dlg2.project_path() is None and "not empty" in dlg2.result_label.text()
    dlg2.location.setText(str(tmp_path / "missing"))
    assert "no such folder" in dlg2.result_label.text()

    # File ▸ New project creates the folder (it need not exist) and opens it
    w = make_window(qtbot, settings, toy_stages.run_stages)

    def fake_exec(d):
        d.name.setText("bob")
        d.location.setText(str(base))
        return int(QtWidgets.QDialog.DialogCode.Accepted)

    monkeypatch.setattr(NewProjectDialog, "exec", fake_exec)
    assert w.new_project()
    assert w.state.project.root == (base / "bob").resolve()
    assert (base / "bob" / "project.json").is_file()
