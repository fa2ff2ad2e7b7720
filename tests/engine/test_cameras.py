"""Cameras: cameras.json, transforms.json and COLMAP import, Umeyama alignment, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.cameras.camera import (Camera, align_cameras, camera_errors, export_transforms_json,
                                   import_colmap, import_transforms_json, load_cameras,
                                   save_cameras, transform_cameras, umeyama)
from engine.errors import InputError
from engine.synthetic.camera import look_at


def _truth(n=6):
    cams = {}
    for i in range(n):
        a = np.radians(-40 + 16 * i)
        R, t = look_at([0.6 * np.sin(a), 0.05 * i, 0.6 * np.cos(a)], (0, 0.02, 0))
        cams[f"{i:03d}"] = Camera(fx=700.0 + i, fy=705.0, cx=319.5 - i, cy=239.5, width=640,
                                  height=480, R=R, t=t)
    return cams


def _assert_same(a, b):
    assert sorted(a) == sorted(b)
    for k in a:
        for f in ("fx", "fy", "cx", "cy", "width", "height"):
            assert getattr(a[k], f) == pytest.approx(getattr(b[k], f), abs=1e-6), (k, f)
        np.testing.assert_allclose(a[k].R, b[k].R, atol=1e-9)
        np.testing.assert_allclose(a[k].t, b[k].t, atol=1e-9)


def test_cameras_json_roundtrip(tmp_path):
    cams = _truth()
    save_cameras(tmp_path / "cameras.json", cams)
    _assert_same(load_cameras(tmp_path / "cameras.json"), cams)


def test_transforms_json_imports_to_truth(tmp_path):
    cams = _truth()
    export_transforms_json(tmp_path / "transforms.json", cams)
    # the file really is OpenGL camera-to-world: the camera looks down its -z axis
    frame = json.loads((tmp_path / "transforms.json").read_text())["frames"][0]
    M = np.array(frame["transform_matrix"])
    fwd = -M[:3, 2]
    to_target = np.array([0, 0.02, 0]) - M[:3, 3]
    assert fwd @ to_target / np.linalg.norm(to_target) > 0.99
    _assert_same(import_transforms_json(tmp_path / "transforms.json"), cams)


def test_colmap_model_imports_to_truth(tmp_path):
    pycolmap = pytest.importorskip("pycolmap")
    cams = _truth()
    rec = pycolmap.Reconstruction()
    for i, (name, c) in enumerate(sorted(cams.items()), start=1):
        cam = pycolmap.Camera(model="PINHOLE", width=c.width, height=c.height,
                              params=[c.fx, c.fy, c.cx + 0.5, c.cy + 0.5], camera_id=i)
        rec.add_camera_with_trivial_rig(cam)
        img = pycolmap.Image(name=f"{name}.png", camera_id=i, image_id=i)
        rec.add_image_with_trivial_frame(img, pycolmap.Rigid3d(pycolmap.Rotation3d(c.R), c.t))
    rec.write(str(tmp_path))
    _assert_same(import_colmap(tmp_path), cams)
    _assert_same(import_colmap(tmp_path), import_transforms_json(
        (export_transforms_json(tmp_path / "t.json", cams), tmp_path / "t.json")[1]))


def test_inconsistent_cameras_raise(tmp_path):
    cams = _truth(3)
    d = {"frames": {k: c.to_dict() for k, c in cams.items()}}
    d["frames"]["001"]["R"][0][0] = 3.0  # not a rotation
    (tmp_path / "cameras.json").write_text(json.dumps(d))
    with pytest.raises(InputError, match=r"cameras\.json \[001\].*not a rotation"):
        load_cameras(tmp_path / "cameras.json")
    (tmp_path / "transforms.json").write_text(json.dumps({"frames": [{"file_path": "a.png"}]}))
    with pytest.raises(InputError, match="transform_matrix|intrinsics"):
        import_transforms_json(tmp_path / "transforms.json")
    with pytest.raises(InputError, match="COLMAP"):
        import_colmap(tmp_path / "nothing")


def test_camera_is_keyword_only_validated_and_projects_with_depth():
    c = _truth(1)["000"]
    with pytest.raises(TypeError):  # positional fields could swap fx and width
        Camera(700.0, 705.0, 319.5, 239.5, 640, 480, c.R, c.t)
    for bad, what in ((dict(fx=-1.0), "positive"), (dict(cx=5000.0), "principal point"),
                      (dict(t=[0.0, np.nan, 0.0]), "NaN"), (dict(R=np.eye(2)), "3x3")):
        with pytest.raises(InputError, match=what):
            Camera(**{**c.to_dict(), **bad}, where="rig [7]")
    with pytest.raises(InputError, match=r"^rig \[7\]: "):
        Camera(**{**c.to_dict(), "R": -np.eye(3)}, where="rig [7]")
    x = np.random.default_rng(1).normal(0, 0.05, (4, 5, 3))
    px, z = c.project_with_depth(x)
    assert px.shape == (4, 5, 2) and z.shape == (4, 5) and (z > 0.4).all()
    assert np.array_equal(px, c.project(x))
    xc = x @ c.R.T + c.t  # pinhole by hand
    assert np.allclose(px, xc[..., :2] / xc[..., 2:] * [c.fx, c.fy] + [c.cx, c.cy])
    fine = c.scaled(3)  # pixel centre i of the fine image sits at (i + 0.5) / 3 - 0.5
    assert (fine.width, fine.height) == (3 * c.width, 3 * c.height)
    assert np.allclose((fine.project(x) + 0.5) / 3 - 0.5, px)


def test_umeyama_recovers_similarity():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3))
    R, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    R *= np.sign(np.linalg.det(R))
    y = 2.5 * x @ R.T + [0.1, -0.3, 2.0]
    s, Re, te = umeyama(x, y)
    assert s == pytest.approx(2.5, rel=1e-9)
    np.testing.assert_allclose(Re, R, atol=1e-9)
    cams = _truth()
    moved = transform_cameras(cams, 0.3, R, np.array([1.0, 2, 3]))
    aligned, s2, _, _ = align_cameras(moved, cams)
    e = camera_errors(aligned, cams)
    assert s2 == pytest.approx(1 / 0.3, rel=1e-6)
    assert e["median_rot_deg"] < 1e-4 and e["median_centre_m"] < 1e-9
    with pytest.raises(InputError):
        umeyama(x[:2], y[:2])


def test_align_with_orientations_is_level_on_an_arc_of_noisy_centres():
    # head-fit poses of a turn capture: cameras on one horizontal arc, centres noisy by ~1 cm
    # (depth from landmarks), orientations good to ~1 degree. Centres alone leave the rotation
    # about the arc's chord free, so the noise tilts the frame; the orientations pin it.
    rng = np.random.default_rng(3)
    truth = {}
    for i in range(6):
        a = np.radians(-30 + 12 * i)
        R, t = look_at([0.6 * np.sin(a), 0.0, 0.6 * np.cos(a)], (0, 0.0, 0))
        truth[f"{i:03d}"] = Camera(fx=500.0, fy=500.0, cx=191.5, cy=191.5, width=384,
                                   height=384, R=R, t=t)
    noisy = {}
    for k, c in truth.items():
        w = np.radians(1.0) * rng.normal(size=3)
        th = np.linalg.norm(w)
        Kx = np.array([[0, -w[2], w[1]], [w[2], 0, -w[0]], [-w[1], w[0], 0]]) / th
        dR = np.eye(3) + np.sin(th) * Kx + (1 - np.cos(th)) * Kx @ Kx
        R = dR @ c.R
        centre = c.centre + 0.01 * rng.normal(size=3)
        noisy[k] = Camera(fx=500.0, fy=500.0, cx=191.5, cy=191.5, width=384, height=384, R=R,
                          t=-R @ centre)
    Rs, _ = look_at([1.0, 0.3, 0.2])
    other = transform_cameras(truth, 3.0, Rs, np.array([0.5, -1.0, 2.0]))

    def frame_err(**kw):
        _, s, R, _ = align_cameras(other, noisy, **kw)
        dR = R @ Rs  # the true rotation from `other` to the head frame is Rs^T
        return np.degrees(np.arccos(np.clip((np.trace(dR) - 1) / 2, -1, 1))), s

    err_c, _ = frame_err()
    err_o, s_o = frame_err(orientations=True)
    assert err_c > 3.0  # the failure this guards against (centres only)
    assert err_o < 1.0, err_o
    assert s_o == pytest.approx(1 / 3.0, rel=0.05)
    # exact poses are recovered exactly, robust pass included
    _, s, R, t = align_cameras(other, truth, orientations=True)
    np.testing.assert_allclose(R, Rs.T, atol=1e-9)
    assert s == pytest.approx(1 / 3.0, rel=1e-9)
