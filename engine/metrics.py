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

from engine.errors import InputError
from engine.head.model import load_head_model

__all__ = ["DEFAULT_THRESHOLDS", "STRAND_THRESHOLDS", "StrandScore", "strand_points_and_tangents",
           "matched_points", "strand_level_scores", "arc_lengths", "curvatures", "shape_scores",
           "groom_scores", "fold_points", "strand_folds", "fold_share", "HeadGeometry",
           "points_over_face", "silhouette_scores", "matched_fraction", "strand_scores",
           "format_scores"]

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


def matched_points(
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
) -> np.ndarray:
    """Per query point and threshold ``(d, a)``: whether a reference point lies within
    distance ``d`` (``<= d``) whose unsigned direction differs by less than ``a`` degrees
    (``|cos| > cos a``). Points ``(Q, 3)`` / ``(R, 3)``, unit tangents alike, metres.

    Returns ``(T, Q)`` bool, one row per threshold. Exact; see the module docstring for the
    search strategy. ``workers``: threads for the KD-tree queries (-1: all cores)."""
    thr = [(float(d), float(a)) for d, a in thresholds]
    q = np.asarray(query_points, np.float64)
    qt = np.asarray(query_tangents, np.float64)
    r = np.asarray(ref_points, np.float64)
    rt = np.asarray(ref_tangents, np.float64)
    hits = np.zeros((len(thr), len(q)), bool)
    if len(q) == 0 or len(r) == 0:
        return hits
    tree = ref_tree if ref_tree is not None else cKDTree(r)
    cos_a = np.cos(np.radians([a for _, a in thr]))
    dist_t = np.array([d for d, _ in thr])
    for s in range(0, len(q), chunk):
        hits[:, s:s + chunk] = _match_chunk(tree, rt, q[s:s + chunk], qt[s:s + chunk], dist_t,
                                            cos_a, k, workers)
    return hits


def matched_fraction(
    query_points: np.ndarray,
    query_tangents: np.ndarray,
    ref_points: np.ndarray,
    ref_tangents: np.ndarray,
    thresholds: Iterable[tuple[float, float]] = DEFAULT_THRESHOLDS,
    **kwargs,
) -> list[float]:
    """For each ``(d, a)``: the fraction (0..1) of query points that match
    (:func:`matched_points`, whose keyword arguments it takes); 0 for no points."""
    hits = matched_points(query_points, query_tangents, ref_points, ref_tangents, thresholds,
                          **kwargs)
    return [float(h.mean()) if h.size else 0.0 for h in hits]


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


# ---------------------------------------------------------------------------------------------
# Strand-level scores: a strand counts only when (nearly) all of it is right
# ---------------------------------------------------------------------------------------------

STRAND_THRESHOLDS: tuple[tuple[float, float], ...] = ((0.003, 30.0), (0.004, 40.0))
STRAND_MIN_MATCHED = 0.9  # share of a strand's points that must match for the strand to match


def _points_tangents_ids(strands) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Points (P, 3), unit tangents (P, 3), strand index (P,) int64 of every point, and the
    point count of every strand (N,) int64, of a groom in any accepted form."""
    batches = _as_strand_list(strands)
    pts, tans = strand_points_and_tangents(strands)
    counts = np.concatenate([np.full(b.shape[0], b.shape[1], np.int64) for b in batches]
                            ) if batches else np.zeros(0, np.int64)
    ids = np.repeat(np.arange(len(counts)), counts)
    return pts, tans, ids, counts


def _strand_share(hits: np.ndarray, ids: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(T, P) bool point hits -> (T, N) float share of each strand's points that hit."""
    if len(counts) == 0:
        return np.zeros((len(hits), 0))
    return np.stack([np.bincount(ids, weights=h, minlength=len(counts)) for h in hits]) / counts


def strand_level_scores(
    predicted,
    ground_truth,
    thresholds: Sequence[tuple[float, float]] = STRAND_THRESHOLDS,
    *,
    min_matched: float = STRAND_MIN_MATCHED,
    workers: int = 1,
) -> list[StrandScore]:
    """Strand-level precision / recall / F-score (percent).

    A predicted strand is *correct* at ``(d, a)`` when at least ``min_matched`` (0.9) of its
    points match the ground truth in the point metric's sense (a true point within ``d`` whose
    unsigned direction is within ``a``); a true strand is *recovered* when at least that share
    of its points is matched by predicted points. precision = 100 * correct / predicted
    strands, recall = 100 * recovered / true strands, F their harmonic mean. A strand that
    leaves the true hair anywhere for more than a tenth of its length (across the face, a loop
    above the crown, twice the true length) counts as wrong however dense the groom is, which
    the point metric cannot see. Neural Haircut (Sec. 4) scores points only; this strand-level
    criterion over the same point test is ours (the benchmark issue's definition).

    Inputs as :func:`strand_scores` (metres, same frame). Returns one :class:`StrandScore`
    per threshold.
    """
    pp, pt, pid, pc = _points_tangents_ids(predicted)
    gp, gt, gid, gc = _points_tangents_ids(ground_truth)
    prec = _strand_share(matched_points(pp, pt, gp, gt, thresholds, workers=workers), pid, pc)
    rec = _strand_share(matched_points(gp, gt, pp, pt, thresholds, workers=workers), gid, gc)
    out = []
    for (d, a), ps, rs in zip(thresholds, prec, rec):
        p = 100.0 * float((ps >= min_matched).mean()) if ps.size else 0.0
        r = 100.0 * float((rs >= min_matched).mean()) if rs.size else 0.0
        f = 2 * p * r / (p + r) if p + r > 0 else 0.0
        out.append(StrandScore(float(d), float(a), p, r, f))
    return out


# ---------------------------------------------------------------------------------------------
# Length and shape against the truth
# ---------------------------------------------------------------------------------------------


def arc_lengths(strands) -> np.ndarray:
    """Arc length of every strand, (N,) float64 metres."""
    return np.concatenate([np.linalg.norm(np.diff(np.asarray(b, np.float64), axis=1),
                                          axis=2).sum(1) for b in _as_strand_list(strands)])


def curvatures(strands) -> np.ndarray:
    """Discrete curvature at every interior point, pooled over the groom, (P',) float64 rad/m:
    the turning angle between the two segments meeting at the point over their mean length
    (the curvature of the circle through a uniformly sampled arc). Zero-length segments are
    skipped."""
    out = []
    for b in _as_strand_list(strands):
        seg = np.diff(np.asarray(b, np.float64), axis=1)
        ln = np.linalg.norm(seg, axis=2)
        a, c = seg[:, :-1], seg[:, 1:]
        la, lc = ln[:, :-1], ln[:, 1:]
        ok = (la > 0) & (lc > 0)
        cos = np.einsum("nlc,nlc->nl", a, c)[ok] / (la[ok] * lc[ok])
        out.append(np.arccos(np.clip(cos, -1.0, 1.0)) / (0.5 * (la[ok] + lc[ok])))
    return np.concatenate(out) if out else np.zeros(0)


def shape_scores(predicted, ground_truth, *, threshold: tuple[float, float] = (0.004, 40.0),
                 min_matched: float = STRAND_MIN_MATCHED, max_points: int = 2_000_000,
                 seed: int = 0, workers: int = 1) -> dict[str, float]:
    """Length and shape of a groom against the truth.

    Returns a dict:

    * ``length_w1_cm``: first Wasserstein (earth mover's) distance between the two
      distributions of strand arc length, centimetres (``scipy.stats.wasserstein_distance``).
    * ``curvature_w1``: the same between the pooled per-point curvature distributions
      (:func:`curvatures`), rad/m (a ``curvature_w1`` of 10 is a bend radius of 10 cm).
    * ``length_ratio_median``: median predicted / true arc length.
    * ``length_error_median``: median relative length error ``|L_pred - L_true| / L_true`` of
      the predicted strands that match at ``threshold`` (strand-level, ``min_matched``), each
      against the true strand owning most of its points' nearest true points; NaN when no
      strand matches.
    * ``matched_strands``: how many predicted strands that is.

    Curvatures are subsampled to ``max_points`` (seeded) before the distance. Metres in, one
    frame for both.
    """
    from scipy.stats import wasserstein_distance

    lp, lg = arc_lengths(predicted), arc_lengths(ground_truth)
    rng = np.random.default_rng(seed)
    cp, cg = curvatures(predicted), curvatures(ground_truth)
    if len(cp) > max_points:
        cp = rng.choice(cp, max_points, replace=False)
    if len(cg) > max_points:
        cg = rng.choice(cg, max_points, replace=False)
    pp, pt, pid, pc = _points_tangents_ids(predicted)
    gp, gt, gid, _ = _points_tangents_ids(ground_truth)
    tree = cKDTree(gp)
    share = _strand_share(matched_points(pp, pt, gp, gt, [threshold], ref_tree=tree,
                                         workers=workers), pid, pc)[0]
    matched = np.flatnonzero(share >= min_matched)
    err = float("nan")
    if len(matched):
        sel = np.isin(pid, matched)
        _, near = tree.query(pp[sel], k=1, workers=workers)
        pair = pid[sel] * (len(lg) + 1) + gid[near]
        uniq, cnt = np.unique(pair, return_counts=True)
        owner_p, owner_g = uniq // (len(lg) + 1), uniq % (len(lg) + 1)
        order = np.lexsort((-cnt, owner_p))  # per predicted strand, the most frequent first
        first = np.r_[True, owner_p[order][1:] != owner_p[order][:-1]]
        best_p, best_g = owner_p[order][first], owner_g[order][first]
        err = float(np.median(np.abs(lp[best_p] - lg[best_g]) / np.maximum(lg[best_g], 1e-9)))
    return {
        "length_w1_cm": 100.0 * float(wasserstein_distance(lp, lg)),
        "curvature_w1": float(wasserstein_distance(cp, cg)) if len(cp) and len(cg) else float("nan"),
        "length_ratio_median": float(np.median(lp) / max(np.median(lg), 1e-9)),
        "length_error_median": err,
        "matched_strands": int(len(matched)),
    }


def groom_scores(predicted, ground_truth, *, workers: int = 1) -> dict:
    """Every ground-truth metric of a groom as plain JSON types: ``point`` (list of
    :meth:`StrandScore.as_dict` at :data:`DEFAULT_THRESHOLDS`), ``strand`` (the same for
    :func:`strand_level_scores` at :data:`STRAND_THRESHOLDS`) and ``shape``
    (:func:`shape_scores`)."""
    return {
        "point": [s.as_dict() for s in strand_scores(predicted, ground_truth, workers=workers)],
        "strand": [s.as_dict() for s in strand_level_scores(predicted, ground_truth,
                                                            workers=workers)],
        "shape": shape_scores(predicted, ground_truth, workers=workers),
    }


# ---------------------------------------------------------------------------------------------
# Checks that need no ground truth
# ---------------------------------------------------------------------------------------------

FOLD_WINDOW_M = 0.03  # arc-length window over which a strand's progress direction is taken
FOLD_REVERSAL_COS = -0.5  # two progress directions more than 120 deg apart: a U-turn
FOLD_KINK_DEG = 120.0  # turning angle between two consecutive segments that no hair makes


def fold_points(strands, *, window_m: float = FOLD_WINDOW_M,
                reversal_cos: float = FOLD_REVERSAL_COS,
                kink_deg: float = FOLD_KINK_DEG, period_factor: float = 2.0, reach: float = 2.0,
                details: bool = False):
    """Where each strand first doubles back on itself: (N,) int64 point index, -1 where it
    does not fold.

    A strand *folds* when it makes a U-turn or a kink:

    * U-turn: its progress direction reverses. The progress at arc length ``s`` is the chord
      ``p(s + w) - p(s)`` over a window ``w = min(window_m, 0.35 * strand length)``, taken
      every ``w / 2``; a chord counts only where the strand advances (chord >= 0.3 w). The
      strand folds when two of its chords point more than 120 deg apart (cosine below
      ``reversal_cos``). A helix (curly, coily hair) advances along its axis over a window of
      3 cm whatever its phase, and a wave along its mean direction, so curls do not count;
      a strand that goes out and comes back does. The fold point is the start of the later
      chord of the first such pair (the strand up to it holds no reversed pair).
    * kink: two consecutive segments turn by more than ``kink_deg``; the fold point is the
      point between them.

    The index is the earlier of the two. Strands must be sampled densely along their length
    (as every groom here is: uniform arc length, root first). Strands ``(N, L, 3)`` or a
    sequence of ``(L_i, 3)``, metres. With ``details``, returns (2, N): the U-turn and the kink
    indices separately.
    """
    out = []
    for b in _as_strand_list(strands):
        b = np.asarray(b, np.float64)
        n, L = b.shape[:2]
        seg = np.diff(b, axis=1)
        ln = np.linalg.norm(seg, axis=2)
        arc = ln.sum(1)
        cosk = np.einsum("nlc,nlc->nl", seg[:, :-1], seg[:, 1:]) / np.maximum(
            ln[:, :-1] * ln[:, 1:], 1e-20)
        kink_at = np.full(n, -1, np.int64)
        if L > 2:
            kinked = ((cosk < np.cos(np.radians(kink_deg))) & (ln[:, :-1] > 0)
                      & (ln[:, 1:] > 0))
            has = kinked.any(1)
            kink_at[has] = kinked[has].argmax(1) + 1
        h = np.maximum(arc / max(L - 1, 1), 1e-12)  # mean spacing per strand
        # the window spans at least one curl: the arc over which the tangent turns by 2 pi
        turn = np.arccos(np.clip(cosk, -1.0, 1.0)) if L > 2 else np.zeros((n, 1))
        period = 2 * np.pi * h / np.maximum(np.median(turn, axis=1), 1e-9)
        win = np.minimum(np.maximum(window_m, period_factor * period), 0.35 * arc)
        w = np.clip(np.round(win / h), 1, L - 1).astype(np.int64)
        uturn_at = np.full(n, -1, np.int64)
        for wv in np.unique(w):
            rows = np.flatnonzero(w == wv)
            step = max(1, int(wv) // 2)
            starts = np.arange(0, L - wv, step)
            # a hairpin: the two chords start at most two windows apart (draping over the
            # head turns the strand as far, but over a much longer arc); k < m: m is the later
            later = np.triu(np.abs(starts[:, None] - starts[None, :]) <= reach * wv, k=1)
            for c in range(0, len(rows), 4096):
                r = rows[c:c + 4096]
                chord = b[r][:, starts + wv] - b[r][:, starts]  # (n', M, 3)
                cl = np.linalg.norm(chord, axis=2)
                valid = cl >= 0.3 * wv * h[r, None]
                u = chord / np.maximum(cl[..., None], 1e-20)
                dots = np.einsum("nmc,nkc->nmk", u, u)
                pair = (dots < reversal_cos) & valid[:, :, None] & valid[:, None, :] & later
                flagged = pair.any(1)  # (n', M): chord m reverses an earlier one
                has = flagged.any(1)
                uturn_at[r[has]] = starts[flagged[has].argmax(1)]
        if details:
            out.append(np.stack([uturn_at, kink_at]))
        else:
            both = np.where(uturn_at < 0, L, uturn_at), np.where(kink_at < 0, L, kink_at)
            first = np.minimum(*both)
            out.append(np.where(first >= L, -1, first))
    if details:
        return np.concatenate(out, 1) if out else np.zeros((2, 0), np.int64)
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def strand_folds(strands, *, details: bool = False, **kwargs):
    """Which strands double back on themselves, (N,) bool (:func:`fold_points`, whose options
    it takes, >= 0). With ``details``, (2, N): U-turns and kinks separately."""
    return fold_points(strands, details=details, **kwargs) >= 0


def fold_share(strands, **kwargs) -> float:
    """Percentage of strands that fold (:func:`strand_folds`, whose options it takes)."""
    f = strand_folds(strands, **kwargs)
    return 100.0 * float(f.mean()) if f.size else 0.0


class HeadGeometry:
    """A head mesh with the queries of the no-ground-truth checks: points inside the head and
    strands in front of the face.

    Args:
        vertices: (V, 3) metres, head frame (+Y up, +Z out of the face). faces: (F, 3) int,
            counter-clockwise seen from outside (the ICT Face Model's winding).
        landmarks68: (68,) vertex ids of the Multi-PIE 68-point markup (jaw 0-16, brows 17-26),
            needed by :meth:`face_intrusion`; None disables it.
        exclude_vertices: (V,) bool, vertices whose triangles are not part of the surface
            (e.g. the eyeballs).
        samples: surface samples for the signed distance (area-uniform, seeded).
    Raises:
        InputError: an empty mesh or landmark ids out of range.
    """

    def __init__(self, vertices: np.ndarray, faces: np.ndarray,
                 landmarks68: np.ndarray | None = None,
                 exclude_vertices: np.ndarray | None = None, samples: int = 200_000,
                 seed: int = 0) -> None:
        import trimesh


        v = np.asarray(vertices, np.float64)
        f = np.asarray(faces, np.int64)
        if exclude_vertices is not None:
            f = f[~np.asarray(exclude_vertices, bool)[f].any(1)]
        if len(v) == 0 or len(f) == 0:
            raise InputError("head geometry: the mesh has no triangles")
        self.vertices, self.faces = v, f
        mesh = trimesh.Trimesh(v, f, process=False)
        pts, tri = trimesh.sample.sample_surface(mesh, samples, seed=seed)
        self._points = np.concatenate([pts, v[np.unique(f)]])
        vn = np.asarray(mesh.vertex_normals)
        self._normals = np.concatenate([mesh.face_normals[tri], vn[np.unique(f)]])
        self._tree = cKDTree(self._points)
        self.landmarks = None
        if landmarks68 is not None:
            lm = np.asarray(landmarks68, np.int64)
            if lm.shape != (68,) or lm.min() < 0 or lm.max() >= len(v):
                raise InputError(f"head geometry: landmark ids do not fit a mesh of {len(v)} "
                                 "vertices")
            self.landmarks = v[lm]

    @classmethod
    def from_head_model(cls, vertices: np.ndarray, model=None, **kwargs) -> "HeadGeometry":
        """The geometry of a mesh in the ICT Face Model's topology (the cameras stage's
        ``head.obj``, or the model's own vertices): the model's faces, landmarks and eyeball
        region. Raises InputError when the vertex count is not the model's."""
        model = model or load_head_model()
        v = np.asarray(vertices, np.float64)
        if v.shape != model.vertices.shape:
            raise InputError(f"head geometry: {len(v)} vertices, the head model has "
                             f"{len(model.vertices)}")
        return cls(v, model.faces, model.landmarks68, exclude_vertices=model.region == 2,
                   **kwargs)

    def signed_distance(self, points: np.ndarray, workers: int = 1) -> np.ndarray:
        """Approximate signed distance to the head surface, (M,) float64 metres, negative
        inside: the distance to the nearest surface sample, signed by the side of that
        sample's outward normal. Exact to the sample spacing (~1 mm) near the surface."""
        return self.surface_query(points, workers)[0]

    def surface_query(self, points: np.ndarray, workers: int = 1
                      ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`signed_distance` (M,) float64 metres and the outward normal (M, 3) of the
        nearest surface sample, for points (..., 3) metres."""
        p = np.asarray(points, np.float64).reshape(-1, 3)
        d, i = self._tree.query(p, k=1, workers=workers)
        side = np.einsum("mc,mc->m", p - self._points[i], self._normals[i])
        return np.where(side < 0, -d, d), self._normals[i]

    def inside_share(self, strands, *, tolerance_m: float = 0.001, skip_root: int = 2,
                     workers: int = 1) -> float:
        """Percentage of strand points deeper than ``tolerance_m`` inside the head, the first
        ``skip_root`` points of every strand (on the scalp) excluded."""
        pts = np.concatenate([np.asarray(b, np.float64)[:, skip_root:].reshape(-1, 3)
                              for b in _as_strand_list(strands)])
        if len(pts) == 0:
            return 0.0
        return 100.0 * float((self.signed_distance(pts, workers) < -tolerance_m).mean())

    def face_region(self, resolution_m: float = 0.001):
        """The face below the brow line seen from the front (+Z), as an orthographic height
        map: (front z (H, W) float64 metres, -inf outside the face; x0, y0 of cell (0, 0);
        cell size). Cells lie inside the polygon of the jaw line (landmarks 0-16) closed by
        the brow line (landmarks 17-26, capped at their mean height); the height is the
        frontmost head surface there."""
        import cv2


        if self.landmarks is None:
            raise InputError("head geometry: face checks need the 68 landmarks")
        lm = self.landmarks
        brow_y = float(lm[17:27, 1].mean())
        poly = np.concatenate([lm[0:17, :2], lm[26:16:-1, :2]])
        poly[:, 1] = np.minimum(poly[:, 1], brow_y)
        lo, hi = poly.min(0) - 0.002, poly.max(0) + 0.002
        shape = np.ceil((hi - lo) / resolution_m).astype(int) + 1  # (W, H)
        cells = np.round((poly - lo) / resolution_m).astype(np.int32)
        inside = np.zeros((shape[1], shape[0]), np.uint8)
        cv2.fillPoly(inside, [cells], 1)
        # frontmost surface: splat the surface samples (denser than a cell) into the cells
        pts = self._points
        ij = np.round((pts[:, :2] - lo) / resolution_m).astype(np.int64)
        ok = (ij >= 0).all(1) & (ij[:, 0] < shape[0]) & (ij[:, 1] < shape[1])
        front = np.full(inside.shape, -np.inf)
        np.maximum.at(front, (ij[ok, 1], ij[ok, 0]), pts[ok, 2])
        from scipy import ndimage

        front = np.maximum(front, ndimage.grey_dilation(front, size=3))  # close sample gaps
        front[inside == 0] = -np.inf
        return front, float(lo[0]), float(lo[1]), resolution_m

    def face_intrusion(self, strands, *, tolerance_m: float = 0.001) -> np.ndarray:
        """Which strands have a point in front of the face below the brow line, (N,) bool:
        a point whose (x, y) falls on :meth:`face_region` and whose z exceeds the face's
        frontmost surface there by ``tolerance_m``. Hair seen over the face from the front
        (a sheet across the face, a fringe below the brows, strands across the chin) counts;
        hair beside the face or above the brows does not."""
        region = self.face_region()
        out = [points_over_face(b, region, tolerance_m).any(1) for b in _as_strand_list(strands)]
        return np.concatenate(out) if out else np.zeros(0, bool)


def points_over_face(points: np.ndarray, region, tolerance_m: float = 0.001) -> np.ndarray:
    """Which points (..., 3) metres lie in front of the face below the brow line: (...) bool.
    ``region`` is :meth:`HeadGeometry.face_region`'s tuple; a point counts when its (x, y)
    falls on the region and its z exceeds the face's frontmost surface there by
    ``tolerance_m``."""
    front, x0, y0, res = region
    b = np.asarray(points, np.float64)
    i = np.round((b[..., 1] - y0) / res).astype(np.int64)
    j = np.round((b[..., 0] - x0) / res).astype(np.int64)
    ok = (i >= 0) & (i < front.shape[0]) & (j >= 0) & (j < front.shape[1])
    z = np.full(b.shape[:-1], -np.inf)
    z[ok] = front[i[ok], j[ok]]
    return (b[..., 2] > z + tolerance_m) & np.isfinite(z)


def silhouette_scores(predicted: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Precision, recall and IoU (percent) of a drawn-strand mask against a hair mask, both
    (H, W) bool (or float, thresholded at 0.5)."""
    p = np.asarray(predicted, np.float32) > 0.5
    r = np.asarray(reference, np.float32) > 0.5
    inter = float((p & r).sum())
    union = float((p | r).sum())
    return {"precision": 100.0 * inter / max(float(p.sum()), 1.0),
            "recall": 100.0 * inter / max(float(r.sum()), 1.0),
            "iou": 100.0 * inter / max(union, 1.0)}
