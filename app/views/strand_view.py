"""Live 3D view of the head mesh and the current strands (vispy, turntable camera).

DESIGN.md convention 5: all strands are drawn by ONE ``Line`` visual with a ``connect`` array
of segment index pairs; never one visual per strand. Updates are coalesced: :meth:`set_strands`
and :meth:`set_mesh` only store the newest data and a timer applies it a few times per second,
so a fast stream of previews never stalls the GUI thread.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtWidgets


def strand_segments(strands: np.ndarray, max_strands: int | None = None,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertices, segment pairs and per-vertex colours of a groom for one line visual.

    Args:
        strands: (N, L, 3) float, metres, head frame, root first (L >= 2).
        max_strands: draw at most this many strands (a fixed random subset beyond).
        seed: seed of that subset.

    Returns:
        pos (N*L, 3) float32; connect (N*(L-1), 2) uint32 index pairs of consecutive points of
        the same strand; colour (N*L, 4) float32 RGBA = (|unit tangent|, 1): x red, y green,
        z blue, so strand direction reads as colour.

    Raises:
        ValueError: ``strands`` is not (N, L, 3) with L >= 2.
    """
    s = np.asarray(strands, dtype=np.float32)
    if s.ndim != 3 or s.shape[2] != 3 or s.shape[1] < 2:
        raise ValueError(f"strands must be (N, L, 3) with L >= 2, got {s.shape}")
    if max_strands is not None and s.shape[0] > max_strands:
        idx = np.sort(np.random.default_rng(seed).choice(s.shape[0], max_strands, replace=False))
        s = s[idx]
    n, length, _ = s.shape
    d = np.diff(s, axis=1)                                   # (N, L-1, 3)
    d = np.concatenate([d, d[:, -1:]], axis=1)               # tangent at every point
    norm = np.linalg.norm(d, axis=2, keepdims=True)
    t = np.abs(d) / np.maximum(norm, 1e-12)
    colour = np.concatenate([0.15 + 0.85 * t, np.ones((n, length, 1), np.float32)], axis=2)
    base = (np.arange(n, dtype=np.uint32) * length)[:, None]
    first = (base + np.arange(length - 1, dtype=np.uint32)[None, :]).reshape(-1)
    connect = np.stack([first, first + 1], axis=1)
    pos = s.reshape(-1, 3)
    ok = np.isfinite(pos).all(axis=1)
    if not ok.all():  # drop segments touching NaN points
        connect = connect[ok[connect[:, 0]] & ok[connect[:, 1]]]
        pos = np.where(ok[:, None], pos, 0.0).astype(np.float32)
    return pos, connect, colour.reshape(-1, 4).astype(np.float32)


TEMPLATE_HEAD = Path(__file__).resolve().parents[2] / "resources" / "prior" / "head_ict.npz"


def template_head(path: Path = TEMPLATE_HEAD) -> tuple[np.ndarray, np.ndarray] | None:
    """The shipped template head mesh (ICT Face Model, metres, head frame) as
    ``(vertices (V, 3) float32, faces (F, 3) int32)``, or None when it is not installed."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return z["mesh_vertices"].astype(np.float32), z["mesh_faces"].astype(np.int32)
    except (OSError, KeyError, ValueError):
        return None


class StrandView(QtWidgets.QWidget):
    """A vispy canvas with one mesh visual (the head) and one line visual (all strands).

    When no OpenGL canvas can be made (e.g. Qt's offscreen platform), the widget shows a
    label saying so and :attr:`available` is False; the setters still accept data.
    """

    def __init__(self, parent: QtWidgets.QWidget | None = None, max_strands: int = 20000,
                 update_hz: float = 5.0) -> None:
        super().__init__(parent)
        self.max_strands = max_strands
        self.canvas = None
        self.available = False
        self.error = ""
        self.strand_count = 0
        self.segment_count = 0
        self._pending_strands: np.ndarray | None = None
        self._pending_mesh: tuple[np.ndarray, np.ndarray] | None = None
        self._ranged = False
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        try:
            import vispy
            vispy.use("pyside6")
            from vispy import scene
            self.canvas = scene.SceneCanvas(keys=None, show=False, bgcolor=(0.11, 0.12, 0.14, 1),
                                            size=(400, 400))
            self.view = self.canvas.central_widget.add_view()
            self.view.camera = scene.TurntableCamera(fov=35, elevation=10, azimuth=20,
                                                     up="+y", distance=0.7)
            self.mesh = scene.visuals.Mesh(color=(0.78, 0.72, 0.66, 1.0), shading="smooth",
                                           parent=self.view.scene)
            self.mesh.visible = False
            self.lines = scene.visuals.Line(pos=np.zeros((2, 3), np.float32), connect="segments",
                                            color=(1, 1, 1, 1), width=1.0, antialias=False,
                                            parent=self.view.scene)
            self.lines.visible = False
            layout.addWidget(self.canvas.native)
            self.available = True
        except Exception as exc:  # noqa: BLE001 - no GL here: say so instead of crashing
            self.error = f"3D view unavailable: {type(exc).__name__}: {exc}"
            label = QtWidgets.QLabel(self.error)
            label.setWordWrap(True)
            label.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
            layout.addWidget(label)
        self.hint = QtWidgets.QLabel("No strands yet: they appear here while a strand stage runs.")
        self.hint.setStyleSheet("color: #888;")
        layout.addWidget(self.hint)
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(int(1000 / max(update_hz, 0.5)))
        self._timer.timeout.connect(self.apply_pending)
        self._timer.start()

    # -- data ------------------------------------------------------------------------------
    def set_strands(self, strands: np.ndarray) -> None:
        """Queue (N, L, 3) float32 strands (metres, head frame) for the next redraw."""
        self._pending_strands = np.array(strands, dtype=np.float32, copy=True)

    def set_mesh(self, vertices: np.ndarray, faces: np.ndarray) -> None:
        """Queue a head mesh: vertices (V, 3) float32 metres, faces (F, 3) int32."""
        self._pending_mesh = (np.asarray(vertices, np.float32), np.asarray(faces, np.int32))

    def clear(self) -> None:
        self._pending_strands = self._pending_mesh = None
        self.strand_count = self.segment_count = 0
        self._ranged = False
        if self.available:
            self.lines.visible = False
            self.mesh.visible = False
            self.canvas.update()
        self.hint.setText("No strands yet: they appear here while a strand stage runs.")
        self.hint.show()

    def apply_pending(self) -> None:
        """Push queued data into the visuals (called by the timer; tests may call it)."""
        changed = False
        if self._pending_mesh is not None:
            v, f = self._pending_mesh
            self._pending_mesh = None
            if self.available:
                self.mesh.set_data(vertices=v, faces=f)
                self.mesh.visible = True
            changed = True
            self._fit(v)
        if self._pending_strands is not None:
            s = self._pending_strands
            self._pending_strands = None
            pos, connect, colour = strand_segments(s, self.max_strands)
            self.strand_count = min(s.shape[0], self.max_strands)
            self.segment_count = int(connect.shape[0])
            if self.available:
                self.lines.set_data(pos=pos, connect=connect, color=colour)
                self.lines.visible = True
            self.hint.setText(f"{s.shape[0]:,} strands × {s.shape[1]} points"
                              + (f" (showing {self.max_strands:,})"
                                 if s.shape[0] > self.max_strands else ""))
            changed = True
            self._fit(pos)
        if changed and self.available:
            self.canvas.update()

    def _fit(self, points: np.ndarray) -> None:
        if self._ranged or not self.available or len(points) == 0:
            return
        p = points[np.isfinite(points).all(axis=1)]
        if len(p) == 0:
            return
        lo, hi = p.min(axis=0), p.max(axis=0)
        self.view.camera.center = tuple(((lo + hi) / 2).tolist())
        self.view.camera.distance = float(max(np.linalg.norm(hi - lo), 1e-3) * 1.8)
        self._ranged = True

    def render_image(self) -> np.ndarray | None:
        """The canvas rendered now, RGBA uint8 (H, W, 4); None when no canvas exists."""
        if not self.available:
            return None
        self.apply_pending()
        return np.asarray(self.canvas.render())
