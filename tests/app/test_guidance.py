"""Issue 22, what guides a new user: the welcome screen, capture-quality warnings shown before
the recording is used (fed from the stages' artifacts and logged warnings), the cameras mode
picked in the app and stored as a PipelineConfig override, undo for the mask brush, the 3D
view's subset label and the coarse hair surface, and labels that fit at the default size."""

from __future__ import annotations

import json
from dataclasses import dataclass

import cv2
import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from engine.cameras.stages import CamerasConfig
from engine.pipeline import PipelineConfig, Stage, option, run_pipeline
from tests.app import toy_stages


@pytest.fixture
def boxes(monkeypatch):
    shown = []
    monkeypatch.setattr(QtWidgets.QMessageBox, "exec",
                        lambda box: shown.append(box.text()) or 0)
    return shown


def _toy_cameras(cfg, inputs, ctx):
    """A cameras stage on the engine's own CamerasConfig: records the mode it was given and,
    in mode "auto", writes the fit.json the engine writes after SfM fell back to landmarks."""
    info = {"mode": cfg.mode}
    if cfg.mode == "auto":
        yield ctx.log("structure from motion registered only 1 of 4 keyframes; capture more "
                      "slowly; falling back to landmark poses", "warning")
        info = {"mode": "landmarks", "auto": {"background_motion": 0.001,
                                              "yaw_range_deg": 70.0}}
    (ctx.out_dir / "fit.json").write_text(json.dumps(info))
    yield ctx.progress(1, 1)
    return {"mode": info["mode"], "import_path": cfg.import_path}


def graph():
    return toy_stages.preprocess_stages() + [
        Stage("cameras", 1, CamerasConfig, ("keyframes", "landmarks", "masks"), _toy_cameras,
              title="Cameras")]


def make_window(qtbot, settings, stages_fn=graph):
    from app.mainwindow import MainWindow
    from app.state import AppState

    w = MainWindow(AppState(settings, stages=toy_stages.factory(stages_fn)))
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    return w


# -- welcome ---------------------------------------------------------------------------------
def test_welcome_screen_new_open_and_sample(qtbot, settings, tmp_path, boxes, monkeypatch):
    from app.dialogs import NewProjectDialog
    from app.pages.welcome import sample_capture

    w = make_window(qtbot, settings)
    assert w.welcome_shown and w.welcome.isVisible() and not w.stack.isVisible()
    texts = [b.text() for b in (w.welcome.new_button, w.welcome.open_button,
                                w.welcome.sample_button)]
    assert texts == ["New project…", "Open project…", "Open the sample"]
    base = tmp_path / "projects"
    base.mkdir()
    names = []

    def fake_exec(d):
        names.append(d.name.text())
        d.location.setText(str(base))
        return int(QtWidgets.QDialog.DialogCode.Accepted)

    monkeypatch.setattr(NewProjectDialog, "exec", fake_exec)
    if sample_capture() is not None:
        w.welcome.sample_button.click()
        assert names == ["sample"]                       # the dialog offers the name
        project = w.state.project
        assert project.root == (base / "sample").resolve()
        assert project.manifest["source"]["original"] == str(sample_capture().resolve())
        assert not w.welcome_shown and w.stack.currentWidget() is w.review
        assert w.review.mode == "source"                 # the sample's frames are shown
    # New project from the welcome screen of a second window; recent projects are listed
    w2 = make_window(qtbot, settings)
    assert w2.welcome_shown
    if sample_capture() is not None:
        assert w2.welcome.recent.count() == 1
    monkeypatch.setattr(NewProjectDialog, "exec",
                        lambda d: (d.name.setText("mine"), d.location.setText(str(base)),
                                   int(QtWidgets.QDialog.DialogCode.Accepted))[-1])
    w2.welcome.new_button.click()
    assert w2.state.project.root == (base / "mine").resolve() and not w2.welcome_shown
    assert (base / "mine" / "project.json").is_file()
    # Open project from the welcome screen
    w3 = make_window(qtbot, settings)
    monkeypatch.setattr(QtWidgets.QFileDialog, "getExistingDirectory",
                        lambda *a, **k: str(base / "mine"))
    w3.welcome.open_button.click()
    assert w3.state.project.root == (base / "mine").resolve() and not w3.welcome_shown
    assert not boxes
    # "Continue without a project" shows the pages (the camera works without one)
    w4 = make_window(qtbot, settings)
    w4.welcome.skip_button.click()
    assert not w4.welcome_shown and w4.stack.isVisible()


# -- cameras mode and capture checks ----------------------------------------------------------
def test_cameras_mode_is_a_config_override_that_reaches_the_stage(qtbot, settings, project,
                                                                   boxes, tmp_path):
    w = make_window(qtbot, settings)
    assert w.open_project(project.root)
    project = w.state.project
    review, rec = w.review, w.reconstruct
    assert not review.cameras_box.isHidden() and review.cameras_mode.currentData() == "auto"
    assert review.import_path.isHidden()
    review.cameras_mode.setCurrentIndex(review.cameras_mode.findData("landmarks"))
    overrides = project.manifest["config"]["overrides"]
    assert overrides == {"cameras": {"mode": "landmarks"}}
    assert json.loads((project.root / "project.json").read_text())["config"]["overrides"] \
        == overrides
    # "Run preprocessing" runs a smaller graph; the cameras option survives it
    with qtbot.waitSignal(rec.runFinished, timeout=20000) as done:
        review.run_button.click()
    assert done.args == ["succeeded"], boxes
    assert project.manifest["config"]["overrides"]["cameras"] == {"mode": "landmarks"}
    with qtbot.waitSignal(rec.runFinished, timeout=20000) as done:
        rec.start()
    assert done.args == ["succeeded"] and rec.ran == ["cameras"], boxes
    from engine.pipeline import resolve_artifact
    stages = w.state.stages()
    a = resolve_artifact(project, stages, w.state.config(stages), "cameras")
    assert a.done["summary"]["mode"] == "landmarks" and a.done["config"]["mode"] == "landmarks"
    # an import mode asks for a path; the engine's own check refuses a mode it does not know
    transforms = tmp_path / "transforms.json"
    transforms.write_text("{}")
    review.import_path.setText(str(transforms))
    review.cameras_mode.setCurrentIndex(review.cameras_mode.findData("transforms"))
    assert not review.import_path.isHidden()
    assert project.manifest["config"]["overrides"]["cameras"] == {
        "mode": "transforms", "import_path": str(transforms)}
    assert not review.set_cameras_mode("sideways")
    assert "not one of" in boxes[-1]
    assert project.manifest["config"]["overrides"]["cameras"]["mode"] == "transforms"
    # back to automatic: no override left
    review.cameras_mode.setCurrentIndex(review.cameras_mode.findData("auto"))
    assert "cameras" not in project.manifest["config"]["overrides"]


def test_capture_checks_show_face_lost_and_the_sfm_fallback(qtbot, settings, project, boxes):
    w = make_window(qtbot, settings)
    assert w.open_project(project.root)
    review, rec = w.review, w.reconstruct
    assert not review.checks.isVisible()                 # nothing has run yet
    with qtbot.waitSignal(rec.runFinished, timeout=20000):
        review.run_button.click()
    w.show_page("Review")
    # the toy keyframes stage finds no face (yaw_deg None in keyframes.json)
    assert review.checks.isVisible()
    assert [x.kind for x in review.warnings] == ["face"]
    assert "Face lost in 4 of 4 keyframes" in review.checks.text()
    # the cameras stage (mode auto) logs the SfM fallback and leaves fit.json saying so
    with qtbot.waitSignal(rec.runFinished, timeout=20000):
        rec.start()
    assert "[cameras] warning: structure from motion" in rec.log_view.toPlainText()
    kinds = [x.kind for x in review.warnings]
    assert kinds.count("cameras") == 1 and "face" in kinds
    assert "Structure from motion failed" in review.checks.text()
    assert "falling back to landmark poses" in review.checks.text()   # the logged line too
    assert not rec.checks_label.isHidden() and rec.checks_label.text().startswith("⚠ 3 capture")


def _keyframes_folder(folder, frames, yaws):
    from engine.preprocess.artifacts import KEYFRAMES_JSON, save_frame

    folder.mkdir(parents=True)
    for i, (img, yaw) in enumerate(zip(frames, yaws)):
        save_frame(folder, f"{i:03d}", img)
    (folder / KEYFRAMES_JSON).write_text(json.dumps({
        "width": 64, "height": 64, "fps": 10.0, "source_kind": "video",
        "frames": [{"name": f"{i:03d}", "source_index": 10 * i, "time_s": i, "sharpness": 1.0,
                    "yaw_deg": yaw} for i, yaw in enumerate(yaws)]}))
    return folder


def test_keyframe_checks_coverage_and_darkness(tmp_path):
    from app.quality import camera_warnings, keyframe_warnings, landmark_warnings

    bright = [np.full((64, 64, 3), 150, np.uint8)] * 4
    ok = _keyframes_folder(tmp_path / "ok", bright, [-40.0, -10.0, 12.0, 38.0])
    assert keyframe_warnings(ok, {"yaw_min": -40.0, "yaw_max": 38.0}) == []
    # a turn to one side only, in a dark room
    dark = [np.full((64, 64, 3), 20, np.uint8)] * 3 + [np.full((64, 64, 3), 150, np.uint8)]
    half = _keyframes_folder(tmp_path / "half", dark, [-45.0, -30.0, -12.0, 5.0])
    got = keyframe_warnings(half, {"yaw_min": -45.0, "yaw_max": 5.0})
    assert [x.kind for x in got] == ["coverage", "dark"]
    assert "nothing from +5° to +25°" in got[0].text
    assert "3 of 4 keyframes (#0, #10, #20)" in got[1].text and "20/255" in got[1].text
    assert landmark_warnings({"found": 3, "keyframes": 4})[0].text.startswith(
        "Face landmarks not found in 1 of 4")
    assert landmark_warnings({"found": 4, "keyframes": 4}) == []
    # the cameras stage's fit.json: SfM chosen (turn) and registered too few views
    cams = tmp_path / "cams"
    cams.mkdir()
    (cams / "fit.json").write_text(json.dumps({
        "mode": "landmarks", "auto": {"background_motion": 0.0, "yaw_range_deg": 80.0},
        "sfm": {"registered": 2, "total": 12}}))
    got = camera_warnings(cams, {"config": {"min_turn_deg": 30.0, "orbit_motion": 0.01}})
    assert len(got) == 1 and "registered 2 of 12 keyframes" in got[0].text
    (cams / "fit.json").write_text(json.dumps({
        "mode": "landmarks", "auto": {"background_motion": 0.0, "yaw_range_deg": 10.0}}))
    assert camera_warnings(cams, {"config": {"min_turn_deg": 30.0}}) == []  # chose landmarks


# -- brush undo -------------------------------------------------------------------------------
@pytest.fixture
def review_window(qtbot, settings, project, boxes):
    stages = toy_stages.preprocess_stages()
    for _ in run_pipeline(project, stages, PipelineConfig(stages, "preview")):
        pass
    w = make_window(qtbot, settings, toy_stages.preprocess_stages)
    assert w.open_project(project.root)
    w.show_page("Review")
    return w


def test_brush_undo_several_steps_with_ctrl_z(qtbot, review_window, project):
    from app import artifacts as art

    review = review_window.review
    review.strip.setCurrentRow(1)
    name = review.current.name
    review.brush_buttons["add"].setChecked(True)
    assert not review.undo_button.isEnabled()
    states = [review.canvas.edit.copy()]
    for x in (20, 50, 80):                      # three strokes
        review.canvas.paint_at(x, 20)
        review.canvas.paint_at(x + 5, 30, connect=True)
        review.canvas.end_stroke()
        states.append(review.canvas.edit.copy())
    assert review.undo_button.isEnabled() and review.undo_button.text() == "Undo stroke (3)"
    saved = lambda: art.load_mask_edit(project.mask_edits_dir, name, states[0].shape)  # noqa: E731
    assert (saved() == states[3]).all()
    review.clear_edit()                          # "Clear edits" is undoable too
    assert (review.canvas.edit == art.EDIT_KEEP).all()
    assert not (project.mask_edits_dir / f"{name}.png").exists()
    review.canvas.setFocus()
    qtbot.keyClick(review.canvas, QtCore.Qt.Key.Key_Z, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert (review.canvas.edit == states[3]).all() and (saved() == states[3]).all()
    review.undo_button.click()
    assert (review.canvas.edit == states[2]).all() and (saved() == states[2]).all()
    # the frame's steps survive looking at another frame and back
    review.strip.setCurrentRow(2)
    assert not review.undo_button.isEnabled()
    review.strip.setCurrentRow(1)
    assert review.undo_button.text() == "Undo stroke (2)"
    qtbot.keyClick(review.canvas, QtCore.Qt.Key.Key_Z, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert (review.canvas.edit == states[1]).all()
    review.undo_button.click()
    assert (review.canvas.edit == states[0]).all()
    assert not (project.mask_edits_dir / f"{name}.png").exists()   # back to no edit at all
    assert not review.undo_button.isEnabled() and not review.undo_edit()


def test_brush_undo_keeps_at_most_the_limit(qtbot, review_window):
    review = review_window.review
    canvas = review.canvas
    canvas.undo_limit = 4
    review.brush_buttons["remove"].setChecked(True)
    for i in range(7):
        canvas.paint_at(10 + 5 * i, 40)
        canvas.end_stroke()
    assert len(canvas.undo_stack) == 4
    assert sum(review.undo_edit() for _ in range(6)) == 4


# -- the 3D view ------------------------------------------------------------------------------
def test_strand_view_says_when_it_shows_a_subset(qtbot):
    from app.views.strand_view import StrandView

    view = StrandView(max_strands=2000)
    qtbot.addWidget(view)
    view.set_strands(toy_stages.toy_groom(10000, length=8))
    view.apply_pending()
    assert view.strand_count == 2000 and view.total_strands == 10000
    assert view.hint.text() == "Showing 2,000 of 10,000 strands (8 points each)"
    view.set_strands(toy_stages.toy_groom(500, length=8))
    view.apply_pending()
    assert view.hint.text() == "500 strands (8 points each)"


@dataclass(frozen=True)
class _Coarse:
    steps: int = option(3, "steps", range=(1, None))


def _toy_coarse(cfg, inputs, ctx):
    """Leaves hair_mesh.ply as the real coarse stage does and sends its mesh previews."""
    import trimesh

    hair = trimesh.creation.icosphere(2, 0.1)
    bust = trimesh.creation.box((0.2, 0.1, 0.2))
    hair.export(ctx.out_dir / "hair_mesh.ply")
    for step in range(cfg.steps):
        yield ctx.loss(step, {"total": 1.0 / (step + 1)})
    yield ctx.preview("mesh", {"vertices": hair.vertices.astype(np.float32),
                               "faces": hair.faces.astype(np.int32)}, "hair mesh")
    yield ctx.preview("mesh", {"vertices": bust.vertices.astype(np.float32),
                               "faces": bust.faces.astype(np.int32)}, "bust mesh")
    return {}


def test_coarse_hair_mesh_is_shown_live_and_from_the_cache(qtbot, settings, project, boxes):
    stages_fn = lambda: [Stage("coarse", 1, _Coarse, (), _toy_coarse, title="Coarse")]  # noqa: E731
    w = make_window(qtbot, settings, stages_fn)
    assert w.open_project(project.root)
    rec, view = w.reconstruct, w.reconstruct.strand_view
    head_faces = None
    with qtbot.waitSignal(rec.runFinished, timeout=20000):
        rec.start()
    view.apply_pending()
    assert view.hair_mesh_faces == 320                   # icosphere(2): the hair surface
    assert "coarse hair mesh (translucent)" in view.hint.text()
    assert not view.hair_toggle.isHidden()
    if view.available:
        head_faces = len(view.mesh.mesh_data.get_faces())
        assert view.hair_mesh.visible and head_faces != 12   # the bust box did not replace it
        view.hair_toggle.setChecked(False)
        assert not view.hair_mesh.visible
    # a second window: no run, the finished coarse stage's hair_mesh.ply is shown
    w2 = make_window(qtbot, settings, stages_fn)
    assert w2.open_project(project.root)
    assert w2.reconstruct.strand_view.hair_mesh_faces == 320
    # a run that finds the stage cached shows it too
    with qtbot.waitSignal(w2.reconstruct.runFinished, timeout=20000):
        w2.reconstruct.start()
    assert w2.reconstruct.cached == ["coarse"]
    assert w2.reconstruct.strand_view.hair_mesh_faces == 320


# -- labels that fit --------------------------------------------------------------------------
def clipped_texts(root: QtWidgets.QWidget) -> list[str]:
    """Visible labels, buttons and check boxes whose one-line text is wider than the widget."""
    out = []
    for wdg in root.findChildren(QtWidgets.QWidget):
        if not wdg.isVisibleTo(root) or wdg.width() <= 0:
            continue
        if isinstance(wdg, QtWidgets.QLabel):
            if wdg.wordWrap() or wdg.textFormat() == QtCore.Qt.TextFormat.RichText \
                    or not wdg.text() or "<" in wdg.text():
                continue
            need = wdg.fontMetrics().horizontalAdvance(wdg.text()) + 2 * wdg.margin()
        elif isinstance(wdg, (QtWidgets.QPushButton, QtWidgets.QCheckBox,
                              QtWidgets.QRadioButton)):
            if not wdg.text():
                continue
            need = wdg.minimumSizeHint().width()
            need = max(need, wdg.sizeHint().width()) if isinstance(
                wdg, (QtWidgets.QCheckBox, QtWidgets.QRadioButton)) else need
        else:
            continue
        if wdg.width() + 1 < need:
            out.append(f"{type(wdg).__name__} {wdg.text()!r}: {wdg.width()} < {need}")
    return out


def test_labels_fit_at_the_default_window_size(qtbot, settings, project, boxes):
    w = make_window(qtbot, settings)
    assert (w.width(), w.height()) == (1280, 820)
    assert not clipped_texts(w.welcome), clipped_texts(w.welcome)
    assert w.open_project(project.root)
    with qtbot.waitSignal(w.reconstruct.runFinished, timeout=20000):
        w.review.run_button.click()
    for name in ("Capture", "Review", "Reconstruct", "Export"):
        w.show_page(name)
        qtbot.wait(20)
        page = w.stack.currentWidget()
        assert not clipped_texts(page), (name, clipped_texts(page))
