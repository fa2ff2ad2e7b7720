"""The ``coarse`` stage: hair and bust SDFs, radiance and the 3D hair-orientation field.

Inputs: ``keyframes`` (frames), ``masks`` (hair and bust), ``orientation`` (2D orientation maps),
``cameras`` (``cameras.json`` in the head frame and the fitted head mesh ``head.obj``).

Outputs (stage folder): ``fields.safetensors`` + ``fields.json`` (load with
:func:`engine.coarse.export.load_coarse_fields`), ``hair_mesh.ply`` and ``bust_mesh.ply``
(head frame, metres), ``previews/<name>.png`` (input | rendered colour | normals | orientation)
for the first, middle and last view, ``losses.json`` (the loss history, every ``log_every``
steps), ``coarse.json`` (box, views used, timings).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from engine.coarse.data import hair_presence, load_capture_data
from engine.coarse.export import (extract_meshes, normalise_mesh_for_preview, preview_image,
                                  render_maps, save_fields, save_meshes)
from engine.coarse.render import CameraSet
from engine.coarse.train import CoarseConfig, CoarseData, CoarseTrainer
from engine.errors import InputError
from engine.head.model import load_head_mesh
from engine.head.scalp import load_scalp
from engine.io.files import write_json_atomic
from engine.io.media import write_image
from engine.pipeline import Stage
from engine.threads import stage_threads, usable_cores

PREVIEW_SIZE = 96  # pixels of the live preview renders (longer side)


def train_and_export(data: CoarseData, names: list[str], cfg: CoarseConfig, device: str,
                     out_dir: Path, ctx=None, extra: dict | None = None) -> Iterator:
    """Fit the fields and write every output into ``out_dir``; a generator of stage events when
    ``ctx`` is a :class:`~engine.pipeline.StageContext` (nothing is yielded without one).

    Returns (as the generator's value) the summary dict stored in ``done.json``, with ``extra``
    (e.g. the scalp's hair share) added.
    """
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    trainer = CoarseTrainer(data, cfg, device)
    history: list[dict] = []
    n = cfg.iterations
    # the live preview renders a downscaled middle view
    mid = len(names) // 2
    ps = PREVIEW_SIZE / max(data.cams.height, data.cams.width)
    pcams = data.cams.scaled(max(8, int(data.cams.height * ps)), max(8, int(data.cams.width * ps)))
    pcams = CameraSet(pcams.K[mid:mid + 1], pcams.R[mid:mid + 1], pcams.t[mid:mid + 1],
                      pcams.height, pcams.width).to(trainer.device)
    for step, losses in trainer.run():
        if ctx is not None:
            ctx.check()
            yield ctx.loss(step, losses)
            if step % max(1, n // 100) == 0 or step == n:
                yield ctx.progress(step, n + 1, f"step {step}/{n}")
            if step % cfg.preview_every == 0 and step < n:
                m = render_maps(trainer.fields, pcams, 0, trainer.data.centre, data.scale,
                                n_samples=24, n_importance=16)
                yield ctx.preview("image", preview_image(m), f"coarse step {step}")
        if step % 10 == 0 or step == n:
            history.append({"step": step, **{k: round(v, 6) for k, v in losses.items()}})
    train_s = time.perf_counter() - t0
    fields = trainer.fields
    centre = data.centre.numpy()
    meshes = extract_meshes(fields, centre, data.scale, cfg.mesh_resolution)
    save_meshes(meshes, out_dir)
    save_fields(fields, centre, data.scale, out_dir)
    prev_dir = out_dir / "previews"
    prev_dir.mkdir(exist_ok=True)
    cams_d = trainer.data.cams
    # three views (first, middle, last): each render evaluates the fields at ~40 samples per
    # pixel (6 s at 128 px on one CPU thread), and five views took 23 % of the preview preset's
    # coarse stage (docs/speed.md)
    pick = sorted({0, len(names) // 2, len(names) - 1})
    last_preview = None
    for v in pick:
        if ctx is not None:
            ctx.check()
        m = render_maps(fields, cams_d, v, trainer.data.centre, data.scale,
                        n_samples=cfg.n_samples, n_importance=cfg.n_importance)
        img = (data.images[v].numpy() * 255).astype(np.uint8)
        last_preview = preview_image(m, img)
        write_image(prev_dir / f"{names[v]}.png", last_preview[..., ::-1])
    if ctx is not None:
        if last_preview is not None:
            yield ctx.preview("image", last_preview, "coarse result")
        for k in ("hair", "bust"):
            if len(meshes[k][1]):
                yield ctx.preview("mesh", normalise_mesh_for_preview(*meshes[k]), f"{k} mesh")
    write_json_atomic(out_dir / "losses.json", history)
    summary = {"views": len(names), "iterations": n, "train_s": round(train_s, 1),
               "total_s": round(time.perf_counter() - t0, 1),
               "final_losses": history[-1] if history else {},
               "hair_mesh_vertices": int(len(meshes["hair"][0])),
               "bust_mesh_vertices": int(len(meshes["bust"][0])),
               "box_centre_m": [float(c) for c in centre], "box_half_size_m": data.scale,
               "image_size": [int(data.cams.width), int(data.cams.height)], **(extra or {})}
    write_json_atomic(out_dir / "coarse.json", {**summary, "frames": names})
    return summary


def run_coarse(cfg: CoarseConfig, inputs, ctx) -> Iterator:
    """Stage entry point (see the module docstring)."""
    cam_dir = inputs["cameras"].path
    yield ctx.progress(0, cfg.iterations + 1, "loading views")
    hv, hf = load_head_mesh(cam_dir / "head.obj")
    data, names = load_capture_data(inputs["keyframes"].path, inputs["masks"].path,
                                    inputs["orientation"].path, cam_dir / "cameras.json", hv, hf,
                                    cfg.image_size, cfg.box_margin)
    yield ctx.log(f"coarse: {len(names)} views at {data.cams.width}x{data.cams.height}, box "
                  f"half-size {data.scale * 100:.1f} cm, device {ctx.device}")
    presence = yield from _check_hair_present(cfg, data, hv, hf, cam_dir, ctx)
    if ctx.device == "cpu":  # a count fixed by the machine, not its load (engine/threads.py)

        threads = stage_threads()
        torch.set_num_threads(threads)
        yield ctx.log(f"coarse: {threads} CPU thread(s) for {usable_cores()} core(s)")
    summary = yield from train_and_export(data, names, cfg, ctx.device, ctx.out_dir, ctx,
                                          extra=presence)
    return summary


def _check_hair_present(cfg: CoarseConfig, data: CoarseData, head_vertices: np.ndarray,
                        head_faces: np.ndarray, cam_dir: Path, ctx) -> Iterator:
    """Stop before inventing a groom for a head without hair: a generator that logs
    :func:`engine.coarse.data.hair_presence` (the share of the visible scalp the hair masks
    cover, and how far the hair stands off the head) and returns the two figures for the
    stage's summary ({} with both checks off). A measure that no view could take (nan) does
    not stop the run.

    Raises:
        InputError: the share is below ``cfg.min_scalp_hair_pct`` (a bald head) or the hair
            stands less than ``cfg.min_hair_extent_mm`` off the head (a shaved one); names the
            user's video and the way out.
    """
    if cfg.min_scalp_hair_pct <= 0 and cfg.min_hair_extent_mm <= 0:
        return {}  # both checks off
    found = hair_presence(data, head_vertices, head_faces, load_scalp(cam_dir / "scalp.npz"))
    share, extent = found["share_pct"], found["extent_mm"]
    yield ctx.log(f"coarse: the hair masks cover {share:.0f} % of the scalp the views see; the "
                  f"hair stands {extent:.1f} mm off the head (median over the views)")
    name = ctx.project.source_name or str(ctx.project.root)
    fix = ("If the masks missed the hair, paint it in on the Review page, or run with --set "
           "coarse.min_scalp_hair_pct=0 --set coarse.min_hair_extent_mm=0")
    if share < cfg.min_scalp_hair_pct:
        raise InputError(f"{name}: the hair masks cover only {share:.0f} % of the scalp the "
                         f"views see (at least {cfg.min_scalp_hair_pct:.0f} % needed): the head "
                         f"looks bald, and no groom is made for a head without hair. {fix}")
    if extent < cfg.min_hair_extent_mm:
        raise InputError(f"{name}: the hair stands only {extent:.1f} mm off the head in the "
                         f"views (at least {cfg.min_hair_extent_mm:g} mm needed): the head looks "
                         f"shaved, and no groom of strands is made for stubble. {fix}")
    return {"scalp_hair_pct": round(share, 1), "hair_extent_mm": round(extent, 1)}


PRESETS = {
    "preview": {"iterations": 600, "rays_per_batch": 256, "n_samples": 24, "n_importance": 16,
                "image_size": 128, "plane_resolutions": (32, 96), "mesh_resolution": 96,
                "preview_every": 200},
    "standard": {},
    "high": {"iterations": 10000, "rays_per_batch": 1024, "n_samples": 48, "n_importance": 48,
             "image_size": 512, "plane_resolutions": (64, 256), "plane_channels": 12,
             "mesh_resolution": 256},
}

STAGE = Stage("coarse", 1, CoarseConfig, ("keyframes", "masks", "orientation", "cameras"),
              run_coarse, None, title="Coarse hair volume", presets=PRESETS)
STAGES = [STAGE]
