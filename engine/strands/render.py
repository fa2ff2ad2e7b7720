"""Differentiable rendering of strands for the fine stage (Neural Haircut, Sec. 3.3,
"Differentiable rendering" and Fig. 3).

Strands are projected into a training view, rasterised as camera-facing hair quads by the soft
rasteriser (:mod:`engine.strands.raster`, K nearest faces per pixel blended with sigmoid
coverage, so gradients reach several z-buffer layers), and the blended per-pixel features (a
16-d appearance descriptor per strand and the projected strand orientation as
``(cos 2 theta, sin 2 theta)``) are turned into colour by a small U-Net neural renderer. The
silhouette is the rasteriser's alpha. The fitted head mesh, rendered once per view into a depth
map, occludes the strands behind it.

``L_render = L_rgb + lambda_mask L_mask``: L1 between rendered and captured colour over the hair
mask, and the L1 silhouette error outside the hair mask (``mean(alpha (1 - mask))``). The
silhouette term is one-sided (our change): each step rasterises a few hundred to a few thousand
strands, which cannot fill the mask of a full head of hair, and the two-sided L1 of the paper
then drags every strand outward (measured: it lowered the strand F-score).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from engine.raster import rasterize_mesh
from engine.strands.raster import RasterSettings, blend, rasterize_strands
from engine.strands.texture import TextureUNet


def project(points: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor
            ) -> torch.Tensor:
    """Pinhole projection (OpenCV, pixel centres at integers).

    Args:
        points: (..., 3) metres, head frame. K (3, 3), R (3, 3), t (3,): one camera.
    Returns:
        (..., 3): x, y in pixels and camera z in metres.
    """
    c = points @ R.T + t
    z = c[..., 2:3].clamp(min=1e-4)
    xy = c[..., :2] / z * torch.stack([K[0, 0], K[1, 1]]) + torch.stack([K[0, 2], K[1, 2]])
    return torch.cat([xy, c[..., 2:3]], -1)


def head_depth_maps(vertices: np.ndarray, faces: np.ndarray, cams, height: int, width: int
                    ) -> torch.Tensor:
    """Depth of the fitted head mesh in every view: (V, height, width) float32 metres, +inf
    where the head is not seen. ``cams`` is a :class:`engine.coarse.render.CameraSet` for images
    of that size."""
    out = []
    v = torch.as_tensor(vertices, dtype=torch.float32)
    for i in range(cams.K.shape[0]):
        p = project(v, cams.K[i].cpu(), cams.R[i].cpu(), cams.t[i].cpu()).numpy()
        frag = rasterize_mesh(p[:, :2], p[:, 2], faces, height, width, cull_backfaces=False)
        out.append(torch.from_numpy(np.asarray(frag.depth, np.float32)))
    return torch.stack(out)


class NeuralRenderer(nn.Module):
    """U-Net from blended strand features (appearance + orientation + alpha) to RGB in [0, 1]."""

    def __init__(self, appearance: int = 16, width: int = 16):
        super().__init__()
        self.net = TextureUNet(appearance + 3, 3, width)

    def forward(self, features: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """features (C, H, W), alpha (H, W), H and W multiples of 4 -> rgb (3, H, W)."""
        return torch.sigmoid(self.net(torch.cat([features, alpha[None]], 0)[None])[0])


def render_strands(points: torch.Tensor, appearance: torch.Tensor, K, R, t, settings: RasterSettings,
                   half_width: float, occluder: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Rasterise strands into blended feature maps.

    Args:
        points: (S, P, 3) metres, head frame. appearance: (S, A) per-strand descriptors.
        K, R, t: the view's camera (pixel units of ``settings``' image size).
        half_width: hair-quad half width in pixels. occluder: (H, W) head depth or None.
    Returns:
        features (A + 2, H, W) (descriptor, cos 2 theta, sin 2 theta of the projected direction)
        and alpha (H, W).
    """
    S, P, _ = points.shape
    v = project(points, K, R, t)
    v = torch.cat([v[..., :2] + 0.5, v[..., 2:]], -1)  # rasteriser: pixel centres at j + 0.5
    d = v[:, 1:, :2] - v[:, :-1, :2]
    n2 = d.square().sum(-1).clamp(min=1e-8)
    orient = torch.stack([(d[..., 0] ** 2 - d[..., 1] ** 2) / n2, 2 * d[..., 0] * d[..., 1] / n2], -1)
    feats = torch.cat([appearance[:, None, :].expand(S, P - 1, -1), orient], -1)
    frags = rasterize_strands(v, half_width, settings, occluder_depth=occluder)
    img, alpha = blend(frags, feats.reshape(S * (P - 1), -1))
    return img, alpha


def render_loss(rgb: torch.Tensor, alpha: torch.Tensor, image: torch.Tensor, hair: torch.Tensor,
                lambda_mask: float) -> tuple[torch.Tensor, dict[str, float]]:
    """L_render = L_rgb + lambda_mask L_mask.

    Args:
        rgb (3, H, W), alpha (H, W): rendered. image (H, W, 3) in [0, 1], hair (H, W) mask.
    """
    m = hair
    l_rgb = ((rgb - image.permute(2, 0, 1)).abs().mean(0) * m).sum() / m.sum().clamp(min=1.0)
    # one-sided silhouette: a step rasterises only a subset of the strands, which cannot be
    # expected to cover the whole hair mask (filling the volume is the chamfer's job), but no
    # strand may be seen where the image shows no hair
    l_mask = (alpha * (1 - hair)).mean()
    return l_rgb + lambda_mask * l_mask, {"rgb": float(l_rgb.detach()), "mask": float(l_mask.detach())}
