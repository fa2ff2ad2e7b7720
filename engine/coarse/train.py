"""Fitting the coarse fields to a capture (Neural Haircut's coarse volumetric reconstruction).

:class:`CoarseData` holds the training views (images, hair/bust masks, 2D orientation maps,
cameras) plus points on the fitted head mesh; :class:`CoarseTrainer` runs one optimisation step at
a time with

``L = L_color + lambda_mask L_mask + lambda_reg L_reg + lambda_head L_head + lambda_dir L_dir
      + lambda_tangent L_tan + lambda_tv L_tv``

* ``L_color``: L1 between rendered colour and the image composited on black with the foreground
  (hair or bust) mask.
* ``L_mask``: BCE of the rendered hair and bust opacities against the masks.
* ``L_reg``: eikonal term on both SDFs at the ray samples and at uniform points in the box.
* ``L_head``: ``|f_bust| + 0.1 (1 - cos)`` on points of the fitted head mesh.
* ``L_dir`` (Neural Haircut eq. 4): at ``x_s``, the expected hair-surface point of each ray whose
  pixel is hair, the direction ``beta(x_s)`` is projected exactly into that view
  (:func:`~engine.coarse.losses.project_direction_angle`) and compared with the 2D orientation
  map: ``sum_v w_v min(|a_v - a_hat_v|, |a_v - a_hat_v +- pi|) / sum_v w_v`` with
  ``w_v = m_hair(v) * c_v / mean(c)`` where ``c`` is the orientation map's confidence, which
  plays the role of the paper's ``1 / Var^2[a_v]`` (normalised so the weights average one over
  the hair pixels). ``x_s`` is detached: this term trains ``beta`` only.
* ``L_tan`` (our addition, small weight): ``(beta(x_s) . n_hair(x_s))^2``, hair grows tangent to
  the hair surface. A single view constrains beta to the plane through the viewing ray; with the
  tangent plane this fixes beta wherever a surface point is seen by few views.
* ``L_tv``: total variation of the tri-plane features (K-Planes, Fridovich-Keil et al. 2023).

Rays that leave the box below the lowest point of the head mesh (the end of the neck; the torso
continues below and beside the box) get no colour or bust-mask loss where the bust mask is on,
since the surface they see may lie outside the box.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from engine.coarse import losses as L
from engine.coarse.fields import CoarseFields, FieldSpec
from engine.coarse.render import CameraSet, pixel_rays, ray_box, render_rays
from engine.errors import InputError
from engine.pipeline import option


@dataclass(frozen=True)
class CoarseConfig:
    """Options of the coarse stage (the defaults are the standard preset)."""

    iterations: int = option(3000, "optimisation steps", range=(1, 200000))
    rays_per_batch: int = option(512, "rays per step", range=(16, 65536))
    n_samples: int = option(32, "stratified samples per ray", range=(4, 512))
    n_importance: int = option(32, "NeuS importance samples per ray", range=(0, 512))
    image_size: int = option(256, "training image size (longer side)", unit="px",
                             range=(32, 4096))
    plane_resolutions: tuple = option((32, 128), "tri-plane resolutions, cells per side")
    plane_channels: int = option(8, "feature channels per plane", range=(1, 64))
    hidden: int = option(64, "MLP width", range=(8, 512))
    lr_grid: float = option(2e-2, "learning rate of the tri-plane features", range=(1e-6, 1.0))
    lr_mlp: float = option(2e-3, "learning rate of the MLP heads", range=(1e-6, 1.0))
    lambda_mask: float = option(0.5, "weight of the mask BCE", range=(0.0, 100.0))
    lambda_reg: float = option(0.1, "weight of the eikonal term", range=(0.0, 100.0))
    lambda_head: float = option(1.0, "weight of the head-mesh term", range=(0.0, 100.0))
    lambda_dir: float = option(0.1, "weight of the orientation term", range=(0.0, 100.0))
    lambda_tangent: float = option(0.05, "weight of beta's tangency to the hair surface",
                                   range=(0.0, 100.0))
    lambda_tv: float = option(0.01, "weight of the tri-plane total variation",
                              range=(0.0, 100.0))
    box_margin: float = option(1.5, "box half-size over the head mesh's half-extent",
                               range=(1.0, 4.0))
    hair_margin: float = option(0.06, "initial hair sphere radius over the bust sphere's",
                                unit="box units", range=(0.0, 1.0))
    foreground_fraction: float = option(0.6, "share of rays drawn inside the dilated masks",
                                        range=(0.0, 1.0))
    mesh_resolution: int = option(128, "marching-cubes grid size", range=(16, 1024))
    seed: int = option(0, "random seed", range=(0, 2**31 - 1))
    preview_every: int = option(250, "steps between preview events", range=(1, 1000000),
                                affects_output=False)
    min_scalp_hair_pct: float = option(
        20.0, "least share of the scalp the views see that the hair masks must cover; below "
        "it the head counts as bald or shaved and no groom is made (0: no check)", unit="%",
        range=(0.0, 100.0), affects_output=False)
    min_hair_extent_mm: float = option(
        3.0, "least distance the hair must stand off the head in the views' silhouettes; "
        "below it the head counts as shaved and no groom is made (0: no check)", unit="mm",
        range=(0.0, 1000.0), affects_output=False)


@dataclass
class CoarseData:
    """Training data on one device.

    Attributes:
        images: (V, H, W, 3) float32 RGB in [0, 1].
        hair, bust: (V, H, W) float32 masks in [0, 1].
        angle: (V, H, W) float32 orientation radians in [0, pi), CCW from image +x.
        confidence: (V, H, W) float32 orientation confidence (0 outside hair).
        cams: cameras for (H, W) images, head frame metres.
        head_points, head_normals: (P, 3) float32 points on the fitted head mesh (metres, head
            frame) and unit outward normals.
        centre: (3,) float32 box centre, metres. scale: box half-size, metres.
    """

    images: torch.Tensor
    hair: torch.Tensor
    bust: torch.Tensor
    angle: torch.Tensor
    confidence: torch.Tensor
    cams: CameraSet
    head_points: torch.Tensor
    head_normals: torch.Tensor
    centre: torch.Tensor
    scale: float

    def to(self, device) -> "CoarseData":
        return CoarseData(self.images.to(device), self.hair.to(device), self.bust.to(device),
                          self.angle.to(device), self.confidence.to(device),
                          self.cams.to(device), self.head_points.to(device),
                          self.head_normals.to(device), self.centre.to(device), self.scale)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.hair.shape)  # type: ignore[return-value]


def box_from_points(points: np.ndarray, margin: float) -> tuple[np.ndarray, float]:
    """Cube around head-mesh points: centre (3,) metres and half-size ``margin * max half-extent``."""
    lo, hi = points.min(0), points.max(0)
    return ((lo + hi) / 2).astype(np.float32), float(margin * (hi - lo).max() / 2)


def _dilate(mask: torch.Tensor, r: int) -> torch.Tensor:
    return F.max_pool2d(mask[:, None], 2 * r + 1, stride=1, padding=r)[:, 0]


class CoarseTrainer:
    """One Adam step at a time on :class:`CoarseData` (see the module docstring for the loss)."""

    def __init__(self, data: CoarseData, cfg: CoarseConfig, device: str = "cpu") -> None:
        self.cfg = cfg
        self.device = torch.device(device)
        self.data = data.to(self.device)
        self.gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        hp_u = (self.data.head_points - self.data.centre) / self.data.scale
        c = hp_u.mean(0)
        r = float((hp_u - c).norm(dim=-1).median())
        cc = tuple(float(v) for v in c.cpu())
        self.spec = FieldSpec(resolutions=tuple(int(r_) for r_ in cfg.plane_resolutions),
                              channels=cfg.plane_channels, hidden=cfg.hidden, bust_centre=cc,
                              bust_radius=r, hair_centre=cc, hair_radius=r + cfg.hair_margin)
        self.fields = CoarseFields(self.spec).to(self.device)
        grid = list(self.fields.encoder.parameters())
        ids = {id(p) for p in grid}
        rest = [p for p in self.fields.parameters() if id(p) not in ids]
        self.opt = torch.optim.Adam([{"params": grid, "lr": cfg.lr_grid},
                                     {"params": rest, "lr": cfg.lr_mlp}], betas=(0.9, 0.99),
                                    eps=1e-15)
        self.base_lr = [cfg.lr_grid, cfg.lr_mlp]
        self.step_count = 0
        self.y_cut = float(hp_u[:, 1].min())
        self._prepare_sampling()
        V, H, W = self.data.shape
        conf = self.data.confidence * (self.data.hair > 0.5)
        self.conf_norm = float(conf[conf > 0].mean()) if bool((conf > 0).any()) else 1.0

    # -- ray sampling ---------------------------------------------------------------------------
    def _prepare_sampling(self) -> None:
        d = self.data
        V, H, W = d.shape
        fg = _dilate(torch.maximum(d.hair, d.bust).float(), max(1, W // 64)) > 0.5
        hit = torch.zeros(V, H, W, dtype=torch.bool, device=self.device)
        ys, xs = torch.meshgrid(torch.arange(H, device=self.device),
                                torch.arange(W, device=self.device), indexing="ij")
        for v in range(V):
            o, dirs = pixel_rays(d.cams, torch.full((H * W,), v, device=self.device),
                                 xs.reshape(-1).float(), ys.reshape(-1).float(), d.centre, d.scale)
            hit[v] = ray_box(o, dirs)[2].reshape(H, W)
        self.fg_index = torch.nonzero((fg & hit).reshape(-1))[:, 0].cpu()
        self.all_index = torch.nonzero(hit.reshape(-1))[:, 0].cpu()
        if self.all_index.numel() == 0:
            raise InputError("coarse stage: no camera ray meets the head box; cameras or head "
                             "frame are wrong")

    def sample_rays(self, n: int) -> torch.Tensor:
        """(n,) flat pixel indices into (V, H, W), a share from the dilated foreground."""
        n_fg = int(round(n * self.cfg.foreground_fraction)) if self.fg_index.numel() else 0
        a = self.fg_index[torch.randint(self.fg_index.numel(), (n_fg,), generator=self.gen)] \
            if n_fg else torch.empty(0, dtype=torch.long)
        b = self.all_index[torch.randint(self.all_index.numel(), (n - n_fg,), generator=self.gen)]
        return torch.cat([a, b]).to(self.device)

    def rays_for(self, flat: torch.Tensor):
        V, H, W = self.data.shape
        v = flat // (H * W)
        rem = flat % (H * W)
        py, px = rem // W, rem % W
        o, d = pixel_rays(self.data.cams, v, px.float(), py.float(), self.data.centre,
                          self.data.scale)
        near, far, hit, exit_face = ray_box(o, d)
        return v, py, px, o, d, near, far, exit_face

    # -- schedule -------------------------------------------------------------------------------
    def _set_lr(self) -> float:
        it, n = self.step_count, max(1, self.cfg.iterations)
        warm = min(1.0, (it + 1) / max(1, min(100, n // 10)))
        decay = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, it / n)))
        for g, lr in zip(self.opt.param_groups, self.base_lr):
            g["lr"] = lr * warm * decay
        return warm * decay

    def cos_anneal(self) -> float:
        return min(1.0, self.step_count / max(1.0, 0.25 * self.cfg.iterations))

    # -- one step -------------------------------------------------------------------------------
    def step(self) -> dict[str, float]:
        """One optimisation step; returns the loss terms (floats) and ``inv_s``."""
        cfg, d = self.cfg, self.data
        self._set_lr()
        flat = self.sample_rays(cfg.rays_per_batch)
        v, py, px, o, dirs, near, far, exit_face = self.rays_for(flat)
        out = render_rays(self.fields, o, dirs, near, far, cfg.n_samples, cfg.n_importance,
                          jitter=True, cos_anneal=self.cos_anneal(), generator=self.gen)
        hair_t = d.hair[v, py, px]
        bust_t = d.bust[v, py, px]
        fg_t = torch.maximum(hair_t, bust_t)
        rgb_t = d.images[v, py, px] * fg_t[:, None]
        # rays that leave the box below the neck end may see the torso outside the box
        exit_y = o[:, 1] + dirs[:, 1] * far
        below = (exit_y < self.y_cut) & (bust_t > 0.5)
        keep = (~below).float()
        l_color = (keep[:, None] * (out["color"] - rgb_t).abs()).sum() / (3 * keep.sum() + 1e-6)
        l_mask = L.mask_bce(out["mask_hair"], hair_t) + L.mask_bce(out["mask_bust"], bust_t, keep)
        # eikonal at ray samples and at uniform points of the box
        n_eik = max(64, cfg.rays_per_batch // 2)
        u_rand = torch.rand(n_eik, 3, generator=self.gen).to(self.device) * 2 - 1
        _, g_rand = self.fields.sdf_grad(u_rand)
        l_reg = 0.5 * (L.eikonal(out["grad"]) + L.eikonal(g_rand))
        # head mesh
        n_head = max(64, cfg.rays_per_batch // 2)
        idx = torch.randint(d.head_points.shape[0], (n_head,), generator=self.gen).to(self.device)
        hu = (d.head_points[idx] - d.centre) / d.scale
        s_head, g_head = self.fields.sdf_grad(hu)
        l_head = L.head_loss(s_head[:, 1], g_head[:, 1], d.head_normals[idx])
        # orientation at the expected hair surface point
        conf = d.confidence[v, py, px]
        sel = (hair_t > 0.5) & (conf > 0) & (out["weight_hair"] > 0.5)
        l_dir = torch.zeros((), device=self.device)
        l_tan = torch.zeros((), device=self.device)
        if bool(sel.any()):
            xs_u = (o[sel] + dirs[sel] * out["depth_hair"][sel, None]).detach()
            q = self.fields.query(xs_u)
            beta = self.fields.orientation_from_feat(q["feat"])
            xs = xs_u * d.scale + d.centre
            vs = v[sel]
            ang = L.project_direction_angle(xs, beta, d.cams.K[vs], d.cams.R[vs], d.cams.t[vs])
            w = conf[sel] / self.conf_norm * hair_t[sel]
            l_dir = L.direction_loss(ang, d.angle[v[sel], py[sel], px[sel]], w)
            n_h = F.normalize(q["grad"][:, 0].detach(), dim=-1, eps=1e-8)
            l_tan = ((beta * n_h).sum(-1) ** 2).mean()
        l_tv = self.fields.encoder.tv_loss()
        total = (l_color + cfg.lambda_mask * l_mask + cfg.lambda_reg * l_reg
                 + cfg.lambda_head * l_head + cfg.lambda_dir * l_dir
                 + cfg.lambda_tangent * l_tan + cfg.lambda_tv * l_tv)
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        self.opt.step()
        self.step_count += 1
        terms = {"total": total, "color": l_color, "mask": l_mask, "eikonal": l_reg,
                 "head": l_head, "dir": l_dir, "tangent": l_tan, "tv": l_tv,
                 "inv_s": self.fields.inv_s()}
        return {k: float(v.detach()) for k, v in terms.items()}

    def run(self, n: int | None = None):
        """Generator: run ``n`` (default ``cfg.iterations``) steps, yielding (step, losses)."""
        for _ in range(self.cfg.iterations if n is None else n):
            losses = self.step()
            yield self.step_count, losses


def iterations_per_second(trainer: CoarseTrainer, n: int = 20, warmup: int = 3) -> float:
    """Measured optimisation steps per second of ``trainer`` (after ``warmup`` steps)."""
    for _ in range(warmup):
        trainer.step()
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        trainer.step()
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)
