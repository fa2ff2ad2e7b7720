"""Soft hair rasteriser: binned forward against the brute-force reference, blending by hand,
gradcheck, empty images and bad inputs."""

from __future__ import annotations

import pytest
import torch

from engine.errors import InputError
from engine.strands import raster
from engine.strands.raster import (
    Fragments,
    RasterSettings,
    blend,
    rasterize_strands,
    rasterize_strands_reference,
)


def random_strands(S, P, H, W, seed, dtype=torch.float32, step=3.0, margin=4.0):
    """Smooth-ish random walks in pixels (some leave the image), depths in [0.4, 0.6]."""
    g = torch.Generator().manual_seed(seed)
    root = torch.rand(S, 1, 2, generator=g, dtype=torch.float64) * torch.tensor(
        [W + 2 * margin, H + 2 * margin], dtype=torch.float64) - margin
    heading = torch.rand(S, 1, generator=g, dtype=torch.float64) * 6.283
    turn = torch.randn(S, P - 1, generator=g, dtype=torch.float64).mul(0.4).cumsum(1) + heading
    steps = torch.stack([turn.cos(), turn.sin()], -1) * step
    xy = torch.cat([root, root + steps.cumsum(1)], 1)
    z = 0.4 + 0.2 * torch.rand(S, P, 1, generator=g, dtype=torch.float64)
    return torch.cat([xy, z], -1).to(dtype)


def assert_same_fragments(f: Fragments, r: Fragments, atol=1e-5):
    assert f.seg.shape == r.seg.shape
    assert torch.equal(f.seg, r.seg)
    torch.testing.assert_close(f.coverage, r.coverage, atol=atol, rtol=1e-4)
    torch.testing.assert_close(f.depth, r.depth, atol=atol, rtol=1e-5)
    torch.testing.assert_close(f.t, r.t, atol=atol, rtol=1e-4)


CASES = {
    # name: (S, P, H, W, K, sigma, bin_size, width kind, occluder)
    "several": (8, 7, 21, 27, 16, 0.5, 8, "scalar", False),
    "k_small": (14, 9, 24, 20, 3, 0.5, 16, "strand", False),
    "per_point": (10, 8, 19, 23, 4, 0.7, 5, "point", False),
    "occluder": (10, 8, 22, 22, 5, 0.4, 8, "point", True),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_binned_forward_matches_reference(name, dtype, monkeypatch):
    S, P, H, W, K, sigma, bin_size, kind, with_occ = CASES[name]
    v = random_strands(S, P, H, W, seed=list(CASES).index(name) + 100, dtype=dtype)
    g = torch.Generator().manual_seed(7)
    hw = {"scalar": 1.3,
          "strand": (0.5 + 2 * torch.rand(S, generator=g)).to(dtype),
          "point": (0.3 + 2 * torch.rand(S, P, generator=g)).to(dtype)}[kind]
    occ = None
    if with_occ:
        occ = torch.full((H, W), float("inf"), dtype=dtype)
        occ[:, : W // 2] = 0.5  # left half: an opaque surface at 0.5 hides the farther strands
    st = RasterSettings(H, W, faces_per_pixel=K, sigma=sigma, bin_size=bin_size)
    ref = rasterize_strands_reference(v, hw, st, occ)
    n_cand = (ref.seg >= 0).sum(-1)
    assert n_cand.sum() > 50, "the case must actually cover pixels"
    if K < 16:
        assert int(n_cand.max()) == K, "the case must have more overlapping segments than K"
    # One chunk of tiles with one slab of segments each; then many small chunks and slabs of 3
    # segments (front-to-back merging with early termination of full tiles).
    for chunk, slab in ((None, 64), (300, 3)):
        monkeypatch.setattr(raster, "SLAB_SEGMENTS", slab)
        out = rasterize_strands(v, hw, st, occ, chunk_pairs=chunk)
        assert out.coverage.dtype == dtype
        assert_same_fragments(out, ref)
    # Front to back, empty slots last.
    d = torch.where(ref.seg >= 0, ref.depth, torch.inf)
    assert bool((d[..., 1:] >= d[..., :-1]).all())
    if occ is not None:
        hidden = (ref.seg >= 0) & (ref.depth >= 0.5)
        assert not bool(hidden[:, : W // 2].any())
        assert bool(((ref.seg >= 0) & (ref.depth > 0.5))[:, W // 2:].any())


def test_crossing_strands_nearer_first():
    # Two straight strands crossing at pixel (10, 10): the nearer one (z = 0.4) is first there.
    H = W = 20
    v = torch.tensor([[[0.0, 10.5, 0.5], [20.0, 10.5, 0.5]],
                      [[10.5, 0.0, 0.4], [10.5, 20.0, 0.4]]])
    st = RasterSettings(H, W, faces_per_pixel=4, sigma=0.5, bin_size=8)
    f = rasterize_strands(v, 1.5, st)
    assert f.seg[10, 10].tolist() == [1, 0, -1, -1]
    assert f.depth[10, 10, 0].item() == pytest.approx(0.4)
    assert f.coverage[10, 10, 0].item() == pytest.approx(torch.sigmoid(torch.tensor(1.5 / 0.5)).item(), abs=1e-5)
    assert f.t[10, 3, 0].item() == pytest.approx(3.5 / 20.0, abs=1e-6)
    # Far from both strands: nothing.
    assert f.seg[2, 2].tolist() == [-1] * 4
    assert_same_fragments(f, rasterize_strands_reference(v, 1.5, st))


def test_blend_by_hand():
    # Two semi-transparent layers on one pixel.
    frag = Fragments(seg=torch.tensor([[[0, 1, -1]]]), coverage=torch.tensor([[[0.5, 0.5, 0.0]]]),
                     depth=torch.tensor([[[0.4, 0.5, -1.0]]]), t=torch.zeros(1, 1, 3))
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    img, alpha = blend(frag, feats, background=torch.tensor([0.2, 0.4]))
    assert img.shape == (2, 1, 1) and alpha.shape == (1, 1)
    # w = [0.5, 0.25]; rest 0.25 of background.
    torch.testing.assert_close(img[:, 0, 0], torch.tensor([0.5 + 0.25 * 0.2, 0.25 + 0.25 * 0.4]))
    assert alpha.item() == pytest.approx(0.75)

    # Two opaque strands over a 1-pixel image: the front colour wins, whatever the order.
    for z0, z1, front in ((0.4, 0.6, 0), (0.6, 0.4, 1)):
        v = torch.tensor([[[-5.0, 0.5, z0], [5.0, 0.5, z0]], [[0.5, -5.0, z1], [0.5, 5.0, z1]]])
        f = rasterize_strands(v, 20.0, RasterSettings(1, 1, faces_per_pixel=4, sigma=0.5))
        colours = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        img, alpha = blend(f, colours, background=0.5)
        torch.testing.assert_close(img[:, 0, 0], colours[front], atol=1e-6, rtol=0)
        assert alpha.item() == pytest.approx(1.0, abs=1e-6)


def test_blend_matches_the_formula_with_gradients():
    g = torch.Generator().manual_seed(9)
    H, W, K, N, C = 3, 4, 3, 5, 2
    seg = torch.randint(-1, N, (H, W, K), generator=g)
    cov = torch.rand(H, W, K, generator=g, dtype=torch.float64) * (seg >= 0)
    feats = torch.rand(N, C, generator=g, dtype=torch.float64)
    bg = torch.rand(C, H, W, generator=g, dtype=torch.float64)
    results = []
    for plain in (False, True):
        c = cov.clone().requires_grad_(True)
        f = feats.clone().requires_grad_(True)
        b = bg.clone().requires_grad_(True)
        if plain:  # the docstring's formula, one pixel and one layer at a time
            img = torch.zeros(C, H, W, dtype=torch.float64)
            alpha = torch.zeros(H, W, dtype=torch.float64)
            for i in range(H):
                for j in range(W):
                    trans, acc = 1.0, 0.0
                    for k in range(K):
                        if seg[i, j, k] >= 0:
                            wk = c[i, j, k] * trans
                            img[:, i, j] = img[:, i, j] + wk * f[seg[i, j, k]]
                            acc = acc + wk
                            trans = trans * (1 - c[i, j, k])
                    img[:, i, j] = img[:, i, j] + (1 - acc) * b[:, i, j]
                    alpha[i, j] = 1 - trans
        else:
            img, alpha = blend(Fragments(seg, c, torch.zeros_like(c), torch.zeros_like(c)), f, b)
        (img * torch.arange(C * H * W, dtype=torch.float64).reshape(C, H, W)).sum().backward()
        results.append((img, alpha, c.grad, f.grad, b.grad))
    for mine, ref in zip(*results):
        torch.testing.assert_close(mine, ref)


def test_gradcheck_through_raster_and_blend():
    H, W = 9, 10
    v = random_strands(3, 4, H, W, seed=3, dtype=torch.float64, step=2.5, margin=0.0)
    hw = (0.8 + torch.rand(3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    feats = torch.rand(3 * 3, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    st = RasterSettings(H, W, faces_per_pixel=3, sigma=0.6, bin_size=4)
    vv = v.clone().requires_grad_(True)
    ff = feats.clone().requires_grad_(True)
    hh = hw.clone().requires_grad_(True)

    def fn(verts, features, half_width):
        frag = rasterize_strands(verts, half_width, st)
        img, alpha = blend(frag, features, background=0.25)
        return img, alpha, frag.depth, frag.t

    # Selection must stay constant under the finite-difference steps (no ties at the boundary).
    base = rasterize_strands(v, hw, st)
    assert (base.seg >= 0).sum() > 20
    for dv in (1e-6, -1e-6):
        assert torch.equal(rasterize_strands(v + dv, hw, st).seg, base.seg)
    assert torch.autograd.gradcheck(fn, (vv, ff, hh), eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)
    img, alpha, _, _ = fn(vv, ff, hh)
    (img.sum() + alpha.sum()).backward()
    assert vv.grad.abs().sum() > 0 and ff.grad.abs().sum() > 0 and hh.grad.abs().sum() > 0


@pytest.mark.parametrize("width", ["float", "scalar", "strand", "point"])
def test_gradients_match_reference(width):
    H, W = 16, 18
    S, P = 8, 6
    v = random_strands(S, P, H, W, seed=11, dtype=torch.float64)
    feats = torch.rand(S * (P - 1), 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    g = torch.Generator().manual_seed(5)
    hw0 = {"float": 1.2, "scalar": torch.tensor(1.2, dtype=torch.float64),
           "strand": 0.8 + torch.rand(S, generator=g, dtype=torch.float64),
           "point": 0.8 + torch.rand(S, P, generator=g, dtype=torch.float64)}[width]
    st = RasterSettings(H, W, faces_per_pixel=4, sigma=0.5, bin_size=8)
    grads = []
    for fn in (rasterize_strands, rasterize_strands_reference):
        vv = v.clone().requires_grad_(True)
        ff = feats.clone().requires_grad_(True)
        hw = hw0.clone().requires_grad_(True) if isinstance(hw0, torch.Tensor) else hw0
        frag = fn(vv, hw, st)
        img, alpha = blend(frag, ff, torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64))
        (img.square().sum() + alpha.sum() + (frag.depth * frag.coverage).sum() + frag.t.sum()).backward()
        grads.append((vv.grad, ff.grad, hw.grad if isinstance(hw, torch.Tensor) else torch.zeros(())))
    assert grads[0][0].abs().sum() > 0
    if width != "float":
        assert grads[0][2].abs().sum() > 0
    for mine, ref in zip(grads[0], grads[1]):
        torch.testing.assert_close(mine, ref, atol=1e-9, rtol=1e-7)


def test_image_loss_recovers_a_shift():
    # Gradient descent on an L1 image loss moves rendered strands onto a shifted copy of
    # themselves: the rasteriser's gradients point the right way, not just exist.
    H = W = 32
    v = random_strands(12, 10, H, W, seed=5, step=2.5)
    feats = torch.rand(12 * 9, 3, generator=torch.Generator().manual_seed(1))
    st = RasterSettings(H, W, faces_per_pixel=8, sigma=0.5, bin_size=8)
    true = torch.tensor([0.8, -0.6])

    def render(off):
        moved = torch.cat([v[..., :2] + off, v[..., 2:]], -1)
        return blend(rasterize_strands(moved, 1.5, st), feats)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: thread hand-offs cost more than they save
    try:
        with torch.no_grad():
            target, target_alpha = render(true)
        off = torch.zeros(2, requires_grad=True)
        opt = torch.optim.Adam([off], lr=0.1)
        for _ in range(60):
            img, alpha = render(off)
            loss = (img - target).abs().mean() + (alpha - target_alpha).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    assert float((off.detach() - true).abs().max()) < 0.1


def test_empty_image():
    H, W = 12, 14
    st = RasterSettings(H, W, faces_per_pixel=4)
    v = random_strands(5, 6, H, W, seed=0)
    v[..., 0] += 1000.0  # all off-screen
    f = rasterize_strands(v, 1.5, st)
    assert f.seg.shape == (H, W, 4) and bool((f.seg == -1).all())
    assert float(f.coverage.abs().sum()) == 0.0
    img, alpha = blend(f, torch.ones(5 * 5, 3), background=0.3)
    assert float(alpha.abs().max()) == 0.0
    torch.testing.assert_close(img, torch.full((3, H, W), 0.3))
    # Behind the camera, or behind an occluder, is empty too.
    v2 = random_strands(5, 6, H, W, seed=0)
    assert bool((rasterize_strands(v2, 1.5, st).seg >= 0).any())
    behind = v2.clone()
    behind[..., 2] = -behind[..., 2]
    assert bool((rasterize_strands(behind, 1.5, st).seg == -1).all())
    occ = torch.full((H, W), 0.3)
    assert bool((rasterize_strands(v2, 1.5, st, occ).seg == -1).all())
    # No strands at all.
    f0 = rasterize_strands(torch.zeros(0, 4, 3), 1.0, st)
    assert bool((f0.seg == -1).all())


@pytest.mark.parametrize("call", [
    lambda st: rasterize_strands(torch.zeros(3, 5, 2), 1.0, st),            # no depth
    lambda st: rasterize_strands(torch.zeros(3, 1, 3), 1.0, st),            # one point per strand
    lambda st: rasterize_strands(torch.zeros(5, 3), 1.0, st),               # not (S, P, 3)
    lambda st: rasterize_strands(torch.zeros(3, 5, 3, dtype=torch.int64), 1.0, st),
    lambda st: rasterize_strands(torch.zeros(3, 5, 3), torch.ones(4), st),  # width shape
    lambda st: rasterize_strands(torch.zeros(3, 5, 3), torch.ones(3, 4), st),
    lambda st: rasterize_strands(torch.zeros(3, 5, 3), -1.0, st),           # negative width
    lambda st: rasterize_strands(torch.zeros(3, 5, 3), 1.0, st, torch.ones(8, 7)),  # occluder shape
    lambda st: rasterize_strands(torch.zeros(3, 5, 3), 1.0, RasterSettings(0, 8)),
    lambda st: rasterize_strands(torch.zeros(3, 5, 3), 1.0, RasterSettings(8, 8, sigma=0.0)),
    lambda st: blend(rasterize_strands(torch.zeros(3, 5, 3), 1.0, st), torch.ones(12)),
    lambda st: blend(rasterize_strands(torch.zeros(3, 5, 3), 1.0, st), torch.ones(12, 3),
                     background=torch.ones(2)),
])
def test_bad_inputs_raise(call):
    with pytest.raises(InputError):
        call(RasterSettings(8, 8, faces_per_pixel=2))


def test_blend_rejects_too_few_features():
    v = torch.tensor([[[0.0, 4.0, 0.5], [8.0, 4.0, 0.5], [8.0, 8.0, 0.5]]])
    f = rasterize_strands(v, 1.0, RasterSettings(8, 8, faces_per_pixel=2))
    assert int(f.seg.max()) == 1
    with pytest.raises(InputError):
        blend(f, torch.ones(1, 3))


def test_benchmark_script_runs_small():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_raster.py"
    spec = importlib.util.spec_from_file_location("bench_raster", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    verts, hw = mod.hair_like_strands(50, 20, 64, seed=0)
    assert verts.shape == (50, 20, 3) and hw.shape == (50,)
    assert float(verts[..., 2].min()) >= 0.4 - 1e-6 and float(verts[..., 2].max()) <= 0.6 + 1e-6
    threads = torch.get_num_threads()
    try:
        out = mod.run(mod.argparse.Namespace(
            strands=50, points=20, size=64, device="cpu", threads=1, repeat=1, faces=4,
            bin_size=16, channels=3, chunk_pairs=None))
    finally:
        torch.set_num_threads(threads)
    assert out["forward"]["runs"] == 1 and out["forward"]["median_s"] > 0
    assert out["forward_backward"]["grad_finite"] is True
    assert 0 < out["coverage_stats"]["hair_pixels_share"] < 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")
def test_cuda_matches_cpu_reference():
    H, W = 40, 36
    v = random_strands(30, 10, H, W, seed=21)
    hw = 0.4 + 2 * torch.rand(30, 10, generator=torch.Generator().manual_seed(3))
    occ = torch.full((H, W), float("inf"))
    occ[H // 2:] = 0.5
    st = RasterSettings(H, W, faces_per_pixel=5, sigma=0.5, bin_size=8)
    ref = rasterize_strands_reference(v, hw, st, occ)
    vv = v.detach().clone().cuda().requires_grad_(True)
    out = rasterize_strands(vv, hw.cuda(), st, occ.cuda())
    assert out.seg.is_cuda
    assert_same_fragments(Fragments(*(x.cpu() for x in (out.seg, out.coverage, out.depth, out.t))), ref)
    feats = torch.rand(30 * 9, 3)
    img, _ = blend(out, feats.cuda())
    img.sum().backward()
    vr = v.detach().clone().requires_grad_(True)
    img_r, _ = blend(rasterize_strands_reference(vr, hw, st, occ), feats)
    img_r.sum().backward()
    torch.testing.assert_close(img.cpu(), img_r, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(vv.grad.cpu(), vr.grad, atol=1e-4, rtol=1e-3)
