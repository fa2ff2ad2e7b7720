"""Strand precision / recall / F-score on hand-made cases, and exactness against brute force."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from engine.io.groom import Groom
from engine.metrics import (
    DEFAULT_THRESHOLDS,
    format_scores,
    matched_fraction,
    strand_points_and_tangents,
    strand_scores,
)


def wavy_groom(n=60, L=40, seed=0, flat=False) -> np.ndarray:
    """Strands hanging from roots on a 10 cm patch (on the line z = 0 if ``flat``, so the whole
    groom lies in the plane z = 0), wavy in x, ~5 mm point spacing, metres."""
    rng = np.random.default_rng(seed)
    z = np.zeros(n) if flat else rng.uniform(-0.05, 0.05, n)
    roots = np.c_[rng.uniform(-0.05, 0.05, n), np.zeros(n), z]
    t = np.linspace(0, 0.2, L)
    phase = rng.uniform(0, 2 * np.pi, n)
    x = 0.01 * np.sin(t[None] * 40 + phase[:, None])
    s = np.stack([x, -t[None].repeat(n, 0), np.zeros((n, L))], -1)
    return (roots[:, None] + s).astype(np.float32)


def test_identical_grooms_score_100():
    g = wavy_groom()
    for s in strand_scores(g, g):
        assert s.precision == 100 and s.recall == 100 and s.f_score == 100
    # A Groom works as input too.
    assert strand_scores(Groom(strands=g), g)[0].f_score == 100


def test_shift_by_5mm_scores_zero_at_4mm():
    g = wavy_groom(flat=True)
    shifted = g + np.array([0, 0, 0.005], np.float32)  # every point 5 mm off the plane z = 0
    scores = strand_scores(shifted, g)
    assert all(s.f_score == 0 for s in scores)
    # ...but a 6 mm threshold with the same angle catches every point.
    wide = strand_scores(shifted, g, thresholds=[(0.006, 40.0)])[0]
    assert wide.f_score == pytest.approx(100)


def test_reversed_points_and_shuffled_strands_score_the_same():
    gt = wavy_groom(seed=1)
    pred = wavy_groom(seed=1) + np.random.default_rng(2).normal(0, 0.0015, gt.shape)
    base = strand_scores(pred, gt)
    assert 0 < base[0].f_score < 100  # a non-trivial case
    rev = pred[:, ::-1]
    shuffled = rev[np.random.default_rng(3).permutation(len(rev))]
    for a, b in zip(base, strand_scores(shuffled, gt)):
        assert (a.precision, a.recall, a.f_score) == (b.precision, b.recall, b.f_score)
    for a, b in zip(base, strand_scores(pred, gt[::-1, ::-1])):
        assert (a.precision, a.recall, a.f_score) == (b.precision, b.recall, b.f_score)


def test_rotated_directions_fail_the_angle_test():
    # Ground truth: straight strands along x, 1 mm apart in y, points every 0.5 mm.
    xs = np.arange(0, 0.04, 0.0005)
    gt = np.stack([np.stack([xs, np.full_like(xs, y), np.zeros_like(xs)], 1)
                   for y in np.arange(0, 0.04, 0.001)])
    # Prediction: same plane, inside the gt patch, but strands at 35 degrees to x.
    a = np.radians(35)
    d = np.array([np.cos(a), np.sin(a), 0])
    u = np.arange(0, 0.015, 0.0005)
    pred = np.stack([np.array([0.01, y0, 0]) + u[:, None] * d
                     for y0 in np.arange(0.01, 0.02, 0.001)])
    s20, s30, s40 = strand_scores(pred, gt)
    assert s20.precision == 0 and s30.precision == 0  # 35 deg > 20, 30
    assert s40.precision == 100  # 35 deg < 40, every point within 0.5 mm of a gt point
    # Perpendicular strands through exactly the gt points: nothing passes at any threshold.
    perp = gt.transpose(1, 0, 2)  # strands along y through the same grid points
    assert all(s.f_score == 0 for s in strand_scores(perp, gt))


def test_matched_fraction_is_exact_against_brute_force():
    rng = np.random.default_rng(5)
    q = rng.uniform(0, 0.01, (700, 3))
    r = rng.uniform(0, 0.01, (900, 3))
    qt = rng.normal(size=q.shape)
    qt /= np.linalg.norm(qt, axis=1, keepdims=True)
    rt = rng.normal(size=r.shape)
    rt /= np.linalg.norm(rt, axis=1, keepdims=True)
    D, C = cdist(q, r), np.abs(qt @ rt.T)
    expected = [((D <= dd) & (C > np.cos(np.radians(aa)))).any(1).mean()
                for dd, aa in DEFAULT_THRESHOLDS]
    for k in (1, 2, 8):  # the k-NN shortcut and the ball-query fallback both exercised
        assert matched_fraction(q, qt, r, rt, k=k, chunk=256) == expected


def test_tangents_unit_and_ragged_input():
    p, t = strand_points_and_tangents([np.array([[0, 0, 0], [0, 1, 0], [0, 3, 0.0]]),
                                       np.array([[1, 0, 0], [2, 0, 0.0]])])
    assert p.shape == (5, 3)
    np.testing.assert_allclose(t, [[0, 1, 0]] * 3 + [[1, 0, 0]] * 2)
    assert "F-score" in format_scores(strand_scores(wavy_groom(n=5), wavy_groom(n=5)))
