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


NO_STRANDS = "No strands yet: they appear here while the strand stage runs."

TEMPLATE_HEAD = Path(__file__).resolve().parents[2] / "resources" / "prior" / "head_ict.npz"


def template_head(path: Path = TEMPLATE_HEAD) -> tuple[np.ndarray, np.ndarray] | None:
    """The shipped template head mesh (ICT Face Model, metres, head frame) as
    ``(vertices (V, 3) float32, faces (F, 3) int32)``, or None when it is not installed."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return z["mesh_vertices"].astype(np.float32), z["mesh_faces"].astype(np.int32)
    except (OSError, KeyError, ValueError):
        return None


def load_mesh_file(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """A triangle mesh file (``hair_mesh.ply`` of the coarse stage: metres, head frame) as
    ``(vertices (V, 3) float32, faces (F, 3) int32)``, or None when it is missing, unreadable
    or empty."""
    try:
        import trimesh

        m = trimesh.load(str(path), process=False, force="mesh")
        v = np.asarray(m.vertices, np.float32)
        f = np.asarray(m.faces, np.int32)
    except Exception:  # noqa: BLE001 - a missing or broken file: nothing to show
        return None
    return (v, f) if len(v) and len(f) else None


def subset_text(total: int, shown: int, points: int) -> str:
    """The 3D view's strand line: ``"Showing 2,000 of 10,000 strands (32 points each)"`` when a
    subset is drawn, else ``"10,000 strands (32 points each)"``."""
    if shown < total:
        return f"Showing {shown:,} of {total:,} strands ({points} points each)"
    return f"{total:,} strands ({points} points each)"


class StrandView(QtWidgets.QWidget):
    """A vispy canvas with one mesh visual (the head), one translucent mesh visual (the coarse
    stage's hair surface) and one line visual (all strands).

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
        self.strand_count = 0          # strands drawn
        self.total_strands = 0         # strands of the groom (more than drawn: a subset)
        self.segment_count = 0
        self._strand_text = NO_STRANDS
        self._pending_strands: np.ndarray | None = None
        self._pending_mesh: tuple[np.ndarray, np.ndarray] | None = None
        self._pending_hair: tuple[np.ndarray, np.ndarray] | None = None
        self.hair_mesh_faces = 0      # faces of the hair surface shown (0 = none)
        self.hair_mesh_label = ""
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
            self.hair_mesh = scene.visuals.Mesh(color=(0.9, 0.55, 0.25, 0.45), shading="smooth",
                                                parent=self.view.scene)
            self.hair_mesh.set_gl_state("translucent", depth_test=True, cull_face=False)
            self.hair_mesh.visible = False
            self.hair_mesh.order = 10   # translucent: drawn after the head and the strands
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
        self.hint = QtWidgets.QLabel(NO_STRANDS)
        self.hint.setStyleSheet("color: #bbb;")
        self.hint.setWordWrap(True)
        self.hair_toggle = QtWidgets.QCheckBox("Show the coarse hair surface")
        self.hair_toggle.setChecked(True)
        self.hair_toggle.setVisible(False)
        self.hair_toggle.toggled.connect(self._hair_toggled)
        row = QtWidgets.QHBoxLayout()
        row.setContentsMargins(4, 0, 4, 2)
        row.addWidget(self.hint, 1)
        row.addWidget(self.hair_toggle)
        layout.addLayout(row)
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

    def set_hair_mesh(self, vertices: np.ndarray, faces: np.ndarray, label: str = "") -> None:
        """Queue the coarse stage's hair surface (vertices (V, 3) float32 metres, head frame,
        faces (F, 3) int32), drawn translucent over the head; ``label`` names it in the
        view's text line."""
        self._pending_hair = (np.asarray(vertices, np.float32), np.asarray(faces, np.int32))
        self.hair_mesh_label = label

    def clear(self) -> None:
        self._pending_strands = self._pending_mesh = self._pending_hair = None
        self.strand_count = self.segment_count = self.hair_mesh_faces = 0
        self.total_strands = 0
        self.hair_mesh_label = ""
        self._ranged = False
        if self.available:
            self.lines.visible = False
            self.mesh.visible = False
            self.hair_mesh.visible = False
            self.canvas.update()
        self._strand_text = NO_STRANDS
        self._update_hint()
        self.hint.show()

    @QtCore.Slot(bool)
    def _hair_toggled(self, on: bool) -> None:
        if self.available and self.hair_mesh_faces:
            self.hair_mesh.visible = on
            self.canvas.update()

    def _update_hint(self) -> None:
        self.hair_toggle.setVisible(bool(self.hair_mesh_faces))
        text = self._strand_text
        if self.hair_mesh_faces:
            text += f" · {self.hair_mesh_label or 'hair surface'} (translucent)"
        self.hint.setText(text)

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
        if self._pending_hair is not None:
            v, f = self._pending_hair
            self._pending_hair = None
            if self.available:
                self.hair_mesh.set_data(vertices=v, faces=f)
                self.hair_mesh.visible = self.hair_toggle.isChecked()
            self.hair_mesh_faces = int(len(f))
            self._update_hint()
            changed = True
            self._fit(v)
        if self._pending_strands is not None:
            s = self._pending_strands
            self._pending_strands = None
            pos, connect, colour = strand_segments(s, self.max_strands)
            self.total_strands = int(s.shape[0])
            self.strand_count = min(s.shape[0], self.max_strands)
            self.segment_count = int(connect.shape[0])
            if self.available:
                self.lines.set_data(pos=pos, connect=connect, color=colour)
                self.lines.visible = True
            self._strand_text = subset_text(self.total_strands, self.strand_count, s.shape[1])
            self._update_hint()
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
