"""The synthetic-capture renderer: projection, rasterised masks and depth, z-buffer order,
strand orientation ground truth, camera rigs, the ICT head and the hair shell."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.errors import InputError
from engine.raster import rasterize_mesh, rasterize_strands
from engine.synthetic import (Camera, RenderSettings, load_cameras, look_at, orbit_rig,
                              projected_angle, render, save_cameras, turning_head_rig)
from engine.synthetic.camera import rotation_ypr

REPO = Path(__file__).resolve().parents[2]
ICT = REPO.parent / "shared" / "data" / "heads" / "ict_face_model_light.npz"
needs_ict = pytest.mark.skipif(not ICT.is_file(), reason="needs ../shared/data/heads ICT model")
FLAT = RenderSettings(background=(0.0, 0.0, 0.0))


def front_camera(size=64, f=80.0, dist=1.0) -> Camera:
    R, t = look_at((0.0, 0.0, dist), (0.0, 0.0, 0.0))
    return Camera(fx=f, fy=f, cx=(size - 1) / 2, cy=(size - 1) / 2, width=size, height=size, R=R,
                  t=t)


class _Mesh:
    """A minimal stand-in for HeadModel: vertices/faces/region and a flat albedo."""

    def __init__(self, vertices, faces):
        self.vertices = np.asarray(vertices, np.float32)
        self.faces = np.asarray(faces, np.int32)
        self.region = np.zeros(len(vertices), np.int8)

    def albedo(self, points, eye_weight, cloth_weight=None):
        return np.full((len(points), 3), 0.8, np.float32)


def quad(z=0.0, half=0.1, tilt=0.0):
    """A square facing +Z (CCW seen from +Z), optionally tilted about x (depth varies with y)."""
    v = np.array([[-half, -half, z], [half, -half, z], [half, half, z], [-half, half, z]], float)
    v[:, 2] += tilt * v[:, 1]
    return v, np.array([[0, 1, 2], [0, 2, 3]])


def test_known_point_projects_to_expected_pixel():
    cam = front_camera(64, 80.0, 1.0)
    px, z = cam.project_with_depth(np.array([[0.1, 0.05, 0.0], [0.0, 0.0, 0.2]]))
    # camera at +Z looking at the origin: world +X is image right, world +Y is image up
    assert np.allclose(px[0], [31.5 + 8.0, 31.5 - 4.0]) and math.isclose(z[0], 1.0)
    assert np.allclose(px[1], [31.5, 31.5]) and math.isclose(z[1], 0.8)
    assert np.allclose(cam.centre, [0, 0, 1])


def test_mesh_mask_matches_projected_polygon_and_depth_is_perspective_correct():
    cam = front_camera(64, 80.0, 1.0)
    v, f = quad(0.0, 0.1, tilt=0.5)  # z = 0.5 y: the top is nearer the camera
    r = render(cam, _Mesh(v, f), settings=FLAT)
    px = cam.project(v)
    ref = np.zeros((64, 64), np.uint8)
    cv2.fillConvexPoly(ref, np.round(px * 16).astype(np.int32), 1, lineType=cv2.LINE_8, shift=4)
    diff = (r.bust_mask > 0.5) != (ref > 0)
    assert r.bust_mask.sum() > 200
    # pixels can only disagree on the polygon's boundary
    k3 = np.ones((3, 3), np.uint8)
    boundary = cv2.dilate(ref, k3) != cv2.erode(ref, k3)
    assert not (diff & ~boundary).any()
    assert r.hair_mask.sum() == 0
    # depth: intersect each pixel's ray with the plane z = 0.5 y
    ys, xs = np.nonzero(r.bust_mask > 0.5)
    dy = -(ys - cam.cy) / cam.fy  # world ray from (0, 0, 1): (dx, dy, -1) * s
    s = 1.0 / (1.0 + 0.5 * dy)  # on the plane: 1 - s = 0.5 * s * dy
    assert np.allclose(r.depth[ys, xs], s, atol=1e-4)
    assert (r.depth[r.bust_mask == 0] == 0).all()


def test_back_faces_are_culled():
    cam = front_camera()
    v, f = quad()
    frag = rasterize_mesh(*cam.project_with_depth(v), f[:, [0, 2, 1]], 64, 64)  # reversed winding
    assert (frag.face < 0).all()


def test_strand_orientation_matches_known_3d_direction():
    cam = front_camera(128, 150.0, 1.0)
    rng = np.random.default_rng(0)
    for angle_deg in (0.0, 30.0, 90.0, 135.0):
        a = math.radians(angle_deg)
        d = np.array([math.cos(a), math.sin(a), 0.0])  # in the image plane: +X right, +Y up
        roots = rng.uniform(-0.15, 0.15, (40, 3))
        roots[:, 2] = rng.uniform(-0.05, 0.05, 40)
        strands = roots[:, None] + d * np.linspace(0, 0.08, 20)[None, :, None]
        r = render(cam, strands=strands.astype(np.float32), settings=FLAT)
        hair = r.hair_mask > 0
        assert hair.sum() > 300
        err = np.abs(r.orientation[hair] - a)
        err = np.degrees(np.minimum(err, np.pi - err))
        assert np.median(err) < 2.0, (angle_deg, np.median(err))
        assert np.allclose(np.abs(r.tangent[hair] @ d), 1.0, atol=1e-5)
        assert set(np.unique(r.strand_index[hair])) <= set(range(40))
        assert (r.strand_index[~hair] == -1).all()


def test_strand_orientation_oblique_direction_against_finite_differences():
    R, t = look_at((0.4, 0.3, 0.9), (0.0, 0.02, 0.0))
    cam = Camera(fx=120.0, fy=110.0, cx=40.0, cy=50.0, width=96, height=96, R=R, t=t)
    rng = np.random.default_rng(1)
    d = np.array([0.3, -0.8, 0.5]) / np.linalg.norm([0.3, -0.8, 0.5])
    roots = rng.uniform(-0.1, 0.1, (60, 3))
    strands = (roots[:, None] + d * np.linspace(0, 0.05, 12)[None, :, None]).astype(np.float32)
    r = render(cam, strands=strands, settings=FLAT)
    hair = r.hair_mask > 0
    ys, xs = np.nonzero(hair)
    # expected: angle of the image step of a tiny 3D step along d from the 3D point of the pixel
    rays = np.stack([(xs - cam.cx) / cam.fx, (ys - cam.cy) / cam.fy, np.ones(len(xs))], 1)
    pc = rays * r.depth[ys, xs, None]
    pw = (pc - cam.t) @ cam.R
    a = cam.project(pw)
    b = cam.project(pw + 1e-5 * d)
    exp = np.arctan2(-(b - a)[:, 1], (b - a)[:, 0]) % np.pi
    err = np.abs(r.orientation[ys, xs] - exp)
    err = np.degrees(np.minimum(err, np.pi - err))
    assert np.median(err) < 2.0
    assert np.allclose(projected_angle(cam, pw, np.tile(d, (len(pw), 1))), exp, atol=1e-3)


def test_zbuffer_orders_strands_and_mesh():
    cam = front_camera(64, 80.0, 1.0)
    v, f = quad(0.0, 0.2)
    y = np.linspace(-0.15, 0.15, 30)
    front = np.stack([np.zeros(30) - 0.05, y, np.full(30, 0.05)], 1)  # in front of the quad
    behind = np.stack([np.zeros(30) + 0.05, y, np.full(30, -0.05)], 1)  # behind it
    r = render(cam, _Mesh(v, f), np.stack([front, behind]).astype(np.float32), settings=FLAT)
    assert set(np.unique(r.strand_index[r.hair_mask > 0])) == {0}
    assert np.allclose(r.depth[r.hair_mask > 0], 0.95, atol=1e-4)
    assert ((r.hair_mask > 0) & (r.bust_mask > 0)).sum() == 0
    # without the quad both strands show
    r2 = render(cam, None, np.stack([front, behind]).astype(np.float32), settings=FLAT)
    assert set(np.unique(r2.strand_index[r2.hair_mask > 0])) == {0, 1}


def test_ribbon_width_follows_metres_and_minimum_pixels():
    cam = front_camera(64, 100.0, 1.0)
    s = np.stack([np.full(20, 0.005), np.linspace(-0.2, 0.2, 20), np.zeros(20)], 1)[None].astype(
        np.float32)  # projects onto the pixel-centre column x = 32
    frag = rasterize_strands(*cam.project_with_depth(s), np.float32(5.0), 64, 64)
    cols = (frag.segment >= 0).sum(1)
    assert np.median(cols[cols > 0]) == 5
    r = render(cam, strands=s, settings=RenderSettings(hair_width_m=0.03, background=(0, 0, 0)))
    cols = (r.hair_mask > 0).sum(1)
    assert np.median(cols[cols > 0]) == 3  # 0.03 m at 1 m with f = 100 px


def test_supersampling_gives_soft_masks_and_consistent_orientation():
    cam = front_camera(48, 60.0, 1.0)
    strands = np.stack([np.stack([np.full(10, x), np.linspace(-0.2, 0.2, 10), np.zeros(10)], 1)
                        for x in np.linspace(-0.2, 0.2, 9)]).astype(np.float32)
    r = render(cam, strands=strands, settings=RenderSettings(background=(0, 0, 0), ssaa=3,
                                                             hair_width_m=0.05))
    assert r.rgb.shape == (48, 48, 3) and r.hair_mask.shape == (48, 48)
    soft = (r.hair_mask > 0) & (r.hair_mask < 1)
    assert soft.any() and r.hair_mask.max() == 1.0
    err = np.abs(r.orientation[r.hair_mask > 0] - np.pi / 2)
    assert err.max() < 1e-3


def test_turning_head_cameras_match_a_rotating_head_before_a_still_camera():
    cams, poses = turning_head_rig(5, 64, 64, yaw_range_deg=(-60, 60), distance_m=0.8,
                                   pivot=(0.0, -0.02, -0.02), target=(0, 0, 0))
    assert [round(p.yaw_deg) for p in poses] == [-60, -42, 0, 42, 60]
    Rc, tc = look_at((0, 0, 0.8), (0, 0, 0))
    still = Camera(fx=cams[0].fx, fy=cams[0].fy, cx=cams[0].cx, cy=cams[0].cy, width=64, height=64,
                   R=Rc, t=tc)
    x = np.array([[0.03, 0.05, 0.09], [-0.05, 0.1, -0.02]])
    piv = np.array([0.0, -0.02, -0.02])
    for cam, p in zip(cams, poses):
        H = rotation_ypr(p.yaw_deg, p.pitch_deg, p.roll_deg)
        world = (x - piv) @ H.T + piv
        assert np.allclose(cam.project(x), still.project(world), atol=1e-9)
    # positive yaw turns the face (+Z) towards +X, which is image right for this camera
    nose = np.array([[0.0, 0.0, 0.1]])
    assert cams[-1].project(nose)[0, 0] > cams[2].project(nose)[0, 0] + 5


def test_orbit_rig_looks_at_target_and_cameras_round_trip(tmp_path):
    cams = orbit_rig(4, 80, 60, radius_m=0.7, target=(0.0, 0.03, 0.0))
    for c in cams:
        px, z = c.project_with_depth(np.array([[0.0, 0.03, 0.0]]))
        assert np.allclose(px, [[c.cx, c.cy]]) and math.isclose(z[0], 0.7)
    path = save_cameras(tmp_path / "cameras.json", cams, fps=30.0)
    back = load_cameras(path)
    assert len(back) == 4
    for a, b in zip(cams, back):
        assert np.allclose(a.R, b.R) and np.allclose(a.t, b.t) and a.width == 80 and b.height == 60
    # the cameras stage's reader takes the same file, keyed by frame name
    from engine.cameras.camera import load_cameras as load_project_cameras

    theirs = load_project_cameras(path)
    assert sorted(theirs) == ["000", "001", "002", "003"]
    assert np.allclose(theirs["002"].project(np.array([[0.01, 0.02, 0.03]])),
                       cams[2].project(np.array([[0.01, 0.02, 0.03]])))
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(InputError, match="bad.json"):
        load_cameras(tmp_path / "bad.json")
    with pytest.raises(InputError, match="not a rotation"):
        Camera(fx=5, fy=5, cx=5, cy=5, width=10, height=10, R=np.diag([1.0, 1.0, -1.0]),
               t=np.zeros(3))


def test_render_rejects_bad_strands():
    with pytest.raises(InputError, match="strands"):
        render(front_camera(), strands=np.zeros((3, 1, 3), np.float32))


@needs_ict
def test_ict_head_render_has_a_face_where_expected():
    from engine.synthetic import HeadModel

    head = HeadModel.load(ICT)
    cam = orbit_rig(1, 128, 128, yaw_range_deg=(0, 0), pitch_deg=0.0, radius_m=0.8)[0]
    r = render(cam, head)
    lm = head.vertices[head.landmarks68]
    px = cam.project(lm[[30, 8, 36, 45]])  # nose tip, chin, eye corners
    ij = np.round(px).astype(int)
    assert (r.bust_mask[ij[:, 1], ij[:, 0]] == 1).all()
    assert r.hair_mask.sum() == 0 and 0.1 < r.bust_mask.mean() < 0.8
    # lips are redder than the cheek next to them
    mouth = cam.project(lm[[51, 57]].mean(0, keepdims=True))
    cheek = cam.project(lm[[3]] * np.array([0.8, 1.0, 1.05]))
    m = r.rgb[int(round(mouth[0, 1])), int(round(mouth[0, 0]))].astype(int)
    c = r.rgb[int(round(cheek[0, 1])), int(round(cheek[0, 0]))].astype(int)
    assert m[0] - m[1] > c[0] - c[1]


@needs_ict
def test_hair_shell_is_closed_outside_the_head_and_its_field_is_tangent():
    from engine.synthetic import HeadModel
    from engine.synthetic.shell import make_hair_shell

    head = HeadModel.load(ICT)
    shell = make_hair_shell(head, thickness_m=0.012, back_extra_m=0.0, spacing=0.004)
    import trimesh

    m = trimesh.Trimesh(shell.vertices, shell.faces, process=True)
    assert m.is_watertight and m.volume > 0  # closed and oriented outward
    top = shell.vertices[shell.vertices[:, 1] > 0.12]
    assert len(top) and np.allclose(shell.head_sdf(top.astype(np.float64)), 0.012, atol=0.003)
    pts = np.array([[0.0, 0.16, 0.0], [0.0, 0.05, -0.12], [0.09, 0.06, -0.02]])
    g = shell.direction(pts)
    assert np.allclose(np.linalg.norm(g, axis=1), 1.0)
    assert g[0, 2] < -0.9 and g[1, 1] < -0.9  # backwards at the crown, down at the back
    p, d = shell.sample_surface(2000)
    assert (shell.head_sdf(p) > -0.001).all() and np.abs(shell.shell_sdf(p)).max() < 0.003
    assert np.allclose(np.linalg.norm(d, axis=1), 1.0)
    inward = (p - [0.0, 0.045, 0.0]) / np.linalg.norm(p - [0.0, 0.045, 0.0], axis=1, keepdims=True)
    assert (shell.hair_sdf(p - 0.004 * inward) < 0).mean() > 0.9  # hair just under the surface
    cam = orbit_rig(1, 96, 96, yaw_range_deg=(180, 180), radius_m=0.8)[0]
    r = render(cam, head, shell=shell, settings=FLAT)
    hair = r.hair_mask > 0
    assert hair.sum() > 300 and (r.strand_index == -1).all()
    # from behind the hair flows down the image: orientation near 90 degrees
    ys, xs = np.nonzero(hair)
    low = ys > np.percentile(ys, 60)
    assert abs(np.degrees(np.median(r.orientation[ys[low], xs[low]])) - 90) < 15


def test_render_capture_writes_preprocessing_artifacts(tmp_path):
    import json

    from engine.io.export import load_groom
    from engine.synthetic import render_capture

    cams, poses = turning_head_rig(3, 40, 32, distance_m=0.8, target=(0, 0, 0))
    strands = np.stack([np.stack([np.full(8, x), np.linspace(0.08, -0.08, 8), np.full(8, 0.1)], 1)
                        for x in (-0.02, 0.0, 0.02)]).astype(np.float32)
    out = render_capture(tmp_path / "cap", cams, strands=strands, poses=poses, fps=10.0,
                         settings=RenderSettings(hair_width_m=0.004), video=True)
    meta = json.loads((out / "keyframes.json").read_text())
    assert [f["name"] for f in meta["frames"]] == ["000", "001", "002"]
    assert meta["width"] == 40 and meta["height"] == 32 and meta["frames"][2]["yaw_deg"] == 60.0
    r = render(cams[1], strands=strands, settings=RenderSettings(hair_width_m=0.004))
    hair = cv2.imread(str(out / "hair" / "001.png"), cv2.IMREAD_UNCHANGED)
    assert hair.dtype == np.uint16 and np.allclose(hair / 65535.0, r.hair_mask, atol=1e-4)
    with np.load(out / "orientation" / "001.npz") as o:
        assert np.allclose(o["angle"], r.orientation)
        assert ((o["confidence"] > 0) == (r.hair_mask > 0)).all()
    assert (cv2.imread(str(out / "frames" / "001.png"))[..., ::-1] == r.rgb).all()
    assert load_groom(out / "groom.npz").strands.shape == (3, 8, 3)
    assert len(load_cameras(out / "cameras.json")) == 3
    assert (out / "capture.mp4").stat().st_size > 0


def test_environment_backdrop_is_fixed_in_the_head_frame():
    from engine.synthetic.render import environment_backdrop

    a, b = orbit_rig(2, 64, 64, yaw_range_deg=(0.0, 10.0))
    env = RenderSettings(background="environment")
    ia, ib = render(a, settings=env).rgb, render(b, settings=env).rgb
    assert ia.std() > 3 and np.abs(ia.astype(int) - ib).mean() > 2  # it moves with the camera
    assert (ia == environment_backdrop(a, seed=7)).all()
    # the image-fixed studio backdrop does not
    assert (render(a).rgb == render(b).rgb).all()
    with pytest.raises(InputError, match="background"):
        render(a, settings=RenderSettings(background="sky"))


def test_transforms_json_is_camera_to_world_in_opengl_axes(tmp_path):
    import json

    from engine.synthetic.camera import save_transforms_json

    cams = orbit_rig(3, 64, 48, radius_m=0.7, target=(0.0, 0.03, 0.0))
    p = save_transforms_json(tmp_path / "transforms.json", cams, ["a.png", "b.png", "c.png"])
    frames = json.loads(p.read_text())["frames"]
    x = np.array([0.02, 0.05, 0.04])
    for cam, fr in zip(cams, frames):
        M = np.array(fr["transform_matrix"])
        assert np.allclose(M[:3, 3], cam.centre)
        # a world point expressed in the OpenGL camera: x right, y up, looking down -z
        pc = np.linalg.inv(M) @ np.append(x, 1.0)
        u = fr["cx"] - 0.5 + fr["fl_x"] * pc[0] / -pc[2]  # nerfstudio: pixel-corner origin
        v = fr["cy"] - 0.5 - fr["fl_y"] * pc[1] / -pc[2]
        assert np.allclose([u, v], cam.project(x[None])[0])
    # the cameras stage's importer gets the same cameras back
    from engine.cameras.camera import import_transforms_json

    back = import_transforms_json(p)
    for cam, name in zip(cams, ("a", "b", "c")):
        assert np.allclose(back[name].project(x[None]), cam.project(x[None]))
    with pytest.raises(InputError):
        save_transforms_json(tmp_path / "t.json", cams, ["a.png"])


@needs_ict
def test_command_line_renders_a_capture_folder(tmp_path, capsys):
    import json

    from engine.io.export import export_groom, load_groom
    from engine.io.groom import Groom
    from engine.synthetic.__main__ import main

    y = np.linspace(0.12, 0.0, 10)
    strands = np.stack([np.stack([np.full(10, x), y, np.full(10, -0.09)], 1)
                        for x in np.linspace(-0.05, 0.05, 20)]).astype(np.float32)
    export_groom(Groom(strands), tmp_path / "g.npz", units="m")
    rc = main(["--out", str(tmp_path / "cap"), "--rig", "orbit", "--views", "3", "--size", "64",
               "--yaw", "180", "--groom", str(tmp_path / "g.npz"), "--width-mm", "2"])
    assert rc == 0 and "wrote 3 frames (20 strands)" in capsys.readouterr().out
    meta = json.loads((tmp_path / "cap" / "keyframes.json").read_text())
    assert len(meta["frames"]) == 3
    assert np.allclose(load_groom(tmp_path / "cap" / "groom.npz").strands, strands)
    # the strands hang behind the head: visible from the back (yaw 180), hidden from the front
    hair = [cv2.imread(str(tmp_path / "cap" / "hair" / f"{k:03d}.png"), cv2.IMREAD_UNCHANGED)
            for k in range(3)]
    assert hair[0].sum() > 0 and hair[1].sum() == 0
    assert main(["--out", str(tmp_path / "x"), "--groom", str(tmp_path / "missing.npz")]) == 2


def test_head_model_loads_metres_or_centimetres_and_triangles_or_quads(tmp_path):
    from engine.synthetic import HeadModel

    rng = np.random.default_rng(0)
    v_m = rng.uniform(-0.1, 0.1, (80, 3)).astype(np.float32)
    region = np.zeros(80, np.int8)
    region[70:] = 2
    lm = np.arange(68, dtype=np.int32)
    quads = np.array([[0, 1, 2, 3], [4, 5, 6, 7]], np.int32)
    np.savez(tmp_path / "m.npz", vertices=v_m, faces=np.array([[0, 1, 2]]), region=region,
             landmarks68=lm)
    np.savez(tmp_path / "cm.npz", vertices=v_m * 100, quads=quads, region=region, landmarks68=lm)
    a = HeadModel.load(tmp_path / "m.npz", torso=False)
    b = HeadModel.load(tmp_path / "cm.npz", torso=False)
    assert np.allclose(a.vertices, v_m) and np.allclose(b.vertices, v_m, atol=1e-6)
    assert a.faces.tolist() == [[0, 1, 2]]
    assert b.faces.tolist() == [[0, 1, 2], [4, 5, 6], [0, 2, 3], [4, 6, 7]]
    c = HeadModel.load(tmp_path / "m.npz")  # with the shoulders stand-in (region 3)
    assert len(c.vertices) > 80 and (c.region[80:] == 3).all()
    np.savez(tmp_path / "bad.npz", vertices=v_m)
    with pytest.raises(InputError, match="bad.npz"):
        HeadModel.load(tmp_path / "bad.npz")
