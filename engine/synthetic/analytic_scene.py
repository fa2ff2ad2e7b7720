"""A small analytic capture with known truth, for tests, benchmarks and accuracy checks.

Scene (head frame, metres): the *bust* is a sphere of radius ``BUST_R`` at the origin; the *hair*
is a cap, the part of a slightly larger, shifted sphere above a plane, that leaves the face
(+Z, lower half) uncovered. The hair growth direction is "combed back": along the circles about
the x axis, ``beta(x) = normalise(e_x x n(x))`` with ``n`` the cap sphere's normal. Views are
rendered by sphere tracing the analytic SDFs (independent of the NeuS renderer): RGB (Lambert
shading), hair and bust masks, and the 2D orientation map obtained by projecting ``x`` and
``x + eps beta`` with the pinhole model (a finite-difference path, independent of
:func:`engine.coarse.losses.project_direction_angle`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from engine.coarse.render import CameraSet
from engine.coarse.train import CoarseData

BUST_R = 0.08
HAIR_R = 0.09
HAIR_C = np.array([0.0, 0.012, -0.012])
HAIR_Y0 = -0.01  # hair exists above y = HAIR_Y0 ...
HAIR_FACE_Z = 0.045  # ... and behind z = HAIR_FACE_Z (the face stays visible)


def sdf_bust(x: np.ndarray) -> np.ndarray:
    """(N, 3) metres -> (N,) signed distance to the bust sphere, metres."""
    return np.linalg.norm(x, axis=-1) - BUST_R


def sdf_hair(x: np.ndarray) -> np.ndarray:
    """(N, 3) -> (N,) signed distance (a lower bound away from edges) to the hair cap, metres."""
    s = np.linalg.norm(x - HAIR_C, axis=-1) - HAIR_R
    return np.maximum.reduce([s, HAIR_Y0 - x[:, 1], x[:, 2] - HAIR_FACE_Z])


def hair_normal(x: np.ndarray) -> np.ndarray:
    """(N, 3) -> (N, 3) unit gradient of :func:`sdf_hair` (of its active piece)."""
    s = np.linalg.norm(x - HAIR_C, axis=-1) - HAIR_R
    pieces = np.stack([s, HAIR_Y0 - x[:, 1], x[:, 2] - HAIR_FACE_Z], -1)
    k = pieces.argmax(-1)
    sph = (x - HAIR_C) / np.maximum(np.linalg.norm(x - HAIR_C, axis=-1, keepdims=True), 1e-12)
    planes = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, 1.0]])
    return np.where((k == 0)[:, None], sph, planes[np.clip(k - 1, 0, 1)])


def direction(x: np.ndarray) -> np.ndarray:
    """(N, 3) -> (N, 3) unit hair direction (sign-free) at points near the cap: combed back,
    ``e_x x n`` with ``n`` the hair surface normal, so it is tangent to the cap everywhere."""
    n = hair_normal(x)
    b = np.cross(np.array([1.0, 0.0, 0.0]), n)
    return b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-9)


def ring_cameras(n_views: int, size: int, distance: float = 0.45, fov_deg: float = 40.0,
                 elevations: tuple[float, ...] = (15.0, -10.0)) -> CameraSet:
    """``n_views`` cameras on rings around the head looking at the origin (OpenCV convention)."""
    Ks, Rs, ts = [], [], []
    f = 0.5 * size / math.tan(math.radians(fov_deg) / 2)
    for i in range(n_views):
        az = math.radians(-150 + 300 * i / max(1, n_views - 1))
        el = math.radians(elevations[i % len(elevations)])
        c = distance * np.array([math.sin(az) * math.cos(el), math.sin(el),
                                 math.cos(az) * math.cos(el)])
        z = -c / np.linalg.norm(c)
        x = np.cross(np.array([0.0, -1.0, 0.0]), z)  # image x right, y down
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        R = np.stack([x, y, z])
        Ks.append([[f, 0, (size - 1) / 2], [0, f, (size - 1) / 2], [0, 0, 1]])
        Rs.append(R)
        ts.append(-R @ c)
    T = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    return CameraSet(T(Ks), T(Rs), T(ts), size, size)


def _project(K: np.ndarray, R: np.ndarray, t: np.ndarray, x: np.ndarray) -> np.ndarray:
    pc = x @ R.T + t
    return (pc[:, :2] / pc[:, 2:3]) @ K[:2, :2].T + K[:2, 2]


def render_view(cams: CameraSet, v: int) -> dict[str, np.ndarray]:
    """Sphere-trace view ``v``: ``rgb`` (H, W, 3) float32, ``hair``/``bust`` (H, W) float32 masks,
    ``angle`` (H, W) radians [0, pi), ``confidence`` (H, W), ``points`` (H, W, 3) hit points
    (NaN where background)."""
    H, W = cams.height, cams.width
    K, R, t = (cams.K[v].numpy().astype(np.float64), cams.R[v].numpy().astype(np.float64),
               cams.t[v].numpy().astype(np.float64))
    ys, xs = np.mgrid[0:H, 0:W]
    d_cam = np.stack([(xs - K[0, 2]) / K[0, 0], (ys - K[1, 2]) / K[1, 1], np.ones_like(xs, float)],
                     -1).reshape(-1, 3)
    d = d_cam @ R  # R^T d
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    o = -R.T @ t
    z = np.zeros(len(d))
    alive = np.ones(len(d), bool)
    for _ in range(200):
        p = o + d * z[:, None]
        s = np.minimum(sdf_hair(p), sdf_bust(p))
        alive &= (s > 2e-5) & (z < 2.0)
        z = np.where(alive, z + 0.9 * s, z)
    p = o + d * z[:, None]
    fh, fb = sdf_hair(p), sdf_bust(p)
    hit = np.minimum(fh, fb) < 1e-4
    is_hair = hit & (fh <= fb)
    is_bust = hit & ~is_hair
    # normals by central differences of the union SDF
    e = 1e-5
    def union(q):  # noqa: E306
        return np.minimum(sdf_hair(q), sdf_bust(q))
    n = np.stack([union(p + e * np.eye(3)[k]) - union(p - e * np.eye(3)[k]) for k in range(3)], -1)
    n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
    light = np.array([0.3, 0.6, 0.75])
    light /= np.linalg.norm(light)
    shade = 0.35 + 0.65 * np.clip(n @ light, 0, 1)
    beta = direction(p)
    # a stripe texture along the hair direction's normal gives the colour loss some detail
    stripes = 0.85 + 0.15 * np.sin(p @ np.array([0.0, 0.0, 1.0]) * 600.0)
    hair_col = np.array([0.45, 0.3, 0.15])[None] * (shade * stripes)[:, None]
    skin_col = np.array([0.85, 0.65, 0.55])[None] * shade[:, None]
    rgb = np.where(is_hair[:, None], hair_col, np.where(is_bust[:, None], skin_col, 0.0))
    eps = 1e-3
    a = _project(K, R, t, p - eps * beta)
    b = _project(K, R, t, p + eps * beta)
    ang = np.mod(np.arctan2(-(b[:, 1] - a[:, 1]), b[:, 0] - a[:, 0]), np.pi)
    ang = np.where(is_hair, ang, 0.0)
    pts = np.where(hit[:, None], p, np.nan)
    return {"rgb": rgb.reshape(H, W, 3).astype(np.float32),
            "hair": is_hair.reshape(H, W).astype(np.float32),
            "bust": is_bust.reshape(H, W).astype(np.float32),
            "angle": ang.reshape(H, W).astype(np.float32),
            "confidence": is_hair.reshape(H, W).astype(np.float32),
            "points": pts.reshape(H, W, 3).astype(np.float32)}


def head_samples(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, 3) points on the bust sphere (the "fitted head mesh" of this scene) and their normals."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, 3))
    v /= np.linalg.norm(v, axis=-1, keepdims=True)
    return (v * BUST_R).astype(np.float32), v.astype(np.float32)


def make_scene(n_views: int = 12, size: int = 64) -> tuple[CoarseData, list[dict]]:
    """CoarseData for the analytic scene plus the per-view renders (with true hit points)."""
    cams = ring_cameras(n_views, size)
    views = [render_view(cams, v) for v in range(n_views)]
    hp, hn = head_samples(4000)
    T = lambda a: torch.from_numpy(np.stack(a))  # noqa: E731
    data = CoarseData(images=T([r["rgb"] for r in views]), hair=T([r["hair"] for r in views]),
                      bust=T([r["bust"] for r in views]), angle=T([r["angle"] for r in views]),
                      confidence=T([r["confidence"] for r in views]), cams=cams,
                      head_points=torch.from_numpy(hp), head_normals=torch.from_numpy(hn),
                      centre=torch.zeros(3), scale=0.15)
    return data, views


def evaluate(fields, centre, scale: float, cams: CameraSet, views: list[dict],
             hair_mesh: tuple[np.ndarray, np.ndarray], max_points: int = 20000, seed: int = 0
             ) -> dict[str, float]:
    """Accuracy of fitted fields against this scene's truth on the visible hair surface
    (:func:`engine.coarse.evaluate.surface_metrics`; truth points are the hair pixels' hit
    points in ``views``, truth distance ``|sdf_hair|``)."""
    from engine.coarse.evaluate import surface_metrics

    truth = np.concatenate([r["points"][r["hair"] > 0.5] for r in views]).astype(np.float64)
    return surface_metrics(fields, centre, scale, cams, truth, direction(truth),
                           lambda p: np.abs(sdf_hair(p)), hair_mesh, max_points, seed)
