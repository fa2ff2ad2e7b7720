"""Fit the head model to 2D face landmarks of all keyframes (multi-frame model fitting).

Minimises, over per-frame rigid poses (R_k, t_k), shared identity coefficients beta, per-frame
expression weights psi_k and a shared focal length f (pinhole, principal point at the image centre
unless given):

    E = sum_k sum_i rho(|| pi_f(R_k v_i(beta, psi_k) + t_k) - x_ki ||)          (reprojection)
        + w_id ||beta||^2 + w_ex sum_k (||psi_k||_1 + ||psi_k||^2)            (priors)

with rho the Huber function (robust to mislocated landmarks), v_i the model vertex of mediapipe
landmark i (engine.head.model), psi clamped to [0, 1]. This is the landmark term of the FLAME
tracking used by Neural Haircut (Sklyarova et al., ICCV 2023, Sec. 4) with the ICT model. Adam in
torch (float64); poses are initialised per frame with OpenCV's solvePnP at the focal length that
best explains all frames (grid over fields of view). The model is metric, so the fit is metric:
poses are world(head frame, metres)-to-camera, OpenCV convention.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from engine.errors import InputError
from engine.head.model import HeadModel


@dataclass
class HeadFit:
    """Result of :func:`fit_head`.

    Attributes:
        names: frame names (K).  fitted: (K,) bool frames with a pose.
        R: (K, 3, 3) float64, t: (K, 3) float64 metres: head-frame-to-camera (OpenCV).
        focal: float pixels (fx = fy), cx, cy: principal point pixels, width, height: pixels.
        identity: (NI,) float64 coefficients.  expression: (K, NE) float64 weights in [0, 1].
        residual_px: (K, M) float64 reprojection error per landmark (NaN where not observed).
    """

    names: list[str]
    fitted: np.ndarray
    R: np.ndarray
    t: np.ndarray
    focal: float
    cx: float
    cy: float
    width: int
    height: int
    identity: np.ndarray
    expression: np.ndarray
    residual_px: np.ndarray

    def summary(self) -> dict:
        r = self.residual_px[self.fitted]
        per_frame = [float(np.nanmedian(x)) if np.isfinite(x).any() else None
                     for x in self.residual_px]
        return {"median_px": float(np.nanmedian(r)), "mean_px": float(np.nanmean(r)),
                "p90_px": float(np.nanpercentile(r, 90)), "focal_px": self.focal,
                "frames": int(self.fitted.sum()),
                "per_frame_median_px": dict(zip(self.names, per_frame))}


def rodrigues(r: torch.Tensor) -> torch.Tensor:
    """Axis-angle (..., 3) radians -> rotation matrices (..., 3, 3) (differentiable)."""
    theta = torch.sqrt((r * r).sum(-1, keepdim=True) + 1e-16)
    k = r / theta
    K = torch.zeros(r.shape[:-1] + (3, 3), dtype=r.dtype, device=r.device)
    K[..., 0, 1], K[..., 0, 2] = -k[..., 2], k[..., 1]
    K[..., 1, 0], K[..., 1, 2] = k[..., 2], -k[..., 0]
    K[..., 2, 0], K[..., 2, 1] = -k[..., 1], k[..., 0]
    s, c = torch.sin(theta)[..., None], torch.cos(theta)[..., None]
    eye = torch.eye(3, dtype=r.dtype, device=r.device).expand_as(K)
    return eye + s * K + (1 - c) * (K @ K)


def solve_pnp(obj: np.ndarray, img: np.ndarray, K: np.ndarray):
    """Camera pose from 3D-2D correspondences: OpenCV SQPnP, refined by Levenberg-Marquardt.

    Args:
        obj: (N, 3) model points, metres. img: (N, 2) their pixels. K: (3, 3) intrinsics.
    Returns:
        ``(rvec (3,), tvec (3,), median reprojection error in pixels)`` of the world-to-camera
        pose (OpenCV convention), or None when OpenCV finds no solution.
    """
    obj = np.ascontiguousarray(obj, np.float64)
    img = np.ascontiguousarray(img, np.float64)
    ok, rvec, tvec = cv2.solvePnP(obj, img, K, None, flags=cv2.SOLVEPNP_SQPNP)
    if ok:
        ok, rvec, tvec = cv2.solvePnP(obj, img, K, None, rvec, tvec, True,
                                      flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return None
    proj, _ = cv2.projectPoints(obj, rvec, tvec, K, None)
    err = np.linalg.norm(proj[:, 0] - img, axis=1)
    return rvec[:, 0], tvec[:, 0], float(np.median(err))


def fit_head(model: HeadModel, landmarks: np.ndarray, found: np.ndarray, width: int, height: int,
             names: list[str] | None = None, focal: float | None = None,
             principal: tuple[float, float] | None = None, n_identity: int = 40,
             iterations: int = 400, w_identity: float = 100.0, w_expression: float = 0.5,
             fit_expression: bool = True, min_frames: int = 3, progress=None,
             rig: tuple[np.ndarray, np.ndarray] | None = None,
             rig_init: tuple[float, np.ndarray, np.ndarray] | None = None,
             rig_scale: bool = True) -> HeadFit:
    """Fit poses, identity, expressions and focal length to mediapipe landmarks.

    Args:
        model: the head model.
        landmarks: (K, 478, 2+) float pixels (x, y of mediapipe face mesh; extra columns ignored;
            NaN where not found).  found: (K,) bool.
        width, height: image size in pixels.  names: frame names (defaults "000", ...).
        focal: known focal length in pixels, or None to estimate a shared one.
        principal: known (cx, cy) pixels, else the image centre ((W - 1) / 2, (H - 1) / 2).
        n_identity: number of identity modes used (<= model.n_identity).
        iterations: Adam steps of the joint refinement.
        w_identity, w_expression: prior weights (in squared pixels per unit coefficient).
        fit_expression: False keeps expressions at 0 (rigid + identity only).
        min_frames: fewer frames with landmarks than this raises InputError.
        progress: optional callable(step, total, losses: dict) called during refinement.
        rig: optional cameras known up to a similarity (e.g. from structure from motion):
            (R (K, 3, 3), t (K, 3)) world-to-camera in their own frame. Then the per-frame poses
            are not free: one similarity head -> rig frame (scale, rotation, translation) is
            fitted, so the metric scale comes from the head model seen in all views at once.
            Use with a known ``focal``.
        rig_init: (s, R, t) initial similarity x_rig = s R x_head + t (required with ``rig``).
        rig_scale: False holds the similarity's scale at ``s`` of ``rig_init`` (cameras known in
            metres: the head's identity, not the cameras, adapts to the landmarks).
    Returns:
        :class:`HeadFit`.
    Raises:
        InputError: fewer than ``min_frames`` frames have landmarks.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small problem: one thread is fastest and plays well with others
    try:
        return _fit_head(model, landmarks, found, width, height, names, focal, principal,
                         n_identity, iterations, w_identity, w_expression, fit_expression,
                         min_frames, progress, rig, rig_init, rig_scale)
    finally:
        torch.set_num_threads(threads)


def _initial_poses(obj: np.ndarray, pts: np.ndarray, idx: np.ndarray, K_all: int, width: int,
                   height: int, cx: float, cy: float, focal: float | None
                   ) -> tuple[float, np.ndarray, np.ndarray]:
    """The head fit's start: the focal length (pixels; ``focal``, or the field of view from 12
    to 90 degrees whose per-frame PnP of the mean head explains the landmarks best, over at most
    12 frames) and per-frame PnP poses (K_all, 3) Rodrigues vectors and translations (metres;
    frames without landmarks or a PnP solution keep a head 0.5 m in front of the camera).
    obj: (M, 3) model landmark positions, metres; pts: (K_all, M, 2) pixels; idx: the frames
    with landmarks."""
    sub = idx[np.linspace(0, len(idx) - 1, min(len(idx), 12)).astype(int)]
    if focal is None:
        best = None
        for fov in np.arange(12.0, 91.0, 3.0):
            f = 0.5 * max(width, height) / np.tan(np.radians(fov) / 2)
            Kc = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1.0]])
            errs = [solve_pnp(obj, pts[k], Kc) for k in sub]
            e = np.median([x[2] if x else 1e9 for x in errs])
            if best is None or e < best[0]:
                best = (e, f)
        f0 = best[1]
    else:
        f0 = float(focal)
    Kc = np.array([[f0, 0, cx], [0, f0, cy], [0, 0, 1.0]])
    rv0 = np.zeros((K_all, 3))
    tv0 = np.tile([0.0, 0.0, 0.5], (K_all, 1))
    for k in idx:
        r = solve_pnp(obj, pts[k], Kc)
        if r is not None:
            rv0[k], tv0[k] = r[0], r[1]
    return f0, rv0, tv0


def _fit_head(model, landmarks, found, width, height, names, focal, principal, n_identity,
              iterations, w_identity, w_expression, fit_expression, min_frames, progress, rig,
              rig_init, rig_scale=True) -> HeadFit:
    lm = np.asarray(landmarks, np.float64)[:, :, :2]
    K_all = lm.shape[0]
    names = names or [f"{i:03d}" for i in range(K_all)]
    pts = lm[:, model.mp_index]  # (K, M, 2)
    valid = np.asarray(found, bool) & np.all(np.isfinite(pts), axis=(1, 2))
    if valid.sum() < min_frames:
        raise InputError(f"only {int(valid.sum())} of {K_all} keyframes have face landmarks "
                         f"(need {min_frames}); film the face larger and better lit, or add frames")
    cx, cy = principal if principal is not None else ((width - 1) / 2.0, (height - 1) / 2.0)
    obj = model.vertices[model.mp_vertex].astype(np.float64)
    idx = np.nonzero(valid)[0]

    f0, rv0, tv0 = _initial_poses(obj, pts, idx, K_all, width, height, cx, cy, focal)

    dt = torch.float64
    if rig is not None:
        if rig_init is None:
            raise ValueError("rig needs rig_init")
        Rr = torch.as_tensor(np.asarray(rig[0])[idx], dtype=dt)
        tr = torch.as_tensor(np.asarray(rig[1])[idx], dtype=dt)
        s0, Rs0, ts0 = rig_init
        sim_r = torch.tensor(cv2.Rodrigues(np.asarray(Rs0, np.float64))[0][:, 0], dtype=dt,
                             requires_grad=True)
        sim_t = torch.tensor(np.asarray(ts0, np.float64), dtype=dt, requires_grad=True)
        sim_logs = torch.tensor(np.log(s0), dtype=dt, requires_grad=True)
    x_obs = torch.as_tensor(np.nan_to_num(pts[idx]), dtype=dt)
    rvec = torch.tensor(rv0[idx], dtype=dt, requires_grad=True)
    tvec = torch.tensor(tv0[idx], dtype=dt, requires_grad=True)
    nid = min(n_identity, model.n_identity)
    beta = torch.zeros(nid, dtype=dt, requires_grad=True)
    psi = torch.zeros(len(idx), model.n_expression, dtype=dt, requires_grad=True)
    logf = torch.tensor(np.log(f0), dtype=dt, requires_grad=focal is None)
    c = torch.tensor([cx, cy], dtype=dt)
    if rig is None:
        groups = [{"params": [rvec], "lr": 1e-2}, {"params": [tvec], "lr": 2e-3},
                  {"params": [beta], "lr": 5e-2}]
    else:
        groups = [{"params": [sim_r], "lr": 5e-3},
                  {"params": [sim_t], "lr": 2e-3 * float(s0)}, {"params": [beta], "lr": 5e-2}]
        if rig_scale:
            groups.append({"params": [sim_logs], "lr": 5e-3})
    if fit_expression:
        groups.append({"params": [psi], "lr": 2e-2})
    if focal is None:
        groups.append({"params": [logf], "lr": 5e-3})
    opt = torch.optim.Adam(groups)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iterations, eta_min=1e-4)

    def poses():
        if rig is None:
            return rodrigues(rvec), tvec
        Rs = torch.exp(sim_logs) * rodrigues(sim_r)
        return Rr @ Rs, torch.einsum("kij,j->ki", Rr, sim_t) + tr

    def project():
        v = model.evaluate(beta, psi if fit_expression else None, vertex_ids=model.mp_vertex)
        if v.dim() == 2:
            v = v.expand(len(idx), -1, -1)
        Rk, tk = poses()
        pc = torch.einsum("kij,kmj->kmi", Rk, v) + tk[:, None]
        z = pc[..., 2:].clamp_min(1e-3)
        return torch.exp(logf) * pc[..., :2] / z + c

    for it in range(iterations):
        opt.zero_grad()
        res = torch.linalg.norm(project() - x_obs, dim=-1)
        data = torch.nn.functional.huber_loss(res, torch.zeros_like(res), delta=2.0,
                                              reduction="sum") / len(idx)
        prior = w_identity * (beta ** 2).sum()
        if fit_expression:
            prior = prior + w_expression * (psi.abs().sum() + (psi ** 2).sum()) / len(idx)
        loss = data + prior
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            psi.clamp_(0.0, 1.0)
        if progress is not None and (it % 25 == 0 or it == iterations - 1):
            progress(it + 1, iterations, {"total": loss.item(), "landmarks": data.item(),
                                          "prior": prior.item(),
                                          "median_px": res.detach().median().item()})

    with torch.no_grad():
        res = torch.linalg.norm(project() - x_obs, dim=-1).numpy()
        Rk, tk = poses()
        if rig is not None:  # head-to-camera pose: divide out the similarity's scale
            sc = float(torch.exp(sim_logs))
            Rk, tk = Rk / sc, tk / sc
        Rm, tm = Rk.numpy(), tk.numpy()
    R = np.tile(np.eye(3), (K_all, 1, 1))
    t = np.zeros((K_all, 3))
    expr = np.zeros((K_all, model.n_expression))
    resid = np.full((K_all, len(model.mp_index)), np.nan)
    R[idx], t[idx] = Rm, tm
    expr[idx] = psi.detach().numpy()
    resid[idx] = res
    ident = np.zeros(model.n_identity)
    ident[:nid] = beta.detach().numpy()
    return HeadFit(list(names), valid, R, t, float(np.exp(logf.item())), float(cx), float(cy),
                   int(width), int(height), ident, expr, resid)
