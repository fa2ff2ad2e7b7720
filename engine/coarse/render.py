"""Rays, ray-box clipping, NeuS importance sampling and two-SDF NeuS volume rendering.

Conventions: cameras are OpenCV pinholes, world-to-camera ``x_c = R x + t`` with ``x`` in the head
frame (metres), pixel centres at integer coordinates. Rays are generated in the head frame and
expressed in normalised box coordinates ``u = (x - centre) / scale`` (see :mod:`engine.coarse.fields`);
ray depths ``z`` are normalised units along unit directions.

Volume rendering follows NeuS (Wang et al. 2021, eq. 13 and the discrete opacity of Sec. 3.3):
for each SDF ``f`` and section ``[z_i, z_i + dz_i]``,
``alpha_i = max((Phi_s(f(p_i^-)) - Phi_s(f(p_i^+))) / Phi_s(f(p_i^-)), 0)`` with ``Phi_s`` the
logistic sigmoid of sharpness ``s`` and ``f(p^-/+)`` estimated from the mid-point value and the
gradient (NeuS's official implementation, with its cosine annealing). Neural Haircut (Sklyarova et
al. 2023, Sec. 3.1) blends hair and bust: ``alpha_i = min(alpha_i^hair + alpha_i^bust, 1)``,
``T_i = prod_{j<i} (1 - alpha_j)``, colour ``c_hat = sum_i T_i alpha_i c_i`` and masks
``o_hat^k = sum_i T_i alpha_i^k`` for k in {hair, bust}.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class CameraSet:
    """A batch of V pinhole cameras as tensors (all float32, same device).

    Attributes:
        K: (V, 3, 3) intrinsics in pixels of the images they go with.
        R: (V, 3, 3), t: (V, 3) world-to-camera (OpenCV), metres, head frame.
        height, width: image size in pixels.
    """

    K: torch.Tensor
    R: torch.Tensor
    t: torch.Tensor
    height: int
    width: int

    def to(self, device) -> "CameraSet":
        return CameraSet(self.K.to(device), self.R.to(device), self.t.to(device), self.height,
                         self.width)

    @property
    def centres(self) -> torch.Tensor:
        """(V, 3) camera centres in the head frame, metres: ``-R^T t``."""
        return -(self.R.transpose(1, 2) @ self.t[..., None])[..., 0]

    def scaled(self, height: int, width: int) -> "CameraSet":
        """The same cameras for images resized to (height, width) (pixel centres at integers)."""
        sx, sy = width / self.width, height / self.height
        K = self.K.clone()
        K[:, 0, 0] *= sx
        K[:, 1, 1] *= sy
        K[:, 0, 2] = (K[:, 0, 2] + 0.5) * sx - 0.5
        K[:, 1, 2] = (K[:, 1, 2] + 0.5) * sy - 0.5
        return CameraSet(K, self.R, self.t, height, width)


def pixel_rays(cams: CameraSet, view: torch.Tensor, px: torch.Tensor, py: torch.Tensor,
               centre: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays through pixel positions, in normalised box coordinates.

    Args:
        cams: the cameras. view: (N,) int64 camera index per ray.
        px, py: (N,) float32 pixel coordinates (x right, y down, centres at integers).
        centre: (3,) box centre in the head frame, metres. scale: box half-size, metres.
    Returns:
        origins (N, 3) and unit directions (N, 3), normalised box coordinates.
    """
    K = cams.K[view]
    x = (px - K[:, 0, 2]) / K[:, 0, 0]
    y = (py - K[:, 1, 2]) / K[:, 1, 1]
    d_cam = torch.stack([x, y, torch.ones_like(x)], -1)
    Rt = cams.R[view].transpose(1, 2)
    d = F.normalize((Rt @ d_cam[..., None])[..., 0], dim=-1)
    o = (cams.centres[view] - centre) / scale
    return o, d


def ray_box(o: torch.Tensor, d: torch.Tensor, lo: float = -1.0, hi: float = 1.0
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Slab intersection of rays with the axis-aligned box ``[lo, hi]^3``.

    Returns:
        near (N,), far (N,) ray depths (near clamped to >= 0), hit (N,) bool, and exit_axis (N,)
        int64 encoding the face the ray leaves through: ``2 * axis + (1 if it leaves through the
        ``hi`` face else 0)``.
    """
    inv = 1.0 / torch.where(d.abs() < 1e-9, torch.full_like(d, 1e-9), d)
    t0 = (lo - o) * inv
    t1 = (hi - o) * inv
    tmin = torch.minimum(t0, t1)
    tmax = torch.maximum(t0, t1)
    near = tmin.max(-1).values.clamp_min(0.0)
    far, axis = tmax.min(-1)
    hit = far > near
    dir_pos = torch.gather(d, 1, axis[:, None])[:, 0] > 0
    exit_face = 2 * axis + dir_pos.long()
    return near, far, hit, exit_face


def neus_alpha(sdf: torch.Tensor, cos: torch.Tensor, dists: torch.Tensor, inv_s: torch.Tensor
               ) -> torch.Tensor:
    """NeuS discrete opacity of sections (Wang et al. 2021, eq. 13).

    Args:
        sdf: (..., S) SDF at section mid-points. cos: (..., S) the (annealed, non-positive)
            directional derivative ``d f / d z`` used to extrapolate to the section ends.
        dists: (..., S) section lengths. inv_s: scalar sharpness s.
    Returns:
        (..., S) alpha in [0, 1].
    """
    prev = torch.sigmoid((sdf - cos * dists * 0.5) * inv_s)
    nxt = torch.sigmoid((sdf + cos * dists * 0.5) * inv_s)
    return ((prev - nxt + 1e-5) / (prev + 1e-5)).clamp(0.0, 1.0)


def _transmittance(alpha: torch.Tensor) -> torch.Tensor:
    ones = torch.ones_like(alpha[..., :1])
    return torch.cumprod(torch.cat([ones, 1.0 - alpha + 1e-7], -1), -1)[..., :-1]


def sample_pdf(bins: torch.Tensor, weights: torch.Tensor, n: int) -> torch.Tensor:
    """Deterministic inverse-CDF sampling (NeRF's hierarchical sampling, Mildenhall et al. 2020).

    bins (R, S), weights (R, S-1) -> (R, n) new depths.
    """
    w = weights + 1e-5
    pdf = w / w.sum(-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[..., :1]), torch.cumsum(pdf, -1)], -1)
    u = torch.linspace(0.5 / n, 1.0 - 0.5 / n, n, device=bins.device).expand(cdf.shape[0], n)
    u = u.contiguous()
    idx = torch.searchsorted(cdf, u, right=True)
    below = (idx - 1).clamp_min(0)
    above = idx.clamp_max(cdf.shape[-1] - 1)
    cdf_b, cdf_a = cdf.gather(1, below), cdf.gather(1, above)
    bin_b, bin_a = bins.gather(1, below), bins.gather(1, above)
    denom = torch.where(cdf_a - cdf_b < 1e-5, torch.ones_like(cdf_a), cdf_a - cdf_b)
    return bin_b + (u - cdf_b) / denom * (bin_a - bin_b)


@torch.no_grad()
def upsample(sdf_fn, o: torch.Tensor, d: torch.Tensor, z: torch.Tensor, n_importance: int,
             steps: int = 2, base_s: float = 64.0) -> torch.Tensor:
    """NeuS's hierarchical up-sampling with fixed sharpness ``base_s * 2^i`` (Wang et al. 2021,
    Sec. 3.4), using the blended two-SDF opacity. Returns the sorted merged depths
    (R, S + n_importance).

    Args:
        sdf_fn: callable (M, 3) -> (M, 2) SDF values (hair, bust), normalised units.
        o, d: (R, 3) ray origins and unit directions. z: (R, S) sorted sample depths.
    """
    R = z.shape[0]
    pts = o[:, None] + d[:, None] * z[..., None]
    sdf = sdf_fn(pts.reshape(-1, 3)).reshape(R, -1, 2)
    per = max(1, n_importance // steps)
    for i in range(steps):
        k = per if i < steps - 1 else n_importance - per * (steps - 1)
        if k <= 0:
            break
        dz = z[:, 1:] - z[:, :-1]
        alphas = []
        for c in range(2):
            f = sdf[..., c]
            mid = 0.5 * (f[:, 1:] + f[:, :-1])
            cos = (f[:, 1:] - f[:, :-1]) / (dz + 1e-5)
            prev_cos = torch.cat([torch.zeros_like(cos[:, :1]), cos[:, :-1]], -1)
            cos = torch.minimum(cos, prev_cos).clamp(-1e3, 0.0)
            alphas.append(neus_alpha(mid, cos, dz, torch.tensor(base_s * 2 ** i)))
        alpha = (alphas[0] + alphas[1]).clamp(max=1.0)
        w = alpha * _transmittance(alpha)
        new_z = sample_pdf(z, w, k)
        new_pts = o[:, None] + d[:, None] * new_z[..., None]
        new_sdf = sdf_fn(new_pts.reshape(-1, 3)).reshape(R, k, 2)
        z, order = torch.sort(torch.cat([z, new_z], -1), -1)
        sdf = torch.cat([sdf, new_sdf], 1).gather(1, order[..., None].expand(-1, -1, 2))
    return z


def stratified(near: torch.Tensor, far: torch.Tensor, n: int, jitter: bool,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """(R,) near/far -> (R, n) sorted depths, one per equal bin (random within it if jitter;
    drawn on the CPU from ``generator`` when given, so CPU and CUDA runs see the same numbers)."""
    t = torch.arange(n, device=near.device, dtype=near.dtype)
    off = torch.rand(near.shape[0], n, generator=generator).to(near.device) if jitter else torch.full(
        (near.shape[0], n), 0.5, device=near.device)
    return near[:, None] + (far - near)[:, None] * (t + off) / n


def render_rays(fields, o: torch.Tensor, d: torch.Tensor, near: torch.Tensor, far: torch.Tensor,
                n_samples: int = 32, n_importance: int = 32, jitter: bool = True,
                cos_anneal: float = 1.0, with_color: bool = True,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Two-SDF NeuS volume rendering of rays that hit the box.

    Args:
        fields: a :class:`~engine.coarse.fields.CoarseFields` (or any object with ``sdf``,
            ``query``, ``inv_s``, ``color_from_feat``).
        o, d: (R, 3) origins and unit directions, normalised box coordinates.
        near, far: (R,) depth interval inside the box.
        n_samples: stratified samples per ray; n_importance: NeuS up-sampled samples per ray.
        cos_anneal: NeuS's cosine annealing ratio in [0, 1] (1 = exact estimate).
        generator: CPU generator for the jitter (None: the global one on the rays' device).
    Returns:
        dict: ``color`` (R, 3), ``mask_hair`` (R,), ``mask_bust`` (R,), ``depth_hair`` (R,) the
        expected depth of the hair surface (normalised units; 0 where no hair weight),
        ``weight_hair`` (R,) = mask_hair, ``normal`` (R, 3) weighted unit normal of the union,
        ``grad`` (R*S, 2, 3) SDF gradients at all samples (for the eikonal term), ``z`` (R, S).
    """
    z = stratified(near, far, n_samples, jitter, generator)
    if n_importance > 0:
        z = upsample(lambda p: fields.sdf(p), o, d, z, n_importance)
    R, S = z.shape
    dz = z[:, 1:] - z[:, :-1]
    last = ((far - near) / n_samples)[:, None]
    dists = torch.cat([dz, last], -1)
    mid = z + 0.5 * dists
    pts = (o[:, None] + d[:, None] * mid[..., None]).reshape(-1, 3)
    q = fields.query(pts)
    sdf = q["sdf"].reshape(R, S, 2)
    grad = q["grad"].reshape(R, S, 2, 3)
    true_cos = (grad * d[:, None, None, :]).sum(-1)  # (R, S, 2)
    iter_cos = -(F.relu(-true_cos * 0.5 + 0.5) * (1.0 - cos_anneal) + F.relu(-true_cos) * cos_anneal)
    inv_s = fields.inv_s()
    a = neus_alpha(sdf, iter_cos, dists[..., None], inv_s)  # (R, S, 2)
    alpha = (a[..., 0] + a[..., 1]).clamp(max=1.0)
    T = _transmittance(alpha)
    w_h = T * a[..., 0]
    w_b = T * a[..., 1]
    w = T * alpha
    normals = F.normalize(grad, dim=-1, eps=1e-8)
    share = a[..., 0] / (a[..., 0] + a[..., 1] + 1e-8)
    n_blend = F.normalize(share[..., None] * normals[..., 0, :]
                          + (1 - share[..., None]) * normals[..., 1, :], dim=-1, eps=1e-8)
    out = {"mask_hair": w_h.sum(-1), "mask_bust": w_b.sum(-1), "z": z,
           "grad": q["grad"], "normal": (w[..., None] * n_blend).sum(1)}
    wh = w_h.sum(-1)
    out["depth_hair"] = (w_h * mid).sum(-1) / wh.clamp_min(1e-6)
    out["weight_hair"] = wh
    out["depth"] = (w * mid).sum(-1) / w.sum(-1).clamp_min(1e-6)
    if with_color:
        view = d[:, None].expand(R, S, 3).reshape(-1, 3)
        col = fields.color_from_feat(q["feat"], view, n_blend.reshape(-1, 3)).reshape(R, S, 3)
        out["color"] = (w[..., None] * col).sum(1)
    return out
