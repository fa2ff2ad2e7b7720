"""Head model resource, differentiable evaluation, landmark fit, the scalp on a fitted head."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.errors import InputError
from engine.head.fit import fit_head, rodrigues
from engine.head.model import RESOURCE, load_head_model
from engine.head.scalp import (default_scalp, fitted_scalp, fitted_scalp_positions, load_scalp,
                               save_scalp)

SHARED = Path(__file__).parents[2].parent / "shared" / "data"


def test_resource_is_small_and_complete():
    m = load_head_model()
    assert RESOURCE.stat().st_size < 8e6
    assert (RESOURCE.parent / "LICENSE-ICT-FaceKit.txt").is_file()
    assert m.vertices.shape == (14388, 3) and m.faces.max() < len(m.vertices)
    assert 300 <= len(m.mp_index) <= 468 and np.all(m.mp_index < 468)
    # metric: the neutral head is 20-30 cm wide (ICT in cm scaled to metres)
    width = np.ptp(m.vertices[:, 0])
    assert 0.2 < width < 0.3
    # the correspondence sits on the face: mediapipe nose tip (1) near the model's nose tip
    nose = m.vertices[m.mp_vertex[list(m.mp_index).index(1)]]
    assert np.linalg.norm(nose - m.vertices[m.landmarks68[30]]) < 0.01


def test_evaluate_is_linear_and_differentiable():
    m = load_head_model()
    beta = torch.zeros(m.n_identity, dtype=torch.float64, requires_grad=True)
    psi = torch.zeros(m.n_expression, dtype=torch.float64)
    psi[m.expression_names.index("jawOpen")] = 0.7
    v = m.evaluate(beta, psi)
    sub = m.evaluate(beta, psi, vertex_ids=m.mp_vertex)
    torch.testing.assert_close(v[m.mp_vertex], sub)
    v[:, 1].sum().backward()
    expected = torch.as_tensor(m.identity[:, :, 1].sum(1), dtype=torch.float64)
    torch.testing.assert_close(beta.grad, expected, rtol=1e-4, atol=1e-6)
    # jawOpen lowers the chin
    chin = m.landmarks68[8]
    assert v[chin, 1] < torch.as_tensor(m.vertices[chin, 1], dtype=torch.float64) - 0.005


def _synthetic_landmarks(m, n=6, focal=800.0, size=512, noise=0.3, seed=0):
    rng = np.random.default_rng(seed)
    ident = np.zeros(m.n_identity)
    ident[:5] = rng.normal(0, 0.5, 5)
    pts = np.full((n, 478, 3), np.nan)
    Rs, ts = [], []
    for k in range(n):
        expr = np.zeros(m.n_expression)
        expr[m.expression_names.index("jawOpen")] = 0.4 * rng.random()
        v = m.vertices_np(ident, expr)[m.mp_vertex]
        R = rodrigues(torch.tensor(rng.normal(0, 0.25, 3))).numpy() @ np.diag([1.0, -1, -1])
        t = np.array([0.0, 0.0, 0.6]) + rng.normal(0, 0.02, 3)
        pc = v @ R.T + t
        uv = focal * pc[:, :2] / pc[:, 2:] + (size - 1) / 2
        pts[k, m.mp_index, :2] = uv + rng.normal(0, noise, uv.shape)
        Rs.append(R)
        ts.append(t)
    return pts, np.array(Rs), np.array(ts)


def test_fit_recovers_poses_from_synthetic_landmarks():
    m = load_head_model()
    pts, Rs, ts = _synthetic_landmarks(m)
    fit = fit_head(m, pts, np.ones(len(pts), bool), 512, 512, focal=800.0, iterations=300)
    assert fit.summary()["median_px"] < 1.0
    from engine.cameras.stages import _yaw_range
    fwd = Rs[:, :, 2]
    yaw = np.degrees(np.arctan2(fwd[:, 0], -fwd[:, 2]))
    assert abs(_yaw_range(fit) - np.ptp(yaw)) < 3.0
    for k in range(len(pts)):
        dR = fit.R[k] @ Rs[k].T
        ang = np.degrees(np.arccos(np.clip((np.trace(dR) - 1) / 2, -1, 1)))
        assert ang < 1.5
        assert np.linalg.norm(fit.t[k] - ts[k]) < 0.03  # metric depth from the model's size


def test_fit_rejects_too_few_frames():
    m = load_head_model()
    pts, _, _ = _synthetic_landmarks(m, n=3)
    found = np.array([True, False, False])
    with pytest.raises(InputError, match="landmarks"):
        fit_head(m, pts, found, 512, 512)


def test_fitted_scalp_positions_follow_the_head_displacement():
    rng = np.random.default_rng(0)
    neutral = rng.normal(size=(200, 3))
    moved = neutral + np.array([0.01, -0.02, 0.005])
    q = neutral[:7] + 0.01 * rng.normal(size=(7, 3))
    out = fitted_scalp_positions(q, neutral, moved)
    assert np.allclose(out - q, [0.01, -0.02, 0.005])


def test_the_fitted_scalp_moves_with_the_head_and_survives_save_and_load(tmp_path):
    m = load_head_model()
    base = default_scalp()
    wider = m.vertices * np.array([1.1, 1.0, 1.0], np.float32)  # a head 10 % wider
    scalp = fitted_scalp(wider, m.vertices)
    uv = base.sample_uv(2000, np.random.default_rng(3))
    before, after = base.frames(uv), scalp.frames(uv)
    side = np.abs(before.positions[:, 0]) > 0.05  # roots on the sides move out with the head
    grow = np.abs(after.positions[side, 0]) / np.abs(before.positions[side, 0])
    assert 1.05 < np.median(grow) < 1.15
    np.testing.assert_allclose(after.normals, before.normals, atol=1e-9)  # frames: the neutral's
    save_scalp(tmp_path / "scalp.npz", scalp)
    back = load_scalp(tmp_path / "scalp.npz")
    np.testing.assert_array_equal(back.table, scalp.table)
    np.testing.assert_array_equal(back.mask_table, scalp.mask_table)
    assert np.array_equal(back.sdf.grid, base.sdf.grid)
    with pytest.raises(InputError, match="vertices"):
        fitted_scalp(wider[:-1], m.vertices)


def test_a_missing_or_foreign_scalp_file_names_the_file(tmp_path):
    with pytest.raises(InputError, match="scalp.npz: scalp missing"):
        load_scalp(tmp_path / "scalp.npz")
    np.savez(tmp_path / "other.npz", vertices=np.zeros((3, 3)))
    with pytest.raises(InputError, match="other.npz: not a scalp file"):
        load_scalp(tmp_path / "other.npz")


def test_real_clip_landmark_fit_below_3px():
    cv2 = pytest.importorskip("cv2")
    mp = pytest.importorskip("mediapipe")
    cap = cv2.VideoCapture(str(SHARED / "videos" / "d3.mp4"))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    fm = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True,
                                         max_num_faces=1)
    pts, found = [], []
    for i in np.linspace(0, n - 1, 8).astype(int):
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(i))
        ok, fr = cap.read()
        assert ok
        h, w = fr.shape[:2]
        r = fm.process(np.ascontiguousarray(fr[:, :, ::-1]))
        if r.multi_face_landmarks:
            pts.append([(p.x * w, p.y * h, 0.0) for p in r.multi_face_landmarks[0].landmark])
            found.append(True)
    fm.close()
    fit = fit_head(load_head_model(), np.array(pts), np.array(found), w, h, iterations=300)
    assert fit.summary()["median_px"] < 3.0
