"""Benchmark of the coarse stage: speed (iterations per second) and accuracy on a synthetic shell.

Usage:
    python benchmarks/bench_coarse.py speed [--device cpu|cuda] [--threads 1]
        Optimisation steps per second of each preset's configuration (analytic test scene,
        images at the preset's training size). Prints JSON.
    python benchmarks/bench_coarse.py accuracy --preset preview|standard|high [--views 24]
        [--size 256] [--capture DIR] [--out DIR] [--device cpu] [--threads 2] [--iterations N]
        Renders a synthetic capture (engine.synthetic: ICT head + torso, hair shell with the
        "swept back" growth field, orbit rig over +-150 deg) unless --capture names one, runs
        the coarse stage's fit and export on it (the true head mesh stands in for the fitted
        one), and measures the hair-surface chamfer distance (mm) and the angle between the
        recovered and true 3D orientation on the visible hair surface, plus wall times. Prints
        JSON; --out keeps the stage outputs (meshes, previews).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from engine.pipeline import config_from_dict


def _cfg(preset: str, **over):
    from engine.coarse.stage import PRESETS
    from engine.coarse.train import CoarseConfig

    values = dict(PRESETS[preset])
    values.update(over)
    return config_from_dict(CoarseConfig, values)


def speed(args) -> dict:
    from engine.synthetic.analytic_scene import make_scene
    from engine.coarse.train import CoarseTrainer, iterations_per_second

    out = {}
    for preset in ("preview", "standard", "high"):
        cfg = _cfg(preset)
        size = min(cfg.image_size, 256)  # image size does not change the per-step cost
        data, _ = make_scene(8, size)
        trainer = CoarseTrainer(data, cfg, args.device)
        ips = iterations_per_second(trainer, n=args.steps, warmup=3)
        out[preset] = {"iterations_per_s": round(ips, 2),
                       "rays_per_batch": cfg.rays_per_batch,
                       "samples_per_ray": cfg.n_samples + cfg.n_importance,
                       "plane_resolutions": list(cfg.plane_resolutions),
                       "iterations": cfg.iterations,
                       "est_train_minutes": round(cfg.iterations / ips / 60, 1)}
    return out


def _truth(capture: Path, names: list[str]):
    from engine.cameras.camera import load_cameras
    from engine.preprocess.artifacts import load_mask

    cams = load_cameras(capture / "cameras.json")
    pts, dirs = [], []
    for n in names:
        t = np.load(capture / "truth" / f"{n}.npz")
        hair = load_mask(capture, "hair", n) > 0.5
        z = t["depth"]
        sel = hair & (z > 0)
        ys, xs = np.nonzero(sel)
        c = cams[n]
        xc = np.stack([(xs - c.cx) / c.fx * z[sel], (ys - c.cy) / c.fy * z[sel], z[sel]], -1)
        pts.append((xc - c.t) @ c.R)  # R^T (x_c - t)
        dirs.append(t["tangent"][sel])
    return np.concatenate(pts), np.concatenate(dirs).astype(np.float64)


def accuracy(args) -> dict:
    from scipy.spatial import cKDTree

    from engine.coarse.evaluate import surface_metrics
    from engine.coarse.data import load_capture_data
    from engine.coarse.stage import train_and_export
    from engine.synthetic import (HeadModel, RenderSettings, make_hair_shell, orbit_rig,
                                  render_capture)
    from engine.synthetic.head import REGION_TORSO

    t0 = time.perf_counter()
    head = HeadModel.load(args.head)
    shell = make_hair_shell(head)
    capture = Path(args.capture) if args.capture else Path(tempfile.mkdtemp()) / "capture"
    if not (capture / "cameras.json").is_file():
        cams = orbit_rig(args.views, args.size, args.size, 30.0, radius_m=0.8,
                         yaw_range_deg=(-150.0, 150.0))
        render_capture(capture, cams, head, None, shell, RenderSettings(background="environment"))
    render_s = time.perf_counter() - t0
    keep = head.region[head.faces].max(1) < REGION_TORSO  # the ICT head, like the fitted head.obj
    faces = head.faces[keep]
    over = {} if args.iterations is None else {"iterations": args.iterations}
    cfg = _cfg(args.preset, **over)
    out_dir = Path(args.out) if args.out else Path(tempfile.mkdtemp())
    out_dir.mkdir(parents=True, exist_ok=True)
    t1 = time.perf_counter()
    data, names = load_capture_data(capture, capture, capture, capture / "cameras.json",
                                    head.vertices, faces, cfg.image_size, cfg.box_margin)
    gen = train_and_export(data, names, cfg, args.device, out_dir)
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        summary = stop.value
    stage_s = time.perf_counter() - t1
    from engine.coarse.export import load_coarse_fields
    from engine.head.model import load_head_mesh

    q = load_coarse_fields(out_dir, args.device)
    hair_mesh = load_head_mesh(out_dir / "hair_mesh.ply")
    every = max(1, len(names) // args.eval_views)
    eval_views = list(range(0, len(names), every))
    truth_pts, truth_dirs = _truth(capture, [names[i] for i in eval_views])
    surf, _ = shell.sample_surface(400000, seed=1)
    tree = cKDTree(surf)
    metrics = surface_metrics(q.fields, q.centre.cpu().numpy(), q.scale, data.cams, truth_pts,
                              truth_dirs, lambda p: tree.query(p, workers=1)[0], hair_mesh,
                              views=eval_views)
    return {"preset": args.preset, "views": len(names), "eval_views": len(eval_views), "capture_size": args.size,
            "training_size": summary["image_size"], "iterations": cfg.iterations,
            "device": args.device, "threads": torch.get_num_threads(),
            "render_capture_s": round(render_s, 1), "stage_wall_s": round(stage_s, 1),
            "train_s": summary["train_s"], **{k: round(v, 3) if isinstance(v, float) else v
                                              for k, v in metrics.items()},
            "final_losses": summary["final_losses"], "out_dir": str(out_dir)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("task", choices=("speed", "accuracy"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per preset (speed)")
    ap.add_argument("--preset", default="preview", choices=("preview", "standard", "high"))
    ap.add_argument("--views", type=int, default=24)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--iterations", type=int, default=None)
    ap.add_argument("--eval-views", type=int, default=8,
                    help="views (evenly spread) on which the visible surface is compared")
    ap.add_argument("--capture", default=None)
    ap.add_argument("--head", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--json", default=None, help="also write the result to this JSON file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    res = speed(args) if args.task == "speed" else accuracy(args)
    res = {"task": args.task, "result": res, "torch_threads": args.threads,
           "cpu_count": os.cpu_count(), "machine": platform.platform(),
           "cuda": torch.cuda.get_device_name(0) if args.device == "cuda" else None}
    text = json.dumps(res, indent=2)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
