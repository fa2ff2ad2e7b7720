"""Gradient checks (``torch.autograd.gradcheck``, float64, central differences) of the
differentiable pieces the optimisations rely on: the NeuS opacity, the coarse volume renderer
through the real tri-plane fields, and the strand geometry losses. A wrong backward (a detached
term, a sign, a missing chain-rule factor) fails these even when the losses still go down."""

from __future__ import annotations

import torch
from torch.autograd import gradcheck

from engine.coarse.fields import CoarseFields, FieldSpec
from engine.coarse.render import neus_alpha, render_rays
from engine.strands.geometry import chamfer_loss, orientation_loss, volume_loss


def test_neus_alpha_gradients():
    g = torch.Generator().manual_seed(0)
    sdf = (torch.rand(6, 5, generator=g, dtype=torch.float64) - 0.5) * 0.2
    cos = -torch.rand(6, 5, generator=g, dtype=torch.float64) * 0.9 - 0.1
    dists = torch.rand(6, 5, generator=g, dtype=torch.float64) * 0.05 + 0.01
    inv_s = torch.tensor(20.0, dtype=torch.float64)
    args = [t.requires_grad_(True) for t in (sdf, cos, dists, inv_s)]
    alpha = neus_alpha(*args)
    assert bool(((alpha > 0) & (alpha < 1)).all())  # away from the clamp
    assert gradcheck(neus_alpha, args, eps=1e-6, atol=1e-6)


def test_coarse_renderer_gradients_through_the_fields():
    """Mask, colour and depth of a few rays, differentiated with respect to the coarse tri-plane
    features (the parameters the coarse stage optimises), agree with finite differences."""
    torch.manual_seed(0)
    fields = CoarseFields(FieldSpec(resolutions=(4,), channels=2, hidden=8, grad_step=0.05)
                          ).double()
    with torch.no_grad():
        fields.variance.fill_(0.3)
    name, plane = next((n, p) for n, p in fields.named_parameters() if p.dim() == 4)
    o = torch.tensor([[0.0, 0.0, -2.0], [0.2, 0.1, -2.0], [-0.3, 0.2, -2.0]], dtype=torch.float64)
    d = torch.tensor([[0.0, 0.0, 1.0]] * 3, dtype=torch.float64)
    near = torch.full((3,), 1.0, dtype=torch.float64)
    far = torch.full((3,), 3.0, dtype=torch.float64)

    class Renderer(torch.nn.Module):
        """The fields as a module whose forward is the renderer, for functional_call."""

        def __init__(self):
            super().__init__()
            self.fields = fields

        def forward(self):
            out = render_rays(self.fields, o, d, near, far, n_samples=12, n_importance=0,
                              jitter=False)
            return torch.cat([out["mask_hair"], out["mask_bust"], out["color"].reshape(-1),
                              out["depth_hair"]])

    renderer = Renderer()

    def render(p):
        return torch.func.functional_call(renderer, {f"fields.{name}": p}, ())

    p0 = plane.detach().clone().requires_grad_(True)
    value = render(p0)
    assert bool((value[:3] > 1e-3).all())  # the rays see hair
    (grad,) = torch.autograd.grad(value.sum(), p0)
    assert float(grad.abs().max()) > 1e-4  # the features matter: the check is not of zeros
    assert gradcheck(render, (p0,), eps=1e-6, atol=1e-5, rtol=1e-3)


def test_strand_losses_gradients():
    g = torch.Generator().manual_seed(1)
    pts = torch.cumsum(torch.rand(4, 6, 3, generator=g, dtype=torch.float64) * 0.01, 1)
    pts.requires_grad_(True)
    # a fixed orientation tensor field M = t t^T sampled at the points, hair surface nearby
    t = torch.nn.functional.normalize(torch.rand(4, 6, 3, generator=g, dtype=torch.float64), dim=-1)
    M = t[..., :, None] * t[..., None, :]
    f_hair = (torch.rand(4, 6, generator=g, dtype=torch.float64) - 0.5) * 0.002
    look = {"M": M, "f_hair": f_hair, "f_bust": torch.full((4, 6), 0.01, dtype=torch.float64)}
    assert gradcheck(lambda p: orientation_loss(p, look, 0.005), (pts,), eps=1e-7, atol=1e-6)
    # the signed loss: its sign and weight are taken without gradient (they depend on the
    # points only through the growth side), so its gradient is the segment directions' alone
    centre = torch.tensor([0.0, 0.1, 0.0], dtype=torch.float64)
    (grad,) = torch.autograd.grad(orientation_loss(pts, look, 0.005, centre), pts)
    assert torch.isfinite(grad).all() and float(grad.abs().max()) > 1e-3

    def vol(f):
        return volume_loss({"f_hair": f}, 1)

    f = (torch.rand(4, 6, generator=g, dtype=torch.float64) - 0.3).requires_grad_(True)
    assert gradcheck(vol, (f,), eps=1e-7, atol=1e-6)
    surface = torch.rand(10, 3, generator=g, dtype=torch.float64) * 0.05
    flat = pts.detach().reshape(-1, 3).clone().requires_grad_(True)
    assert gradcheck(lambda p: chamfer_loss(surface, p), (flat,), eps=1e-7, atol=1e-6)
