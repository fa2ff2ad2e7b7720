"""A hair shell: a closed offset surface over the scalp with a known 3D growth-direction field.

Made for checks of the coarse (volumetric) stage, where the truth is a hair *surface* and a hair
*orientation field* rather than strands.

Construction (all in the head frame, metres):

1. Head signed distance ``d_head`` on a voxel grid (``spacing`` metres): unsigned distance to
   area-uniform samples of the head mesh (the mean sample of the nearest occupied voxel, found
   by a Euclidean distance transform: sub-millimetre near the surface); the inside is what
   cannot be reached from the grid's sides and top through voxels farther than one voxel from
   the surface (the grid stops above the open end of the neck, so the neck tube counts as
   inside).
2. Shell implicit ``f(x) = max(d_head(x) - thickness(x), cap(x))`` with
   ``thickness(x) = thickness_m + back_extra_m * smoothstep(-z)`` and ``cap`` the angular distance
   (times the radius) below a hairline given as elevations above the head centre per azimuth.
   The shell is ``f = 0`` (marching cubes, scikit-image), outward-oriented; the hair volume is
   ``{f < 0} minus the head``, i.e. ``hair_sdf(x) = max(f(x), -d_head(x))`` (approximately signed).
3. Growth direction ("swept back"): ``g(x) = normalise(P(x) w)``, ``w = (0, -1, -0.6)`` (down and
   back), ``P(x)`` the projection on the plane orthogonal to ``grad d_head(x)``. At the crown this
   points backwards, at the back of the head down, on the sides down and back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.head.model import sample_mesh
from engine.synthetic.head import HeadModel

SWEEP = np.array([0.0, -1.0, -0.6])
_CENTRE = np.array([0.0, 0.045, 0.005])
_HAIRLINE_AZ = np.array([0.0, 35.0, 65.0, 90.0, 115.0, 140.0, 180.0])
_HAIRLINE_EL = np.array([40.0, 33.0, 24.0, 18.0, 8.0, -25.0, -45.0])


def _smoothstep(x, a, b):
    t = np.clip((x - a) / (b - a), 0.0, 1.0)
    return t * t * (3 - 2 * t)


class _Grid:
    """Trilinear interpolation of a scalar grid and its gradient (metres)."""

    def __init__(self, values: np.ndarray, origin: np.ndarray, spacing: float) -> None:
        self.v = values.astype(np.float32)
        self.g = np.stack(np.gradient(self.v, spacing), -1).astype(np.float32)
        self.origin = origin
        self.spacing = spacing

    def __call__(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f = (np.asarray(points, np.float64) - self.origin) / self.spacing
        shape = np.array(self.v.shape)
        fc = np.clip(f, 0, shape - 1.000001)
        i0 = np.minimum(np.floor(fc).astype(np.int64), shape - 2)
        t = fc - i0
        val = np.zeros(len(f))
        grad = np.zeros((len(f), 3))
        for dx in (0, 1):
            for dy in (0, 1):
                for dz in (0, 1):
                    w = ((t[:, 0] if dx else 1 - t[:, 0]) * (t[:, 1] if dy else 1 - t[:, 1])
                         * (t[:, 2] if dz else 1 - t[:, 2]))
                    idx = (i0[:, 0] + dx, i0[:, 1] + dy, i0[:, 2] + dz)
                    val += w * self.v[idx]
                    grad += w[:, None] * self.g[idx]
        val += np.linalg.norm((f - fc) * self.spacing, axis=1)  # outside the grid: farther
        return val, grad


def head_sdf_grid(head: HeadModel, spacing: float = 0.003, y_min: float = -0.13,
                  samples: int = 300_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance to the head on a grid: (values (X, Y, Z) float32 metres, negative
    inside; origin (3,)). See the module docstring for the method."""
    from scipy import ndimage

    v = head.vertices.astype(np.float64)
    f = head.faces.astype(np.int64)
    head_part = head.region[f].max(1) < 3  # not the torso
    f = f[head_part]
    pts = sample_mesh(v, f, samples, seed)[0].astype(np.float64)
    pts = np.concatenate([pts, v[np.unique(f)]])
    lo = np.array([v[:, 0].min(), y_min, v[:, 2].min()]) - 0.03
    hi = v[np.unique(f)].max(0) + 0.03
    lo[1] = y_min
    shape = np.ceil((hi - lo) / spacing).astype(int) + 1
    axes = [lo[i] + spacing * np.arange(shape[i]) for i in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1)
    # nearest surface sample per voxel: the mean sample of every occupied voxel, and for all
    # voxels the nearest occupied voxel from the Euclidean distance transform
    ijk = np.floor((pts - lo) / spacing + 0.5).astype(np.int64)
    ok = ((ijk >= 0) & (ijk < shape)).all(1)
    flat = np.ravel_multi_index(tuple(ijk[ok].T), tuple(shape))
    cnt = np.bincount(flat, minlength=int(np.prod(shape)))
    rep = np.stack([np.bincount(flat, pts[ok, k], minlength=cnt.size) for k in range(3)], 1)
    rep /= np.maximum(cnt, 1)[:, None]
    occupied = (cnt > 0).reshape(shape)
    near = ndimage.distance_transform_edt(~occupied, return_distances=False, return_indices=True)
    nearest = np.ravel_multi_index(tuple(near.reshape(3, -1)), tuple(shape))
    ud = np.linalg.norm(grid.reshape(-1, 3) - rep[nearest], axis=1).reshape(shape)
    free = ud > 1.0 * spacing
    lab, _ = ndimage.label(free)
    border = np.concatenate([lab[0].ravel(), lab[-1].ravel(), lab[:, -1].ravel(),
                             lab[:, :, 0].ravel(), lab[:, :, -1].ravel()])  # not the bottom face
    outside = np.isin(lab, np.unique(border[border > 0]))
    sd = np.where(outside, ud, -ud).astype(np.float32)
    return sd, lo


@dataclass
class HairShell:
    """A closed hair shell mesh with its implicit functions and growth-direction field.

    Attributes:
        vertices: (V, 3) float32 metres, head frame. faces: (F, 3) int32, CCW seen from outside.
        thickness_m, back_extra_m: offset of the shell from the head (front/top, extra at the back).
    """

    vertices: np.ndarray
    faces: np.ndarray
    thickness_m: float
    back_extra_m: float
    _head: _Grid
    _shell: _Grid

    def shell_sdf(self, points: np.ndarray) -> np.ndarray:
        """Implicit of the closed shell, (M,) float64 metres-ish, negative inside the shell."""
        return self._shell(points)[0]

    def head_sdf(self, points: np.ndarray) -> np.ndarray:
        """Signed distance to the head, (M,) float64 metres, negative inside the head."""
        return self._head(points)[0]

    def hair_sdf(self, points: np.ndarray) -> np.ndarray:
        """Implicit of the hair volume (inside the shell, outside the head), negative inside."""
        return np.maximum(self.shell_sdf(points), -self.head_sdf(points))

    def sample_surface(self, n: int, seed: int = 0,
                       min_clearance_m: float = 0.001) -> tuple[np.ndarray, np.ndarray]:
        """Area-uniform points on the part of the shell outside the head (where the head's
        signed distance exceeds ``min_clearance_m``): the true hair surface for chamfer checks.

        Returns points (n, 3) float64 metres (head frame) and the growth direction there
        (n, 3) unit vectors.
        """
        v = self.vertices.astype(np.float64)
        f = self.faces.astype(np.int64)
        a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
        area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
        area = area * (self.head_sdf((a + b + c) / 3.0) > min_clearance_m)
        p = sample_mesh(v, f, n, seed, face_weight=area)[0].astype(np.float64)
        return p, self.direction(p)

    def direction(self, points: np.ndarray) -> np.ndarray:
        """Growth direction (M, 3) float64 unit vectors at ``points`` (M, 3) (head frame): the
        "swept back" field of the module docstring."""
        _, n = self._head(points)
        n = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9)
        w = np.broadcast_to(SWEEP, n.shape)
        d = w - (w * n).sum(1, keepdims=True) * n
        return d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)


def make_hair_shell(head: HeadModel, thickness_m: float = 0.012, back_extra_m: float = 0.008,
                    spacing: float = 0.003) -> HairShell:
    """Build a :class:`HairShell` over ``head``'s scalp (see the module docstring). ~2-4 s."""
    from skimage.measure import marching_cubes

    sd, origin = head_sdf_grid(head, spacing)
    shape = np.array(sd.shape)
    axes = [origin[i] + spacing * np.arange(shape[i]) for i in range(3)]
    X = np.stack(np.meshgrid(*axes, indexing="ij"), -1)
    d = X - _CENTRE
    r = np.linalg.norm(d, axis=-1)
    el = np.arcsin(np.clip(d[..., 1] / np.maximum(r, 1e-9), -1, 1))
    psi = np.degrees(np.abs(np.arctan2(d[..., 0], d[..., 2])))
    hl = np.radians(np.interp(psi, _HAIRLINE_AZ, _HAIRLINE_EL))
    cap = (hl - el) * r
    thick = thickness_m + back_extra_m * _smoothstep(-X[..., 2], -0.02, 0.06)
    f = np.maximum(sd - thick, cap).astype(np.float32)
    f[:, 0, :] = np.maximum(f[:, 0, :], spacing)  # close the shell at the grid's bottom
    verts, faces, _, _ = marching_cubes(f, 0.0, spacing=(spacing,) * 3)
    verts = verts + origin
    faces = faces.astype(np.int64)
    shell_grid = _Grid(f, origin, spacing)
    # orient outward: face normals must follow the implicit's gradient
    fv = verts[faces]
    fn = np.cross(fv[:, 1] - fv[:, 0], fv[:, 2] - fv[:, 0])
    _, g = shell_grid(fv.mean(1))
    if (fn * g).sum() < 0:
        faces = faces[:, [0, 2, 1]]
    return HairShell(verts.astype(np.float32), faces.astype(np.int32), thickness_m, back_extra_m,
                     _Grid(sd, origin, spacing), shell_grid)
