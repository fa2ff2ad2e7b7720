"""Live loss curves (pyqtgraph): one curve per loss term, log-scaled y axis."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac"]


class LossPlot(QtWidgets.QWidget):
    """Accumulates :class:`engine.pipeline.Loss` values and redraws at most ``redraw_hz``.

    Curves are keyed ``"<stage>: <term>"``. Values <= 0 cannot be shown on a log axis and are
    clamped to 1e-12.
    """

    def __init__(self, parent: QtWidgets.QWidget | None = None, redraw_hz: float = 5.0) -> None:
        super().__init__(parent)
        self.plot = pg.PlotWidget(background="#1c1e23")
        self.plot.setLogMode(x=False, y=True)
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("left", "loss")
        self.legend = self.plot.addLegend(offset=(-10, 10))
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)
        self.data: dict[str, tuple[list[float], list[float]]] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}
        self._dirty = False
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(int(1000 / max(redraw_hz, 0.5)))
        self._timer.timeout.connect(self.redraw)
        self._timer.start()

    def add(self, stage: str, step: int, values: dict[str, float]) -> None:
        for term, value in values.items():
            key = f"{stage}: {term}" if stage else term
            xs, ys = self.data.setdefault(key, ([], []))
            v = float(value)
            if not math.isfinite(v):
                continue
            xs.append(float(step))
            ys.append(max(v, 1e-12))
        self._dirty = True

    def clear(self) -> None:
        self.data.clear()
        for c in self.curves.values():
            self.plot.removeItem(c)
        self.curves.clear()
        self.legend.clear()
        self._dirty = False

    def redraw(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        for key, (xs, ys) in self.data.items():
            curve = self.curves.get(key)
            if curve is None:
                colour = PALETTE[len(self.curves) % len(PALETTE)]
                curve = self.plot.plot([], [], pen=pg.mkPen(colour, width=2), name=key)
                self.curves[key] = curve
            # a few points (a stage that reports one loss at its end) get markers to be visible
            few = len(xs) < 20
            curve.setData(np.asarray(xs), np.asarray(ys), symbol="o" if few else None,
                          symbolSize=6, symbolBrush=curve.opts["pen"].color(),
                          symbolPen=None)

    def point_count(self, key: str | None = None) -> int:
        """Points currently drawn (all curves, or the curve ``key``)."""
        items = [self.curves[key]] if key is not None else list(self.curves.values())
        total = 0
        for c in items:
            x, _ = c.getData()
            total += 0 if x is None else len(x)
        return total
