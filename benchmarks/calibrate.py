"""Calibration of the groom metrics: what a score means, measured on known perturbations of a
true groom.

A metric is only a yardstick if a groom that is visibly wrong scores clearly lower than the
truth. This script takes true grooms (the embedded sample's, the benchmark's procedural
``wavy`` groom, and the shared Sintel guides when present), perturbs each in ways a hair artist
would call wrong, and scores every perturbation against its truth with
:func:`engine.metrics.groom_scores` (point and strand-level precision / recall / F, length and
shape). Perturbations:

* ``truth``: the groom itself (100 everywhere: the sanity check);
* ``shift 2/5/10 mm``: every point moved by that distance along (1, 1, 1) / sqrt(3);
* ``rotate 10/20 deg``: the groom turned about the vertical (+Y) axis through its roots'
  centroid;
* ``quarter``: a seeded random 25 % of the strands (precision stays 100, recall must drop);
* ``unrelated``: another procedural groom (``curly``, another seed) of about the same size.

Writes ``<out>/calibration.json`` and ``.md`` (default ``docs/benchmarks``).

Usage:
    python benchmarks/calibrate.py [--grooms sample,wavy,sintel] [--strands 10000]
                                   [--out docs/benchmarks]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SHIFTS_MM = (2.0, 5.0, 10.0)
ROTATIONS_DEG = (10.0, 20.0)
SEED = 3_000_000


def shifted(strands: np.ndarray, mm: float) -> np.ndarray:
    """``strands`` (N, P, 3) metres moved by ``mm`` millimetres along (1, 1, 1) / sqrt(3)."""
    return strands + (mm / 1000.0) * np.full(3, 1.0 / np.sqrt(3.0), np.float32)


def rotated(strands: np.ndarray, deg: float) -> np.ndarray:
    """``strands`` turned by ``deg`` degrees about +Y through the roots' centroid
    (scipy ``Rotation``)."""
    from scipy.spatial.transform import Rotation

    centre = strands[:, 0].mean(0)
    R = Rotation.from_euler("y", deg, degrees=True).as_matrix().astype(np.float32)
    return (strands - centre) @ R.T + centre


def quarter(strands: np.ndarray, seed: int = 0) -> np.ndarray:
    """A seeded random quarter of the strands."""
    rng = np.random.default_rng(seed)
    return strands[np.sort(rng.choice(len(strands), max(1, len(strands) // 4), replace=False))]


def procedural(curl: str, seed: int, n_strands: int, n_points: int = 100) -> np.ndarray:
    """A medium-length procedural groom of :mod:`engine.prior.synth` on the model head."""
    from engine.prior.synth import sample_style, synth_groom

    style = sample_style(seed, curl=curl, length="medium", parting="none", fringe=False)
    return synth_groom(style, n_strands=n_strands, n_points=n_points).strands.astype(np.float32)


def true_grooms(names: Sequence[str], n_strands: int) -> dict[str, np.ndarray]:
    """Name -> true strands (N, P, 3) float32 metres, head frame; absent data is skipped."""
    from engine.io.export import load_groom
    from engine.resources import resource

    out: dict[str, np.ndarray] = {}
    for name in names:
        if name == "sample":
            out[name] = np.asarray(load_groom(resource("sample", "groom.npz")).strands, np.float32)
        elif name == "wavy":
            out[name] = procedural("wavy", SEED + 1, n_strands)
        elif name == "sintel":
            try:
                from benchmarks.blender_capture import benchmark_groom
            except ImportError:
                continue
            try:
                out[name] = np.asarray(benchmark_groom("sintel").strands, np.float32)
            except Exception as exc:  # the shared groom may be absent
                print(f"sintel skipped: {exc}", file=sys.stderr)
        else:
            raise SystemExit(f"--grooms: unknown groom {name!r} (sample, wavy, sintel)")
    return out


def perturbations(strands: np.ndarray) -> list[tuple[str, Callable[[], np.ndarray]]]:
    """(label, make) for every perturbation of ``strands``."""
    rows: list[tuple[str, Callable[[], np.ndarray]]] = [("truth", lambda: strands)]
    rows += [(f"shift {mm:g} mm", lambda mm=mm: shifted(strands, mm)) for mm in SHIFTS_MM]
    rows += [(f"rotate {d:g} deg", lambda d=d: rotated(strands, d)) for d in ROTATIONS_DEG]
    rows.append(("quarter of the strands", lambda: quarter(strands)))
    rows.append(("unrelated (curly)", lambda: procedural("curly", SEED + 77, len(strands),
                                                         strands.shape[1])))
    return rows


def calibrate(grooms: dict[str, np.ndarray], log=print) -> dict[str, Any]:
    """Scores of every perturbation of every groom: {groom: [{perturbation, scores}]}."""
    from engine.metrics import groom_scores

    out: dict[str, Any] = {}
    for name, gt in grooms.items():
        out[name] = []
        for label, make in perturbations(gt):
            t0 = time.perf_counter()
            scores = groom_scores(make(), gt, workers=-1)
            out[name].append({"perturbation": label, "scores": scores,
                              "seconds": round(time.perf_counter() - t0, 1)})
            f = [s["f_score"] for s in scores["point"]] + [s["f_score"] for s in scores["strand"]]
            log(f"{name}: {label}: point F {f[0]:.1f} / {f[1]:.1f} / {f[2]:.1f}, strand F "
                f"{f[3]:.1f} / {f[4]:.1f}")
    return out


def markdown(report: dict[str, Any]) -> str:
    lines = ["# Calibration of the groom metrics", "",
             f"- Command: `{report['command']}`", "",
             "Each true groom is perturbed and scored against itself (F in percent; point F "
             "at 2/20, 3/30, 4/40 mm/deg; strand-level F at 3/30 and 4/40, a strand matching "
             "when 90 % of its points do; length W1 in cm). A metric that scores a 10 mm "
             "shift or a 20 deg turn close to the truth cannot tell a good groom from a wrong "
             "one.", ""]
    for name, rows in report["grooms"].items():
        info = report["sizes"][name]
        lines += [f"## {name} ({info['strands']} strands x {info['points']} points)", "",
                  "| perturbation | point F 2/20 | point F 3/30 | point F 4/40 | strand F 3/30 "
                  "| strand F 4/40 | strand recall 4/40 | length W1 cm |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            p, s = r["scores"]["point"], r["scores"]["strand"]
            lines.append(f"| {r['perturbation']} | " + " | ".join(f"{x['f_score']:.1f}" for x in p)
                         + " | " + " | ".join(f"{x['f_score']:.1f}" for x in s)
                         + f" | {s[-1]['recall']:.1f} | "
                         f"{r['scores']['shape']['length_w1_cm']:.2f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grooms", default="sample,wavy,sintel")
    ap.add_argument("--strands", type=int, default=10000, help="strands of the procedural groom")
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks"))
    args = ap.parse_args(argv)
    grooms = true_grooms([g.strip() for g in args.grooms.split(",") if g.strip()], args.strands)
    report = {"command": "python benchmarks/calibrate.py "
                         + " ".join(argv if argv is not None else sys.argv[1:]),
              "sizes": {k: {"strands": int(v.shape[0]), "points": int(v.shape[1])}
                        for k, v in grooms.items()},
              "grooms": calibrate(grooms, log=lambda m: print(m, file=sys.stderr, flush=True))}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "calibration.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "calibration.md").write_text(markdown(report), encoding="utf-8")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
