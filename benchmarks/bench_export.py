"""Benchmark: write (and read back) a 50,000-strand x 100-point groom in every format.

Usage: python benchmarks/bench_export.py [--strands 50000] [--points 100] [--dir DIR] [--no-read]
Prints JSON: per format the write time (s), file size (MB) and read-back time (s).
The groom is random but smooth: roots on the upper half of a 9 cm sphere (a scalp), strands
growing along the normal and bending down under smoothly varying random curvature, 20-30 cm
long; per-strand widths, root UVs and colours, so every attribute path is exercised.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from engine.io.export import WRITE_FORMATS, export_groom, load_groom
from engine.io.groom import Groom


def smooth_groom(n: int, L: int, seed: int = 0) -> Groom:
    rng = np.random.default_rng(seed)
    u = rng.uniform(0, 1, n)
    v = rng.uniform(0, 1, n)
    theta = np.arccos(1 - u)  # upper hemisphere (polar angle from +Y)
    phi = 2 * np.pi * v
    normal = np.stack([np.sin(theta) * np.cos(phi), np.cos(theta), np.sin(theta) * np.sin(phi)], 1)
    roots = 0.09 * normal
    length = rng.uniform(0.2, 0.3, n)
    step = (length / (L - 1))[:, None]
    d = normal.copy()
    pts = np.empty((n, L, 3), np.float64)
    pts[:, 0] = roots
    # Smooth random bending: a low-frequency random walk of the curvature vector.
    k = np.zeros((n, 3))
    for i in range(1, L):
        k = 0.9 * k + 0.1 * rng.normal(0, 1.5, (n, 3))
        d = d + step * (k + np.array([0, -12.0, 0]))  # gravity pulls strands down
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        pts[:, i] = pts[:, i - 1] + step * d
    return Groom(strands=pts.astype(np.float32), widths=rng.uniform(5e-5, 9e-5, n),
                 root_uv=np.stack([u, v], 1), colors=rng.uniform(0.1, 0.4, (n, 3)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strands", type=int, default=50000)
    ap.add_argument("--points", type=int, default=100)
    ap.add_argument("--dir", type=Path, default=None, help="output folder (default: temporary)")
    ap.add_argument("--no-read", action="store_true", help="skip the read-back timing")
    args = ap.parse_args()
    t0 = time.perf_counter()
    groom = smooth_groom(args.strands, args.points)
    gen_s = time.perf_counter() - t0
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = args.dir or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        for fmt in WRITE_FORMATS:
            path = out / f"bench.{fmt}"
            t0 = time.perf_counter()
            export_groom(groom, path)  # defaults: centimetres, Y-up, linear
            w = time.perf_counter() - t0
            entry = {"write_s": round(w, 3), "size_mb": round(path.stat().st_size / 1e6, 2)}
            if not args.no_read:
                t0 = time.perf_counter()
                back = load_groom(path)
                entry["read_s"] = round(time.perf_counter() - t0, 3)
                entry["max_error_m"] = float(np.abs(back.strands - groom.strands).max())
                del back
            results[fmt] = entry
    print(json.dumps({"strands": args.strands, "points_per_strand": args.points,
                      "generate_s": round(gen_s, 3), "machine": platform.platform(),
                      "python": platform.python_version(), "formats": results}, indent=2))


if __name__ == "__main__":
    main()
