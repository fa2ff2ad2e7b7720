"""Benchmark of the soft hair rasteriser (engine.strands.raster): forward and forward+backward.

Usage:
    python benchmarks/bench_raster.py [--strands 10000] [--points 100] [--size 512]
        [--device cpu|cuda|auto] [--threads 2] [--repeat 3] [--faces 16] [--bin-size 4]
        [--channels 3] [--chunk-pairs N]

Synthetic hair-like strands (seeded): roots on an arc over the top of the image (a "scalp"),
smooth random walks that start upwards/outwards and fall down with gravity, about 2.5 px per
segment, half-widths 1-3 px per strand, depths 0.4-0.6 m. Times:
  * forward: ``rasterize_strands`` (K = --faces, sigma 0.5 px) + ``blend`` of per-segment
    features (--channels), no autograd graph kept beyond the call;
  * forward+backward: the same with ``verts`` and ``features`` requiring grad, loss = blended
    image sum, ``loss.backward()``.
Each is run --repeat times after one warm-up; the median and minimum are reported.
Peak memory: on CUDA ``torch.cuda.max_memory_allocated``; on CPU the growth of the process's
peak resident set (``resource.getrusage`` ru_maxrss, Linux KiB) over the whole benchmark after the
inputs were made, which bounds the rasteriser's working set from above. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

import torch

from engine.strands.raster import RasterSettings, blend, rasterize_strands


def hair_like_strands(n: int, points: int, size: int, seed: int = 0, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(n, points, 3) projected strands (x px, y px, depth m) and (n,) half-widths in px."""
    g = torch.Generator().manual_seed(seed)
    c = size / 2
    # Roots on the upper half of an ellipse (the scalp seen from the front).
    ang = math.pi * (0.03 + 0.94 * torch.rand(n, generator=g))
    rad = 0.9 + 0.1 * torch.rand(n, generator=g)
    root = torch.stack([c + 0.22 * size * rad * torch.cos(ang),
                        0.5 * size - 0.28 * size * rad * torch.sin(ang)], -1)
    step = 2.5 * size / 512
    # Heading starts outwards from the scalp and turns down (gravity), with smooth noise.
    h0 = -ang + 0.2 * torch.randn(n, generator=g)
    bend = torch.linspace(0, 1, points - 1)[None] ** 0.5
    down = math.pi / 2 - 0.25 * torch.sign(torch.cos(ang))  # image y is down; lean outwards
    noise = torch.randn(n, points - 1, generator=g).mul(0.05).cumsum(1)
    turn = torch.remainder(down - h0 + math.pi, 2 * math.pi) - math.pi  # the short way round
    heading = h0[:, None] + turn[:, None] * bend + noise
    d = torch.stack([torch.cos(heading), torch.sin(heading)], -1) * step
    xy = torch.cat([root[:, None], root[:, None] + d.cumsum(1)], 1)
    z = 0.4 + 0.2 * torch.rand(n, 1, 1, generator=g) + 0.02 * torch.linspace(0, 1, points)[None, :, None] \
        * torch.randn(n, 1, 1, generator=g)
    verts = torch.cat([xy, z.clamp(0.4, 0.6)], -1)
    hw = 1.0 + 2.0 * torch.rand(n, generator=g)
    return verts.to(device), hw.to(device)


def _maxrss_mib() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / (1024 * 1024) if sys.platform == "darwin" else kib / 1024


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def run(args) -> dict:
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    verts, hw = hair_like_strands(args.strands, args.points, args.size, seed=0, device=device)
    n_seg = args.strands * (args.points - 1)
    feats = torch.rand(n_seg, args.channels, generator=torch.Generator().manual_seed(1)).to(device)
    st = RasterSettings(args.size, args.size, faces_per_pixel=args.faces, sigma=0.5, bin_size=args.bin_size)
    kw = {"chunk_pairs": args.chunk_pairs} if args.chunk_pairs else {}

    def forward():
        with torch.no_grad():
            frag = rasterize_strands(verts, hw, st, **kw)
            img, alpha = blend(frag, feats)
        _sync(device)
        return frag, img, alpha

    def forward_backward():
        v = verts.clone().requires_grad_(True)
        f = feats.clone().requires_grad_(True)
        frag = rasterize_strands(v, hw, st, **kw)
        img, _ = blend(frag, f)
        img.sum().backward()
        _sync(device)
        return v.grad

    rss0 = _maxrss_mib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    out = {}
    for name, fn in (("forward", forward), ("forward_backward", forward_backward)):
        times = []
        res = None
        for i in range(args.repeat + 1):
            t0 = time.perf_counter()
            res = fn()
            dt = time.perf_counter() - t0
            if i > 0 or args.repeat == 0:
                times.append(dt)
            print(f"{name} run {i}: {dt:.2f} s", file=sys.stderr, flush=True)
        out[name] = {"median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3),
                     "runs": len(times)}
        if name == "forward":
            frag, img, alpha = res
            filled = (frag.seg >= 0).sum(-1)
            out["coverage_stats"] = {
                "hair_pixels_share": round(float((alpha > 0.5).float().mean()), 4),
                "mean_faces_in_covered_pixels": round(float(filled[filled > 0].float().mean()), 2),
                "pixels_with_K_faces_share": round(float((filled == args.faces).float().mean()), 4),
            }
            del frag, img, alpha, res
        else:
            out["forward_backward"]["grad_finite"] = bool(torch.isfinite(res).all())
    if device.type == "cuda":
        out["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    rss1 = _maxrss_mib()
    if rss0 is not None:
        out["peak_rss_growth_mib"] = round(rss1 - rss0, 1)
        out["peak_rss_mib"] = round(rss1, 1)
    out["config"] = {"strands": args.strands, "points": args.points, "segments": n_seg,
                     "size": args.size, "faces_per_pixel": args.faces, "sigma": 0.5,
                     "bin_size": args.bin_size, "channels": args.channels,
                     "chunk_pairs": args.chunk_pairs, "device": str(device),
                     "threads": torch.get_num_threads() if device.type == "cpu" else None,
                     "repeat": args.repeat}
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    out["machine"] = {"load_average_1_5_15": [round(x, 2) for x in load] if load else None,
                      "python": platform.python_version(), "torch": torch.__version__,
                      "platform": platform.platform(), "cpu_count": os.cpu_count(),
                      "processor": platform.processor() or platform.machine(),
                      "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--strands", type=int, default=10000)
    p.add_argument("--points", type=int, default=100)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--faces", type=int, default=16)
    p.add_argument("--bin-size", type=int, default=4)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--chunk-pairs", type=int, default=None)
    args = p.parse_args(argv)
    print(json.dumps(run(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
