"""Blender-rendered benchmark captures (benchmarks/blender_capture.py) at toy sizes.

The renders run the CLI in a subprocess (Blender must not share a process with Qt; see
test_dcc_import.py). What is checked:

* orbit: transforms.json reads back (engine.cameras.camera.import_transforms_json) into exactly
  the cameras of ``orbit_cameras``; projecting the head mesh and the strands of the written
  groom.npz with those cameras matches the Blender render: silhouette IoU > 0.85 in every view,
  pixels 2 px away from anything projected (image border excluded) are the world colour,
  projected hair outside the head is mostly non-background, and the left-right mirrored render
  matches clearly worse (so a mirrored or upside-down camera conversion cannot pass);
  re-running with the same arguments renders nothing.
* sintel: the CG groom fitted onto the ICT head has its roots on the head surface, its strands
  outside the head and its hair above the shoulders.
* turn: cameras.json loads (engine.cameras.camera.load_cameras) into one camera per frame, the
  video has that many frames, and the frames agree with the projection too.

Skipped when the ``bpy`` wheel or the shared data (``../shared/data``) is absent.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
SCRIPT = REPO / "benchmarks" / "blender_capture.py"

# find_spec, not importorskip: importing bpy into the test process is what the subprocess avoids
if importlib.util.find_spec("bpy") is None:
    pytest.skip("the bpy wheel (Blender as a Python module) is not installed",
                allow_module_level=True)
if not (SHARED / "heads" / "ict_face_model_light.npz").is_file():
    pytest.skip("shared data (../shared/data) is absent", allow_module_level=True)


def _load():
    spec = importlib.util.spec_from_file_location("blender_capture", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["blender_capture"] = mod
    spec.loader.exec_module(mod)
    return mod


bc = _load()

SIZE, VIEWS, STRANDS = 96, 3, 200
COMMON = ["--groom", "wavy", "--size", str(SIZE), "--samples", "4", "--strands", str(STRANDS),
          "--points", "24", "--radius-mm", "1.5"]


def _run(args: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          cwd=str(REPO), env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _background_rgb() -> np.ndarray:
    """The world colour as the 8-bit sRGB the 'Standard' view transform writes."""
    c = np.asarray(bc.WORLD_RGB)
    s = np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)
    return np.round(255 * s)


def _projection(cam, head_v, head_f, strands, radius_m):
    """(H, W) bool masks of the projected head mesh and of the projected strands (lines at
    least 1 px wide), drawn with 1/16 px precision."""
    h, w = cam.height, cam.width
    sub = 16
    pix, z = cam.project_with_depth(head_v)
    assert (z > 0).all()
    tri = np.round(pix[head_f] * sub).astype(np.int32)
    head = np.zeros((h, w), np.uint8)
    cv2.fillPoly(head, list(tri), 1, lineType=cv2.LINE_8, shift=4)
    hair = np.zeros((h, w), np.uint8)
    px, zs = cam.project_with_depth(strands.reshape(-1, 3))
    px = px.reshape(strands.shape[0], -1, 2)
    width_px = 2 * radius_m * cam.fx / float(np.median(zs))
    cv2.polylines(hair, list(np.round(px * sub).astype(np.int32)), False, 1,
                  thickness=max(1, int(round(width_px))), lineType=cv2.LINE_8, shift=4)
    return head.astype(bool), hair.astype(bool)


def _check_view(img_bgr, cam, head_v, head_f, strands, radius_m, bg):
    rgb = cv2.cvtColor(img_bgr, cv2.COLOR_BGR2RGB).astype(np.float64)
    fg = np.abs(rgb - bg).max(-1) > 6
    head, hair = _projection(cam, head_v, head_f, strands, radius_m)
    proj = head | hair
    iou = (fg & proj).sum() / (fg | proj).sum()
    flipped = fg[:, ::-1]
    iou_flip = (flipped & proj).sum() / (flipped | proj).sum()
    far = ~cv2.dilate(proj.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    far[:2], far[-2:], far[:, :2], far[:, -2:] = False, False, False, False  # filter spill-in
    bg_pure = (np.abs(rgb[far] - bg).max(-1) <= 2).mean()
    hair_only = hair & ~cv2.dilate(head.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    hair_hit = fg[hair_only].mean() if hair_only.sum() >= 20 else 1.0
    return iou, iou_flip, bg_pure, hair_hit


@pytest.fixture(scope="module")
def orbit(tmp_path_factory):
    out = tmp_path_factory.mktemp("blender") / "orbit"
    info = _run([*COMMON, "--kind", "orbit", "--views", str(VIEWS), "--out", str(out)])
    return out, info


def test_orbit_transforms_round_trip(orbit):
    from engine.cameras.camera import import_transforms_json

    out, info = orbit
    cams = import_transforms_json(out / "transforms.json")
    used = bc.orbit_cameras(VIEWS, SIZE)
    assert sorted(cams) == [f"{i:03d}" for i in range(VIEWS)]
    for i, c in enumerate(used):
        got = cams[f"{i:03d}"]
        assert (got.width, got.height) == (SIZE, SIZE)
        np.testing.assert_allclose([got.fx, got.fy, got.cx, got.cy], [c.fx, c.fy, c.cx, c.cy],
                                   atol=1e-9)
        np.testing.assert_allclose(got.R, c.R, atol=1e-9)
        np.testing.assert_allclose(got.t, c.t, atol=1e-9)
        assert (out / "images" / f"{i:03d}.png").is_file()
    case = json.loads((out / "case.json").read_text())
    assert case["desc"]["groom"] == "wavy" and case["desc"]["views"] == VIEWS
    assert case["out"]["blender"].startswith("4.")
    assert info["render_s_per_frame"] > 0


def test_orbit_render_matches_projection(orbit):
    from engine.cameras.camera import import_transforms_json
    from engine.io.export import load_groom

    out, info = orbit
    cams = import_transforms_json(out / "transforms.json")
    groom = load_groom(out / "groom.npz")
    assert groom.num_strands == STRANDS
    np.testing.assert_allclose(groom.widths, 2 * 1.5e-3, rtol=1e-6)
    head_v, head_f, _, _ = bc.head_mesh(torso=True)
    bg = _background_rgb()
    for name, cam in sorted(cams.items()):
        img = cv2.imread(str(out / "images" / f"{name}.png"), cv2.IMREAD_COLOR)
        assert img.shape == (SIZE, SIZE, 3)
        iou, iou_flip, bg_pure, hair_hit = _check_view(img, cam, head_v, head_f, groom.strands,
                                                       info["radius_m"], bg)
        assert iou > 0.85, f"view {name}: silhouette IoU {iou:.3f}"
        assert bg_pure > 0.995, f"view {name}: {1 - bg_pure:.1%} of far pixels not background"
        assert hair_hit > 0.6, f"view {name}: only {hair_hit:.1%} of projected hair rendered"
        if name != "000":  # the side views are not mirror-symmetric
            assert iou_flip < iou - 0.05, f"view {name}: mirrored render fits as well"


def test_orbit_is_not_rendered_twice(orbit):
    out, _ = orbit
    before = {p.name: p.stat().st_mtime_ns for p in (out / "images").iterdir()}
    _run([*COMMON, "--kind", "orbit", "--views", str(VIEWS), "--out", str(out)])
    assert {p.name: p.stat().st_mtime_ns for p in (out / "images").iterdir()} == before


def test_turn_capture(tmp_path):
    from engine.cameras.camera import load_cameras
    from engine.io.export import load_groom

    out = tmp_path / "turn"
    info = _run([*COMMON, "--kind", "turn", "--frames", "3", "--samples", "2",
                 "--out", str(out)])
    cams = load_cameras(out / "cameras.json")
    assert sorted(cams) == ["000", "001", "002"]
    meta = json.loads((out / "cameras.json").read_text())
    assert meta["meta"]["frame"] == "head"
    yaws = [meta["frames"][k]["yaw_deg"] for k in sorted(meta["frames"])]
    np.testing.assert_allclose([yaws[0], yaws[-1]], [-50.0, 50.0])
    cap = cv2.VideoCapture(str(out / "capture.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    assert n == 3
    groom = load_groom(out / "groom.npz")
    head_v, head_f, _, _ = bc.head_mesh(torso=True)
    for k in ("000", "002"):  # the two extreme yaws: the head frame must follow the turn
        img = cv2.imread(str(out / "frames" / f"{k}.png"), cv2.IMREAD_COLOR)
        iou, iou_flip, bg_pure, _ = _check_view(img, cams[k], head_v, head_f, groom.strands,
                                                info["radius_m"], _background_rgb())
        assert iou > 0.85 and bg_pure > 0.995, (k, iou, bg_pure)
        assert iou_flip < iou - 0.02, (k, iou, iou_flip)


@pytest.mark.skipif(not (SHARED / "grooms" / "sintel_lite_guides.npz").is_file(),
                    reason="shared Sintel Lite guides absent")
def test_sintel_groom_sits_on_the_ict_head():
    from engine.head.scalp import default_scalp

    g = bc.benchmark_groom("sintel", n_strands=400, n_points=24)
    assert g.strands.shape == (400, 24, 3) and g.root_uv.shape == (400, 2)
    d, _ = default_scalp().sdf.query(g.strands.reshape(-1, 3))
    d = d.reshape(400, 24)
    assert np.abs(d[:, 0]).max() < 0.0015  # roots on the surface
    assert (d[:, 1:] > -0.002).mean() > 0.97  # bodies outside the head
    s = g.strands.reshape(-1, 3)
    assert s[:, 1].max() < 0.20 and s[:, 1].min() > -0.12  # on the head, above the shoulders
    assert abs(float(s[:, 0].mean())) < 0.01  # centred left-right
    assert g.strands[:, 0, 1].mean() > 0.05  # rooted on the upper head (Y up, not flipped)


def test_whole_turn_cameras_go_round_the_head():
    """``turn360``: the head turns once round (0 -> 360 degrees of yaw), so in the head frame
    the still camera circles it: its azimuth passes the face, both sides and the back."""
    cams, poses = bc.turn_cameras(25, 64, kind="turn360")
    az = np.degrees([np.arctan2(c.centre[0], c.centre[2]) for c in cams])
    assert abs(az[0]) < 5 and abs(az[-1]) < 5  # starts and ends facing the camera
    assert np.histogram(np.mod(az, 360.0), bins=8, range=(0, 360))[0].min() >= 1
    assert bc._description("straight", "turn360", 25, 64, bc.SceneSettings(), None, None,
                           30.0)["yaw_range_deg"] == [0.0, 360.0]


def test_bald_groom_is_hidden_inside_the_head():
    from engine.head.scalp import default_scalp

    g = bc.bald_groom()
    assert g.num_strands == 1
    assert (default_scalp().sdf(np.asarray(g.strands[0], np.float64)) < -0.005).all()
