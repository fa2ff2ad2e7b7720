"""CUDA and CPU give the same coarse-stage results on a small case (runs only where CUDA exists)."""

from __future__ import annotations

import pytest
import torch

from engine.coarse.render import pixel_rays, ray_box, render_rays
from engine.coarse.train import CoarseConfig, CoarseTrainer
from engine.synthetic.analytic_scene import make_scene

pytestmark = pytest.mark.gpu

CFG = dict(iterations=20, rays_per_batch=128, n_samples=16, n_importance=8, image_size=32,
           plane_resolutions=(8, 32), plane_channels=4, hidden=32, mesh_resolution=32)


@pytest.fixture(autouse=True)
def _need_cuda():
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available")


def test_rendering_matches_between_cpu_and_cuda():
    data, _ = make_scene(4, 32)
    torch.manual_seed(0)
    cpu = CoarseTrainer(data, CoarseConfig(**CFG), "cpu")
    for _ in range(5):
        cpu.step()  # non-trivial fields
    gpu_fields = type(cpu.fields)(cpu.fields.spec)
    gpu_fields.load_state_dict(cpu.fields.state_dict())
    gpu_fields = gpu_fields.cuda()
    v = torch.zeros(200, dtype=torch.long)
    px, py = torch.rand(200) * 31, torch.rand(200) * 31
    o, d = pixel_rays(data.cams, v, px, py, data.centre, data.scale)
    near, far, hit, _ = ray_box(o, d)
    o, d, near, far = o[hit], d[hit], near[hit], far[hit]
    with torch.no_grad():
        a = render_rays(cpu.fields, o, d, near, far, 32, 16, jitter=False)
        b = render_rays(gpu_fields, o.cuda(), d.cuda(), near.cuda(), far.cuda(), 32, 16,
                        jitter=False)
    for k in ("color", "mask_hair", "mask_bust"):
        assert torch.allclose(a[k], b[k].cpu(), atol=2e-3), k


def test_short_training_matches_between_cpu_and_cuda():
    data, _ = make_scene(4, 32)
    torch.manual_seed(0)
    cpu = CoarseTrainer(data, CoarseConfig(**CFG), "cpu")
    torch.manual_seed(0)
    gpu = CoarseTrainer(data, CoarseConfig(**CFG), "cuda")
    lc = [cpu.step()["total"] for _ in range(CFG["iterations"])]
    lg = [gpu.step()["total"] for _ in range(CFG["iterations"])]
    assert abs(lc[0] - lg[0]) < 1e-3 * max(1.0, abs(lc[0]))
    assert abs(lc[-1] - lg[-1]) < 0.05 * abs(lc[-1]) + 1e-3
    x = torch.rand(300, 3) * 2 - 1
    with torch.no_grad():
        sc = cpu.fields.sdf(x)
        sg = gpu.fields.sdf(x.cuda()).cpu()
    assert (sc - sg).abs().max() < 0.02
