"""Strand VAE (Neural Haircut, "Hair Strand Parametric Model", Sklyarova et al. 2023, Sec. 3.2).

A strand is expressed in the local frame of its root (tangent T, bitangent B, normal N of the
scalp, see :mod:`engine.prior.scalp`), relative to the root, resampled to L = 100 points. The
encoder maps it to a Gaussian q(z | strand) with z in R^64 (reparametrisation
z = z_mu + eps * z_sigma); the decoder maps z back to the L - 1 non-root points (the root is the
origin). Networks are MLPs (small and fast on a CPU). Internally lengths are in decimetres
(``SCALE`` = 10) so values are O(1).

Loss (Eq. of the paper): L_VAE = L_data + lambda_KL * L_KL with
L_data = sum_l ||p_hat_l - p_l||^2 + lambda_d sum_l (1 - b_hat_l . b_l) + lambda_c sum_l ||g_hat_l - g_l||^2
over points p, unit segment directions b and curvatures g (differences of consecutive unit
directions), and L_KL = KL(q(z | strand) || N(0, I)).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.errors import InputError

SCALE = 10.0  # metres -> decimetres inside the networks


@dataclass(frozen=True)
class VAEConfig:
    """n_points: L; latent: z dimension; hidden: MLP width; depth: hidden layers per network."""

    n_points: int = 100
    latent: int = 64
    hidden: int = 512
    depth: int = 3


def _mlp(i, h, o, depth):
    layers = []
    d = i
    for _ in range(depth):
        layers += [nn.Linear(d, h), nn.SiLU()]
        d = h
    layers.append(nn.Linear(d, o))
    return nn.Sequential(*layers)


class StrandVAE(nn.Module):
    """Encoder / decoder of local-frame strands. Inputs and outputs in metres, local root frame."""

    def __init__(self, cfg: VAEConfig = VAEConfig()):
        super().__init__()
        self.cfg = cfg
        L = cfg.n_points
        self.encoder = _mlp(L * 3 + (L - 1) * 3, cfg.hidden, 2 * cfg.latent, cfg.depth)
        self.decoder = _mlp(cfg.latent, cfg.hidden, (L - 1) * 3, cfg.depth)

    def encode(self, local: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """local (B, L, 3) metres, root at the origin -> (z_mu, z_logvar), each (B, latent)."""
        if local.ndim != 3 or local.shape[1:] != (self.cfg.n_points, 3):
            raise InputError(f"StrandVAE.encode: expected (B, {self.cfg.n_points}, 3), got {tuple(local.shape)}")
        x = local * SCALE
        b = F.normalize(x[:, 1:] - x[:, :-1], dim=-1)
        h = self.encoder(torch.cat([x.flatten(1), b.flatten(1)], 1))
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 6.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, latent) -> strands (B, L, 3) metres in the local root frame, root at the origin."""
        y = self.decoder(z).view(z.shape[0], self.cfg.n_points - 1, 3) / SCALE
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
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(path))
    meta = {"schema_version": 1, "kind": "strand_vae", "config": asdict(model.cfg)}
    meta.update(extra or {})
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2))


def load_vae(path: Path, device: str | torch.device = "cpu") -> StrandVAE:
    """Load a :func:`save_vae` file (safetensors, no pickle). Raises InputError if missing/bad."""
    from safetensors.torch import load_file

    path = Path(path)
    meta_path = path.with_suffix(".json")
    if not path.exists() or not meta_path.exists():
        raise InputError(f"{path}: strand VAE weights or their .json config not found")
    try:
        meta = json.loads(meta_path.read_text())
        model = StrandVAE(VAEConfig(**meta["config"]))
        model.load_state_dict(load_file(str(path)))
    except (KeyError, TypeError, RuntimeError, ValueError) as e:
        raise InputError(f"{path}: not a strand VAE checkpoint ({e})") from e
    return model.to(device).eval()
