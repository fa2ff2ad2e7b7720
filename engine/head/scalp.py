"""Scalp region, scalp UV parameterisation, area-uniform root sampling and UV lookup.

Neural Haircut (Sklyarova et al., ICCV 2023, Sec. 3.2) grows strands from a scalp mesh with a 2D
UV parameterisation: strand latents live in a scalp texture indexed by root UV. Here the scalp is
a region of the ICT head model (shipped as a triangle index list in resources/head), and the UV map
is a radial projection from a point below the head centre onto the unit sphere followed by
Lambert's azimuthal equal-area projection around the cap's mean direction (area-preserving on the
sphere, so the only area distortion comes from the head's deviation from a sphere; measured by
:func:`area_distortion`).

Units: metres, head frame (+Y up, +Z out of the face).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engine.errors import InputError

# projection centre (metres, head frame) near the skull centre, chosen by a grid search that
# minimised the area distortion of the neutral scalp
UV_CENTRE = np.array([0.0, 0.03, 0.01])
UV_TILT_DEG = 30.0
UV_SCALE = 3.1  # Lambert-plane extent of the neutral scalp is 1.46 -> UV in [0.03, 0.97]


def select_scalp_faces(vertices: np.ndarray, faces: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Triangles of the neutral ICT head where hair grows (geometric rule, documented).

    Keeps non-eyeball triangles whose centroid lies above a tilted hairline plane that passes
    y = 9.5 cm at the forehead (z = 9 cm) and y = -3 cm at the nape (z = -8 cm), removes the ears and
    a margin around them (|x| > 6.8 cm, -4 < z < 1 cm, y < 7 cm), and keeps the largest
    connected component.

    Args:
        vertices: (V, 3) metres, neutral shape. faces: (F, 3) int. region: (V,) int ICT regions.
    Returns:
        (S,) int64 indices into ``faces``.
    """
    v = np.asarray(vertices, np.float64) * 100.0
    f = np.asarray(faces, np.int64)
    c = v[f].mean(axis=1)
    slope = (9.5 - -3.0) / (9.0 - -8.0)
    above = c[:, 1] > 9.5 + (c[:, 2] - 9.0) * slope
    ear = (np.abs(c[:, 0]) > 6.8) & (c[:, 2] > -4) & (c[:, 2] < 1.0) & (c[:, 1] < 7.0)
    sel = np.nonzero(above & ~ear & np.all(region[f] != 2, axis=1))[0]
    # largest connected component over shared vertices
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    sub = f[sel]
    n = len(sel)
    rows = np.repeat(np.arange(n), 3)
    a = coo_matrix((np.ones(3 * n), (rows, sub.ravel())), shape=(n, len(v))).tocsr()
    adj = a @ a.T
    _, lab = connected_components(adj, directed=False)
    big = np.argmax(np.bincount(lab))
    return sel[lab == big]


def scalp_uv(vertices: np.ndarray) -> np.ndarray:
    """Scalp UV of points: radial projection onto a sphere, then azimuthal equal-area map.

    Direction d = normalise(p - UV_CENTRE); in the pole frame (pole = +Y tilted UV_TILT_DEG
    backwards) Lambert's azimuthal equal-area projection gives (X, Y) = sqrt(2 / (1 + d_pole)) *
    (d . e1, d . e2); UV = 0.5 + (X, Y) / UV_SCALE (u grows towards the subject's left (+x), v
    towards the back of the head). On the neutral scalp the area distortion (UV area share over 3D
    area share) has 5th-95th percentiles 0.79-1.45 and no flipped triangles.

    Args:
        vertices: (N, 3) metres, head frame.
    Returns:
        (N, 2) float64 UV in [0, 1]^2.
    """
    p = np.asarray(vertices, np.float64) - UV_CENTRE
    d = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
    a = np.radians(UV_TILT_DEG)
    pole = np.array([0.0, np.cos(a), -np.sin(a)])
    e1 = np.array([1.0, 0.0, 0.0])
    e2 = np.cross(e1, pole)  # points backwards-ish (-z)
    k = np.sqrt(2.0 / np.maximum(1.0 + d @ pole, 1e-9))
    X = k * (d @ e1)
    Y = k * (d @ -e2)
    return np.clip(0.5 + np.stack([X, Y], axis=1) / UV_SCALE, 0.0, 1.0)


def area_distortion(vertices: np.ndarray, faces: np.ndarray, uv: np.ndarray) -> dict:
    """Area distortion of a UV map: per-triangle ratio (UV area share) / (3D area share).

    Returns:
        dict with ``median``, ``p05``, ``p95`` of the ratio (1 = area-preserving), ``std_log2``
        (standard deviation of log2 ratio, area-weighted) and ``flipped`` (triangles with
        reversed orientation in UV).
    """
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    a3 = 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)
    e1 = uv[f[:, 1]] - uv[f[:, 0]]
    e2 = uv[f[:, 2]] - uv[f[:, 0]]
    s2 = 0.5 * (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
    sign = np.sign(np.median(s2))
    r = (np.abs(s2) / np.abs(s2).sum()) / (a3 / a3.sum())
    lr = np.log2(np.maximum(r, 1e-12))
    w = a3 / a3.sum()
    mean = (w * lr).sum()
    return {"median": float(np.median(r)), "p05": float(np.percentile(r, 5)),
            "p95": float(np.percentile(r, 95)),
            "std_log2": float(np.sqrt((w * (lr - mean) ** 2).sum())),
            "flipped": int(np.sum(np.sign(s2) != sign))}


@dataclass
class ScalpMesh:
    """The scalp surface with its UV map.

    Attributes:
        vertices: (V, 3) float64 metres, head frame (only scalp vertices, re-indexed).
        faces: (F, 3) int64 triangles, CCW seen from outside.
        uv: (V, 2) float64 scalp UV in [0, 1]^2.
        normals: (V, 3) float64 unit outward vertex normals.
    """

    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    normals: np.ndarray
    _lookup: np.ndarray | None = None

    LOOKUP_RES = 1024

    @classmethod
    def from_head(cls, head_vertices: np.ndarray, head_faces: np.ndarray,
                  scalp_faces: np.ndarray) -> "ScalpMesh":
        """Cut the scalp out of a (fitted) head mesh.

        Args:
            head_vertices: (V, 3) metres, head frame (neutral expression of the fitted identity).
            head_faces: (F, 3) int. scalp_faces: (S,) indices into ``head_faces``.
        """
        from engine.raster import vertex_normals

        f = np.asarray(head_faces, np.int64)[np.asarray(scalp_faces, np.int64)]
        used, inv = np.unique(f, return_inverse=True)
        verts = np.asarray(head_vertices, np.float64)[used]
        faces = inv.reshape(-1, 3)
        return cls(verts, faces, scalp_uv(verts), vertex_normals(verts, faces))

    def save(self, path) -> None:
        """Write ``vertices`` float32, ``faces`` int32, ``uv`` float32, ``normals`` float32 (npz)."""
        np.savez_compressed(path, vertices=self.vertices.astype(np.float32),
                            faces=self.faces.astype(np.int32), uv=self.uv.astype(np.float32),
                            normals=self.normals.astype(np.float32))

    @classmethod
    def load(cls, path) -> "ScalpMesh":
        """Read a scalp npz written by :meth:`save`. Raises InputError when unreadable."""
        try:
            d = np.load(path)
            return cls(d["vertices"].astype(np.float64), d["faces"].astype(np.int64),
                       d["uv"].astype(np.float64), d["normals"].astype(np.float64))
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(f"{path}: not a scalp mesh npz ({exc})") from exc

    def face_areas(self) -> np.ndarray:
        """(F,) triangle areas in square metres."""
        v, f = self.vertices, self.faces
        return 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]),
                                    axis=1)

    def sample_roots(self, n: int, seed: int = 0) -> dict[str, np.ndarray]:
        """Area-uniform random hair roots on the scalp surface.

        Triangles are drawn with probability proportional to their 3D area, points inside them
        with uniform barycentric coordinates (sqrt trick), so root density per square metre is
        uniform.

        Returns:
            dict with ``positions`` (n, 3) float32 metres, ``normals`` (n, 3) float32 unit,
            ``uv`` (n, 2) float32 in [0, 1]^2, ``faces`` (n,) int64, ``bary`` (n, 3) float32.
        """
        rng = np.random.default_rng(seed)
        a = self.face_areas()
        fi = rng.choice(len(a), size=n, p=a / a.sum())
        r1 = np.sqrt(rng.random(n))
        r2 = rng.random(n)
        bary = np.stack([1 - r1, r1 * (1 - r2), r1 * r2], axis=1)
        return self._interp(fi, bary)

    def _interp(self, fi: np.ndarray, bary: np.ndarray) -> dict[str, np.ndarray]:
        f = self.faces[fi]
        w = bary[:, :, None]
        n = (self.normals[f] * w).sum(1)
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        return {"positions": (self.vertices[f] * w).sum(1).astype(np.float32),
                "normals": n.astype(np.float32), "uv": (self.uv[f] * w).sum(1).astype(np.float32),
                "faces": fi.astype(np.int64), "bary": bary.astype(np.float32)}

    def _uv_lookup(self) -> np.ndarray:
        if self._lookup is None:
            res = self.LOOKUP_RES
            buf = np.zeros((res, res), np.int32)
            pts = np.round(self.uv * res * 16 - 8).astype(np.int32)  # pixel centres, 4-bit shift
            for i, f in enumerate(self.faces):
                cv2.fillConvexPoly(buf, pts[f], i + 1, lineType=cv2.LINE_8, shift=4)
            for i, f in enumerate(self.faces):  # thin triangles: mark their vertices too
                for p in self.uv[f]:
                    x, y = np.clip((p * res).astype(int), 0, res - 1)
                    if buf[y, x] == 0:
                        buf[y, x] = i + 1
            from scipy.ndimage import distance_transform_edt
            _, (iy, ix) = distance_transform_edt(buf == 0, return_indices=True)
            self._lookup = buf[iy, ix] - 1
        return self._lookup

    def uv_to_surface(self, uv: np.ndarray) -> dict[str, np.ndarray]:
        """Surface point and local frame at scalp UVs (for roots read from a scalp texture).

        UVs outside the scalp's UV footprint are snapped to the nearest scalp triangle.
        The tangent is the surface direction of increasing u (dP/du, projected on the tangent
        plane), bitangent = normal x tangent, so (tangent, bitangent, normal) is right-handed.

        Args:
            uv: (N, 2) float in [0, 1]^2.
        Returns:
            dict with ``positions`` (N, 3), ``normals``, ``tangents``, ``bitangents`` (N, 3)
            float32 unit vectors (metres, head frame), ``uv`` (N, 2) float32 (snapped),
            ``faces`` (N,) int64, ``bary`` (N, 3) float32.
        """
        uv = np.asarray(uv, np.float64).reshape(-1, 2)
        lut = self._uv_lookup()
        res = lut.shape[0]
        ij = np.clip((uv * res).astype(int), 0, res - 1)
        fi = lut[ij[:, 1], ij[:, 0]]
        f = self.faces[fi]
        a, b, c = self.uv[f[:, 0]], self.uv[f[:, 1]], self.uv[f[:, 2]]
        v0, v1, v2 = b - a, c - a, uv - a
        den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
        den = np.where(np.abs(den) < 1e-15, 1e-15, den)
        w1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
        w2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
        bary = np.clip(np.stack([1 - w1 - w2, w1, w2], axis=1), 0, 1)
        bary /= np.maximum(bary.sum(1, keepdims=True), 1e-12)
        out = self._interp(fi, bary)
        # dP/du from the triangle's UV Jacobian
        P = self.vertices[f]
        e1, e2 = P[:, 1] - P[:, 0], P[:, 2] - P[:, 0]
        M = np.stack([v0, v1], axis=2)  # (N, 2, 2), columns: uv edges
        inv = np.linalg.pinv(M)  # maps uv deltas -> edge weights
        dPdu = inv[:, 0, 0, None] * e1 + inv[:, 1, 0, None] * e2
        n = out["normals"].astype(np.float64)
        t = dPdu - (dPdu * n).sum(1, keepdims=True) * n
        t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
        out["tangents"] = t.astype(np.float32)
        out["bitangents"] = np.cross(n, t).astype(np.float32)
        return out
