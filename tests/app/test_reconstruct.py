"""Reconstruct page and the worker: a preview-preset run with a toy stage graph emits progress,
loss and preview signals, the loss plot gains points, the vispy view draws; cancel stops the run
quickly and the next run resumes from the cache; worker errors reach a dialog."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets

from engine.pipeline import Project, stage_status
from tests.app import toy_stages
from tests.app.conftest import vispy_can_draw


@pytest.fixture
def page(qtbot, settings, project):
    from app.pages.reconstruct import ReconstructPage
    from app.state import AppState

    state = AppState(settings, stages=toy_stages.factory(toy_stages.run_stages))
    state.set_project(project)
    page = ReconstructPage(state)
    qtbot.addWidget(page)
    page.resize(1100, 700)
    page.show()
    qtbot.waitExposed(page)
    page.preset.setCurrentText("preview")
    yield page
    page.shutdown()


def set_overrides(project: Project, **values) -> None:
    project.manifest["config"] = {"preset": "preview", "overrides": {"toy_strands": values}}
    project.save()


@pytest.fixture
def dialogs(monkeypatch):
    """Capture QMessageBox.exec instead of showing a modal dialog."""
    shown: list[dict] = []

    def fake_exec(box):
        shown.append({"title": box.windowTitle(), "text": box.text(),
                      "details": box.detailedText()})
        return 0

    monkeypatch.setattr(QtWidgets.QMessageBox, "exec", fake_exec)
    return shown


def test_preview_run_emits_events_plots_and_draws(qtbot, page, dialogs):
    assert [page.stage_list.topLevelItem(i).text(1) for i in range(2)] == ["not run", "not run"]
    with qtbot.waitSignal(page.runFinished, timeout=20000) as blocker:
        page.start()
    assert blocker.args == ["succeeded"], dialogs
    c = page.counts
    assert c["progress"] >= 40 and c["loss"] == 40       # preview preset: 40 steps
    assert c["preview:strands"] >= 1 and c["preview:mesh"] == 1 and c["preview:image"] == 1
    assert page.image_view.image_shape == (32, 48)
    assert page.views.tabText(1) == "Images (toy_strands: render)"
    assert c["stage_started"] == 2 and c["stage_finished"] == 2
    # the loss plot holds one curve per term with every step
    page.loss_plot.redraw()
    assert set(page.loss_plot.curves) == {"toy_strands: total", "toy_strands: smoothness"}
    assert page.loss_plot.point_count("toy_strands: total") == 40
    assert list(page.loss_plot.plots) == ["toy_strands"]   # one plot per stage
    assert page.loss_plot.plots["toy_strands"].ctrl.logYCheck.isChecked()
    assert page.loss_plot.legend_names("toy_strands") == ["total", "smoothness"]
    # status is read back from disk: both finished, with the summaries of done.json
    assert [page.stage_list.topLevelItem(i).text(1) for i in range(2)] == ["finished"] * 2
    assert page.stage_list.topLevelItem(1).toolTip(0).startswith("steps: 40\ntime: ")
    # one line visual with a connect array holding every segment of the last preview
    view = page.strand_view
    assert view.strand_count == 300 and view.segment_count == 300 * 15
    ok, why = vispy_can_draw()
    if not ok:
        pytest.skip(why)
    img = view.render_image()
    bg = np.array([0.11, 0.12, 0.14]) * 255
    differs = np.abs(img[..., :3].astype(float) - bg).max(axis=2) > 30
    assert differs.mean() > 0.01, "the strand view rendered (almost) nothing"
    # strands are coloured by direction: several distinct hues
    colours = img[differs][:, :3]
    assert len(np.unique(colours // 32, axis=0)) >= 3
    assert not dialogs


def test_previews_are_throttled(qtbot, page, project):
    set_overrides(project, step_s=0.01)  # 40 steps ~ 0.5 s, 8 strand previews yielded
    page.state.settings.qs.setValue("prefs/preview_rate", 2.0)
    t0 = time.monotonic()
    with qtbot.waitSignal(page.runFinished, timeout=20000):
        page.start()
    wall = time.monotonic() - t0
    n = page.counts["preview:strands"]
    # at most 2 per second (plus the first and the last, which always arrives) of the 8 yielded
    assert 1 <= n <= min(8, 2 + 2 * wall), (n, wall)
    if wall < 2.0:
        assert n < 8


def test_cancel_then_resume_from_cache(qtbot, page, project, dialogs):
    set_overrides(project, step_s=0.05)  # 40 steps would take 2 s
    page.start()
    qtbot.waitUntil(lambda: page.counts["progress"] >= 5, timeout=10000)
    t0 = time.monotonic()
    with qtbot.waitSignal(page.runFinished, timeout=5000) as blocker:
        page.cancel()
    assert time.monotonic() - t0 < 3.0
    assert blocker.args == ["cancelled"]
    assert not dialogs  # cancelling is not an error
    config = page.current_config(page.current_stages())
    status = {s.name: s.finished for s in stage_status(project, page.current_stages(), config)}
    assert status == {"toy_quick": True, "toy_strands": False}
    assert not list((project.cache_dir / "toy_strands").glob(".tmp-*"))  # nothing half-written
    assert page.start_button.text().startswith("Resume")
    set_overrides(project, step_s=0.0)  # pacing does not affect the cache key
    with qtbot.waitSignal(page.runFinished, timeout=20000) as blocker:
        page.start()
    assert blocker.args == ["succeeded"]
    assert page.cached == ["toy_quick"] and page.ran == ["toy_strands"]
    assert page.stage_list.topLevelItem(0).text(1) == "cached"


def test_pause_blocks_and_resume_continues(qtbot, page, project):
    set_overrides(project, step_s=0.02)
    page.start()
    qtbot.waitUntil(lambda: page.counts["progress"] >= 3, timeout=10000)
    page.toggle_pause()
    qtbot.wait(300)
    before = page.counts["progress"]
    qtbot.wait(500)
    assert page.counts["progress"] - before <= 1  # at most one event already in flight
    with qtbot.waitSignal(page.runFinished, timeout=20000) as blocker:
        page.toggle_pause()
    assert blocker.args == ["succeeded"]


@pytest.mark.parametrize("kind,expect_details", [("runtime", True), ("input", False)])
def test_worker_error_reaches_dialog(qtbot, page, project, dialogs, kind, expect_details):
    set_overrides(project, fail_at=3, fail_kind=kind)
    with qtbot.waitSignal(page.runFinished, timeout=20000) as blocker:
        page.start()
    assert blocker.args == ["failed"]
    assert len(dialogs) == 1
    d = dialogs[0]
    if expect_details:
        assert d["text"] == "RuntimeError: boom at step 3"
        assert "Traceback" in d["details"] and "_strands" in d["details"]
    else:
        assert d["text"] == "toy.mp4: the toy stage rejects this input"
        assert d["details"] == ""
    assert not page.running and page.start_button.isEnabled()


def test_worker_runs_any_generator_and_delivers_in_gui_thread(qtbot):
    from PySide6 import QtCore

    from app.worker import JobWorker

    seen = []

    class Receiver(QtCore.QObject):
        @QtCore.Slot(object)
        def on_item(self, item):
            seen.append((item, QtCore.QThread.currentThread()))

    def job(token):
        for i in range(5):
            token.check()
            yield {"i": i}

    recv = Receiver()
    worker = JobWorker(job)
    worker.item.connect(recv.on_item)
    with qtbot.waitSignal(worker.succeeded, timeout=5000):
        worker.start()
    worker.wait(2000)
    qtbot.waitUntil(lambda: len(seen) == 5, timeout=2000)
    gui = QtWidgets.QApplication.instance().thread()
    assert [s[0]["i"] for s in seen] == list(range(5))
    assert all(t is gui for _, t in seen)


def test_worker_reports_a_runtime_error_and_runs_off_the_gui_thread(qtbot):
    """superqt treats a RuntimeError out of its generator as a deleted worker and reports
    nothing; the JobWorker must still fail with the message and traceback, after the events
    that came before it, and run the job on a thread other than the GUI's."""
    from PySide6 import QtCore

    from app.worker import JobWorker

    threads, seen, failures = [], [], []

    class Receiver(QtCore.QObject):
        @QtCore.Slot(object)
        def on_item(self, item):
            seen.append(item)

        @QtCore.Slot(str, str)
        def on_failed(self, text, details):
            failures.append((text, details))

    def job(token):
        threads.append(QtCore.QThread.currentThread())
        yield "before"
        raise RuntimeError("all elements of target should be between 0 and 1")

    recv = Receiver()
    worker = JobWorker(job)
    worker.item.connect(recv.on_item)
    worker.failed.connect(recv.on_failed)
    with qtbot.waitSignal(worker.finished, timeout=5000):
        worker.start()
    assert worker.wait(2000) and not worker.isRunning()
    assert seen == ["before"]
    assert failures[0][0] == "RuntimeError: all elements of target should be between 0 and 1"
    assert "Traceback" in failures[0][1]
    assert worker.outcome == "failed"
    assert threads and threads[0] is not QtWidgets.QApplication.instance().thread()


def test_real_default_stages_are_listed(qtbot, settings, project):
    """By default the page lists the engine's seven stages, in run order, by title."""
    from app.pages.reconstruct import ReconstructPage
    from app.state import AppState

    state = AppState(settings)
    state.set_project(project)
    page = ReconstructPage(state)
    qtbot.addWidget(page)
    items = [page.stage_list.topLevelItem(i) for i in range(page.stage_list.topLevelItemCount())]
    assert [it.data(0, QtCore.Qt.ItemDataRole.UserRole) for it in items] == [
        "keyframes", "landmarks", "masks", "orientation", "cameras", "coarse", "strands"]
    assert [it.text(0) for it in items] == [
        "Keyframes", "Face landmarks", "Hair and bust masks", "Orientation maps",
        "Cameras and head", "Coarse hair volume", "Hair strands"]


def test_template_head_until_a_fitted_one_arrives(qtbot, page):
    from app.views.strand_view import TEMPLATE_HEAD, template_head

    head = template_head()
    if head is None:
        assert not page.show_template_head()
        pytest.skip(f"{TEMPLATE_HEAD} is not installed")
    v, f = head
    assert v.shape[1] == 3 and f.shape[1] == 3 and f.max() < len(v)
    assert 0.1 < float(np.ptp(v[:, 1])) < 0.6  # a head in metres, not centimetres
    page.strand_view.apply_pending()
    if page.strand_view.available:
        assert page.strand_view.mesh.visible


def test_loss_plot_curves_and_markers(qtbot):
    from app.views.loss_plot import LossPlot

    plot = LossPlot()
    qtbot.addWidget(plot)
    plot.add("cameras", 200, {"landmark_median_px": 2.3})  # one value at a stage's end
    for step in range(1, 41):
        plot.add("coarse", step, {"total": 1.0 / step, "eikonal": 0.0})  # 0 is clamped
    plot.redraw()
    assert plot.point_count() == 81
    assert plot.curves["cameras: landmark_median_px"].opts["symbol"] == "o"  # visible alone
    assert plot.curves["coarse: total"].opts["symbol"] is None
    _, ys = plot.curves["coarse: eikonal"].getData()  # log10 of the data on a log axis
    assert np.allclose(ys, -12.0)
    # each stage has its own plot, x axis (steps) and legend
    assert list(plot.plots) == ["cameras", "coarse"]
    assert plot.legend_names("coarse") == ["total", "eikonal"]
    assert plot.legend_names("cameras") == ["landmark_median_px"]
    assert plot.plots["cameras"].vb is not plot.plots["coarse"].vb
    assert plot.plots["coarse"].titleLabel.text == "coarse"
    plot.clear()
    assert plot.point_count() == 0 and not plot.curves and not plot.plots
