"""The fine strand stage (engine.strands): texture, coarse-volume lookup, geometry losses,
rendering path and a short optimisation on an analytic scene (no earlier stages needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.strands import geometry as G
from engine.strands.stage import (PRESETS, STAGE, StrandScene, StrandsConfig, StrandTrainer,
                                  train_and_export)
from engine.strands.texture import GeometryTexture

CENTRE = torch.tensor([0.0, 0.03, 0.0])


class ShellQuery:
    """Analytic stand-in for engine.coarse.export.CoarseFieldQuery: hair = ball of radius 0.14 m,
    bust = ball of radius 0.09 m, orientation = +Y everywhere (metres, head frame)."""

    device = torch.device("cpu")
    centre = CENTRE
    scale = 0.25

    def sdf_hair(self, x):
        return (x - CENTRE).norm(dim=-1) - 0.14

    def sdf_bust(self, x):
        return (x - CENTRE).norm(dim=-1) - 0.09

    def orientation(self, x):
        return torch.tensor([0.0, 1.0, 0.0]).expand(len(x), 3)


@pytest.fixture(scope="module")
def volume():
    return G.HairVolume(ShellQuery(), resolution=48)


def test_texture_starts_at_init_latent_and_samples_texel_centres():
    init = torch.linspace(-1, 1, 8)
    tex = GeometryTexture(res=16, latent=8, appearance=4, width=8, init_latent=init)
    T = tex()
    assert T.shape == (12, 16, 16)
    assert torch.allclose(T[:8, 5, 7], init)  # zero-initialised output layer
    assert torch.allclose(T[8:], torch.zeros(4, 16, 16))
    probe = torch.arange(12 * 16 * 16, dtype=torch.float32).view(12, 16, 16)
    uv = torch.tensor([[(7 + 0.5) / 16, (5 + 0.5) / 16]])  # u = column 7, v = row 5
    assert torch.allclose(GeometryTexture.sample(probe, uv)[0], probe[:, 5, 7])
    # gradient reaches the U-Net through a lookup
    GeometryTexture.sample(tex(), uv).sum().backward()
    assert tex.net.out.weight.grad.abs().sum() > 0


def test_volume_lookup_matches_the_fields(volume):
    x = CENTRE + torch.tensor([[0.05, 0.03, 0.0], [0.12, 0.0, 0.0], [0.0, 0.0, 0.2]])
    look = volume.lookup(x)
    want = ShellQuery().sdf_hair(x)
    assert torch.allclose(look["f_hair"], want, atol=0.006)  # 48^3 grid over a 0.5 m box
    assert torch.allclose(look["f_bust"], ShellQuery().sdf_bust(x), atol=0.006)
    b = torch.tensor([0.0, 1.0, 0.0])
    assert torch.allclose(torch.einsum("i,nij,j->n", b, look["M"], b), torch.ones(3), atol=1e-5)
    # outside the box the distance to the box is added, so L_vol pulls points back in
    far = CENTRE + torch.tensor([[0.0, 0.0, 0.4]])
    assert float(volume.lookup(far)["f_hair"]) > float(volume.lookup(
        CENTRE + torch.tensor([[0.0, 0.0, 0.25]]))["f_hair"]) + 0.1


def test_geometry_losses_measure_what_they_claim(volume):
    inside = CENTRE + torch.tensor([[0.10, 0.0, 0.0]]) + torch.linspace(0, 0.01, 10)[:, None] * \
        torch.tensor([0.0, 1.0, 0.0])
    outside = inside + torch.tensor([0.08, 0.0, 0.0])  # 4 cm outside the hair ball
    pts = torch.stack([inside, outside])  # (2, 10, 3), both strands along +Y
    look = volume.lookup(pts.reshape(-1, 3))
    look = {k: v.reshape(2, 10, *v.shape[1:]) for k, v in look.items()}
    assert float(G.volume_loss({k: v[:1] for k, v in look.items()}, 0)) == 0.0
    assert float(G.volume_loss({k: v[1:] for k, v in look.items()}, 0)) == pytest.approx(16.0, rel=0.2)
    # aligned with the +Y field: no orientation loss; turned to +X: loss ~1 (band 5 cm wide)
    assert float(G.orientation_loss(pts, look, 0.05)) == pytest.approx(0.0, abs=1e-3)
    turned = CENTRE + torch.tensor([0.10, 0.0, 0.0]) + torch.linspace(0, 0.01, 10)[:, None] * \
        torch.tensor([1.0, 0.0, 0.0])
    lt = volume.lookup(turned)
    lt = {k: v[None] for k, v in lt.items()}
    assert float(G.orientation_loss(turned[None], lt, 0.05)) == pytest.approx(1.0, abs=0.02)
    deep = CENTRE + torch.tensor([[0.0, 0.0, 0.05]]).expand(4, 3)  # 4 cm inside the bust
    lb = {k: v[None] for k, v in volume.lookup(deep).items()}
    assert float(G.bust_loss(lb, 0)) == pytest.approx(16.0, rel=0.2)
    # chamfer: surface points 1 cm and 2 cm from their nearest strand points
    p = torch.zeros(5, 3, requires_grad=True)
    surf = torch.tensor([[0.01, 0.0, 0.0], [0.0, 0.02, 0.0]])
    c = G.chamfer_loss(surf, p)
    assert float(c.detach()) == pytest.approx((1.0 + 4.0) / 2, rel=1e-4)
    c.backward()
    assert p.grad.abs().sum() > 0


def _tiny_trainer(diffusion=None, vae=None, **over):
    from engine.head.scalp import default_scalp
    from engine.prior.vae import StrandVAE

    torch.manual_seed(0)
    vae = vae or StrandVAE()  # untrained decoder: enough to check the machinery
    vol = G.HairVolume(ShellQuery(), resolution=32)
    u = torch.randn(3000, 3)
    surf = CENTRE + 0.14 * u / u.norm(dim=-1, keepdim=True)
    surf = surf[surf[:, 1] > 0.05]
    cfg = StrandsConfig(**{"iterations": 25, "strands_per_step": 64, "texture_res": 32,
                           "unet_width": 8, "chamfer_points": 200, "lambda_render": 0.0,
                           "lambda_prior": 0.0, "dense_strands": 300, "outside_tolerance_mm": 50,
                           **over})
    scene = StrandScene(vol, surf, default_scalp(), head=(np.zeros((3, 3), np.float32),
                                                          np.array([[0, 1, 2]], np.int32)))
    return StrandTrainer(scene, vae, diffusion, cfg)


def test_texture_start_option_zero_or_mean_latent():
    """strands.init picks the texture's starting latent: the origin, or the diffusion model's
    mean latent; 'mean' without a diffusion model is refused."""
    from engine.prior.diffusion import DiffusionConfig, TextureDiffusion

    diff = TextureDiffusion(DiffusionConfig(base=8))
    diff.lat_mean.copy_(torch.linspace(-1, 1, 64))
    for init, expect in (("zero", torch.zeros(64)), ("mean", diff.lat_mean)):
        tr = _tiny_trainer(diff, init=init)
        lat = tr.texture()[:64].detach()
        assert torch.allclose(lat, expect[:, None, None].expand_as(lat), atol=1e-6)
    with pytest.raises(ValueError, match="init 'mean'"):
        _tiny_trainer(None, init="mean")
    from engine.pipeline import ConfigError, config_from_dict

    with pytest.raises(ConfigError, match="not one of"):
        config_from_dict(StrandsConfig, {"init": "random"})


def test_optimisation_lowers_the_geometry_loss_and_writes_a_groom(tmp_path):
    from engine.io.export import load_groom

    tr = _tiny_trainer()
    first = [tr.step()["total"] for _ in range(3)]
    gen = train_and_export(tr, tmp_path)
    with pytest.raises(StopIteration) as stop:
        next(gen)  # no ctx: nothing is yielded, the generator returns its summary
    summary = stop.value.value
    last = summary["final_losses"]["total"]
    assert last < 0.5 * np.mean(first)
    g = load_groom(tmp_path / "groom.npz")
    assert g.num_strands == summary["strands"] > 0
    assert g.points_per_strand == 100 and g.root_uv is not None and g.has_head
    assert (tmp_path / "texture.safetensors").is_file() and (tmp_path / "losses.json").is_file()


def test_dense_groom_drops_strands_outside_the_volume_and_trims_the_rest():
    """The strict filter keeps exactly the roots of the unfiltered groom (same texture) whose
    points after the root all lie inside the hair volume and out of the bust; every kept strand
    is the trimmed decoded strand (no fold, uniform arc length)."""
    from engine.io.groom import resample_strands
    from engine.metrics import strand_folds
    from engine.strands.stage import MAX_IN_BUST, ROOT_SKIP
    from engine.strands.trim import trim_strands

    # the untrained test VAE decodes strands of a few mm: no minimum length here
    everything = _tiny_trainer(outside_tolerance_mm=1000.0, max_outside=1.0, min_length_mm=0.0,
                               trim=True)
    loose = everything.dense_groom(200)
    strict = _tiny_trainer(outside_tolerance_mm=10.0, max_outside=0.0, min_length_mm=0.0,
                           trim=True)
    g = strict.dense_groom(200)
    # the raw decoded strands at the same roots
    uv = strict.scene.scalp.sample_uv(200, np.random.default_rng(strict.cfg.seed + 1))
    with torch.no_grad():
        raw, _ = strict.decode(strict.texture(), uv)
    look = strict.scene.volume.lookup(raw.reshape(-1, 3))
    fh = look["f_hair"].reshape(200, -1)[:, ROOT_SKIP:]
    fb = look["f_bust"].reshape(200, -1)[:, ROOT_SKIP:]
    inside = (((fh > 0.010).float().mean(1) <= 0)
              & ((fb < -0.010).float().mean(1) <= MAX_IN_BUST)).numpy()
    assert g["trim"]["dropped_volume"] == 200 - int(inside.sum()) > 0
    trimmed, keep, _ = trim_strands(raw.numpy()[inside], min_length_m=0.0)
    assert len(g["strands"]) == len(trimmed) < len(loose["strands"])
    np.testing.assert_allclose(g["strands"], trimmed, atol=1e-6)
    np.testing.assert_allclose(g["root_uv"], uv[inside][keep], atol=1e-6)
    assert not strand_folds(g["strands"]).any()
    assert np.allclose(g["strands"], resample_strands(g["strands"], 100), atol=1e-5)  # uniform


def test_render_path_gives_gradients_to_strands_and_renderer():
    from engine.strands.raster import RasterSettings
    from engine.strands.render import NeuralRenderer, project, render_loss, render_strands

    K = torch.tensor([[100.0, 0, 31.5], [0, 100.0, 31.5], [0, 0, 1]])
    R, t = torch.eye(3), torch.tensor([0.0, 0.0, 0.5])
    pts = torch.stack([torch.stack([torch.tensor([x, y, 0.0]) for y in np.linspace(-0.1, 0.1, 12)])
                       for x in np.linspace(-0.05, 0.05, 5)]).float().requires_grad_(True)
    app = torch.randn(5, 16, requires_grad=True)
    feats, alpha = render_strands(pts, app, K, R, t, RasterSettings(64, 64), 1.0)
    assert feats.shape == (18, 64, 64) and alpha.shape == (64, 64)
    uv = project(pts.detach(), K, R, t)
    col = int(uv[2, 6, 0].round()), int(uv[2, 6, 1].round())
    a = alpha.detach()
    assert float(a[col[1], col[0]]) > 0.5 and float(a[0, 0]) == 0.0
    rgb = NeuralRenderer(16, 8)(feats, alpha)
    img = torch.rand(64, 64, 3)
    hair = torch.zeros(64, 64)
    hair[:, :32] = 1.0
    loss, parts = render_loss(rgb, alpha, img, hair, 1.0)
    loss.backward()
    assert pts.grad.abs().sum() > 0 and app.grad.abs().sum() > 0 and parts["mask"] > 0


def test_stage_is_in_the_default_graph_with_valid_presets():
    from engine.pipeline import PipelineConfig
    from engine.registry import default_stages

    stages = default_stages()
    assert [s.name for s in stages][-2:] == ["coarse", "strands"]
    assert STAGE.inputs[-1] == "coarse"
    for preset in PRESETS:
        cfg = PipelineConfig(stages, preset=preset)["strands"]
        assert cfg.render_size % 4 == 0 and cfg.texture_res % 4 == 0


def test_new_prior_weights_change_the_strands_cache_key(tmp_path, monkeypatch):
    """The strands stage's cache key holds the prior weights' content hashes: replacing
    resources/prior/*.safetensors re-runs the stage instead of reusing an old groom."""
    import engine.strands.stage
    from engine.pipeline import stage_key
    from engine.strands.stage import PRIOR_FILES, STAGE, StrandsConfig, prior_fingerprint

    (tmp_path / "prior").mkdir()
    monkeypatch.setattr(engine.strands.stage, "resources_dir", lambda: tmp_path)
    assert prior_fingerprint() == {name: "missing" for name in PRIOR_FILES}
    for name in PRIOR_FILES:
        (tmp_path / "prior" / name).write_bytes(b"weights v1")
    assert STAGE.fingerprint is prior_fingerprint
    inputs = {"coarse": "abc"}
    key1 = stage_key(STAGE, StrandsConfig(), inputs, STAGE.fingerprint(None, None))
    assert stage_key(STAGE, StrandsConfig(), inputs, STAGE.fingerprint(None, None)) == key1
    (tmp_path / "prior" / PRIOR_FILES[1]).write_bytes(b"weights v2")
    assert stage_key(STAGE, StrandsConfig(), inputs, STAGE.fingerprint(None, None)) != key1


def test_kink_and_fold_losses_see_sharp_turns_and_u_turns_not_curls():
    L = 100
    t = torch.linspace(0, 1, L, dtype=torch.float64)
    straight = torch.stack([0 * t, -0.2 * t, 0 * t], -1)
    helix = torch.stack([0.005 * torch.cos(2 * torch.pi * 10 * t), -0.2 * t,
                         0.005 * torch.sin(2 * torch.pi * 10 * t)], -1)  # a curl of 2 cm
    pin = torch.stack([0.01 * t, -0.1 + 0.1 * (2 * t - 1).abs(), 0 * t], -1)  # down, back up
    zig = straight.clone()
    zig[1::2, 0] += 0.01  # every other point 1 cm aside: turns of ~160 degrees
    cases = torch.stack([straight, helix, pin, zig])
    kink = [float(G.kink_loss(c[None])) for c in cases]
    fold = [float(G.fold_loss(c[None])) for c in cases]
    assert kink[0] == kink[1] == 0.0 and kink[3] > 0.5
    assert fold[0] == 0.0 and fold[1] < 1e-3 and fold[2] > 0.1
    x = pin[None].clone().requires_grad_(True)
    G.fold_loss(x).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_signed_orientation_loss_rejects_strands_running_back_along_the_field(monkeypatch):
    """With a growth centre L_orient signs the unsigned field towards outward-and-down: a strand
    hanging down along a vertical field costs nothing either way, the same strand growing up
    costs nothing unsigned and the most signed, and an accordion along the field (legs down
    and back up) costs nothing unsigned and about half signed. The stage's orient_sign option
    (on by default) passes the volume's centre, off gives the paper's unsigned loss."""
    L = 40
    t = torch.linspace(0, 1, L, dtype=torch.float64)
    root = torch.tensor([0.1, 0.0, 0.0], dtype=torch.float64)  # beside the centre, below it
    down = root + torch.stack([0 * t, -0.1 * t, 0 * t], -1)
    up = root + torch.stack([0 * t, 0.1 * t, 0 * t], -1)
    tri = 1 - 2 * ((4 * t) % 1 - 0.5).abs()
    accordion = root + torch.stack([0.001 * t, -0.03 * tri, 0 * t], -1)
    beta = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)  # unsigned: up or down
    M = (beta[:, None] * beta[None, :]).expand(1, L, 3, 3)
    look = {"M": M, "f_hair": torch.zeros(1, L, dtype=torch.float64),
            "f_bust": torch.ones(1, L, dtype=torch.float64)}
    centre = torch.tensor([0.0, 0.1, 0.0], dtype=torch.float64)
    unsigned = [float(G.orientation_loss(x[None], look, 0.005)) for x in (down, up, accordion)]
    signed = [float(G.orientation_loss(x[None], look, 0.005, centre)) for x in (down, up, accordion)]
    assert max(unsigned) < 0.05
    assert signed[0] < 1e-3 and signed[1] > 1.2 and 0.4 < signed[2] < 1.0
    g = G.growth_directions(root, centre)
    assert float(g[1]) < -0.5 and float(g[0]) > 0  # down and outward
    import engine.strands.stage as stage_mod

    seen = []
    real = stage_mod.orientation_loss

    def spy(points, look_, delta, growth_centre=None):
        seen.append(growth_centre)
        return real(points, look_, delta, growth_centre)

    monkeypatch.setattr(stage_mod, "orientation_loss", spy)
    tr = _tiny_trainer()
    tr.step()
    _tiny_trainer(orient_sign=False).step()
    assert torch.equal(seen[0], tr.scene.volume.centre) and seen[1] is None


def _turns_deg(p):
    d = torch.nn.functional.normalize(p[:, 1:] - p[:, :-1], dim=-1)
    return torch.rad2deg(torch.acos((d[:, 1:] * d[:, :-1]).sum(-1).clamp(-1, 1)))


def test_bounded_turn_caps_turns_keeps_root_and_length_and_passes_gradients():
    torch.manual_seed(0)
    L = 100
    t = torch.linspace(0, 1, L, dtype=torch.float64)
    helix = torch.stack([0.005 * torch.cos(2 * torch.pi * 3 * t), -0.2 * t,
                         0.005 * torch.sin(2 * torch.pi * 3 * t)], -1)  # a gentle curl
    zig = torch.stack([0 * t, -0.2 * t, 0 * t], -1)
    zig[1::2, 0] += 0.01  # turns of ~160 degrees
    walk = torch.cumsum(0.002 * torch.randn(L, 3, dtype=torch.float64), 0)  # crumpled
    x = torch.stack([helix, zig, walk]).requires_grad_(True)
    out = G.bounded_turn(x, 70.0)
    assert out.shape == x.shape
    assert torch.equal(out[:, 0], x[:, 0])
    seg_in = (x[:, 1:] - x[:, :-1]).norm(dim=-1)
    seg = (out[:, 1:] - out[:, :-1]).norm(dim=-1)
    torch.testing.assert_close(seg.sum(1), seg_in.sum(1))  # arc length kept
    assert float((seg.max(1).values - seg.min(1).values).max().detach()) < 1e-9  # uniform spacing
    assert float(_turns_deg(x[1:2].detach()).max()) > 150 and float(_turns_deg(out).max()) <= 70.0 + 1e-6
    # a strand with no turn above the cap and uniform spacing (up to the helix's) is unchanged
    torch.testing.assert_close(out[0], x[0], atol=2e-5, rtol=0)
    out.square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad[1].abs().sum() > 0


def test_max_turn_and_latent_prior_options_reach_the_decoded_strands_and_the_loss():
    """strands.max_turn_deg bounds every decoded strand (training and the dense groom);
    strands.lambda_latent adds L_latent = mean z^2 of the texture's latents, which the
    optimisation then lowers."""
    tr = _tiny_trainer(max_turn_deg=45.0, lambda_latent=1.0, lambda_vol=0.0, lambda_chm=0.0,
                       lambda_orient=0.0, lambda_bust=0.0, init="zero")
    with torch.no_grad():  # latents far from the origin
        tr.texture.net.out.bias[:tr.texture.latent] = 2.0 * torch.randn(tr.texture.latent)
    uv = tr.scene.scalp.sample_uv(50, np.random.default_rng(0))
    with torch.no_grad():
        pts, _ = tr.decode(tr.texture(), uv)
        raw = tr.vae.decode(tr.texture.sample(tr.texture(), torch.as_tensor(uv))[:, :64])
    assert float(_turns_deg(raw).max()) > 60 and float(_turns_deg(pts).max()) <= 45.0 + 1e-3
    T = tr.texture().detach()
    first = tr.step()
    assert first["latent"] == pytest.approx(float(T[:tr.texture.latent].square().mean()), rel=1e-4)
    for _ in range(15):
        last = tr.step()
    assert last["latent"] < 0.9 * first["latent"]
    assert "latent" not in _tiny_trainer().step()


def test_dense_groom_cuts_what_the_views_saw_off_the_hair_masks():
    """strands.cut_outside_masks wires the SilhouetteGuard into the final groom: with a front
    camera whose hair mask is empty every strand is cut near its root; with a full hair mask
    the groom is the one the option-off run gives. The shipped VAE decodes the zero latent to
    a strand of about 5 cm (the untrained one to a few mm, inside the trim's root skip)."""
    import types

    from engine.coarse.render import CameraSet
    from engine.prior.vae import load_vae
    from engine.resources import resource

    vae = load_vae(resource("prior", "strand_vae.safetensors"), "cpu")

    c = CENTRE.numpy().astype(np.float64)
    K = torch.tensor([[150.0, 0, 64], [0, 150.0, 64], [0, 0, 1]])[None]
    R = torch.diag(torch.tensor([1.0, -1.0, -1.0]))[None]
    t = torch.as_tensor(-(R[0].numpy() @ c) + np.array([0.0, 0.0, 0.6]), dtype=torch.float32)[None]
    groom = {}
    for name, hair, on in (("none", 0.0, True), ("all", 1.0, True), ("all", 1.0, False)):
        tr = _tiny_trainer(vae=vae, min_length_mm=0.0, cut_outside_masks=on,
                           cut_at_face=False, outside_tolerance_mm=1000.0, max_outside=1.0)
        tr.scene.data = types.SimpleNamespace(hair=torch.full((1, 128, 128), hair),
                                              bust=torch.zeros(1, 128, 128),
                                              cams=CameraSet(K, R, t, 128, 128),
                                              centre=torch.as_tensor(c, dtype=torch.float32))
        groom[name, on] = tr.dense_groom(200)
    off = groom["all", False]["strands"]
    np.testing.assert_allclose(groom["all", True]["strands"], off, atol=1e-6)
    cut = groom["none", True]
    assert cut["trim"]["cut_bad"] > 0.5 * len(off)
    length = lambda x: np.linalg.norm(np.diff(x, axis=1), axis=-1).sum(1)
    assert np.median(length(cut["strands"])) < 0.5 * np.median(length(off))


def test_the_strands_stage_runs_on_a_real_coarse_result(tmp_path):
    """run_strands end to end (build_scene, load_prior with the shipped weights, the dense groom,
    strand_colours) after the real coarse stage, on a tiny synthetic capture of the ICT head with
    a known groom; the cameras stage's outputs (cameras, head.obj, scalp.npz) are written as the
    real stage writes them."""
    import dataclasses
    import shutil

    from engine.coarse.stage import STAGE as COARSE
    from engine.head.model import load_head_mesh, load_head_model, save_obj
    from engine.head.scalp import default_scalp, fitted_scalp, save_scalp
    from engine.io.export import load_groom
    from engine.pipeline import PipelineConfig, Project, Stage, StageFinished, run_pipeline
    from engine.prior.synth import sample_style, synth_groom
    from engine.synthetic import HeadModel, orbit_rig, render_capture
    from engine.synthetic.render import RenderSettings

    @dataclasses.dataclass(frozen=True)
    class Nothing:
        pass

    truth = synth_groom(sample_style(np.random.default_rng(0), curl="straight"), 400,
                        scalp=default_scalp())
    cap = render_capture(tmp_path / "cap", orbit_rig(4, 48, 48, yaw_range_deg=(-60.0, 60.0)),
                         HeadModel.load(), truth.strands, truth=False,
                         settings=RenderSettings(hair_width_m=0.002))

    def copy(*names):
        def run(cfg, inputs, ctx):
            for n in names:
                (shutil.copytree if (cap / n).is_dir() else shutil.copy2)(cap / n, ctx.out_dir / n)
            yield ctx.progress(1, 1)
        return run

    def cameras(cfg, inputs, ctx):
        shutil.copy2(cap / "cameras.json", ctx.out_dir / "cameras.json")
        model = load_head_model()  # a head 4 % wider than the neutral one the capture shows
        save_obj(ctx.out_dir / "head.obj", model.vertices * [1.04, 1.0, 1.0], model.faces)
        head, _ = load_head_mesh(ctx.out_dir / "head.obj")
        save_scalp(ctx.out_dir / "scalp.npz", fitted_scalp(head, model.vertices))
        yield ctx.progress(1, 1)

    stages = [Stage("keyframes", 1, Nothing, (), copy("frames", "keyframes.json")),
              Stage("masks", 1, Nothing, ("keyframes",), copy("hair", "bust")),
              Stage("orientation", 1, Nothing, ("keyframes",), copy("orientation")),
              Stage("cameras", 1, Nothing, ("keyframes",), cameras), COARSE, STAGE]
    overrides = {"coarse": {**dict(iterations=30, rays_per_batch=96, n_samples=16,
                                   n_importance=8, image_size=48, plane_resolutions=(8, 32),
                                   plane_channels=4, hidden=32, mesh_resolution=48)},
                 "strands": {"iterations": 4, "strands_per_step": 64, "render_strands": 64,
                             "render_size": 32, "volume_resolution": 32, "surface_samples": 4000,
                             "chamfer_points": 200, "dense_strands": 300, "preview_every": 2}}
    project = Project.open_or_create(tmp_path / "project")
    config = PipelineConfig(stages, preset="preview", overrides=overrides, device="cpu")
    done = {ev.stage: ev for ev in run_pipeline(project, stages, config)
            if isinstance(ev, StageFinished)}
    out = done["strands"].path
    groom = load_groom(out / "groom.npz")
    assert 0 < len(groom.strands) <= 300 and groom.strands.shape[2] == 3
    assert groom.colors is not None and groom.colors.shape[0] == len(groom.strands)
    assert np.all((groom.colors >= 0) & (groom.colors <= 1))
    # every root sits on the fitted scalp (the strands stage grew them from scalp.npz)
    scalp = fitted_scalp(load_head_mesh(done["cameras"].path / "head.obj")[0],
                         load_head_model().vertices)
    roots = scalp.frames(groom.root_uv).positions
    assert np.abs(groom.strands[:, 0] - roots).max() < 1e-4
    neutral_roots = default_scalp().frames(groom.root_uv).positions
    assert np.median(np.abs(groom.strands[:, 0, 0] - neutral_roots[:, 0])) > 1e-3
    summary = done["strands"].summary
    assert summary and (out / "strands.json").is_file()
    # the views span yaw -60..60 deg: the back of the scalp was completed from the seen sides
    import json

    assert json.loads((out / "strands.json").read_text())["trim"]["completed"] > 0


def test_strand_colours_take_the_median_and_fill_unseen_strands_from_neighbours():
    """One view sees strands 0-1 (on the left of the image) and nothing of strand 2 (behind the
    camera's image edge): a highlight on one sample of strand 0 does not move its colour (the
    median of five), and strand 2 takes its seen neighbours' colour, not a default."""
    from types import SimpleNamespace

    from engine.coarse.render import CameraSet
    from engine.strands.stage import strand_colours

    H = W = 64
    img = torch.full((1, H, W, 3), 0.2)
    img[0, :, :, 2] = 0.6  # bluish hair everywhere
    K = torch.tensor([[[60.0, 0, 31.5], [0, 60.0, 31.5], [0, 0, 1]]])
    cams = CameraSet(K, torch.eye(3)[None], torch.zeros(1, 3), H, W)
    along = np.linspace(0.0, 1.0, 11)
    s0 = np.stack([np.full(11, -0.05), -0.05 + 0.1 * along, np.full(11, 0.5)], 1)
    s1 = s0 + np.array([0.01, 0.0, 0.0])
    s2 = s0 + np.array([1.0, 0.0, 0.0])  # projects far off the image: no view sees it
    strands = np.stack([s0, s1, s2]).astype(np.float32)
    x, y = [int(round(60 * p[0] / p[2] + 31.5)) for p in strands[0, [2]]], \
        [int(round(60 * p[1] / p[2] + 31.5)) for p in strands[0, [2]]]
    img[0, y[0], x[0]] = 1.0  # a highlight under strand 0's first sample
    data = SimpleNamespace(images=img, hair=torch.ones(1, H, W), cams=cams)
    rgb = strand_colours(strands, data, None)
    hair = np.array([0.2, 0.2, 0.6]) ** 2.2
    np.testing.assert_allclose(rgb[0], hair, atol=1e-5)
    np.testing.assert_allclose(rgb[2], hair, atol=1e-5)
