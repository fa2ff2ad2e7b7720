"""Live loss curves (pyqtgraph): one plot per stage, each with its own step axis and legend,
one curve per loss term, log-scaled y axis."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

EMPTY_TEXT = ("No losses yet: the curves appear while an optimising stage runs (cameras and "
              "head fit, coarse hair volume, hair strands); the preprocessing stages have none.")

PLOT_MIN_HEIGHT = 150   # pixels of one stage's plot

PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac"]


class LossPlot(QtWidgets.QWidget):
    """Accumulates :class:`engine.pipeline.Loss` values and redraws at most ``redraw_hz``.

    Each stage gets its own plot (stacked, in the order the stages report; steps of different
    stages do not share an x axis), titled with the stage name, with a legend of its terms.
    Curves are keyed ``"<stage>: <term>"``. Values <= 0 cannot be shown on a log axis and are
    clamped to 1e-12. :meth:`clear` (a new run) removes every plot.
    """

    def __init__(self, parent: QtWidgets.QWidget | None = None, redraw_hz: float = 5.0) -> None:
        super().__init__(parent)
        self.plot = pg.GraphicsLayoutWidget()
        self.plot.setBackground("#1c1e23")
        self.empty_label = QtWidgets.QLabel(EMPTY_TEXT)
        self.empty_label.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.empty_label.setStyleSheet("background:#1c1e23; color:#9aa0a6; padding:12px;")
        # each stage's plot keeps a readable height; more stages than fit scroll
        self.scroll = QtWidgets.QScrollArea()
        self.scroll.setWidget(self.plot)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setStyleSheet("QScrollArea { background:#1c1e23; }")
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.scroll)
        layout.addWidget(self.empty_label)
        self.scroll.setVisible(False)   # until the first loss arrives
        self.data: dict[str, tuple[list[float], list[float]]] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.plots: dict[str, pg.PlotItem] = {}          # stage -> its plot
        self._key: dict[str, tuple[str, str]] = {}      # curve key -> (stage, term)
        self._dirty = False
        # a timer owned by the widget: it never fires after the widget is gone
        self._scroll_timer = QtCore.QTimer(self)
        self._scroll_timer.setSingleShot(True)
        self._scroll_timer.setInterval(0)
        self._scroll_timer.timeout.connect(self._scroll_to_end)
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(int(1000 / max(redraw_hz, 0.5)))
        self._timer.timeout.connect(self.redraw)
        self._timer.start()

    def add(self, stage: str, step: int, values: dict[str, float]) -> None:
        for term, value in values.items():
            key = f"{stage}: {term}" if stage else term
            self._key.setdefault(key, (stage, term))
            xs, ys = self.data.setdefault(key, ([], []))
            v = float(value)
            if not math.isfinite(v):
                continue
            xs.append(float(step))
            ys.append(max(v, 1e-12))
        self._dirty = True

    def clear(self) -> None:
        self.data.clear()
        self.curves.clear()
        self._key.clear()
        self.plots.clear()
        self.plot.clear()
        self._dirty = False
        self.plot.setMinimumHeight(0)
        self.scroll.setVisible(False)
        self.empty_label.setVisible(True)

    def plot_for(self, stage: str) -> pg.PlotItem:
        """The plot of ``stage`` (made on first use, below the earlier stages' plots)."""
        p = self.plots.get(stage)
        if p is None:
            p = self.plot.addPlot(row=len(self.plots), col=0, title=stage or "losses")
            p.setLogMode(x=False, y=True)
            p.showGrid(x=True, y=True, alpha=0.25)
            p.setLabel("bottom", "step")
            p.setLabel("left", "loss")
            p.addLegend(offset=(-10, 10))
            self.plots[stage] = p
            self.plot.setMinimumHeight(PLOT_MIN_HEIGHT * len(self.plots))
            # the newest stage (the one running) in view
            self._scroll_timer.start()
        return p

    @QtCore.Slot()
    def _scroll_to_end(self) -> None:
        bar = self.scroll.verticalScrollBar()
        bar.setValue(bar.maximum())

    def redraw(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        if self.data and self.scroll.isHidden():
            self.empty_label.setVisible(False)
            self.scroll.setVisible(True)
        for key, (xs, ys) in self.data.items():
            curve = self.curves.get(key)
            if curve is None:
                stage, term = self._key.get(key, ("", key))
                p = self.plot_for(stage)
                colour = PALETTE[len(p.listDataItems()) % len(PALETTE)]
                curve = p.plot([], [], pen=pg.mkPen(colour, width=2), name=term)
                self.curves[key] = curve
            # a few points (a stage that reports one loss at its end) get markers to be visible
            few = len(xs) < 20
            curve.setData(np.asarray(xs), np.asarray(ys), symbol="o" if few else None,
                          symbolSize=6, symbolBrush=curve.opts["pen"].color(),
                          symbolPen=None)

    def legend_names(self, stage: str) -> list[str]:
        """The term names in ``stage``'s legend (tests and screenshots read them)."""
        p = self.plots.get(stage)
        if p is None or p.legend is None:
            return []
        return [label.text for _sample, label in p.legend.items]

    def point_count(self, key: str | None = None) -> int:
        """Points currently drawn (all curves, or the curve ``key``)."""
        items = [self.curves[key]] if key is not None else list(self.curves.values())
        total = 0
        for c in items:
            x, _ = c.getData()
            total += 0 if x is None else len(x)
        return total
