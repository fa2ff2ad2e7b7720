"""The completion of the unseen scalp (engine.strands.complete) and its use in the dense groom."""

from __future__ import annotations

import numpy as np

from engine.strands.complete import (growth_frames, lift_out, push_out, seen_strands,
                                     transport_strands)

CENTRE = np.array([0.0, 0.0, 0.0])


def test_a_strand_counts_as_seen_when_a_view_sees_enough_of_its_points():
    """SilhouetteGuard.seen (a front camera; the head's depth map a wall 0.6 m away) marks the
    points in front of the wall, seen_strands the strands with a quarter of them seen: a strand
    in front, one behind the wall, and one that only dips in front with its tip."""
    import types

    import torch

    from engine.coarse.render import CameraSet
    from engine.strands.stage import SilhouetteGuard

    K = torch.tensor([[150.0, 0, 64], [0, 150.0, 64], [0, 0, 1]])[None]
    R = torch.diag(torch.tensor([1.0, -1.0, -1.0]))[None]
    t = torch.tensor([[0.0, 0.0, 0.6]])  # camera on +Z, 0.6 m from the origin
    data = types.SimpleNamespace(hair=torch.ones(1, 128, 128), bust=torch.zeros(1, 128, 128),
                                 cams=CameraSet(K, R, t, 128, 128))
    guard = SilhouetteGuard(data, torch.full((1, 128, 128), 0.6), np.zeros(3))
    s = np.linspace(0, 1, 20)[:, None]
    front = np.concatenate([0 * s, -0.1 * s, 0.05 + 0 * s], 1)  # 0.55 m from the camera
    behind = front - [0, 0, 0.1]  # 0.65 m: behind the wall
    dips = behind.copy()
    dips[-3:, 2] = 0.05
    vis = guard.seen(np.stack([front, behind, dips]))
    assert vis.shape == (3, 20) and vis[0].all() and not vis[1].any() and vis[2].sum() == 3
    assert seen_strands(vis).tolist() == [True, False, False]
    assert seen_strands(vis, min_share=0.1).tolist() == [True, False, True]


def test_growth_frames_are_rotations_and_fall_down_the_sides_and_outward_on_the_crown():
    p = np.array([[0.09, 0, 0], [0, 0, -0.09], [0, 0.1, 0], [0.03, 0.09, 0.0]])
    n = p / np.linalg.norm(p, axis=1, keepdims=True)
    f = growth_frames(p, n, CENTRE)
    np.testing.assert_allclose(np.einsum("nij,nkj->nik", f, f), np.broadcast_to(np.eye(3),
                                                                                f.shape), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(f), 1.0, atol=1e-9)
    np.testing.assert_allclose(f[:2, 0], [[0, -1, 0], [0, -1, 0]], atol=1e-9)  # side, back
    np.testing.assert_allclose(f[:, 2], n, atol=1e-9)
    assert f[3, 0, 0] > 0.9  # off the top towards +X: falls towards +X
    assert np.isfinite(f[2]).all()  # the exact top: a frame all the same


def test_a_strand_hanging_down_the_side_is_moved_to_the_back_hanging_down():
    """A strand that leaves the side of the head (normal +X) by 1 cm and falls 10 cm, moved to a
    root at the back (normal -Z): it starts at that root, leaves it along -Z and falls along -Y
    by the same 10 cm, same length."""
    root = np.array([0.09, 0.0, 0.0])
    s = np.linspace(0, 1, 20)[:, None]
    strand = root + np.concatenate([0.01 * np.minimum(s * 5, 1), -0.1 * s, 0 * s], 1)
    dst = np.array([[0.0, 0.0, -0.09]])
    out = transport_strands(strand[None], np.array([[1.0, 0, 0]]), dst, np.array([[0, 0, -1.0]]),
                            CENTRE, np.random.default_rng(0), twist_deg=0.0)
    assert out.shape == (1, 20, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], dst[0], atol=1e-6)
    np.testing.assert_allclose(out[0, -1] - dst[0], [0.0, -0.1, -0.01], atol=1e-6)
    length = lambda x: np.linalg.norm(np.diff(x, axis=0), axis=1).sum()
    assert abs(length(out[0]) - length(strand)) < 1e-6


def test_transport_draws_from_nearby_seen_strands_and_twists_within_its_bound():
    """Two seen strands, one short on the left (-X), one long on the right (+X): completed roots
    at the back-left get the short shape, back-right the long one (16 neighbours would mix them;
    1 takes the nearest), and a 15 degree twist turns the fall by at most that."""
    def hanging(root, length):
        s = np.linspace(0, 1, 10)[:, None]
        return root + np.concatenate([0 * s, -length * s, 0 * s], 1)

    seen = np.stack([hanging(np.array([-0.09, 0, 0]), 0.03), hanging(np.array([0.09, 0, 0]), 0.2)])
    normals = np.array([[-1.0, 0, 0], [1.0, 0, 0]])
    dst = np.array([[-0.06, 0, -0.06], [0.06, 0, -0.06]])
    dn = dst / np.linalg.norm(dst, axis=1, keepdims=True)
    out = transport_strands(seen, normals, dst, dn, CENTRE, np.random.default_rng(0),
                            neighbours=1)
    lengths = np.linalg.norm(out[:, -1] - out[:, 0], axis=1)
    np.testing.assert_allclose(lengths, [0.03, 0.2], atol=1e-6)
    twisted = transport_strands(seen, normals, np.repeat(dst[1:], 50, 0), np.repeat(dn[1:], 50, 0),
                                CENTRE, np.random.default_rng(1), neighbours=1)
    fall = twisted[:, -1] - twisted[:, 0]
    angle = np.degrees(np.arccos(np.clip(-fall[:, 1] / np.linalg.norm(fall, axis=1), -1, 1)))
    assert angle.max() <= 15.0 + 1e-3 and angle.max() > 5.0


def _ball(p, r=0.09):
    d = np.linalg.norm(p, axis=1)
    return d - r, p / np.maximum(d, 1e-12)[:, None]


def test_push_out_moves_points_deep_inside_a_ball_to_its_surface_and_keeps_the_root():
    strand = np.array([[[0.0, 0.0, -0.09], [0.0, -0.01, -0.085], [0.0, -0.02, -0.2],
                        [0.0, -0.01, -0.0895]]])
    out = push_out(strand, _ball, clearance_m=0.001)
    np.testing.assert_allclose(out[0, 0], strand[0, 0])
    np.testing.assert_allclose(np.linalg.norm(out[0, 1]), 0.09, atol=1e-6)
    np.testing.assert_allclose(out[0, 2:], strand[0, 2:], atol=1e-7)  # outside or within 1 mm


def test_lift_out_turns_a_strand_through_the_head_rigidly_until_it_clears():
    """A straight 10 cm strand from the back of a ball (root normal -Z) pointing 20 degrees
    into it comes out turned about its root: same root, same length, straight, clear of the
    ball, turned by the smallest 5 degree step that leaves no point over 1 mm deep: 15 degrees
    (5 degrees into the ball, a chord of 1.6 cm reaches 0.3 mm deep; 10 degrees reaches 1.4)."""
    root = np.array([0.0, 0.0, -0.09])
    into = np.radians(20.0)
    direction = np.array([0.0, -np.cos(into), np.sin(into)])  # down and into the ball (+Z)
    strand = root + np.linspace(0, 0.1, 30)[:, None] * direction
    out = lift_out(strand[None], np.array([[0.0, 0, -1.0]]), _ball)[0]
    np.testing.assert_allclose(out[0], root, atol=1e-7)
    assert (_ball(out[1:].astype(np.float64))[0] >= -0.001).all()
    np.testing.assert_allclose(np.linalg.norm(out[-1] - root), 0.1, atol=1e-6)
    seg = np.diff(out, axis=0)
    seg /= np.linalg.norm(seg, axis=1, keepdims=True)
    assert (seg @ seg[0] > 0.9999).all()  # still straight
    turned = np.degrees(np.arccos(np.clip(seg[0] @ direction, -1, 1)))
    assert abs(turned - 15.0) < 1e-3
    clear = root + np.linspace(0, 0.1, 30)[:, None] * np.array([0.0, -1.0, -0.2])
    np.testing.assert_allclose(lift_out(clear[None], np.array([[0.0, 0, -1.0]]), _ball)[0], clear,
                               atol=1e-6)  # already clear: untouched
