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


# -- strand-level scores, shape, and the checks that need no ground truth ---------------------

from engine.metrics import (  # noqa: E402
    HeadGeometry,
    arc_lengths,
    fold_share,
    shape_scores,
    silhouette_scores,
    strand_folds,
    strand_level_scores,
)


def test_strand_level_counts_a_strand_that_leaves_the_hair_as_wrong():
    """Every predicted strand follows a true one for 80 % of its points, then leaves 30 cm
    sideways (as a strand across the face would): point precision 80 %, strand precision 0."""
    g = wavy_groom(n=80, L=50)
    pred = g.copy()
    pred[:, 40:, 2] += 0.3
    point = strand_scores(pred, g)[1]
    strand = strand_level_scores(pred, g)[0]
    assert 78.0 <= point.precision <= 80.0  # the tangents at the break fail the angle test
    assert strand.precision == 0.0 and strand.f_score == 0.0
    # the true strands are recovered only where 90 % of their points are matched: none here
    assert strand.recall == 0.0
    # the same groom with 5 of 80 strands wrong: strand precision 75 / 80
    pred = g.copy()
    pred[:5, 40:, 2] += 0.3
    s = strand_level_scores(pred, g)[0]
    assert s.precision == pytest.approx(100 * 75 / 80)
    assert s.recall == pytest.approx(100 * 75 / 80)


def test_shape_scores_length_and_curvature():
    g = wavy_groom(n=40, L=60, flat=True)
    same = shape_scores(g, g)
    assert same["length_w1_cm"] == pytest.approx(0.0, abs=1e-9)
    assert same["curvature_w1"] == pytest.approx(0.0, abs=1e-9)
    assert same["length_error_median"] == pytest.approx(0.0, abs=1e-9)
    assert same["matched_strands"] == 40
    # the first half of every strand (resampled to the same point count): half the length
    half = np.stack([np.stack([np.interp(np.linspace(0, 29, 60), np.arange(30), s[:30, k])
                               for k in range(3)], -1) for s in g]).astype(np.float32)
    sc = shape_scores(half, g)
    true_len = arc_lengths(g)
    assert sc["length_ratio_median"] == pytest.approx(np.median(arc_lengths(half))
                                                      / np.median(true_len))
    assert sc["length_w1_cm"] == pytest.approx(100 * (true_len - arc_lengths(half)).mean(),
                                               rel=1e-6)
    # matched strands (all: every half strand lies on its true strand) are half as long
    assert sc["matched_strands"] == 40
    assert sc["length_error_median"] == pytest.approx(0.5, abs=0.03)


def _helix(radius, period_arc, length, n=100):
    """A helix about -Y, root at the origin, ``n`` points, ``length`` metres of arc."""
    s = np.linspace(0, length, n)
    c = period_arc / (2 * np.pi)  # arc per radian of turn
    ang = s / c
    pitch = np.sqrt(max(c * c - radius * radius, 1e-12))
    return np.stack([radius * np.cos(ang) - radius, -pitch * ang, radius * np.sin(ang)], -1)


def test_fold_share_on_hand_made_strands():
    t = np.linspace(0, 1, 100)[:, None]
    straight = np.c_[0 * t, -0.2 * t, 0 * t]
    hairpin = np.where(t < 0.5, np.c_[0 * t, -0.2 * t, 0 * t],
                       np.c_[0 * t + 0.002, -0.2 * (1 - t), 0 * t])  # down 10 cm, back up
    u = np.linspace(0, 1, 50)[:, None]
    arm = np.c_[0 * u, -0.1 * u, 0 * u]
    kink = np.r_[arm, arm[-1] + np.c_[0.05 * u[1:], 0.0866 * u[1:], 0 * u[1:]]]  # a 150 deg V
    wavy = np.c_[0.01 * np.sin(t * 40), -0.25 * t, 0 * t]
    curly = _helix(0.006, 0.035, 0.3)
    coily = _helix(0.003, 0.012, 0.15)
    folds = strand_folds([straight, hairpin, kink, wavy, curly, coily])
    assert folds.tolist() == [False, True, True, False, False, False]
    uturn, kinked = strand_folds([hairpin, kink], details=True)
    assert kinked.tolist() == [False, True]  # the hairpin turns over 1 mm, never by 120 deg
    assert fold_share([straight, hairpin, wavy, curly]) == pytest.approx(25.0)


def test_fold_share_of_true_grooms_is_low():
    """The Sintel guides (artist-made) and the embedded sample's true groom fold under 2 %."""
    from pathlib import Path

    from engine.io.export import load_groom
    from engine.resources import resource

    assert fold_share(load_groom(resource("sample", "groom.npz")).strands) < 2.0
    sintel = Path(__file__).resolve().parents[3] / "shared" / "data" / "grooms" / \
        "sintel_lite_guides.npz"
    if sintel.is_file():
        d = np.load(sintel)
        scale = 0.4 / np.ptp(d["head_vertices"][:, 0])  # ~40 units across the shoulders
        assert fold_share(d["strands"] * scale) < 2.0


@pytest.fixture(scope="module")
def ict_head():
    from engine.head.model import load_head_model

    m = load_head_model()
    return HeadGeometry.from_head_model(m.vertices, m, samples=60_000), m


def test_face_intrusion_and_inside_share(ict_head):
    head, m = ict_head
    lm = m.vertices[m.landmarks68]
    brow_y, chin_y = lm[17:27, 1].mean(), lm[8, 1]
    nose_z = m.vertices[:, 2].max()
    y = np.linspace(brow_y + 0.02, chin_y - 0.03, 50)
    over_face = np.c_[np.zeros(50), y, np.full(50, nose_z + 0.02)]  # a strand over the nose
    back = np.c_[np.zeros(50), y, np.full(50, -0.12)]  # behind the head
    ys = np.linspace(brow_y + 0.06, brow_y + 0.01, 50)  # a fringe stopping above the brows
    fringe = np.c_[np.full(50, 0.02), ys, np.full(50, 0.12)]
    beside = np.c_[np.full(50, 0.11), y, np.full(50, 0.05)]  # hanging beside the cheek
    assert head.face_intrusion([over_face, back, fringe, beside]).tolist() == \
        [True, False, False, False]
    # a strand through the middle of the head: the points with |x| < ~7 cm lie inside
    x = np.linspace(-0.2, 0.2, 41)
    through = np.c_[x, np.full(41, 0.05), np.zeros(41)]
    share = head.inside_share([through], skip_root=0)
    assert 25.0 < share < 45.0
    assert head.inside_share([back], skip_root=0) == 0.0


def test_silhouette_scores():
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    a[:, :5] = True  # 50 pixels
    b[:, 3:8] = True  # 50 pixels, 20 shared
    s = silhouette_scores(a, b.astype(np.float32))
    assert s["precision"] == pytest.approx(40.0) and s["recall"] == pytest.approx(40.0)
    assert s["iou"] == pytest.approx(100 * 20 / 80)
