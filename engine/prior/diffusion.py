"""Scalp-texture diffusion prior (Neural Haircut, "Hairstyle Diffusion Model", Sec. 3.2) with EDM.

A groom becomes a texture T (C = 64, H, W) of strand latents (the VAE's z_mu) over scalp UV by
nearest-neighbour interpolation of its roots (:func:`latent_texture`); texels outside the scalp
disc are zero. Each texel's latent is mapped linearly into model space, x = P (z - mean)
(:meth:`TextureDiffusion.fit_latent_space`): in the standard config P is the square root of the
VAE's reconstruction metric pulled back to latent space, so that model-space noise of a given size
means the same strand error in every latent direction; the map is scaled to RMS ``sigma_data``. The
textures are randomly sub-sampled to the model resolution (32 x 32 in the standard
config) - the sub-sampling offset is the main augmentation, together with left-right mirroring
(u -> 1 - u with the strands mirrored, i.e. their local tangent coordinate negated).

Denoiser: EDM (Karras et al. 2022, "Elucidating the Design Space...", Table 1 and Eq. 7):
D(x, sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, c_noise(sigma)) with
c_skip = sd^2 / (sigma^2 + sd^2), c_out = sigma sd / sqrt(sigma^2 + sd^2),
c_in = 1 / sqrt(sigma^2 + sd^2), c_noise = ln(sigma) / 4; training
L_diff = E[lambda(sigma) ||D(y + n, sigma) - y||^2], ln sigma ~ N(P_mean = -1.2, P_std = 1.2),
lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2. F is a small U-Net (FiLM noise conditioning,
two fixed UV coordinate channels). Sampling: EDM's Heun sampler, stochastic (Algorithm 2) by
default, deterministic (Algorithm 1) with ``churn = 0``.

:meth:`TextureDiffusion.prior_loss` is the score-distillation loss of the strand stage.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.errors import ConfigError, InputError
from engine.head.scalp import default_scalp
from engine.prior.checkpoint import hardware, load_checkpoint, save_checkpoint
from engine.prior.synth import sample_style, synth_groom
from engine.prior.vae import latent_metric, to_head, to_local

P_MEAN, P_STD = -1.2, 1.2


# --------------------------------------------------------------------------------------------
# EDM formulas
# --------------------------------------------------------------------------------------------


def edm_precond(sigma: torch.Tensor, sigma_data: float):
    """EDM preconditioning (Karras et al. 2022, Table 1): (c_skip, c_out, c_in, c_noise)."""
    s2 = sigma ** 2 + sigma_data ** 2
    return sigma_data ** 2 / s2, sigma * sigma_data / s2.sqrt(), 1 / s2.sqrt(), sigma.log() / 4


def edm_weight(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """EDM loss weighting lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2."""
    return (sigma ** 2 + sigma_data ** 2) / (sigma * sigma_data) ** 2


def edm_sigmas(n: int, sigma_min=0.002, sigma_max=80.0, rho=7.0) -> torch.Tensor:
    """EDM time steps (Eq. 5): n sigmas from sigma_max down to sigma_min, then 0 appended."""
    i = torch.arange(n, dtype=torch.float64)
    s = (sigma_max ** (1 / rho) + i / (n - 1) * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return torch.cat([s, torch.zeros(1, dtype=torch.float64)])


# --------------------------------------------------------------------------------------------
# U-Net
# --------------------------------------------------------------------------------------------


class _Res(nn.Module):
    def __init__(self, cin, cout, emb):
        super().__init__()
        self.n1 = nn.GroupNorm(min(8, cin), cin)
        self.c1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.film = nn.Linear(emb, 2 * cout)
        self.n2 = nn.GroupNorm(min(8, cout), cout)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, e):
        h = self.c1(F.silu(self.n1(x)))
        s, b = self.film(e)[:, :, None, None].chunk(2, 1)
        h = self.n2(h) * (1 + s) + b
        h = self.c2(F.silu(h))
        return (self.skip(x) + h) / math.sqrt(2)


class UNet(nn.Module):
    """F(x, c_noise): (B, C, H, W) -> (B, C, H, W); H, W divisible by 4."""

    def __init__(self, channels_in: int = 64, base: int = 64):
        super().__init__()
        e = 4 * base
        self.emb = nn.Sequential(nn.Linear(32, e), nn.SiLU(), nn.Linear(e, e))
        self.inp = nn.Conv2d(channels_in + 2, base, 3, padding=1)
        self.d1 = _Res(base, base, e)
        self.d2 = _Res(base, 2 * base, e)
        self.d3 = _Res(2 * base, 2 * base, e)
        self.mid = _Res(2 * base, 2 * base, e)
        self.u3 = _Res(4 * base, 2 * base, e)
        self.u2 = _Res(4 * base, base, e)
        self.u1 = _Res(2 * base, base, e)
        self.out = nn.Sequential(nn.GroupNorm(8, base), nn.SiLU(), nn.Conv2d(base, channels_in, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)
        self.register_buffer("freqs", torch.exp(torch.linspace(0, math.log(1000), 16)), persistent=False)

    def forward(self, x, c_noise):
        B, _, H, W = x.shape
        ang = c_noise.reshape(-1, 1) * self.freqs[None]
        e = self.emb(torch.cat([ang.sin(), ang.cos()], 1))
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, H, device=x.device), torch.linspace(-1, 1, W, device=x.device),
                                indexing="ij")
        coords = torch.stack([xx, yy])[None].expand(B, -1, -1, -1).to(x.dtype)
        h0 = self.inp(torch.cat([x, coords], 1))
        h1 = self.d1(h0, e)
        h2 = self.d2(F.avg_pool2d(h1, 2), e)
        h3 = self.d3(F.avg_pool2d(h2, 2), e)
        m = self.mid(h3, e)
        u = self.u3(torch.cat([m, h3], 1), e)
        u = self.u2(torch.cat([F.interpolate(u, scale_factor=2.0), h2], 1), e)
        u = self.u1(torch.cat([F.interpolate(u, scale_factor=2.0), h1], 1), e)
        return self.out(u)


# --------------------------------------------------------------------------------------------
# Texture diffusion model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiffusionConfig:
    """channels: latent size C; res: model resolution; base: U-Net width; sigma_data: EDM sd."""

    channels: int = 64
    res: int = 32
    base: int = 64
    sigma_data: float = 0.5


def uv_disc_mask(rows: torch.Tensor, cols: torch.Tensor, res: int) -> torch.Tensor:
    """(len(rows), len(cols)) float mask of texel centres (index + 0.5) / res inside the scalp disc."""
    v = (rows.to(torch.float32) + 0.5) / res * 2 - 1
    u = (cols.to(torch.float32) + 0.5) / res * 2 - 1
    return ((v[:, None] ** 2 + u[None, :] ** 2) <= 1.0).to(torch.float32)


class TextureDiffusion(nn.Module):
    """EDM denoiser over normalised latent textures plus the latent statistics (buffers)."""

    def __init__(self, cfg: DiffusionConfig = DiffusionConfig()):
        super().__init__()
        self.cfg = cfg
        self.net = UNet(cfg.channels, cfg.base)
        self.register_buffer("lat_mean", torch.zeros(cfg.channels))
        self.register_buffer("lat_proj", torch.eye(cfg.channels))
        self.register_buffer("lat_unproj", torch.eye(cfg.channels))

    # model space: x = P (z - mean) per texel, P fitted by fit_latent_space
    def normalize(self, tex: torch.Tensor) -> torch.Tensor:
        """Raw latent texture (B, C, H, W) -> model space (B, C, H, W)."""
        return torch.einsum("dc,bchw->bdhw", self.lat_proj, tex - self.lat_mean[:, None, None])

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Model space (B, C, H, W) -> raw latent texture (B, C, H, W)."""
        return torch.einsum("cd,bdhw->bchw", self.lat_unproj, x) + self.lat_mean[:, None, None]

    @torch.no_grad()
    def fit_latent_space(self, latents: torch.Tensor, metric: torch.Tensor | None = None) -> None:
        """Fit the linear map between raw latents and model space from scalp texels.

        latents: (N, C) raw latents of texels inside the scalp disc. ``metric`` None: per-channel
        standardisation, P = diag(1 / std). ``metric`` G (C, C) (from
        :func:`engine.prior.vae.latent_metric`): P = G^(1/2), so that the squared model-space
        distance equals the VAE's strand reconstruction error (points, directions, curvatures)
        to first order; the diffusion loss then weights latent directions by what they do to the
        strands instead of equally (the VAE latents are whitened PCA coefficients, whose minor
        directions are small, high-frequency wiggles). Either way P is then scaled so that the
        texels' root-mean-square model-space coordinate equals ``sigma_data``.
        """
        z = latents.double()
        mean = z.mean(0)
        if metric is None:
            P = torch.diag(1.0 / (z.std(0) + 1e-6))
        else:
            w, V = torch.linalg.eigh(metric.double())
            w = w.clamp_min(1e-9 * float(w.max()))
            P = (V * w.sqrt()) @ V.T
        y = (z - mean) @ P.T
        P = P * (self.cfg.sigma_data / y.pow(2).mean().sqrt())
        self.lat_mean.copy_(mean.float())
        self.lat_proj.copy_(P.float())
        self.lat_unproj.copy_(torch.linalg.inv(P).float())

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """D(x, sigma) (EDM Eq. 7); x (B, C, H, W) model space, sigma (B,) or scalar."""
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
        if sigma.numel() == 1:
            sigma = sigma.expand(x.shape[0])
        c_skip, c_out, c_in, c_noise = edm_precond(sigma, self.cfg.sigma_data)
        r = lambda t: t[:, None, None, None]  # noqa: E731
        return r(c_skip) * x + r(c_out) * self.net(r(c_in) * x, c_noise)

    def edm_loss(self, y: torch.Tensor, mask: torch.Tensor | None = None,
                 generator: torch.Generator | None = None,
                 sigma_range: tuple[float, float] | None = None) -> torch.Tensor:
        """L_diff on clean model-space textures y (B, C, H, W); mask (H, W) or (B, 1, H, W).

        sigma is drawn from EDM's log-normal (P_mean, P_std), or log-uniformly from
        ``sigma_range`` = (lo, hi) when given (model-space units, data std ``sigma_data``)."""
        B = y.shape[0]
        if sigma_range is None:
            rnd = torch.randn(B, generator=generator, device=y.device, dtype=y.dtype)
            sigma = (rnd * P_STD + P_MEAN).exp()
        else:
            lo, hi = (math.log(float(v)) for v in sigma_range)
            rnd = torch.rand(B, generator=generator, device=y.device, dtype=y.dtype)
            sigma = (lo + (hi - lo) * rnd).exp()
        n = torch.randn(y.shape, generator=generator, device=y.device, dtype=y.dtype) * sigma[:, None, None, None]
        d = self.denoise(y + n, sigma)
        err = (d - y) ** 2
        if mask is not None:
            m = mask if mask.ndim == 4 else mask[None, None]
            err = err * m
            denom = m.expand_as(err).sum() / B
        else:
            denom = err[0].numel()
        return (edm_weight(sigma, self.cfg.sigma_data) * err.flatten(1).sum(1) / denom).mean()

    @torch.no_grad()
    def sample(self, n: int, steps: int = 40, generator: torch.Generator | None = None,
               sigma_max: float = 80.0, churn: float = 40.0, s_tmin: float = 0.05,
               s_tmax: float = 50.0, s_noise: float = 1.003, sigma_min: float = 0.6,
               guide=None) -> torch.Tensor:
        """EDM Heun sampler (Karras et al. 2022): deterministic (Algorithm 1) with ``churn = 0``,
        stochastic (Algorithm 2) otherwise.

        With churn, at each noise level t_i in [s_tmin, s_tmax] the state is first re-noised to
        t_hat = t_i (1 + gamma), gamma = min(churn / steps, sqrt(2) - 1), with fresh noise scaled
        by ``s_noise``, then a Heun step goes from t_hat to t_{i+1}. The noise levels run from
        ``sigma_max`` down to ``sigma_min`` (EDM Eq. 5, rho 7), then a last step to 0, which
        returns the denoiser's estimate D(x, sigma_min). Returns raw latent textures
        (n, C, res, res) float32, zero outside the scalp disc. The default is the stochastic
        sampler (40 steps, S_churn 40): with the shipped model it beats the deterministic
        18-step one on every measure of ``python -m engine.prior.evaluate`` (MODEL_CARD.md).

        ``sigma_min`` defaults to 0.6 (model space, where the data has RMS 0.5), not EDM's 0.002:
        the sample is the denoiser's estimate (posterior mean) at that level. With the shipped
        model the steps below it add kinks the data does not have (decoded curl median 146
        against the data's 102 rad/m when integrating to 0.002; 90-96 at 0.6) and push more
        strands into the head (2.9 % against 0.5-1.0 % of the points), at a small cost in the
        length distribution (MODEL_CARD.md). Pass ``sigma_min=0.002`` for EDM's full schedule.

        ``guide``: optional callable (denoised estimate (n, C, res, res) model space, sigma) ->
        corrected estimate, applied to every denoiser output (reconstruction guidance, e.g.
        :class:`HeadCollisionGuide`); None samples the model alone.
        """
        cfg = self.cfg
        dev = self.lat_mean.device
        t = edm_sigmas(steps, sigma_min=sigma_min, sigma_max=sigma_max).to(dev).double()
        x = torch.randn(n, cfg.channels, cfg.res, cfg.res, generator=generator, device=dev) * t[0]
        x = x.double()
        gamma = min(churn / steps, math.sqrt(2.0) - 1.0)
        for i in range(steps):
            tc, tn = t[i], t[i + 1]
            if gamma > 0 and s_tmin <= float(tc) <= s_tmax:
                th = tc * (1 + gamma)
                eps = torch.randn(x.shape, generator=generator, device=dev).double()
                x = x + (th ** 2 - tc ** 2).sqrt() * s_noise * eps
            else:
                th = tc
            d = (x - self._guided(x, th, guide)) / th
            xn = x + (tn - th) * d
            if tn > 0:
                d2 = (xn - self._guided(xn, tn, guide)) / tn
                xn = x + (tn - th) * 0.5 * (d + d2)
            x = xn
        idx = torch.arange(cfg.res, device=dev)
        m = uv_disc_mask(idx, idx, cfg.res).to(dev)
        return self.denormalize(x.float()) * m

    def _guided(self, x: torch.Tensor, sigma: torch.Tensor, guide) -> torch.Tensor:
        d = self.denoise(x.float(), sigma.float())
        return (d if guide is None else guide(d, float(sigma))).double()

    def subsample(self, tex: torch.Tensor, generator: torch.Generator | None = None):
        """Randomly sub-sample a (B, C, H, W) texture (H, W >= res) to (B, C, res, res): texel
        floor((i + u) H / res) with u ~ U[0, 1) per axis. Returns (texture, mask (res, res))."""
        H, W = tex.shape[-2:]
        r = self.cfg.res
        if H < r or W < r:
            raise InputError(f"prior texture {H}x{W} is smaller than the model resolution {r}")
        u = torch.rand(2, generator=generator)
        rows = ((torch.arange(r) + u[0]) * H / r).floor().long().clamp(max=H - 1)
        cols = ((torch.arange(r) + u[1]) * W / r).floor().long().clamp(max=W - 1)
        sub = tex.index_select(-2, rows.to(tex.device)).index_select(-1, cols.to(tex.device))
        mask = torch.minimum(uv_disc_mask(rows, cols, H), uv_disc_mask(rows, cols, W))
        return sub, mask.to(tex.device)

    def prior_loss(self, texture: torch.Tensor, generator: torch.Generator | None = None,
                   sigma_range: tuple[float, float] | None = None) -> torch.Tensor:
        """Score-distillation prior loss of the strand stage (Neural Haircut L_prior).

        texture: raw latent texture (C, H, W) or (B, C, H, W) float32 over scalp UV (row = v,
        column = u), H, W >= res. Adds noise at a random sigma (EDM's log-normal, or log-uniform
        in ``sigma_range``, model-space units), randomly sub-samples to the model resolution, and
        returns L_diff (scalar). The denoiser is frozen: gradient flows only into ``texture``; the
        module's parameters get none.
        """
        if texture.ndim == 3:
            texture = texture[None]
        if texture.ndim != 4 or texture.shape[1] != self.cfg.channels:
            raise InputError(f"prior_loss: expected (B, {self.cfg.channels}, H, W), got {tuple(texture.shape)}")
        params = list(self.parameters())
        flags = [p.requires_grad for p in params]
        for p in params:
            p.requires_grad_(False)
        try:
            sub, mask = self.subsample(texture, generator)
            return self.edm_loss(self.normalize(sub), mask, generator, sigma_range)
        finally:
            for p, f in zip(params, flags):
                p.requires_grad_(f)


# --------------------------------------------------------------------------------------------
# Textures from grooms
# --------------------------------------------------------------------------------------------


def latent_texture(uv: np.ndarray, latents: np.ndarray, res: int) -> np.ndarray:
    """Nearest-neighbour latent texture (C, res, res) float32 from root UVs (N, 2) and latents
    (N, C); texel (i, j) is at u = (j + 0.5) / res, v = (i + 0.5) / res; zero outside the disc."""
    from scipy.spatial import cKDTree

    c = (np.arange(res) + 0.5) / res
    uu, vv = np.meshgrid(c, c)
    q = np.stack([uu.ravel(), vv.ravel()], 1)
    inside = np.hypot(2 * q[:, 0] - 1, 2 * q[:, 1] - 1) <= 1.0
    idx = cKDTree(uv).query(q)[1]
    tex = latents[idx] * inside[:, None]
    return tex.T.reshape(-1, res, res).astype(np.float32)


def texture_to_strands(tex: np.ndarray, vae, scalp=None, batch: int = 4096):
    """Decode a latent texture (C, H, W) into strands at the texel centres inside the scalp disc.

    Returns (strands (M, L, 3) float32 metres head frame, uv (M, 2) float32).
    """
    scalp = scalp or default_scalp()
    C, H, W = tex.shape
    cu = (np.arange(W) + 0.5) / W
    cv = (np.arange(H) + 0.5) / H
    uu, vv = np.meshgrid(cu, cv)
    uv = np.stack([uu.ravel(), vv.ravel()], 1)
    inside = scalp.mask(uv)
    z = tex.reshape(C, -1).T[inside]
    uv = uv[inside]
    with torch.no_grad():
        loc = torch.cat([vae.decode(torch.from_numpy(z[i:i + batch]).float())
                         for i in range(0, len(z), batch)]).numpy().astype(np.float64)
    fr = scalp.frames(uv)
    return to_head(loc, fr.matrix(), fr.positions).astype(np.float32), uv.astype(np.float32)


# --------------------------------------------------------------------------------------------
# Saving / loading / training
# --------------------------------------------------------------------------------------------


class HeadCollisionGuide:
    """Head-collision guidance for :meth:`TextureDiffusion.sample` (reconstruction guidance on the
    denoised estimate, as in diffusion posterior sampling; the penalty is ours).

    Each call decodes the estimate's latents at the texel centres inside the scalp (the same
    strands as :func:`texture_to_strands`), measures P = sum over non-root points of
    relu(-SDF(p))^2 (m^2; head frame, the head's signed distance, positive outside) and returns
    d - step * dP/dd, i.e. one gradient step that lifts strands out of the head. ``step``:
    model-space units per unit of dP/dd; ``sigma_max``: guide only at noise levels up to this.
    Called as ``guide(d, sigma)`` with d (B, C, res, res) float32 model space; returns the
    corrected estimate, same shape, detached.

    Each call decodes every strand forward and backward through the VAE: on one CPU thread,
    sampling 32 textures (full schedule) and decoding them took about 4 times as long as without
    guidance (165 s against 40-50 s).
    """

    def __init__(self, model: TextureDiffusion, vae, scalp=None, step: float = 30.0,
                 sigma_max: float = float("inf")):
        self.model, self.vae, self.step, self.sigma_max = model, vae, step, sigma_max
        self.scalp = scalp or default_scalp()
        uv, inside = self.scalp.grid_uv(model.cfg.res)
        inside = inside.ravel()
        fr = self.scalp.frames(uv[inside])
        dev = model.lat_mean.device
        self.texels = torch.from_numpy(np.nonzero(inside)[0]).to(dev)
        self.rot = torch.from_numpy(fr.matrix()).float().to(dev)
        self.roots = torch.from_numpy(fr.positions).float().to(dev)

    def penetration(self, d: torch.Tensor) -> torch.Tensor:
        """P (scalar, m^2) of model-space textures d (B, C, res, res)."""
        z = self.model.denormalize(d).flatten(2)[:, :, self.texels].transpose(1, 2)  # (B, M, C)
        loc = self.vae.decode(z.reshape(-1, z.shape[-1])).reshape(z.shape[0], z.shape[1], -1, 3)
        head = torch.einsum("mji,bmlj->bmli", self.rot, loc) + self.roots[None, :, None]
        return torch.relu(-self.scalp.sdf.torch(head[:, :, 1:])).pow(2).sum()

    def __call__(self, d: torch.Tensor, sigma: float) -> torch.Tensor:
        if sigma > self.sigma_max:
            return d
        with torch.enable_grad():  # sample() runs under no_grad
            d = d.detach().requires_grad_(True)
            g, = torch.autograd.grad(self.penetration(d), d)  # d only: the VAE's .grad untouched
        return (d - self.step * g).detach()


def save_diffusion(model: TextureDiffusion, path: Path, extra: dict | None = None) -> None:
    """Write ``path`` (.safetensors) and ``path.with_suffix('.json')`` (config + extra)."""
    save_checkpoint(model, path, "texture_diffusion", extra)


def load_diffusion(path: Path, device: str | torch.device = "cpu") -> TextureDiffusion:
    """Load a :func:`save_diffusion` file (safetensors, no pickle). Raises InputError if missing/bad."""
    return load_checkpoint(path, "texture diffusion",
                           lambda c: TextureDiffusion(DiffusionConfig(**c)), device)


def make_groom_set(cfg, scalp=None, cache: Path | None = None):
    """Procedural grooms for the diffusion model: local strands (G, S, L, 3) float32 and root UVs
    (G, S, 2). ``cache`` (npz) is reused only when it was written with the same config."""
    key = json.dumps({k: v for k, v in asdict(cfg).items() if k in ("grooms", "strands_per_groom", "seed")},
                     sort_keys=True)
    if cache is not None and Path(cache).exists():
        d = np.load(cache)
        if str(d["key"]) == key:
            return d["local"], d["uv"]
    scalp = scalp or default_scalp()
    rng = np.random.default_rng(cfg.seed)
    locs, uvs = [], []
    for _ in range(cfg.grooms):
        g = synth_groom(sample_style(rng), cfg.strands_per_groom, scalp=scalp)
        locs.append(to_local(g.strands.astype(np.float64), scalp.frames(g.uv).matrix()).astype(np.float32))
        uvs.append(g.uv)
    local, uv = np.stack(locs), np.stack(uvs)
    if cache is not None:
        np.savez(cache, local=local, uv=uv, key=key)
    return local, uv


def make_texture_set(cfg, vae, scalp=None, cache: Path | None = None) -> np.ndarray:
    """Latent textures (2 * grooms, C, dense_res, dense_res) float32 of procedural grooms and
    their mirror images (u -> 1 - u, local tangent coordinate negated), encoded with z_mu."""
    local, uvs = make_groom_set(cfg, scalp, cache)
    out = []
    for loc, uv in zip(local, uvs):
        mir = loc.copy()
        mir[..., 0] *= -1
        uv_m = uv.copy()
        uv_m[:, 0] = 1 - uv_m[:, 0]
        with torch.no_grad():
            z = vae.encode(torch.from_numpy(loc))[0].numpy()
            zm = vae.encode(torch.from_numpy(mir))[0].numpy()
        out.append(latent_texture(uv, z, cfg.dense_res))
        out.append(latent_texture(uv_m, zm, cfg.dense_res))
    return np.stack(out)


def train_diffusion(cfg, vae, out: Path, log=print, init: Path | None = None):
    """Train the texture diffusion model (config: engine.prior.train.DiffusionTrainConfig).

    ``init``: optional :func:`save_diffusion` checkpoint (same VAE, same config) to continue
    from; its weights start both the trained and the EMA network. The learning rate follows a
    cosine from ``cfg.lr`` to ``cfg.lr_final`` over the wall-clock cap (constant when equal).
    Writes ``out/texture_diffusion.safetensors`` (+ .json). Returns (model, info dict).
    """
    space = cfg.latent_space
    if space not in ("whitened", "vae_metric"):
        raise ConfigError(f"diffusion latent_space {space!r}: expected 'whitened' or 'vae_metric'")
    torch.manual_seed(cfg.seed)
    t0 = time.time()
    tex = make_texture_set(cfg, vae, cache=out / "diffusion_grooms_cache.npz")
    t_data = time.time() - t0
    log(f"diffusion data: {len(tex)} textures in {t_data:.1f}s")
    model = TextureDiffusion(DiffusionConfig(channels=tex.shape[1], res=cfg.model_res, base=cfg.channels))
    idx = torch.arange(cfg.dense_res)
    dm = uv_disc_mask(idx, idx, cfg.dense_res).bool().numpy()
    vals = torch.from_numpy(tex.transpose(0, 2, 3, 1)[:, dm].reshape(-1, tex.shape[1]))  # (texels, C)
    data = torch.from_numpy(tex)
    if init is not None:  # continue: its network and its latent space
        start = load_diffusion(init)
        if start.cfg != model.cfg:
            raise InputError(f"{init}: config {start.cfg} differs from the training config {model.cfg}")
        model.load_state_dict(start.state_dict())
    else:
        metric = None
        if space == "vae_metric":
            pick = torch.randperm(len(vals), generator=torch.Generator().manual_seed(cfg.seed))[:cfg.metric_samples]
            metric = latent_metric(vae, vals[pick])
        model.fit_latent_space(vals, metric)
        log(f"diffusion latent space: {space} ({time.time() - t0:.1f}s)")
    ema = TextureDiffusion(model.cfg)
    ema.load_state_dict(model.state_dict())
    opt = torch.optim.Adam(model.net.parameters(), lr=cfg.lr)
    lr_final = cfg.lr_final
    gen = torch.Generator().manual_seed(cfg.seed)
    history = []
    t1 = time.time()
    step = 0
    run = None
    for step in range(1, cfg.steps + 1):
        frac = min(1.0, max(step / cfg.steps, (time.time() - t1) / (cfg.max_minutes * 60)))
        for g in opt.param_groups:
            g["lr"] = lr_final + (cfg.lr - lr_final) * 0.5 * (1 + math.cos(math.pi * frac))
        b = torch.randint(0, len(data), (cfg.batch,), generator=gen)
        sub, mask = model.subsample(data[b], gen)
        loss = model.edm_loss(model.normalize(sub), mask, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.net.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            decay = 0.999 if init is not None else min(0.999, (1 + step) / (10 + step))
            for pe, pm in zip(ema.net.parameters(), model.net.parameters()):
                pe.lerp_(pm, 1 - decay)
        run = loss.item() if run is None else 0.98 * run + 0.02 * loss.item()
        if step == 1 or step % max(1, min(50, cfg.steps // 10)) == 0 or step == cfg.steps:
            history.append({"step": step, "loss": loss.item(), "loss_smoothed": run})
            log(f"diffusion step {step} loss {loss.item():.4f} smoothed {run:.4f}")
        if time.time() - t1 > cfg.max_minutes * 60:
            log(f"diffusion: time cap reached at step {step}")
            break
    from dataclasses import asdict as _asdict

    info = {"train_config": _asdict(cfg), "steps_run": step, "train_textures": len(data),
            "initialised_from": None if init is None else str(init),
            "data_seconds": t_data, "train_seconds": time.time() - t1, "hardware": hardware(),
            "final_loss_smoothed": run, "history": history}
    save_diffusion(ema.eval(), out / "texture_diffusion.safetensors",
                   {"training": {k: v for k, v in info.items() if k != "history"}})
    return ema, info
