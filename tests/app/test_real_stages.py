"""The app on the engine's real preprocessing stages (engine.registry.default_stages) and the
embedded sample capture: Review asks for preprocessing, Reconstruct runs it through the worker,
Review shows keyframes with masks, landmarks and orientation; a brush edit is used by the next
run, which takes the unchanged stages from the cache. Small overrides keep it to a few
seconds. The last test is the whole walk on every real stage: new project, preprocessing, a
brush edit, a (tiny) preview reconstruction to the end, export to .abc and .obj, close, reopen,
export again (about a minute on two CPU cores)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.pipeline import Project

SAMPLE = Path(__file__).resolve().parents[2] / "resources" / "sample" / "capture.mp4"
PREPROCESS = ("keyframes", "landmarks", "masks", "orientation")


pytestmark = [
    pytest.mark.skipif(not SAMPLE.is_file(), reason="no embedded sample capture"),
]


def _paint_not_hair(review, hair: np.ndarray, size: int) -> tuple[int, int]:
    """One "remove hair" brush stroke of ``size`` px on the hairiest pixel of ``hair``;
    returns that pixel (y, x)."""
    y, x = (int(v) for v in np.unravel_index(np.argmax(hair), hair.shape))
    review.brush_buttons["remove"].setChecked(True)
    review.brush_size.setValue(size)
    review.canvas.paint_at(x, y)
    review.canvas.end_stroke()
    return y, x


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
    y, x = _paint_not_hair(review, hair, 6)
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


# the smallest settings that still run every real stage on the sample (about half a minute on
# two CPU cores; the coarse stage's set-up dominates): a handful of keyframes at 192 px, a few
# optimisation steps, a coarse 32^3 mesh and a few hundred final strands
TINY = {
    "keyframes": {"max_keyframes": 6, "max_candidates": 24, "max_side": 192},
    "masks": {"grabcut_iterations": 1, "grabcut_side": 128},
    "orientation": {"orientations": 8},
    "cameras": {"iterations": 60},
    "coarse": {"iterations": 8, "rays_per_batch": 32, "n_samples": 4, "n_importance": 0,
               "image_size": 64, "plane_resolutions": [16, 32], "mesh_resolution": 32,
               "preview_every": 4},
    "strands": {"iterations": 4, "strands_per_step": 64, "texture_res": 32, "render_size": 32,
                "render_strands": 64, "dense_strands": 500, "surface_samples": 2000,
                "chamfer_points": 200, "volume_resolution": 32, "preview_every": 2},
}


def test_new_project_to_export_close_reopen_and_export_again(qtbot, settings, tmp_path,
                                                             monkeypatch):
    """The whole app on the real engine, no stubs: a new project from a video file (welcome
    screen, Capture page's "Open existing video"), preprocessing, the capture checks, a brush
    edit, the cameras mode picked in the app, a preview-preset reconstruction of the sample to
    the end, export to .abc and .obj, close, reopen from the recent list, export again."""
    from PySide6 import QtWidgets

    from app import artifacts as art
    from app.dialogs import NewProjectDialog
    from app.mainwindow import MainWindow
    from app.state import AppState
    from engine.io.export import load_groom

    shown = []
    monkeypatch.setattr(QtWidgets.QMessageBox, "exec",
                        lambda box: shown.append((box.text(), box.detailedText())) or 0)
    base = tmp_path / "projects"
    base.mkdir()

    def new_project_dialog(d):
        d.name.setText("anna")
        d.location.setText(str(base))
        return int(QtWidgets.QDialog.DialogCode.Accepted)

    monkeypatch.setattr(NewProjectDialog, "exec", new_project_dialog)
    monkeypatch.setattr(QtWidgets.QFileDialog, "getOpenFileName",
                        lambda *a, **k: (str(SAMPLE), ""))

    w = MainWindow(AppState(settings))       # the real default stage graph
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    assert w.welcome_shown
    w.welcome.skip_button.click()             # look at the Capture page first
    w.capture.open_video()                    # no project yet: asks for one, then imports
    project = w.state.project
    assert project is not None and project.root == (base / "anna").resolve()
    assert project.manifest["source"]["original"] == str(SAMPLE.resolve())
    for stage, values in TINY.items():        # the project's config overrides, as the CLI's --set
        w.state.set_overrides(stage, values)
    review, rec = w.review, w.reconstruct
    review.preset.setCurrentText("preview")
    review.cameras_mode.setCurrentIndex(review.cameras_mode.findData("landmarks"))

    # preprocessing from the Review page
    with qtbot.waitSignal(rec.runFinished, timeout=120000) as done:
        review.run_button.click()
    assert done.args == ["succeeded"], shown
    assert rec.ran == list(PREPROCESS)
    assert project.manifest["config"]["overrides"]["cameras"] == {"iterations": 60,
                                                                  "mode": "landmarks"}
    w.show_page("Review")
    assert review.mode == "keyframes" and review.strip.count() == 6
    assert review.checks.isVisible() and review.checks.text().startswith("✓ Capture checks")

    # a brush edit: "not hair" over the hairiest spot of a keyframe
    review.strip.setCurrentRow(2)
    hair = review._hair
    y, x = _paint_not_hair(review, hair, 5)
    name = review.current.name
    assert (project.mask_edits_dir / f"{name}.png").is_file()

    # the reconstruction to the end: preprocessing from the cache except what the edit changed
    w.show_page("Reconstruct")
    assert rec.preset.currentText() == "preview" and rec.until.currentData() is None
    with qtbot.waitSignal(rec.runFinished, timeout=240000) as done:
        rec.start()
    assert done.args == ["succeeded"], (shown, rec.log_view.toPlainText()[-2000:])
    assert rec.cached == ["keyframes", "landmarks"]
    assert rec.ran == ["masks", "orientation", "cameras", "coarse", "strands"]
    assert rec.counts["loss"] > 0 and rec.counts["preview:strands"] > 0
    assert rec.loss_plot.legend_names("coarse") and rec.loss_plot.legend_names("strands")
    view = rec.strand_view
    view.apply_pending()
    assert view.hair_mesh_faces > 0                       # the coarse hair surface
    assert view.total_strands > 0 and "strands" in view.hint.text()
    stages = w.state.stages()
    config = w.state.config(stages)
    from engine.pipeline import resolve_artifact
    masks = resolve_artifact(project, stages, config, "masks")
    assert art.load_mask(masks.path, "hair", name)[y, x] == 0.0 and hair[y, x] > 0.5
    cams = resolve_artifact(project, stages, config, "cameras")
    assert cams.done["summary"]["mode"] == "landmarks"
    assert "cameras found with mode 'landmarks'" in review.checks.text()
    assert "back of the head not seen" in review.checks.text()  # a front-only clip

    # export to Alembic and OBJ
    page = w.export
    w.show_page("Export")
    assert page.source is not None and page.source.name == "groom.npz"
    groom = load_groom(page.source)
    assert groom.num_strands > 0
    assert view.total_strands == groom.num_strands      # the groom, not the thinned preview

    def export(fmt: str, file_name: str | None = None):
        page.format.setCurrentIndex(page.format.findData(fmt))
        if file_name:
            page.file_name.setText(file_name)
        page.export()
        qtbot.waitUntil(lambda: page.worker is None, timeout=60000)
        assert not shown, shown
        return page.last_written

    abc = export("abc")
    assert abc == project.root / "exports" / "groom.abc" and abc.stat().st_size > 0
    back = load_groom(abc)
    assert back.num_strands == groom.num_strands
    assert np.allclose(back.strands, groom.strands, atol=1e-4)   # cm in the file, metres back
    obj = export("obj")
    assert obj.suffix == ".obj"
    assert sum(line.startswith("l ") for line in obj.read_text().splitlines()) > 0

    # close, reopen from the welcome screen's recent list, export again
    w.close()
    assert not w.isVisible()
    w2 = MainWindow(AppState(settings))
    qtbot.addWidget(w2)
    w2.show()
    qtbot.waitExposed(w2)
    assert w2.welcome_shown and w2.welcome.recent.item(0).text() == str(project.root)
    w2.welcome.recent.itemActivated.emit(w2.welcome.recent.item(0))
    assert w2.state.project.root == project.root and not w2.welcome_shown
    assert w2.reconstruct.start_button.text() == "Run again (all cached)"
    assert w2.review.cameras_mode.currentData() == "landmarks"
    page = w2.export
    assert page.source == w.export.source and "earlier run" not in page.source_label.text()
    again = export("abc", "again.abc")
    assert again == project.root / "exports" / "again.abc"
    assert load_groom(again).num_strands == groom.num_strands
