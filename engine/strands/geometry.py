"""Geometry side of the fine strand stage: the coarse volume as fast lookup grids, the fitted
scalp, and the geometry losses of Neural Haircut (Sec. 3.3, "Geometry losses").

All positions are metres in the head frame. The losses measure distances in centimetres
(``CM`` = 100 per metre) so that their magnitudes are O(1) for errors of a few millimetres.

* ``L_vol = mean over strand points p of relu(f_hair(p))^2``: strands stay inside the hair volume.
* ``L_chm``: chamfer from K points sampled on the visible coarse hair surface to their nearest
  strand points (squared distances, mean): strands fill the volume out to its surface.
* ``L_orient = mean over strand points near the hair surface (|f_hair| < delta) of
  1 - |b . beta(p)|`` with ``b`` the unit segment direction and ``beta`` the coarse 3D orientation
  field (unsigned). ``beta`` is stored as the structure tensor ``beta beta^T`` so that trilinear
  interpolation of an unsigned direction is well defined; ``|b . beta| = sqrt(b^T M b)``.
  With ``orient_sign`` (the default) the field is signed towards the growth side (outward from
  the head and down) where it runs along that side (:func:`orientation_loss`).
* ``L_bust`` (our addition): ``mean relu(-f_bust(p))^2`` over non-root points, strands do not
  enter the head.
* ``L_kink`` (our addition): ``mean relu(-b_l . b_{l+1})^2`` over consecutive unit segment
  directions ``b_l`` of each strand: no turn sharper than 90 degrees. The tightest curls of the
  strand VAE's training grooms turn by about 55 degrees per segment, and decoded random latents
  give 0.002; without this term the other losses pushed latents where the decoder crumples
  strands into zigzags (0.05; benchmark 2026-12-02: 99.8 % of the strands kinked, arc length
  4.8x the root-to-tip distance, on a Blender-rendered orbit).
* ``L_fold`` (our addition): ``mean relu(-c_k . c_j)^2`` for ``j = k + 1, k + 2`` over the unit
  chords ``c_k = normalize(p_{(k+1)w} - p_{kw})``, ``w`` a fifth of the strand: a strand does not
  come back the way it went (the U-turn of :func:`engine.metrics.fold_points`; a chord
  of a fifth of a strand spans a curl's period, so curls are not penalised). The coarse
  orientation field is unsigned, so L_orient alone is as happy with a strand that follows it
  out and back.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from engine.head.model import sample_mesh

CM = 100.0  # loss unit: centimetres per metre


class HairVolume:
    """The coarse stage's hair SDF, bust SDF and orientation field sampled on a regular grid.

    Args:
        query: :class:`engine.coarse.export.CoarseFieldQuery` (metres, head frame).
        resolution: grid points per side over the coarse box.
        chunk: points per field evaluation.
    """

    def __init__(self, query, resolution: int = 96, chunk: int = 65536):
        dev = query.device
        self.centre = query.centre.float()
        self.scale = float(query.scale)
        lin = torch.linspace(-1.0, 1.0, resolution, device=dev)
        zz, yy, xx = torch.meshgrid(lin, lin, lin, indexing="ij")  # volume index [z, y, x]
        u = torch.stack([xx, yy, zz], -1).reshape(-1, 3)
        chans = []
        with torch.no_grad():
            for i in range(0, len(u), chunk):
                x = u[i:i + chunk] * self.scale + self.centre
                fh, fb, beta = query.sdf_hair(x), query.sdf_bust(x), query.orientation(x)
                beta = F.normalize(beta, dim=-1)
                m = beta[:, :, None] * beta[:, None, :]
                chans.append(torch.cat([fh[:, None], fb[:, None],
                                        m[:, [0, 0, 0, 1, 1, 2], [0, 1, 2, 1, 2, 2]]], 1))
        vol = torch.cat(chans).T.reshape(8, resolution, resolution, resolution)
        self.grid = vol[None].contiguous()  # (1, 8, D, H, W)
        self.resolution = resolution

    def lookup(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Trilinear lookup at points x (N, 3) metres.

        Returns dict with ``f_hair`` (N,), ``f_bust`` (N,) signed distances in metres (the
        distance to the box is added outside it, so gradients point back in) and ``M`` (N, 3, 3)
        the orientation structure tensor; all differentiable in ``x``.
        """
        u = (x - self.centre) / self.scale
        g = F.grid_sample(self.grid, u.view(1, 1, 1, -1, 3), mode="bilinear",
                          padding_mode="border", align_corners=True)[0, :, 0, 0].T  # (N, 8)
        outside = (u.abs() - 1).clamp(min=0).norm(dim=-1) * self.scale
        m = g[:, 2:]
        M = torch.stack([m[:, 0], m[:, 1], m[:, 2], m[:, 1], m[:, 3], m[:, 4],
                         m[:, 2], m[:, 4], m[:, 5]], -1).view(-1, 3, 3)
        return {"f_hair": g[:, 0] + outside, "f_bust": g[:, 1] + outside, "M": M}


def volume_loss(look: dict, skip: int) -> torch.Tensor:
    """L_vol over points (N, L) after the first ``skip`` of each strand (cm^2)."""
    f = look["f_hair"][:, skip:] * CM
    return F.relu(f).square().mean()


def bust_loss(look: dict, skip: int) -> torch.Tensor:
    """L_bust: squared depth inside the bust of points after the first ``skip`` (cm^2)."""
    f = look["f_bust"][:, skip:] * CM
    return F.relu(-f).square().mean()


def bounded_turn(points: torch.Tensor, max_turn_deg: float) -> torch.Tensor:
    """Strands re-integrated with uniform spacing and no turn sharper than ``max_turn_deg``.

    points: (N, L, 3) float metres, any frame, root first; max_turn_deg in (0, 180]. Returns
    (N, L, 3), same dtype and device: the same root and arc length; segment ``l`` has length arc / (L - 1) and its direction is the decoded
    segment's, rotated towards the previous output segment until the turn between them is at
    most ``max_turn_deg`` (``t_l = cos a t_{l-1} + sin a n`` with ``n`` the unit part of the
    decoded direction normal to ``t_{l-1}``). A decoded strand that reverses (a kink: PCA
    decoders bunch points and step back where latents leave the training set) becomes a smooth
    bend; one that goes back over centimetres still does (the fold metric's U-turn).
    Differentiable; sequential over the L - 1 segments. Raises nothing. Ours (not in Neural
    Haircut).
    """
    seg = points[:, 1:] - points[:, :-1]
    length = seg.norm(dim=-1)  # (N, L-1)
    h = length.sum(1, keepdim=True) / seg.shape[1]  # (N, 1)
    eps = 1e-12
    d = seg / length.clamp_min(eps)[..., None]
    ok = length > eps  # a zero-length decoded segment carries straight on
    chord = F.normalize(points[:, -1] - points[:, 0], dim=-1, eps=eps)
    ca, sa = math.cos(math.radians(max_turn_deg)), math.sin(math.radians(max_turn_deg))
    out = [torch.where(ok[:, :1], d[:, 0], chord)]
    for l in range(1, d.shape[1]):
        prev = out[-1]
        cur = torch.where(ok[:, l:l + 1], d[:, l], prev)
        c = (prev * cur).sum(-1, keepdim=True)
        perp = cur - c * prev
        pn = perp.norm(dim=-1, keepdim=True)
        bent = ca * prev + sa * perp / pn.clamp_min(eps)
        bent = torch.where(pn > 1e-9, bent, prev)  # an exact reversal: no plane to bend in
        out.append(torch.where(c >= ca, cur, bent))
    t = torch.stack(out, 1)
    return torch.cat([points[:, :1], points[:, :1] + torch.cumsum(t * h[..., None], 1)], 1)


def kink_loss(points: torch.Tensor) -> torch.Tensor:
    """L_kink (module docstring) of strands (N, L, 3) metres; dimensionless, in [0, 1]."""
    b = F.normalize(points[:, 1:] - points[:, :-1], dim=-1)
    return F.relu(-(b[:, :-1] * b[:, 1:]).sum(-1)).square().mean()


def fold_loss(points: torch.Tensor, parts: int = 5) -> torch.Tensor:
    """L_fold (module docstring) of strands (N, L, 3) metres; dimensionless, in [0, 1]."""
    idx = torch.linspace(0, points.shape[1] - 1, parts + 1).round().long().to(points.device)
    c = F.normalize(points[:, idx[1:]] - points[:, idx[:-1]], dim=-1)  # (N, parts, 3)
    # the next chord and the one after (a turn centred on a chord leaves that chord sideways)
    near = torch.cat([(c[:, :-1] * c[:, 1:]).sum(-1), (c[:, :-2] * c[:, 2:]).sum(-1)], 1)
    return F.relu(-near).square().mean()


def growth_directions(points: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """The side hair grows towards at points (..., 3) metres, head frame (+Y up): the unit
    sum of the outward direction from ``centre`` (3,) and straight down. Hair leaves the scalp
    outwards and falls; this picks the sign of the coarse stage's unsigned orientation field
    (:func:`orientation_loss`). Returns (..., 3), same dtype and device. Ours."""
    down = torch.tensor([0.0, -1.0, 0.0], device=points.device, dtype=points.dtype)
    return F.normalize(F.normalize(points - centre, dim=-1) + down, dim=-1)


def orientation_loss(points: torch.Tensor, look: dict, delta: float,
                     growth_centre: torch.Tensor | None = None) -> torch.Tensor:
    """L_orient on strands (N, L, 3) metres at segment starts within ``delta`` metres of the hair
    surface and outside the bust; ``look`` holds lookups at the points, shaped (N, L).

    Without ``growth_centre`` the loss is the paper's unsigned ``1 - |b . beta|``. With it
    ((3,) metres, the head centre) the field's direction is signed towards the growth side
    (:func:`growth_directions` g): ``beta_s = normalize(M g)`` (M = beta beta^T, so
    ``M g = (beta . g) beta``), and the loss is ``w (1 - b . beta_s) + (1 - w) (1 - |b . beta|)``
    with ``w = |beta . g|`` (no sign where the field runs across g); ``beta_s`` and ``w`` are
    taken without gradient, so the signed part moves the segment directions only, not where the
    points sit in the field. A strand can then no longer
    satisfy the loss by running back along the field: the hairpin accordions of
    docs/strands.md (5-10 reversals per strand with the unsigned loss) have every other leg
    wrong. Ours (not in Neural Haircut)."""
    b = F.normalize(points[:, 1:] - points[:, :-1], dim=-1)  # (N, L-1, 3)
    M = look["M"][:, :-1]
    near = (look["f_hair"][:, :-1].abs() < delta) & (look["f_bust"][:, :-1] > 0)
    if not bool(near.any()):
        return points.sum() * 0.0
    proj = torch.einsum("nli,nlij,nlj->nl", b, M, b).clamp(min=1e-8).sqrt()
    if growth_centre is None:
        return (1 - proj)[near.detach()].mean()
    g = growth_directions(points[:, :-1], growth_centre)
    mg = torch.einsum("nlij,nlj->nli", M, g).detach()
    w = mg.norm(dim=-1).clamp(max=1.0)
    signed = (b * F.normalize(mg, dim=-1)).sum(-1)
    return (w * (1 - signed) + (1 - w) * (1 - proj))[near.detach()].mean()


def chamfer_loss(surface: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """L_chm: mean squared distance (cm^2) from surface samples (K, 3) to their nearest points
    among ``points`` (M, 3); the nearest neighbours are found without gradient (KD-tree) and the
    distances are differentiable in ``points``."""
    from scipy.spatial import cKDTree

    with torch.no_grad():
        tree = cKDTree(points.detach().cpu().numpy())
        _, idx = tree.query(surface.detach().cpu().numpy(), k=1)
    near = points[torch.as_tensor(idx, device=points.device)]
    return ((near - surface) * CM).square().sum(-1).mean()


def sample_visible_surface(vertices: np.ndarray, faces: np.ndarray, volume: HairVolume, n: int,
                           min_bust: float = 0.003, seed: int = 0) -> np.ndarray:
    """Area-uniform points (<= n, 3) float32 on the coarse hair mesh, keeping only those at least
    ``min_bust`` metres outside the bust (the hair surface a camera can see, not the part that
    meets the scalp)."""
    if len(faces) == 0:
        return np.zeros((0, 3), np.float32)
    p, _ = sample_mesh(vertices, faces, 3 * n, seed)
    with torch.no_grad():
        look = volume.lookup(torch.from_numpy(p).to(volume.centre.device))
    keep = (look["f_bust"] > min_bust).cpu().numpy()
    return p[keep][:n]
