"""Ablation of the fine strand stage: strand F-scores with the geometry losses only, plus the
rendering loss, plus the diffusion prior (Neural Haircut's Table 2 style), on a capture with a
known groom.

Usage:
    python benchmarks/bench_strands.py [--project out/demo] [--preset preview]
        [--truth resources/sample/groom.npz] [--set STAGE.FIELD=VALUE ...]
        [--variants geometry,render,prior] [--seeds 1] [--first-seed 0]
        [--out docs/benchmarks/strands_ablation]
    python benchmarks/bench_strands.py --merge A.json B.json --out docs/benchmarks/strands_ablation

The project must hold the capture (``strandcap demo`` makes one for the embedded sample, whose
groom is procedural with a seed the prior never saw). Each variant runs the real stage graph
(earlier stages come from the project's cache, so only the ``strands`` stage runs), with the
``strands`` weights set as below, then scores ``groom.npz`` against the truth with
:func:`engine.metrics.strand_scores`. With ``--seeds N`` every variant runs with
``strands.seed = 0 .. N-1`` (texture initialisation, root sampling, SDS noise) and the table gives
the mean and the standard deviation over the seeds, so a difference between variants can be
compared with the run-to-run spread. Prints JSON; writes ``<out>.json`` and ``<out>.md``.

* ``geometry``: ``lambda_render = 0``, ``lambda_prior = 0``.
* ``render``: ``lambda_prior = 0`` (geometry + rendering, the stage's defaults).
* ``prior``: plus the diffusion prior at ``lambda_prior = 0.05`` (the full method), noise levels
  from the stage's ``prior_sigma_min`` / ``prior_sigma_max``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

VARIANTS = {
    "geometry": {"lambda_render": 0.0, "lambda_prior": 0.0},
    "render": {"lambda_prior": 0.0},
    "prior": {"lambda_prior": 0.05},
}


def run_variant(project, preset: str, overrides: dict, device: str) -> tuple[Path, float]:
    """Run the graph with ``overrides`` and return (strands stage folder, its wall time s)."""
    from engine.pipeline import CancelToken, PipelineConfig, StageFinished, run_pipeline
    from engine.registry import default_stages

    stages = default_stages()
    cfg = PipelineConfig(stages, preset=preset, overrides=overrides, device=device)
    path, wall = None, 0.0
    for ev in run_pipeline(project, stages, cfg, CancelToken()):
        if isinstance(ev, StageFinished) and ev.stage == "strands":
            path, wall = ev.path, ev.wall_s
    if path is None:
        raise RuntimeError("the strands stage did not run")
    return path, wall


def summarise(results: list[dict], variants: list[str]) -> list[dict]:
    """Mean and standard deviation (over seeds) of the F-scores per variant."""
    summary = []
    for name in variants:
        rs = [r for r in results if r["variant"] == name]
        if not rs:
            continue
        f = np.array([[s["f_score"] for s in r["scores"]] for r in rs])
        summary.append({"variant": name, "seeds": sorted(r["seed"] for r in rs),
                        "f_mean": f.mean(0).round(2).tolist(),
                        "f_std": f.std(0, ddof=1).round(2).tolist() if len(rs) > 1 else None,
                        "strands_mean": int(np.mean([r["strands"] for r in rs])),
                        "stage_wall_s_mean": round(float(np.mean([r["stage_wall_s"] for r in rs])), 1)})
    # each addition against the variant before it, paired by seed (same initialisation and
    # sampling): mean difference, its standard error and how many seeds it raised the F-score
    for prev, cur in zip(summary, summary[1:]):
        seeds = sorted(set(prev["seeds"]) & set(cur["seeds"]))
        if len(seeds) < 2:
            continue
        f = {(r["variant"], r["seed"]): [s["f_score"] for s in r["scores"]] for r in results}
        d = np.array([np.subtract(f[(cur["variant"], k)], f[(prev["variant"], k)]) for k in seeds])
        cur["paired_vs"] = prev["variant"]
        cur["paired_diff_mean"] = d.mean(0).round(2).tolist()
        cur["paired_diff_se"] = (d.std(0, ddof=1) / np.sqrt(len(seeds))).round(2).tolist()
        cur["paired_seeds_higher"] = (d > 0).sum(0).tolist()
    return summary


def write_report(report: dict, out: Path) -> None:
    """``<out>.json`` (the report) and ``<out>.md`` (the summary table)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    lines = ["| variant | seeds | strands | F 2mm/20deg | F 3mm/30deg | F 4mm/40deg | stage wall s |",
             "|---|---|---|---|---|---|---|"]
    for r in report["summary"]:
        sd = r["f_std"] or [None] * len(r["f_mean"])
        cells = [f"{m:.1f}" + (f" ± {d:.1f}" if d is not None else "") for m, d in zip(r["f_mean"], sd)]
        lines.append(f"| {r['variant']} | {len(r['seeds'])} | {r['strands_mean']} | " + " | ".join(cells)
                     + f" | {r['stage_wall_s_mean']} |")
    lines += ["", "(F-scores in %: mean ± standard deviation over the seeds)"]
    paired = [r for r in report["summary"] if "paired_vs" in r]
    if paired:
        lines += ["", "| addition | paired over seeds | dF 2mm/20deg | dF 3mm/30deg | dF 4mm/40deg |",
                  "|---|---|---|---|---|"]
        for r in paired:
            cells = [f"{m:+.1f} ± {e:.1f} ({k} higher)" for m, e, k in
                     zip(r["paired_diff_mean"], r["paired_diff_se"], r["paired_seeds_higher"])]
            lines.append(f"| {r['variant']} vs {r['paired_vs']} | {len(r['seeds'])} | " + " | ".join(cells) + " |")
        lines += ["", "(mean ± standard error of the per-seed difference)"]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    from engine.cli import parse_overrides
    from engine.io.export import load_groom
    from engine.metrics import strand_scores
    from engine.pipeline import Project

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", default="out/demo")
    ap.add_argument("--preset", default="preview")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--truth", default=str(REPO / "resources" / "sample" / "groom.npz"))
    ap.add_argument("--set", action="append", default=[], metavar="STAGE.FIELD=VALUE")
    ap.add_argument("--variants", default="geometry,render,prior")
    ap.add_argument("--seeds", type=int, default=1, help="runs per variant (strands.seed "
                    "FIRST..FIRST+N-1)")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--merge", nargs="+", type=Path, default=None, metavar="REPORT.json",
                    help="run nothing: merge the results of earlier reports (e.g. seeds run in "
                    "two processes) into one summary")
    ap.add_argument("--out", default=None, help="write <out>.json and <out>.md")
    a = ap.parse_args(argv)
    variants = a.variants.split(",")
    if a.merge:
        reports = [json.loads(p.read_text()) for p in a.merge]
        results = [r for rep in reports for r in rep["results"]]
        report = {**{k: v for k, v in reports[0].items() if k not in ("summary", "results")},
                  "merged_from": [str(p) for p in a.merge],
                  "summary": summarise(results, variants), "results": results}
        print(json.dumps(report["summary"], indent=2))
        if a.out:
            write_report(report, Path(a.out))
        return 0
    project = Project.open(a.project)
    truth = load_groom(a.truth)
    base = parse_overrides(a.set)
    results = []
    for name in variants:
        for seed in range(a.first_seed, a.first_seed + a.seeds):
            ov = {k: dict(v) for k, v in base.items()}
            ov.setdefault("strands", {}).update(VARIANTS[name])
            ov["strands"].setdefault("seed", seed)
            t0 = time.perf_counter()
            path, wall = run_variant(project, a.preset, ov, a.device)
            groom = load_groom(path / "groom.npz")
            scores = strand_scores(groom, truth, workers=-1)
            results.append({"variant": name, "seed": ov["strands"]["seed"],
                            "strands_overrides": ov["strands"],
                            "stage_wall_s": round(wall, 1), "strands": groom.num_strands,
                            "scores": [{"distance_mm": round(s.distance_m * 1000, 1),
                                        "angle_deg": s.angle_deg, "precision": round(s.precision, 2),
                                        "recall": round(s.recall, 2), "f_score": round(s.f_score, 2)}
                                       for s in scores],
                            "elapsed_s": round(time.perf_counter() - t0, 1)})
            print(json.dumps(results[-1]), flush=True)
    report = {"project": str(Path(a.project).resolve()), "preset": a.preset, "truth": a.truth,
              "overrides": base, "machine": f"{platform.machine()} {platform.processor()}",
              "date": time.strftime("%Y-%m-%d"), "summary": summarise(results, variants),
              "results": results}
    print(json.dumps(report, indent=2))
    if a.out:
        write_report(report, Path(a.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
