"""Completion of the scalp no training view saw: strands that continue the seen ones.

A front-facing capture never sees the back of the head. There the fitted geometry texture is
held only by the coarse volume, itself unconstrained by any mask, and its strands came out
swept round from the sides in arcs or were dropped for leaving the volume (a bald stripe from
the crown to the nape on d3, d10 and the embedded sample; docs/strands.md). The dense groom
therefore gives every strand that no view saw (:func:`seen_strands`) the shape of a fitted
strand rooted nearby that the views did see (:func:`transport_strands`): the shape is
carried in the root's *growth frame* (the scalp normal, the way hair falls along the scalp, and
their cross product), so a strand that hangs down the side of the head hangs down the back
when moved there. The length, curl and fall of the seen hair continue; nothing is invented that
the seen hair does not show. The strand prior's completion (issue 20) is meant to do better
than this nearest-neighbour transport; until it does, this is the default.

Frames: head frame, metres, +Y up, +Z out of the face; cameras OpenCV world-to-camera. Ours.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

SEEN_SHARE = 0.25  # a strand counts as seen when some view sees this share of its points
NEIGHBOURS = 16  # seen roots a completed root draws its shape from (one of them, at random)
TWIST_DEG = 15.0  # random turn of a transported shape about the scalp normal (no copied clumps)


def seen_strands(visible: np.ndarray, min_share: float = SEEN_SHARE) -> np.ndarray:
    """Which strands the training views saw: (N,) bool, those with at least ``min_share`` of
    their points (past the root) seen by some view.

    Args:
        visible: (N, L) bool, per point whether at least one view sees it (in its image, not
            behind the fitted head or the body: ``SilhouetteGuard.seen`` of the strands stage).

    A root facing away from every camera can still grow hair the camera sees (the sides of a
    head filmed from the front hang down beside the face), so it is the strand, not the root,
    whose visibility counts.
    """
    v = np.asarray(visible, bool)
    if v.ndim != 2:
        raise ValueError(f"seen_strands: visible must be (N, L), got {v.shape}")
    return v.mean(1) >= min_share if v.shape[1] else np.zeros(len(v), bool)


def growth_frames(positions: np.ndarray, normals: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Root growth frames (N, 3, 3) float64, rows (fall, side, normal): ``fall`` is the way hair
    lies along the scalp at the root (straight down projected onto the tangent plane, plus the
    horizontal outward direction from ``centre`` (3,), which decides on the crown where down
    projects to nothing), ``side = normal x fall``."""
    p = np.asarray(positions, np.float64)
    n = np.asarray(normals, np.float64)
    n = n / np.linalg.norm(n, axis=1, keepdims=True)
    h = p - np.asarray(centre, np.float64)
    h[:, 1] = 0.0
    hn = np.linalg.norm(h, axis=1, keepdims=True)
    h = np.where(hn > 1e-6, h / np.maximum(hn, 1e-12), np.array([0.0, 0.0, -1.0]))
    f = np.array([0.0, -1.0, 0.0]) + 0.5 * h
    f = f - (f * n).sum(1, keepdims=True) * n
    fn = np.linalg.norm(f, axis=1, keepdims=True)
    back = np.array([0.0, 0.0, -1.0]) - n[:, 2:3] * n  # any tangent, where f vanishes
    f = np.where(fn > 1e-6, f / np.maximum(fn, 1e-12),
                 back / np.maximum(np.linalg.norm(back, axis=1, keepdims=True), 1e-12))
    return np.stack([f, np.cross(n, f), n], axis=1)


def transport_strands(strands: np.ndarray, src: np.ndarray, dst_roots: np.ndarray,
                      dst_normals: np.ndarray, centre: np.ndarray, rng: np.random.Generator,
                      neighbours: int = NEIGHBOURS, twist_deg: float = TWIST_DEG) -> np.ndarray:
    """Strands for roots no view saw, shaped as seen strands nearby.

    Args:
        strands: (S, L, 3) float metres, the seen strands (root first).
        src: (S, 3) float, their scalp normals (the roots are ``strands[:, 0]``).
        dst_roots, dst_normals: (D, 3) float metres / unit, the roots to complete.
        centre: (3,) metres, the head centre (:func:`growth_frames`).
        rng: picks one of the ``neighbours`` nearest seen roots (3D distance) per completed root
            and a turn about its normal, uniform within +-``twist_deg``.
    Returns:
        (D, L, 3) float32 metres: each source shape expressed in its growth frame and rebuilt in
        the target's, starting at the target root.
    Raises:
        ValueError: no seen strands to draw from.
    """
    x = np.asarray(strands, np.float64)
    if len(x) == 0:
        raise ValueError("transport_strands: no seen strands to complete from")
    roots = x[:, 0]
    k = min(neighbours, len(x))
    _, idx = cKDTree(roots).query(np.asarray(dst_roots, np.float64), k=k)
    idx = idx.reshape(len(dst_roots), k)
    pick = idx[np.arange(len(idx)), rng.integers(0, k, len(idx))]
    fs = growth_frames(roots[pick], np.asarray(src, np.float64)[pick], centre)
    fd = growth_frames(dst_roots, dst_normals, centre)
    a = np.radians(rng.uniform(-twist_deg, twist_deg, len(pick)))
    c, s = np.cos(a)[:, None], np.sin(a)[:, None]
    fall, side = fd[:, 0] * c + fd[:, 1] * s, fd[:, 1] * c - fd[:, 0] * s
    fd = np.stack([fall, side, fd[:, 2]], axis=1)
    local = np.einsum("dij,dlj->dli", fs, x[pick] - roots[pick][:, None])
    out = np.einsum("dji,dlj->dli", fd, local) + np.asarray(dst_roots, np.float64)[:, None]
    return out.astype(np.float32)


def lift_out(strands: np.ndarray, normals: np.ndarray, signed_distance,
             clearance_m: float = 0.001, max_deg: float = 30.0, step_deg: float = 5.0
             ) -> np.ndarray:
    """Strands (N, L, 3) metres turned rigidly about their roots away from the head until no
    point lies deeper than ``clearance_m`` inside it, then any point still inside moved out
    along the surface normal (:func:`push_out`).

    A strand moved from the side to the back may cut through the head where it curves
    differently; turning the whole strand keeps its shape (moving its points one by one kinked
    9 % of the completed strands on d10). The turn is about ``cross(v, n)``, v the strand's
    root-to-tip direction in the tangent plane and n the root's normal (N, 3), in steps of
    ``step_deg`` up to ``max_deg``, the smallest that clears the head (turns of up to 60
    degrees stood strands out from the nape on d3, so what 30 degrees does not clear is pushed
    out point by point instead).
    ``signed_distance(points (M, 3)) -> (distance (M,), normal (M, 3))``, negative inside.
    Returns (N, L, 3) float32; the roots stay."""
    x = np.asarray(strands, np.float64)
    n = np.asarray(normals, np.float64)
    root = x[:, :1]
    rel = x - root
    v = rel[:, -1] - (rel[:, -1] * n).sum(1, keepdims=True) * n
    k = np.cross(v, n)
    kn = np.linalg.norm(k, axis=1, keepdims=True)
    k = np.where(kn > 1e-9, k / np.maximum(kn, 1e-12), 0.0)
    out = x.copy()
    todo = np.arange(len(x))
    for a in np.radians(np.arange(0.0, max_deg + 1e-9, step_deg)):
        if len(todo) == 0:
            break
        c, s_ = np.cos(a), np.sin(a)
        kk, r = k[todo][:, None], rel[todo]
        turned = (r * c + np.cross(kk, r) * s_ + kk * (kk * r).sum(-1, keepdims=True) * (1 - c)
                  + root[todo])
        d, _ = signed_distance(turned[:, 1:].reshape(-1, 3))
        clear = (d.reshape(len(todo), -1) >= -clearance_m).all(1)
        out[todo] = turned
        todo = todo[~clear]
    return push_out(out, signed_distance, clearance_m)


def push_out(strands: np.ndarray, signed_distance, clearance_m: float = 0.001,
             rounds: int = 2) -> np.ndarray:
    """Points of strands (N, L, 3) metres deeper than ``clearance_m`` inside the head moved onto
    its surface along the surface normal; ``signed_distance(points (M, 3)) -> (distance (M,),
    normal (M, 3))`` (negative inside). The roots stay. Returns (N, L, 3) float32."""
    x = np.asarray(strands, np.float64).copy()
    body = x[:, 1:].reshape(-1, 3)
    for _ in range(rounds):
        d, nrm = signed_distance(body)
        under = d < -clearance_m
        if not under.any():
            break
        body[under] -= d[under][:, None] * nrm[under]
    x[:, 1:] = body.reshape(len(x), -1, 3)
    return x.astype(np.float32)
