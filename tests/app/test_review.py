"""Review page: a project made from a short video goes through keyframes, layers, the brush and
excluding a frame; without preprocessing results it shows input frames and says why."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine.pipeline import PipelineConfig, Project, run_pipeline, stage_status
from tests.app import toy_stages


@pytest.fixture
def preprocessed(project):
    stages = toy_stages.preprocess_stages()
    config = PipelineConfig(stages, "preview")
    for _ in run_pipeline(project, stages, config):
        pass
    return project


@pytest.fixture
def review(qtbot, settings, preprocessed):
    from app.pages.review import ReviewPage
    from app.state import AppState

    state = AppState(settings, stages=toy_stages.factory(toy_stages.preprocess_stages))
    page = ReviewPage(state)
    qtbot.addWidget(page)
    page.resize(1000, 700)
    page.show()
    state.set_project(preprocessed)
    return page


def test_keyframes_layers_and_strip(review):
    page = review
    assert page.mode == "keyframes"
    assert page.strip.count() == 4  # 20 frames, every 5th
    assert [e.source_index for e in page.entries] == [0, 5, 10, 15]
    assert all(box.isEnabled() for box in page.layer_boxes.values())
    assert "All preprocessing results" in page.banner.text()
    page.strip.setCurrentRow(2)
    assert page.current.name == "002"
    for key in page.layer_boxes:
        page.layer_boxes[key].setChecked(key == "image")
    plain = page.composite()
    assert plain.shape == (128, 128, 3)
    page.layer_boxes["hair"].setChecked(True)
    with_hair = page.composite()
    # the toy hair mask is an ellipse around (64, 40): tinted there, untouched at the bottom
    assert np.abs(with_hair[40, 64].astype(int) - plain[40, 64]).max() > 20
    assert (with_hair[120, 5] == plain[120, 5]).all()
    page.layer_boxes["landmarks"].setChecked(True)
    lm = page.composite()
    assert (lm[70, 64 + 25] == (255, 230, 60)).all()  # a toy landmark at angle 0
    page.layer_boxes["orientation"].setChecked(True)
    orient = page.composite()
    assert np.abs(orient.astype(int) - lm).max() > 50
    page.layer_boxes["image"].setChecked(False)
    assert page.composite()[120, 5].max() < 60 + 255 * 0.45  # background grey (+ bust tint)


def test_brush_saves_edit_and_invalidates_masks(review):
    page = review
    project = page.state.project
    page.strip.setCurrentRow(1)
    page.brush_buttons["remove"].setChecked(True)
    page.brush_size.setValue(6)
    page.canvas.paint_at(64, 40)                 # remove hair in the middle of the ellipse
    page.canvas.paint_at(70, 40, connect=True)
    page.canvas.end_stroke()
    f = project.mask_edits_dir / "001.png"
    assert f.is_file()
    edit = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
    assert edit.dtype == np.uint8 and edit.shape == (128, 128)
    assert edit[40, 64] == 0 and edit[40, 70] == 0 and edit[100, 10] == 128
    assert set(np.unique(edit)) == {0, 128}
    page.brush_buttons["add"].setChecked(True)
    page.canvas.paint_at(10, 110)
    page.canvas.end_stroke()
    edit = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
    assert edit[110, 10] == 255
    # the hair overlay shows the edit
    for key in page.layer_boxes:
        page.layer_boxes[key].setChecked(key in ("image", "hair"))
    page.layer_boxes["image"].setChecked(False)
    shown = page.composite()
    assert shown[110, 10, 0] > shown[40, 64, 0] + 50  # added hair tinted, removed hair not
    # the masks stage must re-run with the edits: its cache key changed
    stages = toy_stages.preprocess_stages()
    status = {s.name: s.finished for s in stage_status(project, stages,
                                                       PipelineConfig(stages, "preview"))}
    assert status["keyframes"] and not status["masks"]
    # after a refresh the masks of the earlier run stay visible, marked as such
    page.refresh()
    assert page.mode == "keyframes" and page.stale == {"masks", "orientation"}
    assert page.paths["masks"] is not None and page.layer_boxes["bust"].isEnabled()
    assert "masks: from an earlier run" in page.banner.text()
    # reloading the frame reads the saved edit back; clearing removes the file
    page.strip.setCurrentRow(0)
    page.strip.setCurrentRow(1)
    assert page.canvas.edit[110, 10] == 255
    page.clear_edit()
    assert not f.exists()


def test_exclude_frame_is_saved(review):
    page = review
    page.strip.setCurrentRow(3)
    page.exclude_box.setChecked(True)
    assert Project.open(page.state.project.root).manifest["excluded_frames"] == [15]
    assert page.strip.item(3).text().endswith("✕")
    # the keyframes stage must re-run (its key includes the exclusions); until then the page
    # keeps showing the earlier keyframes and says so
    page.refresh()
    assert page.mode == "keyframes" and "keyframes" in page.stale
    assert "keyframes: from an earlier run" in page.banner.text()
    assert page.strip.count() == 4 and page.strip.item(3).text().endswith("✕")
    page.strip.setCurrentRow(0)
    assert not page.exclude_box.isChecked()
    page.strip.setCurrentRow(3)
    assert page.exclude_box.isChecked()
    page.exclude_box.setChecked(False)
    assert Project.open(page.state.project.root).manifest["excluded_frames"] == []


def test_without_preprocessing_shows_input_frames(qtbot, settings, project):
    from app.pages.review import ReviewPage
    from app.state import AppState

    state = AppState(settings, stages=toy_stages.factory(lambda: []))
    page = ReviewPage(state)
    qtbot.addWidget(page)
    assert page.mode == "none" and "No project" in page.banner.text()
    state.set_project(project)
    assert page.mode == "source" and page.strip.count() == 16
    assert "not available in this build yet" in page.banner.text()
    assert not page.brush_group.isEnabled() and not page.layer_boxes["hair"].isEnabled()
    assert page.composite().shape == (128, 128, 3)
    page.strip.setCurrentRow(1)
    page.exclude_box.setChecked(True)
    assert project.manifest["excluded_frames"] == [page.entries[1].source_index]


def test_stages_not_run_yet_are_named(qtbot, settings, project):
    from app.pages.review import ReviewPage
    from app.state import AppState

    state = AppState(settings, stages=toy_stages.factory(toy_stages.preprocess_stages))
    page = ReviewPage(state)
    qtbot.addWidget(page)
    state.set_project(project)
    assert page.mode == "source"
    assert "keyframes: not run yet" in page.banner.text()


def test_editing_waits_while_a_run_is_busy(review):
    page = review
    page.strip.setCurrentRow(0)
    assert page.brush_group.isEnabled() and page.exclude_box.isEnabled()
    page.state.set_busy(True)
    assert not page.brush_group.isEnabled() and not page.exclude_box.isEnabled()
    page.state.set_busy(False)
    assert page.brush_group.isEnabled() and page.exclude_box.isEnabled()


def test_brush_with_mouse_events(qtbot, review):
    from PySide6 import QtCore

    page = review
    page.strip.setCurrentRow(0)
    page.brush_buttons["add"].setChecked(True)
    page.brush_size.setValue(4)
    canvas = page.canvas
    r = canvas.target_rect()
    assert not r.isEmpty()
    centre = QtCore.QPoint(int(r.center().x()), int(r.center().y()))
    qtbot.mousePress(canvas, QtCore.Qt.MouseButton.LeftButton, pos=centre)
    qtbot.mouseRelease(canvas, QtCore.Qt.MouseButton.LeftButton, pos=centre)
    edit = cv2.imread(str(page.state.project.mask_edits_dir / "000.png"), cv2.IMREAD_UNCHANGED)
    assert edit is not None and edit[64, 64] == 255 and edit[5, 5] == 128
