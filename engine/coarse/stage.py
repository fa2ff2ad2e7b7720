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

import cv2
import numpy as np
import torch

from engine.coarse.export import (extract_meshes, normalise_mesh_for_preview, preview_image,
                                  render_maps, save_fields, save_meshes)
from engine.coarse.render import CameraSet
from engine.coarse.train import CoarseConfig, CoarseData, CoarseTrainer, box_from_points
from engine.errors import InputError
from engine.io.media import write_image
from engine.io.files import write_json_atomic
from engine.pipeline import Stage

PREVIEW_SIZE = 96  # pixels of the live preview renders (longer side)


def _resize_orientation(angle: np.ndarray, conf: np.ndarray, size: tuple[int, int]
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Area-resize an undirected angle map through its doubled-angle vector field."""
    c2 = cv2.resize(conf * np.cos(2 * angle), size, interpolation=cv2.INTER_AREA)
    s2 = cv2.resize(conf * np.sin(2 * angle), size, interpolation=cv2.INTER_AREA)
    cr = cv2.resize(conf, size, interpolation=cv2.INTER_AREA)
    ang = np.mod(0.5 * np.arctan2(s2, c2), np.pi).astype(np.float32)
    coherence = np.hypot(c2, s2) / np.maximum(cr, 1e-8)
    return ang, (cr * np.clip(coherence, 0, 1)).astype(np.float32)


def sample_mesh(vertices: np.ndarray, faces: np.ndarray, n: int, seed: int = 0
                ) -> tuple[np.ndarray, np.ndarray]:
    """Area-uniform points (n, 3) float32 and unit face normals (n, 3) on a triangle mesh."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    cr = np.cross(b - a, c - a)
    area = 0.5 * np.linalg.norm(cr, axis=1)
    if not np.isfinite(area).all() or area.sum() <= 0:
        raise InputError("coarse stage: the fitted head mesh has no area")
    rng = np.random.default_rng(seed)
    tri = rng.choice(len(f), n, p=area / area.sum())
    r1, r2 = rng.random(n), rng.random(n)
    s = np.sqrt(r1)
    p = (1 - s)[:, None] * a[tri] + (s * (1 - r2))[:, None] * b[tri] + (s * r2)[:, None] * c[tri]
    nrm = cr[tri] / np.maximum(np.linalg.norm(cr[tri], axis=1, keepdims=True), 1e-12)
    return p.astype(np.float32), nrm.astype(np.float32)


def load_head_mesh(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) float32 metres and faces (F, 3) int32 of an OBJ/PLY triangle mesh.

    Raises InputError naming the file when it is missing or not a triangle mesh."""
    import trimesh

    if not Path(path).is_file():
        raise InputError(f"{path}: fitted head mesh missing; run the cameras stage first")
    try:
        m = trimesh.load(path, force="mesh", process=False)
    except Exception as exc:  # trimesh raises many kinds
        raise InputError(f"{path}: unreadable head mesh ({exc})") from exc
    if len(m.faces) == 0:
        raise InputError(f"{path}: head mesh has no faces")
    return np.asarray(m.vertices, np.float32), np.asarray(m.faces, np.int32)


def load_capture_data(keyframes_dir: Path, masks_dir: Path, orientation_dir: Path,
                      cameras_json: Path, head_vertices: np.ndarray, head_faces: np.ndarray,
                      image_size: int, box_margin: float, head_samples: int = 20000,
                      max_views: int = 0) -> tuple[CoarseData, list[str]]:
    """Build :class:`CoarseData` from stage folders in the preprocessing artifact formats.

    Args:
        keyframes_dir, masks_dir, orientation_dir: stage folders (or one capture folder with all
            of them, as :func:`engine.synthetic.render_capture` writes).
        cameras_json: ``cameras.json`` (head frame, metres; keys = keyframe names).
        head_vertices (V, 3) metres, head_faces (F, 3): the fitted head mesh.
        image_size: training size of the longer image side, pixels (images are area-resized).
        box_margin: box half-size over the head mesh's half-extent.
        max_views: use at most this many views, evenly spread (0: all).
    Returns:
        (data, names of the views used).
    Raises:
        InputError: no keyframe has a camera, or files are missing/unreadable.
    """
    from engine.cameras.camera import load_cameras
    from engine.preprocess.artifacts import load_frame, load_keyframes, load_mask, load_orientation

    try:
        meta, names = load_keyframes(keyframes_dir)
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{keyframes_dir}: unreadable keyframes ({exc})") from exc
    cams = load_cameras(cameras_json)
    names = [n for n in names if n in cams]
    if not names:
        raise InputError(f"{cameras_json}: no keyframe has a camera; re-run the cameras stage")
    if max_views and len(names) > max_views:
        pick = np.unique(np.round(np.linspace(0, len(names) - 1, max_views)).astype(int))
        names = [names[i] for i in pick]
    W0, H0 = int(cams[names[0]].width), int(cams[names[0]].height)
    s = image_size / max(W0, H0)
    W, H = max(8, int(round(W0 * s))), max(8, int(round(H0 * s)))
    imgs, hair, bust, ang, conf, Ks, Rs, ts = [], [], [], [], [], [], [], []
    for n in names:
        c = cams[n]
        if (int(c.width), int(c.height)) != (W0, H0):
            raise InputError(f"{cameras_json}: camera {n} is {c.width}x{c.height}, others "
                             f"{W0}x{H0}; all keyframes must share one size")
        try:
            img = load_frame(keyframes_dir, n)
            mh = load_mask(masks_dir, "hair", n)
            mb = load_mask(masks_dir, "bust", n)
            a, cf = load_orientation(orientation_dir, n)
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(f"coarse stage: missing or unreadable input for frame {n} ({exc})"
                             ) from exc
        if img.shape[:2] != (H0, W0):
            raise InputError(f"{keyframes_dir}: frame {n} is {img.shape[1]}x{img.shape[0]} but its "
                             f"camera is {W0}x{H0}")
        imgs.append(cv2.resize(img, (W, H), interpolation=cv2.INTER_AREA).astype(np.float32) / 255)
        # INTER_AREA at a non-integer scale overshoots 1 by float rounding (1 + 2e-7 at 480 ->
        # 128 px), which binary cross-entropy refuses: masks are probabilities, keep them so
        hair.append(np.clip(cv2.resize(mh, (W, H), interpolation=cv2.INTER_AREA), 0.0, 1.0))
        bust.append(np.clip(cv2.resize(mb, (W, H), interpolation=cv2.INTER_AREA), 0.0, 1.0))
        ar, cr = _resize_orientation(a.astype(np.float32), cf.astype(np.float32), (W, H))
        ang.append(ar)
        conf.append(cr)
        Ks.append(c.K)
        Rs.append(c.R)
        ts.append(c.t)
    f32 = lambda a: torch.from_numpy(np.asarray(a, np.float32))  # noqa: E731
    camset = CameraSet(f32(Ks), f32(Rs), f32(ts), H0, W0).scaled(H, W)
    used = np.asarray(head_vertices)[np.unique(np.asarray(head_faces))]  # referenced vertices
    centre, scale = box_from_points(used, box_margin)
    hp, hn = sample_mesh(head_vertices, head_faces, head_samples)
    data = CoarseData(images=f32(imgs), hair=f32(hair), bust=f32(bust), angle=f32(ang),
                      confidence=f32(conf), cams=camset, head_points=f32(hp),
                      head_normals=f32(hn), centre=f32(centre), scale=scale)
    return data, names


def train_and_export(data: CoarseData, names: list[str], cfg: CoarseConfig, device: str,
                     out_dir: Path, ctx=None) -> Iterator:
    """Fit the fields and write every output into ``out_dir``; a generator of stage events when
    ``ctx`` is a :class:`~engine.pipeline.StageContext` (nothing is yielded without one).

    Returns (as the generator's value) the summary dict stored in ``done.json``.
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
               "image_size": [int(data.cams.width), int(data.cams.height)]}
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
    if ctx.device == "cpu":  # a count fixed by the machine, not its load (engine/threads.py)
        from engine.threads import stage_threads, usable_cores

        threads = stage_threads()
        torch.set_num_threads(threads)
        yield ctx.log(f"coarse: {threads} CPU thread(s) for {usable_cores()} core(s)")
    summary = yield from train_and_export(data, names, cfg, ctx.device, ctx.out_dir, ctx)
    return summary


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
