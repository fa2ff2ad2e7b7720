"""Geometry texture of the fine strand stage (Neural Haircut, Sec. 3.3 "Fine strand-based
reconstruction").

The geometry texture ``T`` holds, at every texel of the scalp UV square, a strand latent
(``latent`` channels, decoded by the frozen strand VAE) and an appearance descriptor
(``appearance`` channels, read by the neural renderer). As in the paper, ``T`` is not optimised
directly: a U-Net predicts it from a constant input grid, which keeps the texture smooth, so the
score-distillation prior acts on a coherent hairstyle rather than on independent texels.

Conventions (shared with :func:`engine.prior.diffusion.latent_texture`): texel (i, j) of a
``res x res`` texture sits at ``u = (j + 0.5) / res``, ``v = (i + 0.5) / res``; row = v,
column = u. Sampling at arbitrary UVs is bilinear (``grid_sample``, ``align_corners=False``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.errors import ConfigError


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(min(8, cout), cout),
                         nn.SiLU(), nn.Conv2d(cout, cout, 3, padding=1), nn.SiLU())


class TextureUNet(nn.Module):
    """A small three-level U-Net mapping (1, c_in, res, res) to (1, c_out, res, res)."""

    def __init__(self, c_in: int, c_out: int, width: int = 32):
        super().__init__()
        w = width
        self.e1, self.e2, self.e3 = _block(c_in, w), _block(w, 2 * w), _block(2 * w, 4 * w)
        self.d2, self.d1 = _block(6 * w, 2 * w), _block(3 * w, w)
        self.out = nn.Conv2d(w, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h1 = self.e1(x)
        h2 = self.e2(F.avg_pool2d(h1, 2))
        h3 = self.e3(F.avg_pool2d(h2, 2))
        u2 = self.d2(torch.cat([F.interpolate(h3, scale_factor=2.0, mode="bilinear",
                                              align_corners=False), h2], 1))
        u1 = self.d1(torch.cat([F.interpolate(u2, scale_factor=2.0, mode="bilinear",
                                              align_corners=False), h1], 1))
        return self.out(u1)


class GeometryTexture(nn.Module):
    """U-Net-parameterised geometry texture T (latent + appearance channels) over scalp UV.

    Args:
        res: texture resolution (texels per side; a multiple of 4, else ConfigError).
        latent: strand-latent channels (the VAE's z dimension, 64).
        appearance: appearance-descriptor channels (16 in the paper).
        width: U-Net width. c_in: channels of the constant input grid. seed: its random seed.
        init_latent: optional (latent,) tensor the latent channels start at (the output layer is
            zero-initialised, so T starts as this constant, e.g. the mean strand latent).
    """

    def __init__(self, res: int = 64, latent: int = 64, appearance: int = 16, width: int = 32,
                 c_in: int = 16, seed: int = 0, init_latent: torch.Tensor | None = None):
        super().__init__()
        if res % 4:
            raise ConfigError(f"strands.texture_res {res} is not a multiple of 4")
        self.res, self.latent, self.appearance = res, latent, appearance
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("grid", torch.randn(1, c_in, res, res, generator=g))
        self.net = TextureUNet(c_in, latent + appearance, width)
        nn.init.zeros_(self.net.out.weight)
        nn.init.zeros_(self.net.out.bias)
        base = torch.zeros(latent + appearance)
        if init_latent is not None:
            base[:latent] = torch.as_tensor(init_latent, dtype=torch.float32)
        self.register_buffer("base", base.view(1, -1, 1, 1))

    def forward(self) -> torch.Tensor:
        """The texture T, (latent + appearance, res, res) float32."""
        return (self.net(self.grid) + self.base)[0]

    @staticmethod
    def sample(texture: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
        """Bilinear texture lookup.

        Args:
            texture: (C, H, W). uv: (N, 2) scalp UV in [0, 1]^2 (u = column, v = row).
        Returns:
            (N, C) values, differentiable in ``texture``.
        """
        grid = (2 * uv - 1).view(1, 1, -1, 2).to(texture)
        out = F.grid_sample(texture[None], grid, mode="bilinear", padding_mode="border",
                            align_corners=False)
        return out[0, :, 0].T
