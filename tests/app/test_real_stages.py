"""The app on the engine's real preprocessing stages (engine.pipeline.default_stages) and the
embedded sample capture: Review asks for preprocessing, Reconstruct runs it through the worker,
Review shows keyframes with masks, landmarks and orientation; a brush edit is used by the next
run, which takes the unchanged stages from the cache. Small overrides keep it to a few
seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.pipeline import Project

SAMPLE = Path(__file__).resolve().parents[2] / "resources" / "sample" / "capture.mp4"
PREPROCESS = ("keyframes", "landmarks", "masks", "orientation")


def _installed() -> list[str]:
    from app.state import installed_stages
    return [s.name for s in installed_stages()]


pytestmark = [
    pytest.mark.skipif(not SAMPLE.is_file(), reason="no embedded sample capture"),
    pytest.mark.skipif(not set(PREPROCESS) <= set(_installed()),
                       reason="the preprocessing stages are not in this build"),
]


def test_preprocess_review_edit_and_rerun(qtbot, settings, tmp_path, monkeypatch):
    from PySide6 import QtWidgets

    from app import artifacts as art
    from app.mainwindow import MainWindow
    from app.state import AppState

    shown = []
    monkeypatch.setattr(QtWidgets.QMessageBox, "exec",
                        lambda box: shown.append((box.text(), box.detailedText())))
    project = Project.open_or_create(tmp_path / "sample")
    project.import_source(SAMPLE)
    project.manifest["config"] = {"preset": "preview", "overrides": {
        "keyframes": {"max_keyframes": 4, "max_candidates": 30, "max_side": 256}}}
    project.save()

    state = AppState(settings)  # the real default stage graph
    w = MainWindow(state)
    qtbot.addWidget(w)
    w.open_project(project.root)
    w.reconstruct.preset.setCurrentText("preview")
    review = w.review
    assert review.mode == "source" and "keyframes: not run yet" in review.banner.text()
    assert review.preprocess_target() == "orientation"

    with qtbot.waitSignal(w.reconstruct.runFinished, timeout=60000) as blocker:
        review.run_button.click()
    assert blocker.args == ["succeeded"], shown
    rec = w.reconstruct
    assert rec.ran[:4] == list(PREPROCESS)
    assert rec.counts["progress"] > 0 and rec.counts["preview:image"] > 0
    assert rec.image_view.image_shape is not None  # the stages' image previews reached the tab

    # Review now shows the real results
    assert review.mode == "keyframes" and review.strip.count() == 4, review.banner.text()
    assert all(box.isEnabled() for box in review.layer_boxes.values())
    review.strip.setCurrentRow(1)
    hair = review._hair
    assert hair is not None and hair.dtype == np.float32 and hair.max() > 0.5 > hair.mean()
    assert review._points is not None and review._points.shape == (478, 2)
    assert review._orient is not None and review._orient.shape == hair.shape + (3,)

    # paint "not hair" over the hairiest spot; the next run's masks stage uses the edit
    y, x = (int(v) for v in np.unravel_index(np.argmax(hair), hair.shape))
    review.brush_buttons["remove"].setChecked(True)
    review.brush_size.setValue(6)
    review.canvas.paint_at(x, y)
    review.canvas.end_stroke()
    name = review.current.name
    assert (project.mask_edits_dir / f"{name}.png").is_file()

    rec.until.setCurrentIndex(rec.until.findData("orientation"))
    with qtbot.waitSignal(rec.runFinished, timeout=60000) as blocker:
        rec.start()
    assert blocker.args == ["succeeded"], shown
    assert rec.cached == ["keyframes", "landmarks"] and rec.ran == ["masks", "orientation"]
    review.strip.setCurrentRow(1)
    new_hair = art.load_mask(review.paths["masks"], "hair", name)
    assert new_hair[y, x] == 0.0 and hair[y, x] > 0.5
    assert not review.stale and not shown

    # excluding a keyframe changes the keyframes stage's key; Review keeps the earlier ones
    review.exclude_box.setChecked(True)
    review.refresh()
    assert review.mode == "keyframes" and "keyframes" in review.stale
    assert review.strip.item(1).text().endswith("✕")
