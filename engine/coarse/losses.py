"""Loss terms of the coarse stage (Neural Haircut, Sklyarova et al. 2023, Sec. 3.1, eq. 2-4).

``L_coarse = L_color + lambda_mask L_mask + lambda_reg L_reg + lambda_head L_head + lambda_dir L_dir``
(+ optional small regularisers documented in :mod:`engine.coarse.train`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def project_direction_angle(x: torch.Tensor, direction: torch.Tensor, K: torch.Tensor,
                            R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Image-plane angle of the projection of the 3D line through ``x`` with ``direction``.

    The projection of a 3D line is a 2D line; its direction at the image of ``x`` is the exact
    derivative of the pinhole projection ``pi(x + e * direction)`` at ``e = 0``:
    ``du = fx (dX Z - X dZ) / Z^2``, ``dv = fy (dY Z - Y dZ) / Z^2`` with ``(X, Y, Z) = R x + t`` and
    ``(dX, dY, dZ) = R direction``. (Equivalent to projecting the line's Pluecker coordinates.)

    Args:
        x: (N, 3) points in the head frame, metres. direction: (N, 3) directions (any length).
        K: (N, 3, 3) intrinsics, R: (N, 3, 3), t: (N, 3) world-to-camera (OpenCV) per point.
    Returns:
        (N,) float angle in radians in [0, pi), counter-clockwise from the image +x axis as seen
        on screen (image y points down, so the angle is ``atan2(-dv, du)``) -- the convention of
        the orientation maps.
    """
    pc = (R @ x[..., None])[..., 0] + t
    dc = (R @ direction[..., None])[..., 0]
    X, Y, Z = pc.unbind(-1)
    dX, dY, dZ = dc.unbind(-1)
    Z = torch.where(Z.abs() < 1e-9, torch.full_like(Z, 1e-9), Z)
    du = K[:, 0, 0] * (dX * Z - X * dZ) / (Z * Z)
    dv = K[:, 1, 1] * (dY * Z - Y * dZ) / (Z * Z)
    return torch.remainder(torch.atan2(-dv, du), math.pi)


def angle_difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Unsigned difference of undirected angles, ``min(|a - b|, |a - b +- pi|)`` in [0, pi/2]."""
    d = torch.remainder(a - b, math.pi)
    return torch.minimum(d, math.pi - d)


def direction_loss(pred_angle: torch.Tensor, target_angle: torch.Tensor,
                   weight: torch.Tensor) -> torch.Tensor:
    """Confidence-weighted orientation loss (Neural Haircut eq. 4):
    ``sum_v w_v min(|a_v - a_hat_v|, |a_v - a_hat_v +- pi|) / sum_v w_v`` where
    ``w_v = m_hair(v) / Var^2[a_v]`` is supplied as ``weight`` (N,). Radians."""
    return (weight * angle_difference(pred_angle, target_angle)).sum() / weight.sum().clamp_min(1e-6)


def mask_bce(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
             ) -> torch.Tensor:
    """Binary cross-entropy of rendered opacity ``pred`` (N,) vs mask ``target`` (N,) in [0, 1]."""
    p = pred.clamp(1e-4, 1 - 1e-4)
    loss = F.binary_cross_entropy(p, target, reduction="none")
    if weight is None:
        return loss.mean()
    return (weight * loss).sum() / weight.sum().clamp_min(1e-6)


def eikonal(grad: torch.Tensor) -> torch.Tensor:
    """Eikonal regulariser (Gropp et al. 2020): mean of ``(|grad f| - 1)^2`` over (..., 3)."""
    return (grad.norm(dim=-1) - 1.0).pow(2).mean()


def head_loss(sdf_bust: torch.Tensor, grad_bust: torch.Tensor, normals: torch.Tensor,
              normal_weight: float = 0.1) -> torch.Tensor:
    """f_bust follows the fitted head mesh: ``|f_bust(p)| + w (1 - <n(p), grad f_bust / |.|>)`` on
    points ``p`` sampled on the mesh with unit outward normals ``n(p)`` (N, 3)."""
    cos = (F.normalize(grad_bust, dim=-1, eps=1e-8) * normals).sum(-1)
    return sdf_bust.abs().mean() + normal_weight * (1.0 - cos).mean()
