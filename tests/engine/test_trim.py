"""The final groom's trim (engine/strands/trim.py): hand-made strands with one defect each."""

import numpy as np

from engine.io.groom import resample_strands
from engine.metrics import fold_points, strand_folds
from engine.strands.trim import despike, trim_strands

L = 100


def _line(length, direction=(0.0, -1.0, 0.0)):
    s = np.linspace(0.0, length, L)[:, None]
    return s * np.asarray(direction)


def _length(x):
    return np.linalg.norm(np.diff(x, axis=-2), axis=-1).sum(-1)


def test_clean_strands_pass_unchanged():
    t = np.linspace(0, 1, L)
    wavy = np.stack([0.01 * np.sin(2 * np.pi * 4 * t), -0.2 * t, 0 * t], -1)
    x = np.stack([_line(0.15), wavy])
    out, keep, stats = trim_strands(x)
    assert keep.all() and stats["cut_fold"] == 0 and stats["cut_bad"] == 0
    np.testing.assert_allclose(out, resample_strands(x, L), atol=1e-6)  # resampled only


def _hairpin(down, back):
    """``down`` metres down, a 5 mm bend, ``back`` metres up again."""
    s = np.linspace(0.0, down + 0.005 + back, L)
    y = np.where(s < down, -s, np.where(s < down + 0.005, -down, -down + (s - down - 0.005)))
    x = np.where(s < down, 0.0, np.minimum(s - down, 0.005))
    return np.stack([x, y, 0 * s], -1)


def test_hairpin_is_cut_at_its_turn():
    pin = _hairpin(0.08, 0.07)
    assert fold_points(pin[None])[0] >= 0  # the fold check sees the hairpin
    out, keep, _ = trim_strands(pin[None])
    assert keep.all() and not strand_folds(out).any()
    assert 0.075 < _length(out[0]) < 0.09  # what remains is the way down (and the bend)
    assert out[0, :, 1].min() > -0.081


def test_strand_cut_before_it_leaves_the_volume_and_short_ones_dropped():
    x = np.stack([_line(0.2), _line(0.2, (1.0, 0.0, 0.0))])

    def bad(p):  # the volume: y above -0.12, x below 3 mm
        return (p[..., 1] < -0.12) | (p[..., 0] > 0.003)

    out, keep, stats = trim_strands(x, bad, root_skip_m=0.001, min_length_m=0.005)
    assert keep.tolist() == [True, False]  # the second leaves after 3 mm: too short
    assert stats["cut_bad"] == 2 and stats["dropped_short"] == 1
    assert 0.115 < _length(out[0]) <= 0.12 and out[0, :, 1].min() >= -0.12


def test_despike_removes_a_backward_jitter_step():
    x = _line(0.1)
    x[40] = x[38]  # the decoder's sub-millimetre back step
    assert strand_folds(x[None])[0]
    clean = despike(x[None])
    assert not strand_folds(np.asarray(trim_strands(x[None])[0])).any()
    assert np.allclose(clean[0, 40], clean[0, 39])  # dropped: replaced by the kept point


def test_face_guard_flags_strands_over_the_face_unless_the_masks_show_hair():
    """A strand hanging in front of the face below the brows is flagged, one beside the head is
    not; with a front camera whose hair mask covers the face, the same strand is hair the camera
    saw and stays."""
    import types

    import torch

    from engine.coarse.render import CameraSet
    from engine.head.model import load_head_model
    from engine.metrics import HeadGeometry
    from engine.strands.stage import FaceGuard

    v = load_head_model().vertices
    lm = HeadGeometry.from_head_model(v, samples=20_000).landmarks
    nose = lm[30]
    y = np.linspace(lm[19, 1] + 0.02, lm[8, 1], L)  # from above the brows down to the chin
    over = np.stack([np.full(L, nose[0]), y, np.full(L, nose[2] + 0.02)], -1)
    beside = over + np.array([0.15, 0.0, -0.1])
    flags = FaceGuard(v)(np.stack([over, beside]))
    assert flags[0].any() and not flags[1].any()
    assert not flags[0, 0]  # above the brows
    first = int(flags[0].argmax())
    out, keep, stats = trim_strands(np.stack([over, beside]), FaceGuard(v), root_skip_m=0.0)
    assert keep.all() and stats["cut_bad"] == 1
    assert out[0, :, 1].min() >= y[first] - 1e-6  # cut where it reached the face
    # a front camera 0.6 m away whose hair mask is everywhere: the strand is seen hair
    K = torch.tensor([[300.0, 0, 64], [0, 300.0, 64], [0, 0, 1]])[None]
    R = torch.diag(torch.tensor([1.0, -1.0, -1.0]))[None]
    t = torch.tensor([[0.0, 0.0, 0.6]])
    data = types.SimpleNamespace(images=torch.zeros(1, 128, 128, 3),
                                 hair=torch.ones(1, 128, 128), cams=CameraSet(K, R, t, 128, 128))
    assert not FaceGuard(v, data)(over[None]).any()
    data.hair = torch.zeros(1, 128, 128)
    assert FaceGuard(v, data)(over[None]).any()


def test_without_folds_only_bad_points_cut():
    """folds=False (strands.cut_at_face): a hairpin stays whole, a strand that reaches a bad
    region (y below -0.1 m, standing in for the face) is cut just before it."""
    pin = _hairpin(0.08, 0.07)
    long = _line(0.2)
    x = np.stack([pin, long])
    out, keep, stats = trim_strands(x, lambda s: s[..., 1] < -0.1, folds=False)
    assert keep.all() and stats["cut_fold"] == 0 and stats["cut_bad"] == 1
    np.testing.assert_allclose(out[0], pin, atol=1e-6)  # untouched, fold and all
    assert fold_points(out[:1])[0] >= 0
    assert out[1][:, 1].min() >= -0.1 - 0.003 and _length(out[1]) > 0.09
    full, _, fstats = trim_strands(x, lambda s: s[..., 1] < -0.1)
    assert fstats["cut_fold"] == 1 and _length(full[0]) < 0.09  # the full trim cuts the pin


def test_silhouette_guard_flags_points_seen_off_the_hair_and_spares_hidden_ones():
    """One front camera 0.6 m from a 10 cm head sphere; hair mask on the top rows, bust mask on
    the bottom rows. Points on the hair, hidden behind the head, or on the body behind the
    head's centre are kept; points seen on background or in front of the body are flagged."""
    import types

    import torch
    import trimesh

    from engine.coarse.render import CameraSet
    from engine.strands.render import head_depth_maps
    from engine.strands.stage import SilhouetteGuard

    K = torch.tensor([[200.0, 0, 64], [0, 200.0, 64], [0, 0, 1]])[None]
    R = torch.diag(torch.tensor([1.0, -1.0, -1.0]))[None]
    t = torch.tensor([[0.0, 0.0, 0.6]])
    cams = CameraSet(K, R, t, 128, 128)
    hair = torch.zeros(1, 128, 128)
    hair[:, :40] = 1.0
    bust = torch.zeros(1, 128, 128)
    bust[:, 100:] = 1.0
    data = types.SimpleNamespace(hair=hair, bust=bust, cams=cams)
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.1)
    depth = head_depth_maps(np.asarray(sphere.vertices), np.asarray(sphere.faces), cams, 128, 128)
    pts = np.array([[0.0, 0.12, 0.0],      # on the hair mask
                    [0.15, -0.05, 0.1],    # beside the head, on background
                    [0.0, -0.02, -0.2],    # behind the head
                    [0.0, -0.15, -0.05],   # on the body, behind the head's centre
                    [0.0, -0.15, 0.05]])   # on the body, in front of it
    flags = SilhouetteGuard(data, depth, np.zeros(3))(pts[None])[0]
    assert flags.tolist() == [False, True, False, False, True]
    assert SilhouetteGuard(data, None, np.zeros(3))(pts[None])[0, 2]  # no head: seen, off hair
    strand = np.stack([np.linspace(pts[0], pts[1], L)])
    out, keep, stats = trim_strands(strand, SilhouetteGuard(data, depth, np.zeros(3)),
                                    root_skip_m=0.0, folds=False)
    assert keep.all() and stats["cut_bad"] == 1 and _length(out[0]) < _length(strand[0])
