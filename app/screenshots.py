"""Take screenshots of every page in a real X window (run by hand, under Xvfb on a server):

    xvfb-run -a -s "-screen 0 1280x1024x24" python -m app.screenshots docs/screenshots

``welcome.png`` is the window before a project is open. The project is made from the shipped
sample (``resources/sample/capture.mp4``, a rendered head turning from -50 to +50 degrees); the
Capture page plays it through the video-file camera source with the real live analysis. Review
runs the real preprocessing stages (preview preset) from its "Run preprocessing" button and
shows the results with the capture checks; then the real graph runs to the end on the
Reconstruct page with the preview preset made smaller (:data:`SHOT_OVERRIDES`, a few minutes on a
CPU): ``reconstruct-preprocessing.png`` after the preprocessing (its image previews),
``reconstruct-live.png`` during the strand stage, ``reconstruct.png`` when it has finished,
``review-after-run.png`` the Review page's checks after the cameras stage, ``export.png`` the
Export page with that groom. ``export-converted.png`` shows the Export page
after converting the sample's ground-truth groom file. ``reconstruct-live-demo.png`` runs a
*demo* stage (defined here, never used by the app) that streams losses and the sample's true
groom through the real worker; its stage list says "demo".
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

# the preview preset, smaller where a CPU takes long (the result is rougher than a real preview)
SHOT_OVERRIDES = {
    "coarse": {"iterations": 60, "rays_per_batch": 128, "n_samples": 16, "n_importance": 8,
               "mesh_resolution": 64, "preview_every": 20},
    "strands": {"iterations": 30, "preview_every": 5, "dense_strands": 30000},
}


def _pump(app, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def _demo_groom(n: int, step: int, steps: int) -> tuple[np.ndarray, dict | None]:
    """A procedural groom (engine.prior.synth when present) growing with ``step``; the head
    mesh from resources/prior/head_ict.npz when present."""
    mesh = None
    asset = REPO / "resources" / "prior" / "head_ict.npz"
    if asset.is_file():
        with np.load(asset) as z:
            mesh = {"vertices": z["mesh_vertices"].astype(np.float32),
                    "faces": z["mesh_faces"].astype(np.int32)}
    strands = None
    try:
        from engine.io.export import load_groom
        g = load_groom(REPO / "resources" / "sample" / "groom.npz")
        idx = np.random.default_rng(0).choice(g.num_strands, min(n, g.num_strands), replace=False)
        return _grow(g.strands[idx], step, steps), mesh
    except Exception:  # noqa: BLE001 - fall back to the prior's procedural grooms
        pass
    try:
        from engine.prior.synth import sample_style, synth_groom
        strands = np.asarray(synth_groom(sample_style(3, curl="wavy", length="medium"),
                                         n_strands=n, n_points=32).strands, np.float32)
    except Exception:  # noqa: BLE001 - the prior module may not be there
        rng = np.random.default_rng(0)
        d = rng.normal(size=(n, 3))
        d[:, 1] = np.abs(d[:, 1]) + 0.3
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        roots = 0.1 * d
        t = np.linspace(0, 0.2, 32)[None, :, None]
        strands = (roots[:, None] + 0.3 * d[:, None] * t - np.array([0, 1.0, 0]) * t).astype(np.float32)
    return _grow(strands, step, steps), mesh


def _grow(strands: np.ndarray, step: int, steps: int) -> np.ndarray:
    frac = 0.15 + 0.85 * step / steps
    keep = max(2, int(round(strands.shape[1] * frac)))
    return np.ascontiguousarray(strands[:, :keep], dtype=np.float32)


def demo_stages():
    from engine.pipeline import Stage, option

    @dataclass(frozen=True)
    class DemoConfig:
        steps: int = option(60, "demo steps", range=(1, None))

    def run(cfg, inputs, ctx):
        strands, mesh = _demo_groom(4000, cfg.steps, cfg.steps)
        if mesh is not None:
            yield ctx.preview("mesh", mesh, "head")
        for step in range(1, cfg.steps + 1):
            time.sleep(0.03)
            s, _ = _demo_groom(4000, step, cfg.steps) if step % 10 == 0 else (None, None)
            yield ctx.loss(step, {"total": 2.0 / step ** 0.7, "orientation": 0.5 * math.exp(-step / 25),
                                  "silhouette": 0.3 / step ** 0.5 + 0.01})
            yield ctx.progress(step, cfg.steps, f"step {step}")
            if s is not None:
                yield ctx.preview("strands", s, f"step {step}")
        return {}

    return [Stage("demo_strands", 1, DemoConfig, (), run, title="demo strands (screenshot only)")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default=str(REPO / "docs" / "screenshots"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not os.environ.get("DISPLAY"):
        print("needs an X display (run under xvfb-run -a)", file=sys.stderr)
        return 2
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")

    from PySide6 import QtWidgets
    import vispy
    vispy.use("pyside6")

    from app.capture.sources import VideoFileSource
    from app.dialogs import AboutDialog
    from app.mainwindow import MainWindow
    from app.settings import AppSettings, SettingsDialog
    from app.state import AppState, installed_stages

    qt = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    tmp = Path(tempfile.mkdtemp(prefix="strandcap-shots-"))
    state = AppState(AppSettings(tmp / "settings.ini"))
    win = MainWindow(state)
    win.resize(1280, 820)
    win.show()
    _pump(qt, 0.5)
    win.grab().save(str(out / "welcome.png"))

    sample = REPO / "resources" / "sample"
    clip = sample / "capture.mp4"
    project_dir = tmp / "sample-project"
    win.open_project(project_dir)
    state.project.import_source(clip)
    state.notify_changed()

    # Capture: the sample clip (a head turning from -50 to +50 degrees) played as the camera,
    # with the real live analysis; the yaw comes from the face landmarks
    win.show_page("Capture")
    win.capture.start_source(VideoFileSource(clip, realtime=True, loop=True), analysis_hz=10)
    while win.capture.frames_seen < 40:
        _pump(qt, 0.1)
    win.grab().save(str(out / "capture.png"))
    win.capture.stop_source()

    # Review before preprocessing, then run the real preprocessing stages (preview preset)
    # from the Review page's button, and look at the results
    win.show_page("Review")
    _pump(qt, 0.3)
    win.grab().save(str(out / "review-before-preprocessing.png"))
    page = win.reconstruct
    page.preset.setCurrentText("preview")
    if win.review.run_button.isVisible() and win.review.run_button.isEnabled():
        win.review.run_button.click()
        while page.running:
            _pump(qt, 0.1)
        print("preprocessing:", page.last_outcome, page.ran)
        page.views.setCurrentIndex(1)  # the stages' image previews
        _pump(qt, 0.3)
        win.grab().save(str(out / "reconstruct-preprocessing.png"))
        page.views.setCurrentIndex(0)
    win.show_page("Review")
    review = win.review
    if review.strip.count() > 5:
        review.strip.setCurrentRow(5)
    for key, box in review.layer_boxes.items():
        box.setChecked(key in ("image", "hair", "bust", "landmarks"))
    _pump(qt, 0.3)
    win.grab().save(str(out / "review.png"))
    for key, box in review.layer_boxes.items():
        box.setChecked(key in ("image", "orientation"))
    _pump(qt, 0.3)
    win.grab().save(str(out / "review-orientation.png"))

    # the whole graph to the end (preprocessing from the cache), a picture during the strands
    # stage and one of the result
    for stage, values in SHOT_OVERRIDES.items():
        if stage in {st.name for st in state.stages()}:
            state.set_overrides(stage, values)
    win.show_page("Reconstruct")
    page.views.setCurrentIndex(0)
    page.start()
    live = False
    t0 = time.monotonic()
    while page.running:
        _pump(qt, 0.1)
        if not live and page.counts["preview:strands"] >= 2 and page.worker is not None:
            page.toggle_pause()
            _pump(qt, 0.8)
            page.loss_plot.redraw()
            page.strand_view.apply_pending()
            _pump(qt, 0.4)
            win.grab().save(str(out / "reconstruct-live.png"))
            live = True
            page.toggle_pause()
    print("reconstruction:", page.last_outcome, page.ran, f"{time.monotonic() - t0:.0f}s")
    _pump(qt, 0.5)
    page.loss_plot.redraw()
    page.strand_view.apply_pending()
    _pump(qt, 0.3)
    win.grab().save(str(out / "reconstruct.png"))
    win.show_page("Review")
    _pump(qt, 0.3)
    win.grab().save(str(out / "review-after-run.png"))

    win.show_page("Export")
    _pump(qt, 0.3)
    win.grab().save(str(out / "export.png"))
    if (sample / "groom.npz").is_file() and win.export.available:
        win.export.set_source(sample / "groom.npz")  # "Convert a groom file instead…"
        win.export.folder.setText(str(tmp / "exports"))
        win.export.export()
        while win.export.worker is not None:
            _pump(qt, 0.1)
        _pump(qt, 0.3)
        win.grab().save(str(out / "export-converted.png"))

    about = AboutDialog(win)
    about.show()
    _pump(qt, 0.3)
    about.grab().save(str(out / "about.png"))
    about.close()
    settings = SettingsDialog(state.prefs, win)
    settings.show()
    _pump(qt, 0.3)
    settings.grab().save(str(out / "settings.png"))
    settings.close()

    # the live view during a run: a demo stage through the real worker and page
    state.stages_factory = lambda until=None: demo_stages()
    page = win.reconstruct
    page._fill_until()
    page.refresh_status()
    win.show_page("Reconstruct")
    page.start()
    while page.running:
        _pump(qt, 0.05)
        if page.worker is not None and page.counts["progress"] >= 45 and not page.worker.paused:
            page.toggle_pause()
            _pump(qt, 0.6)
            page.strand_view.view.camera.azimuth = 35
            page.strand_view.view.camera.elevation = 15
            page.loss_plot.redraw()
            page.strand_view.apply_pending()
            _pump(qt, 0.4)
            win.grab().save(str(out / "reconstruct-live-demo.png"))
            page.cancel()
    _pump(qt, 0.3)
    print("demo run:", page.last_outcome, page.log_view.toPlainText()[-300:])
    state.stages_factory = installed_stages
    win.close()
    print("\n".join(str(p) for p in sorted(out.glob("*.png"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
