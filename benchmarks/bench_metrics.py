"""Benchmark: strand precision / recall / F-score for 1M predicted vs 1M ground-truth points.

Usage: python benchmarks/bench_metrics.py [--strands 10000] [--points 100] [--workers N]
Prints JSON: seconds for the three default thresholds together, and the scores.
Ground truth: the smooth random groom of bench_export.py (10,000 strands x 100 points).
Prediction: a different draw of the same generator (other roots and shapes) blended with the
ground truth and displaced by a smooth per-strand offset of about 1.5 mm, so scores land between
0 and 100 and the search meets both matched and unmatched points.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_export import smooth_groom  # noqa: E402

from engine.metrics import format_scores, strand_scores  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strands", type=int, default=10000)
    ap.add_argument("--points", type=int, default=100)
    ap.add_argument("--workers", type=int, default=1, help="KD-tree query threads (-1: all)")
    args = ap.parse_args()
    gt = smooth_groom(args.strands, args.points, seed=0).strands
    other = smooth_groom(args.strands, args.points, seed=1).strands
    rng = np.random.default_rng(2)
    half = args.strands // 2
    pred = np.concatenate([gt[:half], other[half:]])  # half the strands right, half elsewhere
    offset = rng.normal(0, 0.0015, (args.strands, 1, 3)) * np.linspace(0.2, 1.0, args.points)[
        None, :, None]
    pred = (pred + offset).astype(np.float32)
    t0 = time.perf_counter()
    scores = strand_scores(pred, gt, workers=args.workers)
    secs = time.perf_counter() - t0
    print(format_scores(scores), file=sys.stderr)
    print(json.dumps({
        "predicted_points": int(pred.shape[0] * pred.shape[1]),
        "ground_truth_points": int(gt.shape[0] * gt.shape[1]),
        "seconds_all_three_thresholds": round(secs, 2),
        "workers": args.workers,
        "cpu_count": os.cpu_count(),
        "machine": platform.platform(),
        "scores": [s.as_dict() for s in scores],
    }, indent=2))


if __name__ == "__main__":
    main()
