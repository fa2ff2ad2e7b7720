"""Head model resource, differentiable evaluation, landmark fit, scalp UV and root sampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.errors import InputError
from engine.head.fit import fit_head, rodrigues
from engine.head.model import RESOURCE, load_head_model
from engine.head.scalp import ScalpMesh, area_distortion

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


def test_scalp_uv_distortion_and_uniform_roots():
    m = load_head_model()
    s = ScalpMesh.from_head(m.vertices, m.faces, m.scalp_faces)
    d = area_distortion(s.vertices, s.faces, s.uv)
    assert d["flipped"] == 0 and 0.6 < d["p05"] and d["p95"] < 1.7, d
    assert s.uv.min() >= 0 and s.uv.max() <= 1
    # scalp is above the brows and behind the face
    assert s.vertices[:, 1].min() > -0.06 and s.vertices[:, 2].max() < 0.12
    roots = s.sample_roots(20000, seed=1)
    assert np.all(np.abs(np.linalg.norm(roots["normals"], axis=1) - 1) < 1e-4)
    # area-uniform: the share of roots on the front half equals its area share
    a = s.face_areas()
    front = s.vertices[s.faces].mean(1)[:, 2] > np.median(s.vertices[:, 2])
    share = a[front].sum() / a.sum()
    got = np.mean(front[roots["faces"]])
    assert abs(got - share) < 0.015
    # normals point outwards (away from the head centre)
    out = roots["positions"] - np.array([0, 0.03, 0])
    assert np.mean(np.sum(out * roots["normals"], 1) > 0) > 0.97


def test_uv_to_surface_roundtrip_and_frames():
    m = load_head_model()
    s = ScalpMesh.from_head(m.vertices, m.faces, m.scalp_faces)
    roots = s.sample_roots(500, seed=2)
    back = s.uv_to_surface(roots["uv"])
    err = np.linalg.norm(back["positions"] - roots["positions"], axis=1)
    assert np.median(err) < 1e-4 and err.max() < 2e-3
    t, b, n = back["tangents"], back["bitangents"], back["normals"]
    np.testing.assert_allclose(np.sum(t * n, 1), 0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.det(np.stack([t, b, n], 1)), 1, atol=1e-4)
    # the tangent follows +u: a small step in u moves the surface point along it
    p2 = s.uv_to_surface(roots["uv"] + [0.005, 0])["positions"]
    step = p2 - back["positions"]
    ok = np.linalg.norm(step, axis=1) > 1e-5
    cos = np.sum(step[ok] * t[ok], 1) / np.linalg.norm(step[ok], axis=1)
    assert np.median(cos) > 0.9
    # UVs outside the footprint snap onto the scalp
    far = s.uv_to_surface(np.array([[0.0, 0.0], [1.0, 1.0]]))
    assert np.all(np.isfinite(far["positions"]))


@pytest.mark.skipif(not (SHARED / "videos" / "d3.mp4").is_file(), reason="shared clips absent")
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
