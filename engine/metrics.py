"""Strand precision, recall and F-score, as in the strand-reconstruction literature.

The metric of Neural Haircut (Sklyarova et al., ICCV 2023, Sec. 4 "Metrics") and of
NeuralHDHair / Neural Strands before it: a predicted strand point is *correct* at a threshold
``(d, a)`` when some ground-truth point lies within Euclidean distance ``d`` of it **and** that
ground-truth point's strand direction differs from the predicted point's by less than angle
``a``. Directions are unsigned (a strand read tip-to-root is the same strand), so the angle
between tangents ``t1, t2`` is ``arccos(|t1 . t2|)`` in [0, 90] degrees.

* precision = 100 * (correct predicted points) / (predicted points)
* recall    = 100 * (ground-truth points with a matching predicted point) / (ground-truth points)
* F-score   = harmonic mean of precision and recall (0 when both are 0).

Tangents are per point from finite differences along each strand (``np.gradient``: central
differences inside, one-sided at the root and tip), normalised; a point whose tangent has zero
length (repeated points) gets a zero tangent and never passes the angle test.

Shapes and units: strands ``(N, L, 3)`` (or a sequence of ``(L_i, 3)`` arrays, or a
:class:`engine.io.groom.Groom`), metres; thresholds ``(distance metres, angle degrees)``.
The default thresholds are (2 mm, 20 deg), (3 mm, 30 deg) and (4 mm, 40 deg).

Exactness and speed: the ground-truth points go into a :class:`scipy.spatial.cKDTree`; each
predicted point's ``k`` nearest neighbours within the largest ``d`` are found once and decide
most points at every threshold; points whose ``k`` nearest all lie within ``d`` but all fail the
angle test are retried with ``8k`` neighbours, then with a full ball query (queries run in
chunks). The result is exactly "ANY neighbour within d with angle < a", not an approximation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["DEFAULT_THRESHOLDS", "StrandScore", "strand_points_and_tangents",
           "matched_fraction", "strand_scores", "format_scores"]

DEFAULT_THRESHOLDS: tuple[tuple[float, float], ...] = ((0.002, 20.0), (0.003, 30.0),
                                                       (0.004, 40.0))


@dataclass(frozen=True)
class StrandScore:
    """Scores at one threshold; precision, recall and F-score in percent."""

    distance_m: float
    angle_deg: float
    precision: float
    recall: float
    f_score: float

    @property
    def label(self) -> str:
        return f"{self.distance_m * 1000:g}mm/{self.angle_deg:g}deg"

    def as_dict(self) -> dict:
        return asdict(self)


def _as_strand_list(strands) -> list[np.ndarray]:
    s = getattr(strands, "strands", strands)  # a Groom
    if isinstance(s, np.ndarray):
        if s.ndim != 3 or s.shape[2] != 3:
            raise ValueError(f"strands must have shape (N, L, 3), got {s.shape}")
        return [s]  # one batch of equal-length strands
    out = []
    for k, p in enumerate(s):
        p = np.asarray(p)
        if p.ndim != 2 or p.shape[1] != 3:
            raise ValueError(f"strand {k} must have shape (L, 3), got {p.shape}")
        out.append(p[None])
    return out


def strand_points_and_tangents(strands) -> tuple[np.ndarray, np.ndarray]:
    """All points ``(P, 3)`` float64 and their unit tangents ``(P, 3)`` float64.

    ``strands``: ``(N, L, 3)``, a sequence of ``(L_i, 3)`` (``L_i >= 2``) or a Groom; metres.
    Tangents: ``np.gradient`` along each strand, normalised (zero where the gradient vanishes).
    """
    pts, tans = [], []
    for batch in _as_strand_list(strands):
        b = np.asarray(batch, np.float64)
        if b.shape[1] < 2:
            raise ValueError("every strand needs at least 2 points")
        t = np.gradient(b, axis=1)
        norm = np.linalg.norm(t, axis=2, keepdims=True)
        t = np.divide(t, norm, out=np.zeros_like(t), where=norm > 0)
        pts.append(b.reshape(-1, 3))
        tans.append(t.reshape(-1, 3))
    if not pts:
        return np.zeros((0, 3)), np.zeros((0, 3))
    return np.concatenate(pts), np.concatenate(tans)


def matched_fraction(
    query_points: np.ndarray,
    query_tangents: np.ndarray,
    ref_points: np.ndarray,
    ref_tangents: np.ndarray,
    thresholds: Iterable[tuple[float, float]] = DEFAULT_THRESHOLDS,
    *,
    ref_tree: cKDTree | None = None,
    k: int = 8,
    chunk: int = 65536,
    workers: int = 1,
) -> list[float]:
    """For each ``(d, a)``: the fraction (0..1) of query points that have a reference point
    within distance ``d`` (``<= d``) whose unsigned direction differs by less than ``a``
    degrees (``|cos| > cos a``). Points ``(Q, 3)`` / ``(R, 3)``, unit tangents alike, metres.
    Exact; see the module docstring for the search strategy. ``workers``: threads for the
    KD-tree queries (-1: all cores)."""
    thr = [(float(d), float(a)) for d, a in thresholds]
    q = np.asarray(query_points, np.float64)
    qt = np.asarray(query_tangents, np.float64)
    r = np.asarray(ref_points, np.float64)
    rt = np.asarray(ref_tangents, np.float64)
    if len(q) == 0:
        return [0.0 for _ in thr]
    if len(r) == 0:
        return [0.0 for _ in thr]
    tree = ref_tree if ref_tree is not None else cKDTree(r)
    cos_a = np.cos(np.radians([a for _, a in thr]))
    dist_t = np.array([d for d, _ in thr])
    hits = np.zeros((len(thr), len(q)), bool)
    for s in range(0, len(q), chunk):
        hits[:, s:s + chunk] = _match_chunk(tree, rt, q[s:s + chunk], qt[s:s + chunk], dist_t,
                                            cos_a, k, workers)
    return [float(h.mean()) for h in hits]


def _match_chunk(tree: cKDTree, rt: np.ndarray, qs: np.ndarray, qts: np.ndarray,
                 dist_t: np.ndarray, cos_t: np.ndarray, k: int, workers: int) -> np.ndarray:
    """Exact match test of one chunk of query points at every threshold, ``(T, Q)`` bool.

    One k-NN query up to the largest distance decides most points; for each threshold, the
    points whose k nearest all lie within ``d`` yet all fail the angle test are retried with
    8k neighbours, then with a full ball query."""
    n_ref = len(rt)
    out = np.zeros((len(dist_t), len(qs)), bool)
    kk = min(k, n_ref)
    dist, idx = tree.query(qs, k=kk, distance_upper_bound=dist_t.max() * (1 + 1e-9),
                           workers=workers)
    dist, idx = dist.reshape(len(qs), kk), idx.reshape(len(qs), kk)
    cos = np.abs(np.einsum("qkc,qc->qk", rt[np.where(np.isfinite(dist), idx, 0)], qts))
    for t, (d, ca) in enumerate(zip(dist_t, cos_t)):
        inside = dist <= d
        ok = (inside & (cos > ca)).any(axis=1)
        todo = np.flatnonzero(~ok & inside[:, -1]) if kk < n_ref else np.zeros(0, np.int64)
        if len(todo):
            k2 = min(8 * k, n_ref)
            d2, i2 = tree.query(qs[todo], k=k2, distance_upper_bound=d * (1 + 1e-9),
                                workers=workers)
            d2, i2 = d2.reshape(len(todo), k2), i2.reshape(len(todo), k2)
            in2 = d2 <= d
            c2 = np.abs(np.einsum("qkc,qc->qk", rt[np.where(in2, i2, 0)], qts[todo]))
            ok[todo] = (in2 & (c2 > ca)).any(axis=1)
            todo = todo[~ok[todo] & in2[:, -1]] if k2 < n_ref else todo[:0]
            for j, nb in zip(todo, tree.query_ball_point(qs[todo], d, workers=workers)):
                if nb and (np.abs(rt[nb] @ qts[j]) > ca).any():
                    ok[j] = True
        out[t] = ok
    return out


def strand_scores(
    predicted,
    ground_truth,
    thresholds: Sequence[tuple[float, float]] = DEFAULT_THRESHOLDS,
    *,
    workers: int = 1,
) -> list[StrandScore]:
    """Strand precision / recall / F-score (percent) of ``predicted`` against ``ground_truth``
    at each ``(distance metres, angle degrees)`` threshold.

    Both grooms: ``(N, L, 3)`` arrays, sequences of ``(L_i, 3)`` arrays or Grooms, metres, in
    the same frame. Strand order, point order within a strand and the number of points per
    strand do not matter beyond the point sampling itself (compare grooms resampled alike).
    ``workers``: threads for the KD-tree queries (-1: all cores). Returns one
    :class:`StrandScore` per threshold, in the given order.
    """
    pp, pt = strand_points_and_tangents(predicted)
    gp, gt = strand_points_and_tangents(ground_truth)
    prec = matched_fraction(pp, pt, gp, gt, thresholds, workers=workers)
    rec = matched_fraction(gp, gt, pp, pt, thresholds, workers=workers)
    out = []
    for (d, a), p, r in zip(thresholds, prec, rec):
        p, r = 100.0 * p, 100.0 * r
        f = 2 * p * r / (p + r) if p + r > 0 else 0.0
        out.append(StrandScore(float(d), float(a), p, r, f))
    return out


def format_scores(scores: Sequence[StrandScore]) -> str:
    """A small text table of scores, one line per threshold."""
    lines = [f"{'threshold':>14}  {'precision':>9}  {'recall':>7}  {'F-score':>7}"]
    for s in scores:
        lines.append(f"{s.label:>14}  {s.precision:9.2f}  {s.recall:7.2f}  {s.f_score:7.2f}")
    return "\n".join(lines)
