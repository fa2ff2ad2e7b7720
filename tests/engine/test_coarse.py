"""Coarse stage: fields, NeuS rendering, orientation projection, training, export, the stage."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from engine.coarse import losses as L
from engine.coarse.export import extract_meshes, load_coarse_fields, save_fields
from engine.coarse.fields import CoarseFields, FieldSpec
from engine.coarse.render import pixel_rays, ray_box, render_rays
from engine.coarse.train import CoarseConfig, CoarseTrainer
from engine.errors import InputError
from engine.synthetic.analytic_scene import make_scene, ring_cameras

torch.set_num_threads(1)

TINY = dict(iterations=60, rays_per_batch=96, n_samples=16, n_importance=8, image_size=32,
            plane_resolutions=(8, 32), plane_channels=4, hidden=32, mesh_resolution=32)


def sphere_fields(r_hair=0.5, r_bust=0.2, variance=0.7) -> CoarseFields:
    f = CoarseFields(FieldSpec(resolutions=(8,), channels=2, hidden=16, hair_radius=r_hair,
                               bust_radius=r_bust, grad_step=1e-3))
    with torch.no_grad():
        f.variance.fill_(variance)  # inv_s = exp(7) ~ 1100
    return f


def test_tetrahedral_gradient_of_sphere_is_its_normal():
    f = sphere_fields()
    u = torch.randn(200, 3) * 0.4
    u = u[u.norm(dim=-1) > 0.1]
    sdf, grad = f.sdf_grad(u)
    n = u / u.norm(dim=-1, keepdim=True)
    assert torch.allclose(sdf[:, 0], u.norm(dim=-1) - 0.5, atol=1e-3)
    assert torch.allclose(grad[:, 0], n, atol=2e-2)
    assert torch.allclose(grad[:, 1], n, atol=2e-2)


def test_projection_known_cases_and_exactness():
    K = torch.tensor([[[500.0, 0, 64], [0, 500.0, 64], [0, 0, 1]]])
    R, t = torch.eye(3)[None], torch.zeros(1, 3)
    x = torch.tensor([[0.0, 0.0, 1.0]])
    right = L.project_direction_angle(x, torch.tensor([[1.0, 0, 0]]), K, R, t)
    up = L.project_direction_angle(x, torch.tensor([[0.0, -1.0, 0]]), K, R, t)  # y down
    diag = L.project_direction_angle(x, torch.tensor([[1.0, -1.0, 0]]), K, R, t)
    assert abs(float(right)) < 1e-6 or abs(float(right) - math.pi) < 1e-6
    assert abs(float(up) - math.pi / 2) < 1e-6
    assert abs(float(diag) - math.pi / 4) < 1e-6
    # general case: equals the angle of the segment between the images of x - e d and x + e d
    cams = ring_cameras(4, 64)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100, 3, generator=g) * 0.05
    d = torch.randn(100, 3, generator=g)
    v = torch.randint(0, 4, (100,), generator=g)
    a = L.project_direction_angle(x, d, cams.K[v], cams.R[v], cams.t[v])

    def proj(p):
        pc = (cams.R[v] @ p[..., None])[..., 0] + cams.t[v]
        return pc[:, :2] / pc[:, 2:] * cams.K[v][:, [0, 1], [0, 1]] + cams.K[v][:, :2, 2]

    e = 1e-4
    seg = proj(x.double().float() + e * d) - proj(x - e * d)
    ref = torch.remainder(torch.atan2(-seg[:, 1], seg[:, 0]), math.pi)
    assert float(L.angle_difference(a, ref).max()) < 1e-3


def test_angle_difference_is_sign_free():
    a = torch.tensor([0.1, 3.1, 1.0])
    b = torch.tensor([3.1, 0.1, 1.0 + math.pi / 2])
    d = L.angle_difference(a, b)
    assert torch.allclose(d, torch.tensor([0.1 + math.pi - 3.1, 0.1 + math.pi - 3.1,
                                           math.pi / 2]), atol=1e-5)


def test_volume_rendering_of_sphere_gives_its_silhouette_and_depth():
    f = sphere_fields(r_hair=0.5, r_bust=0.45)  # bust hidden inside the hair
    cams = ring_cameras(1, 48, distance=0.45)
    centre, scale = torch.zeros(3), 0.15
    ys, xs = torch.meshgrid(torch.arange(48.0), torch.arange(48.0), indexing="ij")
    o, d = pixel_rays(cams, torch.zeros(48 * 48, dtype=torch.long), xs.reshape(-1),
                      ys.reshape(-1), centre, scale)
    near, far, hit, _ = ray_box(o, d)
    with torch.no_grad():
        out = render_rays(f, o[hit], d[hit], near[hit], far[hit], 32, 32, jitter=False)
    # analytic: closest approach of the ray to the origin vs the radius 0.5
    oh, dh = o[hit], d[hit]
    tc = -(oh * dh).sum(-1)
    dist = (oh + tc[:, None] * dh).norm(dim=-1)
    inside, outside = dist < 0.47, dist > 0.53
    assert inside.sum() > 50 and outside.sum() > 50
    assert float(out["mask_hair"][inside].min()) > 0.97
    assert float(out["mask_hair"][outside].max()) < 0.03
    assert float(out["mask_bust"][inside].max()) < 0.05
    t_hit = tc - torch.sqrt((0.25 - dist ** 2).clamp_min(0))
    err = (out["depth_hair"][inside] - t_hit[inside]).abs()
    assert float(err.median()) < 0.01  # normalised units (1.5 mm here)


def test_training_reduces_losses_keeps_eikonal_and_exports(tmp_path):
    data, views = make_scene(6, 32)
    cfg = CoarseConfig(**TINY)
    tr = CoarseTrainer(data, cfg)
    hist = [tr.step() for _ in range(cfg.iterations)]
    first = np.mean([h["mask"] + h["color"] for h in hist[:8]])
    last = np.mean([h["mask"] + h["color"] for h in hist[-8:]])
    assert last < 0.5 * first
    assert hist[-1]["dir"] < hist[0]["dir"]
    with torch.no_grad():
        _, g = tr.fields.sdf_grad(torch.rand(500, 3) * 2 - 1)
    assert float((g.norm(dim=-1) - 1).abs().mean()) < 0.15
    # export and reload: same SDF in metres
    save_fields(tr.fields, data.centre.numpy(), data.scale, tmp_path)
    q = load_coarse_fields(tmp_path, "cpu")
    x = torch.rand(50, 3) * 0.2 - 0.1
    with torch.no_grad():
        ref = tr.fields.sdf((x - data.centre) / data.scale) * data.scale
        assert torch.allclose(q.sdf_hair(x), ref[:, 0], atol=1e-6)
        assert torch.allclose(q.sdf_bust(x), ref[:, 1], atol=1e-6)
        assert torch.allclose(q.orientation(x).norm(dim=-1), torch.ones(50), atol=1e-5)
    (tmp_path / "fields.safetensors").unlink()
    with pytest.raises(InputError, match="fields.safetensors"):
        load_coarse_fields(tmp_path)


def test_marching_cubes_of_sphere_is_in_metres():
    f = sphere_fields(r_hair=0.5, r_bust=0.3)
    meshes = extract_meshes(f, np.array([0.01, 0.02, 0.0]), 0.2, 48)
    v, faces = meshes["hair"]
    r = np.linalg.norm(v - [0.01, 0.02, 0.0], axis=1)
    assert len(faces) > 100 and abs(r.mean() - 0.1) < 1e-3
    vb, _ = meshes["bust"]
    assert abs(np.linalg.norm(vb - [0.01, 0.02, 0.0], axis=1).mean() - 0.06) < 1e-3
    # outward orientation: face normals point away from the centre
    tri = v[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    assert ((n * (tri.mean(1) - [0.01, 0.02, 0.0])).sum(1) > 0).mean() > 0.99


def test_stage_runs_on_artifact_folders(tmp_path):
    from engine.cameras.camera import Camera, save_cameras
    from engine.synthetic.analytic_scene import render_view
    from engine.coarse.stage import STAGE, run_coarse
    from engine.head.model import save_obj
    from engine.pipeline import Artifact, CancelToken, Project, StageContext, config_from_dict
    from engine.preprocess import artifacts as art
    import trimesh

    cams = ring_cameras(5, 40)
    cap = tmp_path / "cap"
    frames = []
    cam_dict = {}
    for v in range(5):
        r = render_view(cams, v)
        name = f"{v:03d}"
        art.save_frame(cap, name, (r["rgb"] * 255).astype(np.uint8))
        art.save_mask(cap, "hair", name, r["hair"])
        art.save_mask(cap, "bust", name, r["bust"])
        art.save_orientation(cap, name, r["angle"], r["confidence"])
        frames.append({"name": name, "source_index": v, "time_s": None, "sharpness": 1.0,
                       "yaw_deg": None})
        K = cams.K[v].double().numpy()
        cam_dict[name] = Camera(fx=K[0, 0], fy=K[1, 1], cx=K[0, 2], cy=K[1, 2], width=40,
                                height=40, R=cams.R[v].double().numpy(),
                                t=cams.t[v].double().numpy())
    (cap / "keyframes.json").write_text(json.dumps(
        {"width": 40, "height": 40, "fps": None, "source_kind": "images", "frames": frames}))
    save_cameras(cap / "cameras.json", cam_dict)
    sphere = trimesh.creation.icosphere(3, radius=0.08)
    save_obj(cap / "head.obj", sphere.vertices, sphere.faces)
    project = Project.open_or_create(tmp_path / "proj")
    out = tmp_path / "out"
    out.mkdir()
    ctx = StageContext(project, "coarse", out, CancelToken(), "cpu")
    # a sphere for a head has no scalp: the bald-head check is off (tested on its own below)
    cfg = config_from_dict(CoarseConfig, {**TINY, "iterations": 6, "preview_every": 3,
                                          "min_scalp_hair_pct": 0, "min_hair_extent_mm": 0})
    inputs = {k: Artifact(k, "x", cap, {}) for k in STAGE.inputs}
    gen = run_coarse(cfg, inputs, ctx)
    events = []
    try:
        while True:
            events.append(next(gen))
    except StopIteration as stop:
        summary = stop.value
    kinds = {type(e).__name__ for e in events}
    assert {"Loss", "Progress", "Preview"} <= kinds
    assert sum(type(e).__name__ == "Loss" for e in events) == 6
    for name in ("fields.safetensors", "fields.json", "hair_mesh.ply", "bust_mesh.ply",
                 "losses.json", "coarse.json"):
        assert (out / name).is_file(), name
    assert len(list((out / "previews").glob("*.png"))) >= 3
    assert summary["views"] == 5 and summary["iterations"] == 6
    q = load_coarse_fields(out)
    assert q.sdf_hair(torch.zeros(1, 3)).shape == (1,)


@pytest.mark.parametrize("size", [480, 448, 360])
def test_masks_stay_probabilities_at_any_source_size(tmp_path, size):
    """A 480x480 clip crashed at coarse step 0 (`all elements of target should be between 0 and
    1`): area-resizing an all-hair mask to the training size gave 1 + 2e-7."""
    from engine.cameras.camera import Camera, save_cameras
    from engine.coarse.losses import mask_bce
    from engine.coarse.data import load_capture_data
    from engine.head.model import save_obj
    from engine.preprocess import artifacts as art
    import trimesh

    cap = tmp_path / "cap"
    frames, cams = [], {}
    for v in range(2):
        name = f"{v:03d}"
        art.save_frame(cap, name, np.full((size, size, 3), 120, np.uint8))
        art.save_mask(cap, "hair", name, np.ones((size, size), np.float32))
        art.save_mask(cap, "bust", name, np.ones((size, size), np.float32))
        art.save_orientation(cap, name, np.zeros((size, size), np.float32),
                             np.ones((size, size), np.float32))
        frames.append({"name": name, "source_index": v, "time_s": None, "sharpness": 1.0,
                       "yaw_deg": None})
        cams[name] = Camera(fx=size, fy=size, cx=size / 2, cy=size / 2, width=size, height=size,
                            t=np.array([0.0, 0.0, 0.6 + 0.1 * v]))
    (cap / "keyframes.json").write_text(json.dumps(
        {"width": size, "height": size, "fps": None, "source_kind": "images", "frames": frames}))
    save_cameras(cap / "cameras.json", cams)
    sphere = trimesh.creation.icosphere(2, radius=0.08)
    save_obj(cap / "head.obj", sphere.vertices, sphere.faces)
    hv, hf = np.asarray(sphere.vertices, np.float32), np.asarray(sphere.faces, np.int32)
    data, _ = load_capture_data(cap, cap, cap, cap / "cameras.json", hv, hf, 128, 0.1)
    assert float(data.hair.max()) <= 1.0 and float(data.bust.max()) <= 1.0
    assert float(data.hair.min()) > 0.99  # all hair stays all hair
    loss = mask_bce(torch.full_like(data.hair[0].reshape(-1), 0.5), data.hair[0].reshape(-1))
    assert torch.isfinite(loss)


def _head_capture(tmp_path, standoff_m: float | None, size: int = 96):
    """Artifact folders of the ICT head seen by 6 ring cameras, its hair mask the scalp
    triangles pushed ``standoff_m`` out along the normals (0: hair painted on the scalp, a
    shaved head; None: no hair at all, a bald one)."""
    from engine.cameras.camera import Camera, save_cameras
    from engine.head.model import load_head_model, save_obj
    from engine.head.scalp import fitted_scalp, save_scalp
    from engine.preprocess import artifacts as art
    from engine.raster import rasterize_mesh, vertex_normals

    model = load_head_model()
    hv = model.vertices.astype(np.float64)
    hair_v = hv + (standoff_m or 0.0) * vertex_normals(hv, model.faces)
    hair_f = model.faces[model.scalp_faces]
    cams = ring_cameras(6, size, distance=0.6)
    cap = tmp_path / "cap"
    frames, cam_dict = [], {}
    for v in range(6):
        K, R, t = (cams.K[v].double().numpy(), cams.R[v].double().numpy(),
                   cams.t[v].double().numpy())
        c = hair_v @ R.T + t
        px = c[:, :2] / c[:, 2:3] @ K[:2, :2].T + K[:2, 2]
        frag = rasterize_mesh(px, c[:, 2], hair_f, size, size, cull_backfaces=False)
        hair = np.isfinite(frag.depth).astype(np.float32) if standoff_m is not None else \
            np.zeros((size, size), np.float32)
        name = f"{v:03d}"
        art.save_frame(cap, name, np.full((size, size, 3), 128, np.uint8))
        art.save_mask(cap, "hair", name, hair)
        art.save_mask(cap, "bust", name, np.zeros((size, size), np.float32))
        art.save_orientation(cap, name, np.zeros((size, size), np.float32),
                             np.zeros((size, size), np.float32))
        frames.append({"name": name, "source_index": v, "time_s": None, "sharpness": 1.0,
                       "yaw_deg": None})
        cam_dict[name] = Camera(fx=K[0, 0], fy=K[1, 1], cx=K[0, 2], cy=K[1, 2], width=size,
                                height=size, R=R, t=t)
    (cap / "keyframes.json").write_text(json.dumps(
        {"width": size, "height": size, "fps": None, "source_kind": "images", "frames": frames}))
    save_cameras(cap / "cameras.json", cam_dict)
    save_obj(cap / "head.obj", hv, model.faces)
    save_scalp(cap / "scalp.npz", fitted_scalp(hv, model.vertices))
    return cap


@pytest.mark.parametrize("standoff_m, expect", [(0.02, None), (0.0, "looks shaved"),
                                                (None, "looks bald")])
def test_no_groom_for_a_bald_or_shaved_head(tmp_path, standoff_m, expect):
    """The coarse stage measures the hair on the scalp (engine.coarse.data.hair_presence) and
    stops with a message naming what it found instead of inventing a groom; 2 cm of hair
    passes."""
    from engine.coarse.data import hair_presence, load_capture_data
    from engine.coarse.stage import STAGE, run_coarse
    from engine.head.model import load_head_mesh
    from engine.head.scalp import load_scalp
    from engine.pipeline import Artifact, CancelToken, Project, StageContext, config_from_dict

    cap = _head_capture(tmp_path, standoff_m)
    hv, hf = load_head_mesh(cap / "head.obj")
    data, _ = load_capture_data(cap, cap, cap, cap / "cameras.json", hv, hf, 96, 1.5)
    found = hair_presence(data, hv, hf, load_scalp(cap / "scalp.npz"))
    if standoff_m is None:
        assert found["share_pct"] == 0.0
    else:
        assert found["share_pct"] > 70.0, found
        assert (found["extent_mm"] < 1.5) if standoff_m == 0 else (found["extent_mm"] > 8.0), found
    project = Project.open_or_create(tmp_path / "proj")
    out = tmp_path / "out"
    out.mkdir()
    ctx = StageContext(project, "coarse", out, CancelToken(), "cpu")
    cfg = config_from_dict(CoarseConfig, {**TINY, "iterations": 2, "preview_every": 1,
                                          "image_size": 96})
    gen = run_coarse(cfg, {k: Artifact(k, "x", cap, {}) for k in STAGE.inputs}, ctx)
    if expect is None:
        summary = None
        try:
            while True:
                next(gen)
        except StopIteration as stop:
            summary = stop.value
        assert summary["hair_extent_mm"] > 8.0 and summary["scalp_hair_pct"] > 70.0
    else:
        with pytest.raises(InputError, match=expect) as err:
            for _ in gen:
                pass
        assert "no groom" in str(err.value) and "Review page" in str(err.value)
        assert not (out / "fields.safetensors").exists()
