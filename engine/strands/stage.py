"""The ``strands`` stage: fine strand-based reconstruction (Neural Haircut, Sec. 3.3).

A geometry texture ``T`` over scalp UV (:class:`~engine.strands.texture.GeometryTexture`, predicted
by a U-Net from a constant grid) holds a strand latent and an appearance descriptor per texel.
Each step samples roots on the fitted scalp, reads their latents from ``T`` (bilinear), decodes
strands with the frozen strand VAE (:mod:`engine.prior.vae`) in the root's local frame, with
``max_turn_deg`` > 0 (off by default) bounds their turns
(:func:`engine.strands.geometry.bounded_turn`: uniform spacing, no turn between segments sharper
than the cap; the VAE's position decoder crumples strands whose latents leave its training set),
moves them to the head frame, and minimises

``L = L_vol + lambda_chm L_chm + lambda_orient L_orient + lambda_bust L_bust
      + lambda_kink L_kink + lambda_fold L_fold + lambda_latent L_latent
      + lambda_render (L_rgb + lambda_mask L_mask) + lambda_prior L_prior``

where ``L_latent = mean(z^2)`` over the texture's latent channels is the VAE's Gaussian prior
N(0, I) on the strand latents (the KL term's mean part; keeps the fit where the decoder was
trained: without it the fitted latents reach norms of 45 against about 8 for N(0, I) in 64
dimensions).

with the geometry losses of :mod:`engine.strands.geometry` against the coarse stage's volume
(``L_orient`` signed towards the growth side by default, ``orient_sign``: with the paper's
unsigned loss 80-100 % of the strands folded into hairpin accordions, docs/strands.md), the
rendering losses of :mod:`engine.strands.render` (soft rasteriser + neural renderer) on a random
training view, and the score-distillation loss of the texture diffusion model
(:meth:`engine.prior.diffusion.TextureDiffusion.prior_loss`) on ``T``'s latent channels.
Setting a weight to 0 switches its term off (the ablations of the benchmark).

The final groom: ``dense_strands`` roots sampled uniformly over the scalp UV disc, latents
interpolated from ``T``, decoded (``L`` = 100 points); strands with more than
``max_outside`` of their points farther than ``outside_tolerance_mm`` outside the hair volume,
or more than 10 % of their points deeper than that inside the bust (``MAX_IN_BUST``), are
dropped (the first ``ROOT_SKIP`` points, at the scalp, are not counted). The others are cut
(:func:`engine.strands.trim.trim_strands`) before their first point in front of the face below
the brow line where the hair masks show no hair (:class:`FaceGuard`, ``cut_at_face``) and
before their first point that the training views saw off the hair masks
(:class:`SilhouetteGuard`, ``cut_outside_masks``); both on by default (on d10 they cleared a
curtain of strands over the face, on the Blender straight orbit a skirt of strands over the
shoulders; docs/strands.md). With ``trim`` backward jitter steps are removed too and each
strand is also cut at its first fold. Strands still wrong after three rounds or shorter than
``min_length_mm`` are dropped. Strands that no training view saw (fewer than a quarter of
their points seen, :meth:`SilhouetteGuard.seen`; the back of a head filmed from the front) are
not kept as fitted, since only the coarse volume holds them there: with ``complete_unseen`` (on
by default) their roots get the shapes of trimmed, unfolded seen strands nearby, carried in the
scalp's growth frame (:mod:`engine.strands.complete`), cut by the same guards and where they
enter the bust (on d3 and d10 the bald back went from 19-22 % to 4-7 %; docs/strands.md).
(Cutting at the first point outside the hair
volume was tried and left 33-57 % of the scalp bald on a Blender orbit: the coarse volume
misses much of the true hair near the roots, see docs/strands.md.)

Inputs: ``keyframes``, ``masks``, ``cameras`` (``cameras.json``, ``head.obj``), ``coarse``
(fields, ``hair_mesh.ply``), and ``orientation`` (only through the coarse field).
Outputs (stage folder): ``groom.npz`` (:class:`engine.io.groom.Groom` with the fitted head),
``texture.safetensors`` (T, latent + appearance channels), ``losses.json``, ``strands.json``
(timings, counts), ``previews/*.png``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from scipy.spatial import cKDTree

from engine.coarse.data import load_capture_data
from engine.coarse.export import load_coarse_fields
from engine.coarse.render import CameraSet
from engine.errors import ConfigError, InputError
from engine.head.model import load_head_mesh, load_head_model
from engine.head.scalp import Scalp, load_scalp
from engine.io.export import export_groom
from engine.io.files import file_sha256, write_json_atomic
from engine.io.groom import Groom
from engine.io.media import write_image
from engine.metrics import HeadGeometry, points_over_face, strand_folds
from engine.pipeline import Stage, option
from engine.prior.diffusion import load_diffusion
from engine.prior.vae import load_vae
from engine.resources import resource, resources_dir
from engine.strands.complete import lift_out, seen_strands, transport_strands
from engine.strands.geometry import (HairVolume, bounded_turn, bust_loss, chamfer_loss, fold_loss,
                                     kink_loss, orientation_loss, sample_visible_surface,
                                     volume_loss)
from engine.strands.raster import RasterSettings
from engine.strands.render import (NeuralRenderer, head_depth_maps, project, render_loss,
                                   render_strands)
from engine.strands.texture import GeometryTexture
from engine.strands.trim import trim_strands
from engine.threads import stage_threads


@dataclass(frozen=True)
class StrandsConfig:
    """Options of the fine strand stage (the defaults are the standard preset)."""

    iterations: int = option(1500, "optimisation steps", range=(1, 200000))
    strands_per_step: int = option(1024, "strands decoded per step", range=(16, 100000))
    texture_res: int = option(64, "geometry texture resolution (texels per side)",
                              range=(32, 512))
    unet_width: int = option(32, "width of the texture U-Net", range=(4, 256))
    lr: float = option(3e-3, "learning rate (Adam)", range=(1e-6, 1.0))
    volume_resolution: int = option(96, "grid size of the coarse-volume lookup", range=(16, 512))
    lambda_vol: float = option(3.0, "weight of L_vol", range=(0.0, 1e4))
    lambda_chm: float = option(2.0, "weight of the chamfer term", range=(0.0, 1e4))
    lambda_orient: float = option(20.0, "weight of the orientation term", range=(0.0, 1e4))
    lambda_bust: float = option(10.0, "weight of the head-penetration term", range=(0.0, 1e4))
    lambda_fold: float = option(0.0, "weight of L_fold (a strand does not come back the way it "
                                "went; 0 = off: 10 raised the point F but lowered the strand "
                                "F on two Blender orbits, see docs/strands.md)",
                                range=(0.0, 1e4))
    lambda_kink: float = option(0.0, "weight of L_kink (no turn sharper than 90 degrees between "
                                "segments; 0 = off: 20 lowered the strand F on the straight "
                                "Blender orbit, see docs/strands.md)", range=(0.0, 1e4))
    lambda_latent: float = option(0.0, "weight of L_latent, the strand VAE's Gaussian prior "
                                  "N(0, I) on the texture's strand latents (mean z^2 per "
                                  "dimension; 0 = off): keeps the fitted latents near where "
                                  "the VAE was trained; measured only with max_turn_deg, see "
                                  "docs/strands.md",
                                  range=(0.0, 1e4))
    max_turn_deg: float = option(0.0, "largest turn between consecutive decoded segments; "
                                 "strands are re-integrated with uniform spacing and sharper "
                                 "turns bent smoothly (geometry.bounded_turn; 0 = off: 40 "
                                 "coiled long straight hair on d10 and 12 waved it, see "
                                 "docs/strands.md)",
                                 unit="deg", range=(0.0, 180.0))
    orient_sign: bool = option(True, "sign the coarse orientation field towards the growth "
                               "side (outward from the head and down) in L_orient, so that a "
                               "strand cannot fit the field by running back along it; off: "
                               "the paper's unsigned loss, under which 80-100 % of the "
                               "strands folded into hairpins (docs/strands.md)")
    orient_delta_mm: float = option(6.0, "band around the hair surface where L_orient applies",
                                    unit="mm", range=(0.1, 100.0))
    chamfer_points: int = option(2000, "hair-surface samples per step for the chamfer",
                                 range=(16, 1000000))
    surface_samples: int = option(30000, "hair-surface samples drawn once", range=(16, 10 ** 7))
    lambda_render: float = option(0.5, "weight of the rendering loss (0 = off)", range=(0.0, 1e4))
    lambda_mask: float = option(0.0, "weight of the one-sided silhouette term within L_render "
                                "(0: colour only; measured on the sample, the silhouette term "
                                "lowered the F-score where the hair mask is wrong)",
                                range=(0.0, 1e4))
    render_size: int = option(128, "render size, longer side (multiple of 4)", unit="px",
                              range=(32, 2048))
    render_strands: int = option(1024, "strands rasterised per step", range=(16, 100000))
    render_points: int = option(25, "points per rasterised strand (resampled)", range=(2, 100))
    half_width_px: float = option(1.0, "hair-quad half width at the render size", unit="px",
                                  range=(0.1, 20.0))
    faces_per_pixel: int = option(16, "K nearest hair quads blended per pixel", range=(1, 64))
    lambda_prior: float = option(0.0, "weight of the diffusion prior's score-distillation "
                                 "loss (0 = off; 0.05 is the measured setting, see "
                                 "docs/strands.md)", range=(0.0, 1e4))
    init: str = option("zero", "where the texture's latent channels start: 'zero' (the latent "
                       "origin) or 'mean' (the mean strand latent of the diffusion model's "
                       "training textures); both decode to a short strand of about 5 cm, the "
                       "F-scores differ, see docs/strands.md",
                       choices=("zero", "mean"))
    prior_sigma_min: float = option(0.5, "smallest noise level of L_prior (model space, where the "
                                    "latent texture has RMS 0.5; sigma is log-uniform between the "
                                    "two bounds; high levels act on the groom's layout, low ones "
                                    "on strand detail, see docs/strands.md)", range=(1e-4, 100.0))
    prior_sigma_max: float = option(5.0, "largest noise level of L_prior", range=(1e-4, 100.0))
    dense_strands: int = option(50000, "strands of the final groom", range=(100, 10 ** 7))
    outside_tolerance_mm: float = option(6.0, "how far outside the hair volume (or inside the "
                                         "bust) a final strand point may lie", unit="mm",
                                         range=(0.0, 1000.0))
    max_outside: float = option(0.5, "share of a final strand's points allowed outside the "
                                "tolerance before the strand is dropped", range=(0.0, 1.0))
    trim: bool = option(False, "also remove backward jitter steps and cut each final strand "
                        "at its first fold (module docstring); off (default): on the Blender "
                        "straight turn the fold cuts left strands 0.08x their true length and "
                        "strand F 2.8 instead of 24.3, see docs/strands.md")
    cut_at_face: bool = option(True, "cut each final strand before its first point in front "
                               "of the face below the brow line where the hair masks show no "
                               "hair (FaceGuard); off keeps such strands whole; see "
                               "docs/strands.md")
    complete_unseen: bool = option(True, "give the final strands at scalp roots no training "
                                   "view saw the shapes of fitted strands nearby that a view "
                                   "did see (engine.strands.complete); off: the fitted "
                                   "texture there, held only by the coarse volume, see "
                                   "docs/strands.md")
    cut_outside_masks: bool = option(True, "cut each final strand before its first point that "
                                     "the training views saw off the hair masks "
                                     "(SilhouetteGuard: visual-hull consistency); off keeps "
                                     "such strands whole; see docs/strands.md")
    min_length_mm: float = option(5.0, "final strands shorter than this after trimming are "
                                  "dropped", unit="mm", range=(0.0, 1000.0))
    strand_width_mm: float = option(0.08, "strand diameter written to the groom", unit="mm",
                                    range=(0.001, 10.0))
    seed: int = option(0, "random seed", range=(0, 2**31 - 1))
    preview_every: int = option(100, "steps between preview events", range=(1, 10 ** 6),
                                affects_output=False)


ROOT_SKIP = 3  # points near the root that may lie inside the hair/bust boundary
MAX_IN_BUST = 0.1  # share of a final strand's points allowed deeper than the tolerance in the bust


@dataclass
class StrandScene:
    """Everything the fine stage optimises against.

    volume: :class:`HairVolume`. surface: (K, 3) visible hair-surface samples, metres.
    scalp: :class:`engine.head.scalp.Scalp` moved onto the fitted head.
    data: :class:`engine.coarse.train.CoarseData` at the render size, or None (no rendering).
    head_depth: (V, H, W) head depth per view or None. head: (vertices, faces) of the fitted head.
    """

    volume: HairVolume
    surface: torch.Tensor
    scalp: Scalp
    data: object = None
    head_depth: torch.Tensor | None = None
    head: tuple | None = None

    def head_in_model_topology(self) -> bool:
        """Whether the fitted head is in the head model's topology (its landmarks and face
        region apply): what :class:`FaceGuard` and the completion of the unseen need."""
        return self.head is not None and len(self.head[0]) == len(load_head_model().vertices)


class StrandTrainer:
    """Optimises the geometry texture (and the neural renderer) one step at a time.

    vae: the frozen strand VAE. diffusion: the texture diffusion model, or None; it is needed
    for ``cfg.lambda_prior > 0`` (score distillation) and ``cfg.init == "mean"`` (its mean
    latent; ValueError without it).
    """

    def __init__(self, scene: StrandScene, vae, diffusion, cfg: StrandsConfig, device: str = "cpu"):
        self.scene, self.cfg, self.device = scene, cfg, torch.device(device)
        self.vae = vae.to(self.device).eval()
        for p in self.vae.parameters():
            p.requires_grad_(False)
        self.diffusion = diffusion.to(self.device).eval() if diffusion is not None else None
        if cfg.init == "mean" and self.diffusion is None:
            raise ValueError("strands.init 'mean' needs the diffusion model (its mean latent)")
        init = self.diffusion.lat_mean.detach().cpu() if cfg.init == "mean" else None
        torch.manual_seed(cfg.seed)
        self.texture = GeometryTexture(cfg.texture_res, vae.cfg.latent, 16, cfg.unet_width,
                                       seed=cfg.seed, init_latent=init).to(self.device)
        params = [{"params": self.texture.parameters(), "lr": cfg.lr}]
        self.renderer = None
        if cfg.lambda_render > 0 and scene.data is not None:
            self.renderer = NeuralRenderer(16).to(self.device)
            params.append({"params": self.renderer.parameters(), "lr": 1e-3})
        self.opt = torch.optim.Adam(params)
        self.rng = np.random.default_rng(cfg.seed)
        self.view_rng = np.random.default_rng(cfg.seed + 7)  # views: own stream, so switching
        # the rendering term on or off leaves the sequence of sampled roots unchanged
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.step_count = 0

    # -- strands from the texture ------------------------------------------------------------
    def decode(self, texture: torch.Tensor, uv: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Strands (N, L, 3) metres head frame and appearance (N, A) at root UVs (N, 2)."""
        fr = self.scene.scalp.frames(uv)
        rot = torch.as_tensor(fr.matrix(), dtype=torch.float32, device=self.device)
        root = torch.as_tensor(fr.positions, dtype=torch.float32, device=self.device)
        vals = GeometryTexture.sample(texture, torch.as_tensor(uv, dtype=torch.float32,
                                                               device=self.device))
        z, app = vals[:, :self.texture.latent], vals[:, self.texture.latent:]
        local = self.vae.decode(z)
        if self.cfg.max_turn_deg > 0:
            local = bounded_turn(local, self.cfg.max_turn_deg)
        return torch.einsum("nji,nlj->nli", rot, local) + root[:, None], app

    # -- one optimisation step ---------------------------------------------------------------
    def step(self) -> dict[str, float]:
        """One Adam step on the loss of the module docstring. Returns every term's value (and
        ``total``, and ``rgb``/``mask`` when rendering) as floats."""
        cfg, sc = self.cfg, self.scene
        T = self.texture()
        uv = sc.scalp.sample_uv(cfg.strands_per_step, self.rng)
        pts, app = self.decode(T, uv)
        N, L, _ = pts.shape
        look = sc.volume.lookup(pts.reshape(-1, 3))
        look = {k: v.reshape(N, L, *v.shape[1:]) for k, v in look.items()}
        terms: dict[str, torch.Tensor] = {}
        terms["vol"] = volume_loss(look, ROOT_SKIP)
        terms["bust"] = bust_loss(look, ROOT_SKIP)
        terms["orient"] = orientation_loss(pts, look, cfg.orient_delta_mm / 1000,
                                           sc.volume.centre if cfg.orient_sign else None)
        if cfg.lambda_kink > 0:  # off by default: no work in the step
            terms["kink"] = kink_loss(pts)
        if cfg.lambda_fold > 0:
            terms["fold"] = fold_loss(pts)
        if cfg.lambda_latent > 0:
            terms["latent"] = T[:self.texture.latent].square().mean()
        if len(sc.surface):
            k = min(cfg.chamfer_points, len(sc.surface))
            sel = torch.as_tensor(self.rng.choice(len(sc.surface), k, replace=False),
                                  device=self.device)
            terms["chm"] = chamfer_loss(sc.surface[sel], pts[:, ROOT_SKIP:].reshape(-1, 3))
        loss = (cfg.lambda_vol * terms["vol"] + cfg.lambda_bust * terms["bust"]
                + cfg.lambda_orient * terms["orient"] + cfg.lambda_chm * terms.get("chm", 0.0)
                + cfg.lambda_kink * terms.get("kink", 0.0)
                + cfg.lambda_fold * terms.get("fold", 0.0)
                + cfg.lambda_latent * terms.get("latent", 0.0))
        out = {}
        if self.renderer is not None:
            lr, parts = self._render_loss(pts, app)
            loss = loss + cfg.lambda_render * lr
            terms["render"] = lr
            out.update(parts)
        if cfg.lambda_prior > 0 and self.diffusion is not None:
            terms["prior"] = self.diffusion.prior_loss(
                T[:self.texture.latent], self.gen, (cfg.prior_sigma_min, cfg.prior_sigma_max))
            loss = loss + cfg.lambda_prior * terms["prior"]
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.step_count += 1
        out.update({k: float(v.detach()) if torch.is_tensor(v) else float(v)
                    for k, v in terms.items()})
        out["total"] = float(loss.detach())
        return out

    def _render_loss(self, pts: torch.Tensor, app: torch.Tensor):
        cfg, data = self.cfg, self.scene.data
        v = int(self.view_rng.integers(data.cams.K.shape[0]))
        S = min(cfg.render_strands, pts.shape[0])
        idx = np.linspace(0, pts.shape[1] - 1, cfg.render_points).round().astype(int)
        sub = pts[:S][:, torch.as_tensor(idx, device=self.device)]
        H, W = data.cams.height, data.cams.width
        rs = RasterSettings(H, W, faces_per_pixel=cfg.faces_per_pixel)
        occ = self.scene.head_depth[v] if self.scene.head_depth is not None else None
        feats, alpha = render_strands(sub, app[:S], data.cams.K[v], data.cams.R[v], data.cams.t[v],
                                      rs, cfg.half_width_px, occ)
        rgb = self.renderer(feats, alpha)
        self.last_render = (v, rgb.detach(), alpha.detach())
        return render_loss(rgb, alpha, data.images[v], data.hair[v], cfg.lambda_mask)

    # -- the dense groom -----------------------------------------------------------------------
    @torch.no_grad()
    def dense_groom(self, n: int, batch: int = 8192) -> dict:
        """Decode ``n`` strands at uniformly sampled scalp UVs, drop those that leave the hair
        volume or enter the bust, trim the rest, and give the strands no view saw the shapes
        of trimmed seen ones nearby (``complete_unseen``, :mod:`engine.strands.complete`;
        these are cut by the same guards and where they enter the bust). Returns a dict:
        ``strands`` (M, L, 3) float32 metres head frame (the fitted strands, then the
        completed ones), ``root_uv`` (M, 2) float32, ``kept`` = M / n and ``trim`` (the counts
        of :func:`engine.strands.trim.trim_strands` summed over both, ``dropped_volume`` and
        ``completed``, the roots given a seen neighbour's shape)."""
        cfg, sc = self.cfg, self.scene
        T = self.texture()
        rng = np.random.default_rng(cfg.seed + 1)
        uv = sc.scalp.sample_uv(n, rng)
        tol = cfg.outside_tolerance_mm / 1000
        all_s, all_ok = [], []
        for i in range(0, n, batch):
            pts, _ = self.decode(T, uv[i:i + batch])
            all_s.append(pts.cpu().numpy())
            all_ok.append(self._in_volume(pts, tol).cpu().numpy())
        strands, ok = np.concatenate(all_s), np.concatenate(all_ok)
        sil = SilhouetteGuard.for_scene(sc)
        unseen = np.zeros(n, bool)
        if cfg.complete_unseen and sil is not None and sc.head_in_model_topology():
            unseen = ~seen_strands(sil.seen(strands)[:, ROOT_SKIP:])
        guards = [g for g in (FaceGuard.for_scene(sc) if cfg.trim or cfg.cut_at_face else None,
                              sil if cfg.cut_outside_masks else None) if g is not None]
        stats: dict = {"dropped_volume": int((~ok & ~unseen).sum()), "completed": 0}
        fitted = ok & ~unseen
        out_s, out_uv = [], []
        kept, k = self._trim(strands[fitted], guards, stats)
        out_s.append(kept)
        out_uv.append(uv[fitted][k])
        flat = ~strand_folds(kept) if len(kept) else np.zeros(0, bool)  # no folds copied
        if unseen.any() and flat.any():
            fr = sc.scalp.frames(uv[unseen])
            src_n = sc.scalp.frames(uv[fitted][k][flat]).normals
            new = transport_strands(kept[flat], src_n, fr.positions, fr.normals,
                                    sc.volume.centre.cpu().numpy(),
                                    np.random.default_rng(cfg.seed + 2))
            geo = HeadGeometry.from_head_model(np.asarray(sc.head[0]), samples=50_000)
            new = lift_out(new, fr.normals, geo.surface_query)
            kept_c, k_c = self._trim(new, guards + [self._bust_guard(tol)], stats)
            out_s.append(kept_c)
            out_uv.append(uv[unseen][k_c])
            stats["completed"] = int(unseen.sum())
        else:
            stats["dropped_volume"] += int(unseen.sum())
        strands, root_uv = np.concatenate(out_s), np.concatenate(out_uv)
        return {"strands": strands.astype(np.float32), "root_uv": root_uv.astype(np.float32),
                "kept": len(strands) / max(n, 1), "trim": stats}

    def _trim(self, strands: np.ndarray, guards: list, stats: dict
              ) -> tuple[np.ndarray, np.ndarray]:
        """Strands (N, L, 3) cut before their first point any guard marks and, with ``trim``,
        at their first fold (:func:`engine.strands.trim.trim_strands`); returns (kept (M, L, 3)
        float32, keep (N,) bool) and adds the trim counts to ``stats``."""
        cfg = self.cfg
        if not (cfg.trim or guards) or len(strands) == 0:
            return strands.astype(np.float32), np.ones(len(strands), bool)

        def bad(x: np.ndarray) -> np.ndarray:
            return np.logical_or.reduce([g(x) for g in guards])

        kept, keep, st = trim_strands(strands, bad if guards else None,
                                      min_length_m=cfg.min_length_mm / 1000, folds=cfg.trim)
        for key, val in st.items():
            stats[key] = stats.get(key, 0) + val
        return kept, keep

    def _in_volume(self, pts: torch.Tensor, tol: float) -> torch.Tensor:
        """(N,) bool: strands (N, L, 3) with at most ``max_outside`` of their points farther
        than ``tol`` outside the hair volume and at most ``MAX_IN_BUST`` deeper than ``tol``
        inside the bust (the first ``ROOT_SKIP`` points not counted)."""
        N, L, _ = pts.shape
        look = self.scene.volume.lookup(pts.reshape(-1, 3))
        fh = look["f_hair"].reshape(N, L)[:, ROOT_SKIP:]
        fb = look["f_bust"].reshape(N, L)[:, ROOT_SKIP:]
        return ((fh > tol).float().mean(1) <= self.cfg.max_outside) & \
            ((fb < -tol).float().mean(1) <= MAX_IN_BUST)

    def _bust_guard(self, tol: float):
        """Points (M, L, 3) deeper than ``tol`` inside the coarse bust: (M, L) bool."""
        def bad(x: np.ndarray) -> np.ndarray:
            p = torch.as_tensor(np.asarray(x, np.float32).reshape(-1, 3), device=self.device)
            fb = self.scene.volume.lookup(p)["f_bust"].reshape(x.shape[:2])
            return (fb < -tol).cpu().numpy()
        return bad


class FaceGuard:
    """Which strand points hang in front of the face below the brow line where no hair mask
    shows hair: the face region of :meth:`engine.metrics.HeadGeometry.face_region` (the fitted
    head, its 68 landmarks), less the points that project onto the hair mask in at least half of
    the training views whose image they fall in (hair the camera saw over the face stays).

    Args:
        head_vertices: (V, 3) metres, the fitted head in the head model's topology.
        data: :class:`engine.coarse.train.CoarseData` (cameras and hair masks) or None (every
            point over the face counts).
    """

    def __init__(self, head_vertices: np.ndarray, data=None):
        geo = HeadGeometry.from_head_model(head_vertices, samples=50_000)
        self.region = geo.face_region()
        self.data = data

    @classmethod
    def for_scene(cls, scene: "StrandScene") -> "FaceGuard | None":
        """The guard of a scene whose head is in the head model's topology, else None."""
        if not scene.head_in_model_topology():
            return None
        return cls(np.asarray(scene.head[0]), scene.data)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(M, L) bool for strands x (M, L, 3) metres."""
        over = points_over_face(x, self.region)
        if self.data is None or not over.any():
            return over

        d = self.data
        p = torch.as_tensor(x[over], dtype=torch.float32, device=d.images.device)
        H, W = d.cams.height, d.cams.width
        hair = torch.zeros(len(p), device=p.device)
        seen = torch.zeros(len(p), device=p.device)
        for v in range(d.images.shape[0]):
            q = project(p, d.cams.K[v], d.cams.R[v], d.cams.t[v])
            u, w = q[:, 0].round().long(), q[:, 1].round().long()
            inside = (u >= 0) & (u < W) & (w >= 0) & (w < H) & (q[:, 2] > 0)
            m = d.hair[v][w.clamp(0, H - 1), u.clamp(0, W - 1)] > 0.5
            seen += inside.float()
            hair += (inside & m).float()
        masked = (hair >= 0.5 * seen.clamp(min=1)).cpu().numpy()
        over[over] = ~masked
        return over


class SilhouetteGuard:
    """Which strand points the training views saw off the hair: visual-hull consistency of the
    strands (space carving, Kutulakos and Seitz, IJCV 2000, with the hair masks as the
    silhouettes). A view sees a point when it projects into the image, in front of the fitted
    head there (the head depth maps, ``tolerance_m``), and, where it falls on the bust mask off
    the head, nearer the camera than the head's centre (the body may hide what lies behind
    it). A point counts when at least half of the views that see it put it off the hair mask,
    dilated by ``margin`` of the image width (mask edges are soft and strands have width).

    Args:
        data: :class:`engine.coarse.train.CoarseData` (cameras, hair and bust masks (V, H, W)).
        head_depth: (V, H, W) float32 metres, +inf off the head, or None (no occlusion).
        head_centre: (3,) metres, head frame.
    """

    def __init__(self, data, head_depth: torch.Tensor | None, head_centre: np.ndarray, *,
                 margin: float = 0.015, tolerance_m: float = 0.002):
        self.data = data
        r = max(1, int(round(margin * data.cams.width)))
        self.hair = torch.nn.functional.max_pool2d(data.hair[:, None], 2 * r + 1, 1, r)[:, 0] > 0.5
        self.body = data.bust > 0.5
        self.head_depth = None if head_depth is None else head_depth.to(data.hair.device)
        self.centre = torch.as_tensor(head_centre, dtype=torch.float32, device=data.hair.device)
        self.tolerance_m = tolerance_m

    @classmethod
    def for_scene(cls, scene: "StrandScene") -> "SilhouetteGuard | None":
        """The guard of a scene with training data, else None."""
        if scene.data is None:
            return None
        centre = (np.asarray(scene.head[0]).mean(0) if scene.head is not None
                  else scene.data.centre.cpu().numpy())
        return cls(scene.data, scene.head_depth, centre)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(M, L) bool for strands x (M, L, 3) metres."""
        seen, off = self.counts(x)
        return (seen > 0) & (off >= 0.5 * seen)

    def seen(self, x: np.ndarray) -> np.ndarray:
        """(M, L) bool: the points of strands x (M, L, 3) metres that at least one view sees."""
        return self.counts(x)[0] > 0

    @torch.no_grad()
    def counts(self, x: np.ndarray, chunk: int = 1 << 20) -> tuple[np.ndarray, np.ndarray]:
        """For the points of strands x (M, L, 3) metres: how many views see each, and how many
        of those put it off the (dilated) hair mask; two (M, L) int32 arrays."""
        d = self.data
        H, W = d.cams.height, d.cams.width
        flat = torch.as_tensor(np.asarray(x, np.float32).reshape(-1, 3), device=d.hair.device)
        seen_all = torch.zeros(len(flat), dtype=torch.int32)
        off_all = torch.zeros(len(flat), dtype=torch.int32)
        for i in range(0, len(flat), chunk):
            p = flat[i:i + chunk]
            seen = torch.zeros(len(p), dtype=torch.int32, device=p.device)
            off = torch.zeros(len(p), dtype=torch.int32, device=p.device)
            for v in range(d.hair.shape[0]):
                K, R, t = d.cams.K[v], d.cams.R[v], d.cams.t[v]
                q = project(p, K, R, t)
                u, w = q[:, 0].round().long(), q[:, 1].round().long()
                inside = (u >= 0) & (u < W) & (w >= 0) & (w < H) & (q[:, 2] > 0)
                uc, wc = u.clamp(0, W - 1), w.clamp(0, H - 1)
                visible = inside
                on_head = torch.zeros_like(inside)
                if self.head_depth is not None:
                    hd = self.head_depth[v][wc, uc]
                    on_head = torch.isfinite(hd)
                    visible = visible & ~(on_head & (q[:, 2] > hd + self.tolerance_m))
                centre_z = (self.centre @ R.T + t)[2]
                visible = visible & ~(self.body[v][wc, uc] & ~on_head & (q[:, 2] > centre_z))
                seen += visible.int()
                off += (visible & ~self.hair[v][wc, uc]).int()
            seen_all[i:i + chunk] = seen.cpu()
            off_all[i:i + chunk] = off.cpu()
        shape = np.asarray(x).shape[:-1]
        return seen_all.reshape(shape).numpy(), off_all.reshape(shape).numpy()


# --------------------------------------------------------------------------------------------
# Building the scene from the earlier stages
# --------------------------------------------------------------------------------------------


def build_scene(cfg: StrandsConfig, coarse_dir: Path, head_vertices: np.ndarray,
                head_faces: np.ndarray, scalp: Scalp, data=None, device: str = "cpu"
                ) -> StrandScene:
    """Scene of the fine stage from the coarse stage folder, the fitted head and its scalp
    (the cameras stage's ``scalp.npz``, :func:`engine.head.scalp.load_scalp`); ``data``
    (:class:`engine.coarse.train.CoarseData` at the render size) enables the rendering loss."""
    import trimesh

    query = load_coarse_fields(coarse_dir, device)
    volume = HairVolume(query, cfg.volume_resolution)
    mesh_path = Path(coarse_dir) / "hair_mesh.ply"
    if not mesh_path.is_file():
        raise InputError(f"{mesh_path}: missing; re-run the coarse stage")
    m = trimesh.load(mesh_path, force="mesh", process=False)
    surface = sample_visible_surface(np.asarray(m.vertices), np.asarray(m.faces), volume,
                                     cfg.surface_samples, seed=cfg.seed)
    if len(surface) < 16:
        raise InputError(f"{mesh_path}: the coarse hair surface is empty or inside the head; "
                         "the coarse stage found no hair")
    head_depth = None
    if data is not None:
        head_depth = head_depth_maps(head_vertices, head_faces, data.cams, data.cams.height,
                                     data.cams.width).to(device)
        data.cams = data.cams.to(device)
    return StrandScene(volume, torch.as_tensor(surface, device=device), scalp,
                       data, head_depth, (head_vertices, head_faces))


# --------------------------------------------------------------------------------------------
# Stage entry point
# --------------------------------------------------------------------------------------------


def load_prior(device: str = "cpu"):
    """The shipped strand VAE and texture diffusion model (resources/prior), on ``device``.
    Raises InputError when a weight file is missing or does not match the code."""
    return (load_vae(resource("prior", "strand_vae.safetensors"), device),
            load_diffusion(resource("prior", "texture_diffusion.safetensors"), device))


COLOUR_ALONG = (0.2, 0.35, 0.5, 0.65, 0.8)  # where along a strand its colour is sampled
COLOUR_DEFAULT = (0.35, 0.25, 0.18)  # sRGB grey-brown, only when no strand at all is seen


@torch.no_grad()
def strand_colours(strands: np.ndarray, data, head_depth: torch.Tensor | None,
                   neighbours: int = 8) -> np.ndarray:
    """Per-strand linear RGB (N, 3) float32 in [0, 1] from the captured images.

    strands: (N, L, 3) metres, head frame, root first; data: the views
    (:class:`engine.coarse.train.CoarseData`: images, hair masks, cameras); head_depth:
    (V, H, W) metres or None. The samples at :data:`COLOUR_ALONG` of each strand's points are
    projected into every view; a sample counts where it falls on the hair mask (> 0.5) and not
    more than 5 mm behind the fitted head. A strand's colour is the per-channel median of its
    samples' pixels (sRGB decoded with gamma 2.2), so a highlight, a shadow or a stray pixel of
    skin or background does not pull it as a mean would. A strand that no view sees (the back
    of a front-facing capture) takes the inverse-distance mean of the ``neighbours`` nearest
    seen strands by root position, so it continues the seen hair; :data:`COLOUR_DEFAULT` only
    when no strand is seen. Ours (Neural Haircut renders appearance with a neural texture).
    """
    L = strands.shape[1]
    at = [int(round(a * (L - 1))) for a in COLOUR_ALONG]
    pts = torch.as_tensor(strands[:, at], dtype=torch.float32).to(data.images.device)
    H, W = data.cams.height, data.cams.width
    samples = []
    for v in range(data.images.shape[0]):
        p = project(pts, data.cams.K[v], data.cams.R[v], data.cams.t[v])
        x, y = p[..., 0].round().long(), p[..., 1].round().long()
        ok = (x >= 0) & (x < W) & (y >= 0) & (y < H)
        xc, yc = x.clamp(0, W - 1), y.clamp(0, H - 1)
        ok &= data.hair[v][yc, xc] > 0.5
        if head_depth is not None:
            ok &= p[..., 2] < head_depth[v][yc, xc] + 0.005
        col = data.images[v][yc, xc]  # (N, S, 3)
        samples.append(torch.where(ok[..., None], col, torch.full_like(col, float("nan"))))
    allc = torch.cat(samples, 1)  # (N, V S, 3)
    seen = ~torch.isnan(allc[..., 0]).all(1)
    srgb = torch.nanmedian(allc, dim=1).values.cpu().numpy().astype(np.float64)
    rgb = np.clip(srgb, 0, 1) ** 2.2  # linear
    seen = seen.cpu().numpy()
    if not seen.any():
        rgb[:] = np.asarray(COLOUR_DEFAULT) ** 2.2
    elif not seen.all():
        roots = np.asarray(strands[:, 0], np.float64)
        k = min(neighbours, int(seen.sum()))
        dist, idx = cKDTree(roots[seen]).query(roots[~seen], k=k)
        dist, idx = dist.reshape(-1, k), idx.reshape(-1, k)
        w = 1.0 / np.maximum(dist, 1e-4)
        rgb[~seen] = (w[..., None] * rgb[seen][idx]).sum(1) / w.sum(1, keepdims=True)
    return rgb.astype(np.float32)


def _preview_sheet(trainer: StrandTrainer) -> np.ndarray | None:
    """image | rendered colour | rendered alpha over the hair mask, uint8 (H, 3W, 3)."""
    if getattr(trainer, "last_render", None) is None:
        return None
    v, rgb, alpha = trainer.last_render
    d = trainer.scene.data
    img = d.images[v].cpu().numpy()
    r = rgb.permute(1, 2, 0).cpu().numpy()
    a = alpha.cpu().numpy()
    m = d.hair[v].cpu().numpy()
    sil = np.stack([a, m, np.zeros_like(a)], -1)
    return (np.concatenate([img, r, sil], 1).clip(0, 1) * 255).astype(np.uint8)


def train_and_export(trainer: StrandTrainer, out_dir: Path, ctx=None) -> Iterator:
    """Run the optimisation and write the stage outputs; yields events when ``ctx`` is given.
    Returns the summary dict."""
    from safetensors.torch import save_file

    cfg = trainer.cfg
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    history = []
    n = cfg.iterations
    last_preview = time.monotonic()
    for step in range(1, n + 1):
        if ctx is not None:
            ctx.check()
        losses = trainer.step()
        if step % 10 == 0 or step == n or step == 1:
            history.append({"step": step, **{k: round(v, 6) for k, v in losses.items()}})
        if ctx is not None:
            yield ctx.loss(step, losses)
            if step % max(1, n // 100) == 0 or step == n:
                yield ctx.progress(step, n + 1, f"step {step}/{n}")
            if step % cfg.preview_every == 0 or time.monotonic() - last_preview > 5:
                last_preview = time.monotonic()
                with torch.no_grad():
                    pts, _ = trainer.decode(trainer.texture(), trainer.scene.scalp.sample_uv(
                        600, np.random.default_rng(0)))
                yield ctx.preview("strands", pts.cpu().numpy(), f"step {step}")
                sheet = _preview_sheet(trainer)
                if sheet is not None:
                    yield ctx.preview("image", sheet, f"rendering, step {step}")
    train_s = time.perf_counter() - t0
    if ctx is not None:
        yield ctx.progress(n, n + 1, "decoding the dense groom")
    dense = trainer.dense_groom(cfg.dense_strands)
    if len(dense["strands"]) == 0:
        raise InputError("strands stage: every decoded strand left the hair volume; check the "
                         "coarse stage's hair mesh")
    completed = dense["trim"].get("completed", 0)
    if ctx is not None and completed:
        yield ctx.log(f"strands: no view saw {completed} of {cfg.dense_strands} strands "
                      f"({100 * completed / cfg.dense_strands:.0f} %, the back of the head where "
                      "the capture did not turn); they continue the seen strands nearby")
    hv, hf = trainer.scene.head if trainer.scene.head is not None else (None, None)
    colours = None
    if trainer.scene.data is not None:
        colours = strand_colours(dense["strands"], trainer.scene.data, trainer.scene.head_depth)
    groom = Groom(dense["strands"], widths=np.full(len(dense["strands"]),
                                                   cfg.strand_width_mm / 1000, np.float32),
                  root_uv=dense["root_uv"], colors=colours,
                  head_vertices=None if hv is None else np.asarray(hv, np.float32),
                  head_faces=None if hf is None else np.asarray(hf, np.int32))
    export_groom(groom, out_dir / "groom.npz")
    save_file({"texture": trainer.texture().detach().cpu().contiguous()},
              str(out_dir / "texture.safetensors"))
    prev = out_dir / "previews"
    prev.mkdir(exist_ok=True)
    sheet = _preview_sheet(trainer)
    if sheet is not None:
        write_image(prev / "render.png", sheet[..., ::-1])
    if ctx is not None:
        yield ctx.preview("strands", dense["strands"][:: max(1, len(dense["strands"]) // 3000)],
                          "final groom")
    write_json_atomic(out_dir / "losses.json", history)
    summary = {"iterations": n, "train_s": round(train_s, 1),
               "total_s": round(time.perf_counter() - t0, 1),
               "strands": int(len(dense["strands"])), "kept_share": round(dense["kept"], 4),
               "trim": dense["trim"],
               "final_losses": history[-1] if history else {}}
    write_json_atomic(out_dir / "strands.json", summary)
    return summary


def run_strands(cfg: StrandsConfig, inputs, ctx) -> Iterator:
    """Stage entry point (see the module docstring)."""
    if cfg.render_size % 4:
        raise ConfigError(f"strands.render_size {cfg.render_size} is not a multiple of 4")
    if cfg.prior_sigma_min > cfg.prior_sigma_max:
        raise ConfigError(f"strands.prior_sigma_min {cfg.prior_sigma_min} is above "
                          f"strands.prior_sigma_max {cfg.prior_sigma_max}")
    yield ctx.progress(0, cfg.iterations + 1, "loading the coarse volume and the prior")
    if ctx.device == "cpu":  # small ops: extra threads only add synchronisation, and on a
        # 2-core machine a second thread competing with the app or the OS slows steps 3-6x
        torch.set_num_threads(stage_threads())
    cam_dir = inputs["cameras"].path
    hv, hf = load_head_mesh(cam_dir / "head.obj")
    data = None
    if cfg.lambda_render > 0:
        data, _ = load_capture_data(inputs["keyframes"].path, inputs["masks"].path,
                                    inputs["orientation"].path, cam_dir / "cameras.json", hv, hf,
                                    cfg.render_size, 1.5, head_samples=16)
        data = _pad_to_multiple(data, 4)
    scene = build_scene(cfg, inputs["coarse"].path, hv, hf, load_scalp(cam_dir / "scalp.npz"),
                        data, ctx.device)
    vae, diffusion = load_prior(ctx.device)
    trainer = StrandTrainer(scene, vae, diffusion, cfg, ctx.device)
    yield ctx.log(f"strands: {len(scene.surface)} hair-surface samples, "
                  f"{'no rendering' if data is None else f'{data.images.shape[0]} views'}, "
                  f"device {ctx.device}")
    summary = yield from train_and_export(trainer, ctx.out_dir, ctx)
    return summary


def _pad_to_multiple(data, m: int):
    """Crop CoarseData images so height and width are multiples of ``m`` (the renderer's
    U-Net halves the resolution twice)."""
    H, W = data.cams.height, data.cams.width
    H2, W2 = H - H % m, W - W % m
    if (H2, W2) == (H, W):
        return data
    data.images = data.images[:, :H2, :W2]
    data.hair = data.hair[:, :H2, :W2]
    data.bust = data.bust[:, :H2, :W2]
    data.angle = data.angle[:, :H2, :W2]
    data.confidence = data.confidence[:, :H2, :W2]
    data.cams = CameraSet(data.cams.K, data.cams.R, data.cams.t, H2, W2)
    return data


PRESETS = {
    "preview": {"iterations": 400, "strands_per_step": 512, "render_strands": 512,
                "render_size": 96, "volume_resolution": 80, "surface_samples": 15000,
                "chamfer_points": 1000, "dense_strands": 20000, "preview_every": 100},
    "standard": {},
    "high": {"iterations": 6000, "strands_per_step": 4096, "render_strands": 4096,
             "render_size": 512, "render_points": 50, "volume_resolution": 160,
             "texture_res": 128, "dense_strands": 100000, "half_width_px": 1.5},
}

PRIOR_FILES = ("strand_vae.safetensors", "texture_diffusion.safetensors")


def prior_fingerprint(project=None, cfg=None) -> dict[str, str]:
    """Content hashes (sha256) of the shipped prior weights, part of the strands stage's cache key,
    so that new weights re-run the stage instead of reusing grooms made with the old ones.
    A missing file hashes as "missing" (the stage itself then raises InputError)."""
    out = {}
    for name in PRIOR_FILES:
        path = resources_dir() / "prior" / name
        out[name] = file_sha256(path) if path.exists() else "missing"
    return out


STAGE = Stage("strands", 7, StrandsConfig, ("keyframes", "masks", "orientation", "cameras", "coarse"),
              run_strands, prior_fingerprint, title="Hair strands", presets=PRESETS)
STAGES = [STAGE]
