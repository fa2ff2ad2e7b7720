"""Strand VAE (Neural Haircut, "Hair Strand Parametric Model", Sklyarova et al. 2023, Sec. 3.2).

A strand is expressed in the local frame of its root (tangent T, bitangent B, normal N of the
scalp, see :mod:`engine.head.scalp`), relative to the root, resampled to L = 100 points. The
encoder maps it to a Gaussian q(z | strand) with z in R^64 (reparametrisation
z = z_mu + eps * z_sigma); the decoder maps z back to the L - 1 non-root points (the root is the
origin). Networks are MLPs (small and fast on a CPU) around a linear core: strands are
represented by their whitened coefficients in the PCA basis of the training strands, and the
model starts training as the 64-component probabilistic PCA (an already accurate linear strand
model: sub-millimetre median error on procedural strands), the MLPs learning the non-linear
residual (see :class:`StrandVAE`). Loss terms are computed in decimetres (``SCALE`` = 10).

Loss (Eq. of the paper): L_VAE = L_data + lambda_KL * L_KL with
L_data = sum_l ||p_hat_l - p_l||^2 + lambda_d sum_l (1 - b_hat_l . b_l) + lambda_c sum_l ||g_hat_l - g_l||^2
over points p, unit segment directions b and curvatures g (differences of consecutive unit
directions), and L_KL = KL(q(z | strand) || N(0, I)).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.errors import InputError
from engine.prior.checkpoint import load_checkpoint, save_checkpoint

SCALE = 10.0  # metres -> decimetres inside the networks


@dataclass(frozen=True)
class VAEConfig:
    """n_points: L; latent: z dimension; hidden: MLP width; depth: hidden layers per network;
    basis: number K of PCA components of the strand basis (0 = all 3 (L - 1))."""

    n_points: int = 100
    latent: int = 64
    hidden: int = 512
    depth: int = 3
    basis: int = 0


def _mlp(i, h, o, depth):
    layers = []
    d = i
    for _ in range(depth):
        layers += [nn.Linear(d, h), nn.SiLU()]
        d = h
    layers.append(nn.Linear(d, o))
    return nn.Sequential(*layers)


class StrandVAE(nn.Module):
    """Encoder / decoder of local-frame strands. Inputs and outputs in metres, local root frame.

    Strands are represented in a whitened linear basis (buffers ``basis_mean`` (D,), ``basis``
    (K, D) orthonormal rows, ``basis_scale`` (K,) metres; D = 3 (L - 1) non-root coordinates):
    coefficients c = (x - mean) basis^T / scale and x = mean + (c scale) basis. The basis is the
    PCA of the training strands (:meth:`fit_basis`; identity with a 1 dm scale until then). The
    encoder gives z_mu = A c + MLP(c, b) (A initialised to pick the first ``latent`` whitened
    principal coefficients) and z_logvar = MLP(c, b); the decoder gives c_hat = A' z + MLP(z) (A'
    initialised to the inverse). With the MLP residuals zero-initialised the VAE starts as a
    probabilistic PCA of the strands (the linear baseline) and the MLPs learn the non-linear rest.
    """

    def __init__(self, cfg: VAEConfig = VAEConfig()):
        super().__init__()
        self.cfg = cfg
        L, Z = cfg.n_points, cfg.latent
        D = 3 * (L - 1)
        K = cfg.basis or D
        if not (Z <= K <= D):
            raise InputError(f"VAEConfig: basis {K} must lie in [latent {Z}, 3 (L - 1) = {D}]")
        self.register_buffer("basis_mean", torch.zeros(D))
        self.register_buffer("basis", torch.eye(D)[:K].clone())
        self.register_buffer("basis_scale", torch.full((K,), 1.0 / SCALE))
        self.encoder = _mlp(K + D, cfg.hidden, 2 * Z, cfg.depth)
        self.enc_lin = nn.Linear(K, Z, bias=False)
        self.decoder = _mlp(Z, cfg.hidden, K, cfg.depth)
        self.dec_lin = nn.Linear(Z, K, bias=False)
        self._init_linear()

    @torch.no_grad()
    def _init_linear(self, logvar0: float = -6.0) -> None:
        Z, K = self.cfg.latent, self.basis.shape[0]
        self.enc_lin.weight.copy_(torch.eye(K)[:Z])
        self.dec_lin.weight.copy_(torch.eye(K)[:, :Z])
        for last, bias in ((self.encoder[-1], torch.cat([torch.zeros(Z), torch.full((Z,), logvar0)])),
                           (self.decoder[-1], torch.zeros(K))):
            nn.init.zeros_(last.weight)
            last.bias.copy_(bias)

    @torch.no_grad()
    def fit_basis(self, local: torch.Tensor, max_strands: int = 50000, seed: int = 0) -> None:
        """Set the strand basis to the PCA of ``local`` (M, L, 3) metres (at most ``max_strands``
        random strands, float64 SVD) and re-initialise the linear maps and the MLP output layers
        so that the model equals the K-component probabilistic PCA. Call before training."""
        if local.ndim != 3 or local.shape[1:] != (self.cfg.n_points, 3):
            raise InputError(f"StrandVAE.fit_basis: expected (M, {self.cfg.n_points}, 3), got {tuple(local.shape)}")
        g = torch.Generator().manual_seed(seed)
        sel = torch.randperm(len(local), generator=g)[:max_strands]
        x = local[sel, 1:].reshape(len(sel), -1).double()
        mean = x.mean(0)
        _, s, vt = torch.linalg.svd(x - mean, full_matrices=False)
        s = (s / max(len(sel) - 1, 1) ** 0.5).clamp_min(1e-6)
        K = self.basis.shape[0]
        if len(vt) < K:  # fewer strands than coordinates: complete with an orthonormal complement
            w, v = torch.linalg.eigh(torch.eye(vt.shape[1], dtype=vt.dtype) - vt.T @ vt)
            vt = torch.cat([vt, v[:, w > 0.5].T])
            s = torch.cat([s, s[-1:].expand(len(vt) - len(s))])
        self.basis_mean.copy_(mean.float())
        self.basis.copy_(vt[:K].float())
        self.basis_scale.copy_(s[:K].float())
        self._init_linear()

    def coefficients(self, local: torch.Tensor) -> torch.Tensor:
        """Whitened basis coefficients (B, K) of local strands (B, L, 3) metres."""
        x = local[:, 1:].reshape(local.shape[0], -1)
        return (x - self.basis_mean) @ self.basis.T / self.basis_scale

    def encode(self, local: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """local (B, L, 3) metres, root at the origin -> (z_mu, z_logvar), each (B, latent)."""
        if local.ndim != 3 or local.shape[1:] != (self.cfg.n_points, 3):
            raise InputError(f"StrandVAE.encode: expected (B, {self.cfg.n_points}, 3), got {tuple(local.shape)}")
        c = self.coefficients(local)
        b = F.normalize(local[:, 1:] - local[:, :-1], dim=-1)
        h = self.encoder(torch.cat([c, b.flatten(1)], 1))
        mu, logvar = h.chunk(2, dim=1)
        return mu + self.enc_lin(c), logvar.clamp(-12.0, 6.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, latent) -> strands (B, L, 3) metres in the local root frame, root at the origin."""
        c = self.dec_lin(z) + self.decoder(z)
        y = (self.basis_mean + (c * self.basis_scale) @ self.basis).view(z.shape[0], self.cfg.n_points - 1, 3)
        return torch.cat([torch.zeros_like(y[:, :1]), y], 1)

    def forward(self, local: torch.Tensor, sample: bool = True):
        """Returns (reconstruction (B, L, 3) m, z_mu, z_logvar)."""
        mu, logvar = self.encode(local)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
        return self.decode(z), mu, logvar


def strand_features(p: torch.Tensor):
    """Unit directions b (B, L-1, 3) and curvatures g = b_{l+1} - b_l (B, L-2, 3) of strands p."""
    b = F.normalize(p[:, 1:] - p[:, :-1], dim=-1)
    return b, b[:, 1:] - b[:, :-1]


def vae_loss(p_hat, p, mu, logvar, lambda_d=1.0, lambda_c=1.0, lambda_kl=1e-4):
    """L_VAE (module docstring) averaged over the batch; points compared in decimetres.

    Returns (total, dict of the terms as floats).
    """
    x_hat, x = p_hat * SCALE, p * SCALE
    l_p = ((x_hat - x) ** 2).sum(-1).sum(-1)
    b_hat, g_hat = strand_features(x_hat)
    b, g = strand_features(x)
    l_d = (1 - (b_hat * b).sum(-1)).sum(-1)
    l_c = ((g_hat - g) ** 2).sum(-1).sum(-1)
    kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(-1)
    total = (l_p + lambda_d * l_d + lambda_c * l_c + lambda_kl * kl).mean()
    return total, {"points": l_p.mean().item(), "dirs": l_d.mean().item(), "curv": l_c.mean().item(),
                   "kl": kl.mean().item()}


def latent_metric(vae: StrandVAE, z: torch.Tensor, lambda_d: float = 1.0, lambda_c: float = 1.0,
                  chunk: int = 64) -> torch.Tensor:
    """Mean pull-back of the VAE reconstruction metric to latent space: G = E_z[J(z)^T J(z)].

    z: (N, latent) float32 latents (e.g. the z_mu of training strands). J is the Jacobian of the
    decoded strand's features [points in decimetres, sqrt(lambda_d / 2) unit directions,
    sqrt(lambda_c) curvatures] with respect to z, so that for a small latent change dz,
    dz^T G dz approximates the data term of :func:`vae_loss` (1 - b_hat . b = |b_hat - b|^2 / 2
    for unit vectors). Returns G (latent, latent) float64, symmetric positive semi-definite.
    Used to give the texture diffusion model a latent space in which equal noise means equal
    strand error (:meth:`engine.prior.diffusion.TextureDiffusion.fit_latent_space`).
    """
    from torch.func import jacrev, vmap

    if z.ndim != 2 or z.shape[1] != vae.cfg.latent:
        raise InputError(f"latent_metric: expected (N, {vae.cfg.latent}) latents, got {tuple(z.shape)}")
    wd, wc = (0.5 * lambda_d) ** 0.5, lambda_c ** 0.5

    def feats(zz):
        x = vae.decode(zz[None]) * SCALE
        b, g = strand_features(x)
        return torch.cat([x[0].flatten(), wd * b[0].flatten(), wc * g[0].flatten()])

    G = torch.zeros(z.shape[1], z.shape[1], dtype=torch.float64)
    for i in range(0, len(z), chunk):
        J = vmap(jacrev(feats))(z[i:i + chunk].detach()).detach().double()
        G += torch.einsum("bfi,bfj->ij", J, J)
    return G / len(z)


# --------------------------------------------------------------------------------------------
# Head frame <-> local root frame
# --------------------------------------------------------------------------------------------


def to_local(strands: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """Head-frame strands (N, L, 3) m and root frames (N, 3, 3) (rows T, B, N) -> local (N, L, 3)."""
    return np.einsum("nij,nlj->nli", rot, strands - strands[:, :1])


def to_head(local: np.ndarray, rot: np.ndarray, roots: np.ndarray) -> np.ndarray:
    """Local strands (N, L, 3) -> head frame, given frames (N, 3, 3) and root positions (N, 3)."""
    return np.einsum("nji,nlj->nli", rot, local) + roots[:, None, :]


# --------------------------------------------------------------------------------------------
# Saving and safe loading
# --------------------------------------------------------------------------------------------


def save_vae(model: StrandVAE, path: Path, extra: dict | None = None) -> None:
    """Write ``path`` (.safetensors) and ``path.with_suffix('.json')`` (config + extra info)."""
    save_checkpoint(model, path, "strand_vae", extra)


def load_vae(path: Path, device: str | torch.device = "cpu") -> StrandVAE:
    """Load a :func:`save_vae` file (safetensors, no pickle). Raises InputError if missing/bad."""
    return load_checkpoint(path, "strand VAE", lambda c: StrandVAE(VAEConfig(**c)), device)
