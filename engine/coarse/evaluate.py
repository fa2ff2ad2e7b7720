"""Accuracy of fitted coarse fields against a known hair surface and growth-direction field.

Used by the benchmark on :mod:`engine.synthetic` shell captures (and by the analytic test scene).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from engine.coarse.export import render_maps
from engine.coarse.render import CameraSet


def predicted_visible_hair(fields, centre: np.ndarray, scale: float, cams: CameraSet,
                           views: list[int] | None = None) -> np.ndarray:
    """Expected hair-surface points (M, 3) float64, metres, head frame, of every pixel whose
    rendered hair opacity exceeds 0.5, over the given views (default all)."""
    dev = next(fields.parameters()).device
    c = torch.as_tensor(np.asarray(centre), dtype=torch.float32, device=dev)
    cams_d = cams.to(dev)
    H, W = cams.height, cams.width
    ys, xs = np.mgrid[0:H, 0:W]
    pts = []
    for v in (range(cams.K.shape[0]) if views is None else views):
        m = render_maps(fields, cams_d, v, c, scale, n_samples=32, n_importance=32)
        K, R, t = (cams.K[v].cpu().double().numpy(), cams.R[v].cpu().double().numpy(),
                   cams.t[v].cpu().double().numpy())
        d = np.stack([(xs - K[0, 2]) / K[0, 0], (ys - K[1, 2]) / K[1, 1], np.ones((H, W))],
                     -1).reshape(-1, 3) @ R
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        sel = (m["mask_hair"] > 0.5).reshape(-1)
        pts.append(-R.T @ t + d[sel] * m["depth_hair"].reshape(-1)[sel, None])
    return np.concatenate(pts) if pts else np.zeros((0, 3))


def surface_metrics(fields, centre: np.ndarray, scale: float, cams: CameraSet,
                    truth_points: np.ndarray, truth_dirs: np.ndarray,
                    truth_distance: Callable[[np.ndarray], np.ndarray],
                    hair_mesh: tuple[np.ndarray, np.ndarray], max_points: int = 20000,
                    seed: int = 0, views: list[int] | None = None) -> dict[str, float]:
    """Chamfer distance and orientation error on the visible hair surface.

    Args:
        fields: fitted :class:`~engine.coarse.fields.CoarseFields`; centre (3,), scale: its box.
        cams: the views on which visibility is judged (head frame); ``views``: which of them
            (default all) render the predicted visible surface.
        truth_points: (N, 3) metres, true visible hair-surface points (e.g. depth-map hits).
        truth_dirs: (N, 3) true unit growth directions there (sign-free).
        truth_distance: (M, 3) -> (M,) unsigned distance (metres) to the true hair surface.
        hair_mesh: the fitted hair mesh (vertices (V, 3) metres, faces (F, 3)).
    Returns:
        dict: ``chamfer_mm`` = (mean truth->prediction + mean prediction->truth) / 2, where
        truth->prediction goes to the fitted mesh (densely sampled) and prediction->truth uses
        the rendered expected hair surface of ``cams``; both one-sided means;
        ``angle_median_deg`` / ``angle_mean_deg`` between beta at the true points and the truth.
    """
    import trimesh
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    if len(truth_points) > max_points:
        keep = rng.choice(len(truth_points), max_points, replace=False)
        truth_points, truth_dirs = truth_points[keep], truth_dirs[keep]
    pred = predicted_visible_hair(fields, centre, scale, cams, views)
    if len(pred) > max_points:
        pred = pred[rng.choice(len(pred), max_points, replace=False)]
    v_, f_ = hair_mesh
    if len(f_) == 0 or len(pred) == 0:
        return {"chamfer_mm": float("inf"), "angle_median_deg": 90.0, "angle_mean_deg": 90.0}
    samples, _ = trimesh.sample.sample_surface_even(trimesh.Trimesh(v_, f_, process=False),
                                                    300000, seed=seed)
    d_tp = cKDTree(samples).query(truth_points, workers=1)[0]
    d_pt = np.asarray(truth_distance(pred))
    dev = next(fields.parameters()).device
    with torch.no_grad():
        u = (torch.as_tensor(truth_points, dtype=torch.float32, device=dev)
             - torch.as_tensor(np.asarray(centre), dtype=torch.float32, device=dev)) / scale
        beta = fields.orientation(u).cpu().double().numpy()
    cos = np.abs((beta * truth_dirs).sum(-1)).clip(0, 1)
    ang = np.degrees(np.arccos(cos))
    return {"chamfer_mm": float(500.0 * (d_tp.mean() + d_pt.mean())),
            "truth_to_pred_mm": float(1000 * d_tp.mean()),
            "pred_to_truth_mm": float(1000 * d_pt.mean()),
            "pred_to_truth_p90_mm": float(1000 * np.percentile(d_pt, 90)),
            "angle_median_deg": float(np.median(ang)), "angle_mean_deg": float(ang.mean()),
            "n_truth": int(len(truth_points)), "n_pred": int(len(pred))}
