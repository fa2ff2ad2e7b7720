"""Image widgets: a scaled RGB image view, and the coverage guide of head-yaw bins."""

from __future__ import annotations

import math

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from app.capture.coverage import YawCoverage


def to_qimage(rgb: np.ndarray) -> QtGui.QImage:
    """A QImage that owns a copy of ``rgb`` (H, W, 3) uint8 or grey (H, W) uint8."""
    a = np.ascontiguousarray(rgb)
    if a.ndim == 2:
        h, w = a.shape
        return QtGui.QImage(a.data, w, h, w, QtGui.QImage.Format.Format_Grayscale8).copy()
    h, w, c = a.shape
    fmt = QtGui.QImage.Format.Format_RGB888 if c == 3 else QtGui.QImage.Format.Format_RGBA8888
    return QtGui.QImage(a.data, w, h, w * c, fmt).copy()


class ImageView(QtWidgets.QWidget):
    """Shows one RGB image scaled to fit, centred, aspect kept; maps widget to image pixels."""

    def __init__(self, parent: QtWidgets.QWidget | None = None, placeholder: str = "") -> None:
        super().__init__(parent)
        self.setMinimumSize(240, 180)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Expanding,
                           QtWidgets.QSizePolicy.Policy.Expanding)
        self._image: QtGui.QImage | None = None
        self.placeholder = placeholder
        self.image_shape: tuple[int, int] | None = None

    def set_image(self, rgb: np.ndarray | None) -> None:
        self._image = None if rgb is None else to_qimage(rgb)
        self.image_shape = None if rgb is None else rgb.shape[:2]
        self.update()

    def target_rect(self) -> QtCore.QRectF:
        if self._image is None:
            return QtCore.QRectF()
        w, h = self._image.width(), self._image.height()
        s = min(self.width() / w, self.height() / h)
        return QtCore.QRectF((self.width() - w * s) / 2, (self.height() - h * s) / 2, w * s, h * s)

    def widget_to_image(self, pos: QtCore.QPointF) -> tuple[float, float] | None:
        r = self.target_rect()
        if r.isEmpty() or self._image is None:
            return None
        s = r.width() / self._image.width()
        return ((pos.x() - r.x()) / s, (pos.y() - r.y()) / s)

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 - Qt override
        p = QtGui.QPainter(self)
        p.fillRect(self.rect(), QtGui.QColor("#16181c"))
        if self._image is None:
            p.setPen(QtGui.QColor("#9aa0a6"))
            p.drawText(self.rect().adjusted(12, 12, -12, -12),
                       QtCore.Qt.AlignmentFlag.AlignCenter | QtCore.Qt.TextFlag.TextWordWrap,
                       self.placeholder)
        else:
            p.setRenderHint(QtGui.QPainter.RenderHint.SmoothPixmapTransform)
            p.drawImage(self.target_rect(), self._image)
        p.end()


class CoverageWidget(QtWidgets.QWidget):
    """A disc of yaw bins all the way round the head (the face at the top, the back at the
    bottom, negative yaw on the left): covered bins green, started ones amber, others grey; a
    needle at the current yaw, dashed and pointing at the back while the camera sees the back
    of the head. Reads a :class:`YawCoverage`."""

    def __init__(self, coverage: YawCoverage, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.coverage = coverage
        self.setMinimumSize(230, 235)

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 - Qt override
        cov = self.coverage
        p = QtGui.QPainter(self)
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        w, h = self.width(), self.height()
        radius = max(min(w / 2 - 44, (h - 60) / 2), 10.0)
        cx, cy = w / 2, 20 + radius
        rect = QtCore.QRectF(cx - radius, cy - radius, 2 * radius, 2 * radius)
        covered = cov.covered()
        peak = max(int(cov.counts.max()), 1)
        for i in range(cov.bins):
            lo, hi = cov.edges[i], cov.edges[i + 1]
            # yaw 0 at the top (Qt angle 90 deg), +90 on the right (0 deg), +-180 at the bottom
            start = (90 - hi) * 16
            span = (hi - lo) * 16
            if covered[i]:
                colour = QtGui.QColor(70, 190, 110)
            elif cov.counts[i] > 0:
                colour = QtGui.QColor(200, 170, 60)
            else:
                colour = QtGui.QColor(70, 74, 82)
            colour.setAlpha(140 + int(115 * min(cov.counts[i] / peak, 1.0)))
            p.setBrush(colour)
            p.setPen(QtGui.QPen(QtGui.QColor("#16181c"), 2))
            p.drawPie(rect, int(start), int(span))
        p.setBrush(self.palette().window())
        p.setPen(QtCore.Qt.PenStyle.NoPen)
        inner = radius * 0.45
        p.drawEllipse(QtCore.QPointF(cx, cy), inner, inner)
        needle = cov.current if cov.current is not None and math.isfinite(cov.current) else None
        if needle is not None or cov.behind:
            a = math.radians(90 - (180.0 if needle is None else needle))
            pen = QtGui.QPen(QtGui.QColor("#ffffff"), 3)
            if needle is None:
                pen.setStyle(QtCore.Qt.PenStyle.DashLine)
            p.setPen(pen)
            p.drawLine(QtCore.QPointF(cx, cy),
                       QtCore.QPointF(cx + radius * math.cos(a), cy - radius * math.sin(a)))
        p.setPen(self.palette().windowText().color())
        centre = QtCore.Qt.AlignmentFlag.AlignCenter
        p.drawText(QtCore.QRectF(cx - 30, cy - 8, 60, 16), centre,
                   "back" if cov.behind else "")
        p.drawText(QtCore.QRectF(0, h - 18, w, 18), centre,
                   f"covered {100 * cov.fraction():.0f}% · front "
                   f"{100 * cov.fraction('front'):.0f}% · back {100 * cov.fraction('back'):.0f}%")
        p.drawText(QtCore.QRectF(cx - radius - 42, cy - 8, 40, 16),
                   QtCore.Qt.AlignmentFlag.AlignRight, "-90°")
        p.drawText(QtCore.QRectF(cx + radius + 2, cy - 8, 40, 16),
                   QtCore.Qt.AlignmentFlag.AlignLeft, "+90°")
        p.drawText(QtCore.QRectF(cx - 40, cy - radius - 18, 80, 16), centre, "0° face")
        p.drawText(QtCore.QRectF(cx - 40, cy + radius + 2, 80, 16), centre, "180° back")
        p.end()
