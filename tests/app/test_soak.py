"""Soak test of the app's painting: thousands of repaints of the loss plot (pyqtgraph), the image
views, the brush canvas and the coverage guide must not leak references to ``None``.

PySide6-Essentials 6.12.0 on Python 3.11 drops one reference to ``None`` per
``QPainter.setPen`` / ``drawLine`` call (-99 per 100 calls); pyqtgraph makes hundreds per repaint
and the process then dies with ``Fatal Python error: none_dealloc`` (issue 22, DESIGN.md
"Platform facts"). On that binding every test here fails by thousands of references; on a good
one the count stays put (a few references of Python-side caches either way, hence the
tolerance). Python 3.12 made ``None`` immortal, so there the count cannot fall and the test
passes trivially.
"""

from __future__ import annotations

import gc
import sys

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

TOLERANCE = 10   # references; the faulty binding loses ~1 per call, thousands per test


def none_refs() -> int:
    gc.collect()
    return sys.getrefcount(None)


def soak(widgets: list[QtWidgets.QWidget], repaints: int, between=None) -> int:
    """Repaint every widget ``repaints`` times (synchronously); returns the change in
    ``sys.getrefcount(None)`` over the loop (after one warm-up round)."""
    app = QtWidgets.QApplication.instance()
    for w in widgets:
        w.repaint()
    app.processEvents()
    before = none_refs()
    for i in range(repaints):
        if between is not None:
            between(i)
        for w in widgets:
            w.repaint()
        if i % 50 == 0:
            app.processEvents()
    app.processEvents()
    return none_refs() - before


def test_qpainter_calls_keep_none_refcount():
    """The binding itself: QPainter.setPen / drawLine on a QImage (the fault's smallest form)."""
    img = QtGui.QImage(64, 64, QtGui.QImage.Format.Format_ARGB32)
    p = QtGui.QPainter(img)
    pen = QtGui.QPen(QtGui.QColor(255, 0, 0))
    p.setPen(pen)
    before = none_refs()
    for i in range(2000):
        p.setPen(pen)
        p.drawLine(QtCore.QPointF(0, 0), QtCore.QPointF(i % 64, 10))
    p.end()
    drift = none_refs() - before
    assert drift >= -TOLERANCE, (
        f"sys.getrefcount(None) fell by {-drift} over 2000 setPen+drawLine calls: this Qt "
        f"binding (PySide6 {__import__('PySide6').__version__}) leaks references to None "
        "(6.12.0 does; pin PySide6-Essentials==6.11.3)")


def test_loss_plot_repaints_keep_none_refcount(qtbot):
    from app.views.loss_plot import LossPlot

    plot = LossPlot(redraw_hz=1000)
    qtbot.addWidget(plot)
    plot.resize(480, 300)
    plot.show()
    qtbot.waitExposed(plot)
    rng = np.random.default_rng(0)

    def feed(i: int) -> None:   # new points every few repaints: curves, axes and legend redraw
        if i % 10 == 0:
            plot.add("toy", i, {"total": float(1 + rng.random()), "smooth": float(rng.random())})
            plot.redraw()

    drift = soak([plot.plot.viewport()], 400, feed)
    assert plot.point_count() > 50
    assert drift >= -TOLERANCE, f"loss plot repaints: sys.getrefcount(None) fell by {-drift}"


def test_image_views_brush_and_coverage_repaints_keep_none_refcount(qtbot):
    from app.capture.coverage import YawCoverage
    from app.pages.review import BrushCanvas
    from app.views.image_view import CoverageWidget, ImageView

    empty = ImageView(placeholder="nothing yet")          # the placeholder text path
    view = ImageView()
    view.set_image(np.random.default_rng(1).integers(0, 255, (96, 128, 3), dtype=np.uint8))
    canvas = BrushCanvas()
    canvas.set_image(np.zeros((96, 128, 3), np.uint8))
    canvas.edit = np.full((96, 128), 128, np.uint8)
    canvas.value = 255
    canvas._hover = QtCore.QPointF(60, 50)                 # the brush outline is drawn
    cov = YawCoverage()
    for yaw in np.linspace(-80, 40, 60):
        cov.add(float(yaw))
    guide = CoverageWidget(cov)                           # pies, the needle (drawLine), text
    widgets = [empty, view, canvas, guide]
    for w in widgets:
        qtbot.addWidget(w)
        w.resize(300, 220)
        w.show()
        qtbot.waitExposed(w)

    def turn(i: int) -> None:
        yaw = float(-180 + (i * 7) % 360)
        cov.add(None if abs(yaw) > 90 else yaw, 0.1 * i)  # past 90: the back (dashed needle)
        canvas._hover = QtCore.QPointF(20 + i % 200, 30 + i % 150)

    drift = soak(widgets, 500, turn)
    assert drift >= -TOLERANCE, (f"image view / brush / coverage repaints: "
                                 f"sys.getrefcount(None) fell by {-drift}")


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal from Python 3.12")
def test_refcount_probe_sees_a_leak():
    """The probe itself works: dropping references to None by hand is seen (so a binding that
    leaks them cannot pass the tests above unnoticed)."""
    held = [None] * 500
    before = none_refs()
    del held
    assert none_refs() - before <= -500 + TOLERANCE
