"""Trimming of the fine stage's final groom: what no real strand has is cut off its tip.

Decoded strands can leave the hair volume, enter the head, hang over the face or double back
on themselves (the defects the no-ground-truth checks of :mod:`engine.checks` count). A hair
artist would cut those tips; :func:`trim_strands` does, strand by strand, root first:

1. *despike*: a point that steps back against the strand's running direction (a turn of more
   than ``spike_deg`` from the previous kept segment) or lies closer than a third of the mean
   spacing to the previous kept point is dropped. The strand VAE's decoder jitters by
   sub-millimetre steps; resampled, such a step reads as a 120-degree kink.
2. *cut* at the last point before the first *bad* one (``bad``, e.g. outside the hair volume,
   inside the head, over the face) beyond ``root_skip_m`` of arc from the root, and at the first
   fold (:func:`engine.metrics.fold_points`, the definition the fold check uses), whichever
   comes first; the kept arc is resampled to the strand's point count (uniform arc length).
3. repeat 2 on the strands that were cut (``passes`` in all), then drop every strand that is
   still bad or folded, or shorter than ``min_length_m``.

Units: metres, head frame; strands (N, L, 3) root first.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from engine.io.groom import resample_strands
from engine.metrics import fold_points


def despike(strands: np.ndarray, spike_deg: float = 100.0, min_step: float = 1 / 3) -> np.ndarray:
    """Strands (N, L, 3) with every backward or too-short step removed (item 1 of the module
    docstring): a dropped point is replaced by the previous kept one (a zero-length segment), so
    the polyline of the kept points is unchanged and the result can be resampled directly.
    Returns (N, L, 3) float64."""
    x = np.asarray(strands, np.float64).copy()
    N, L, _ = x.shape
    if L < 3 or N == 0:
        return x
    h = np.linalg.norm(np.diff(x, axis=1), axis=2).sum(1) / (L - 1)  # mean spacing
    cos_max = np.cos(np.radians(spike_deg))
    last = x[:, 0].copy()
    direction = np.zeros((N, 3))  # no direction before the first kept segment
    for i in range(1, L):
        step = x[:, i] - last
        ln = np.linalg.norm(step, axis=1)
        back = np.einsum("nc,nc->n", step, direction) < cos_max * ln * np.linalg.norm(
            direction, axis=1)
        keep = (ln >= min_step * h) & ~back
        x[~keep, i] = last[~keep]
        direction[keep] = step[keep] / ln[keep, None]
        last[keep] = x[keep, i]
    return x


def _arc(x: np.ndarray) -> np.ndarray:
    return np.concatenate([np.zeros((len(x), 1)),
                           np.cumsum(np.linalg.norm(np.diff(x, axis=1), axis=2), axis=1)], 1)


def trim_strands(strands: np.ndarray, bad: Callable[[np.ndarray], np.ndarray] | None = None, *,
                 root_skip_m: float = 0.005, min_length_m: float = 0.005, passes: int = 3,
                 folds: bool = True) -> tuple[np.ndarray, np.ndarray, dict]:
    """Trim strands as the module docstring says.

    Args:
        strands: (N, L, 3) metres, root first, L >= 3.
        bad: maps strands (M, L, 3) float64 to (M, L) bool, the points where a strand must not
            be; None: only spikes and folds are cut.
        root_skip_m: arc length from the root over which ``bad`` is ignored (a root sits on the
            boundary of the hair volume and the head).
        min_length_m: strands shorter than this after trimming are dropped.
        passes: rounds of cutting.
        folds: False: only ``bad`` cuts (no despiking, no cut at folds; strands keep their
            points up to the first bad one).
    Returns:
        (kept strands (M, L, 3) float32, keep (N,) bool, stats) where stats holds the counts
        ``cut_bad``, ``cut_fold`` (strands cut for either reason in the first pass) and
        ``dropped_bad``, ``dropped_fold``, ``dropped_short``.
    """
    N, L = strands.shape[:2]
    x = resample_strands(despike(strands), L) if folds else np.asarray(strands, np.float64).copy()
    stats = {"cut_bad": 0, "cut_fold": 0, "dropped_bad": 0, "dropped_fold": 0,
             "dropped_short": 0}
    active = np.arange(N)  # strands whose status is not settled yet
    for p in range(passes + 1):
        if len(active) == 0:
            break
        xa = x[active]
        s = _arc(xa)
        b = np.zeros((len(active), L), bool) if bad is None else np.asarray(bad(xa), bool)
        b &= s > root_skip_m
        first_bad = np.where(b.any(1), b.argmax(1), L)
        fold = fold_points(xa) if folds else np.full(len(active), -1)
        fold = np.where(fold < 0, L, fold)
        if p == passes:  # the last look: what is still wrong is dropped
            still_bad, still_fold = first_bad < L, fold < L
            stats["dropped_bad"] = int(still_bad.sum())
            stats["dropped_fold"] = int((still_fold & ~still_bad).sum())
            x[active[still_bad | still_fold]] = np.nan
            break
        if p == 0:
            stats["cut_bad"] = int((first_bad < L).sum())
            stats["cut_fold"] = int((fold < L).sum())
        last = np.minimum(first_bad - 1, fold)  # index of the last point kept
        cut = last < L - 1
        last = np.clip(last, 0, L - 1)
        if not cut.any():
            break
        rows = np.flatnonzero(cut)
        x[active[rows]] = resample_strands(xa[rows], L, s[rows, last[rows]])
        active = active[rows]
    length = np.where(np.isnan(x).any((1, 2)), -1.0, _arc(np.nan_to_num(x))[:, -1])
    keep = length >= min_length_m
    stats["dropped_short"] = int(((length >= 0) & ~keep).sum())
    return x[keep].astype(np.float32), keep, stats
