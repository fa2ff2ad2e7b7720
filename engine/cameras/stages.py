"""The ``cameras`` stage: calibrated cameras in the metric head frame, the fitted head and scalp.

One stage (not two) because the final head fit depends on the cameras (with structure from motion,
the head model is fitted once more with the SfM cameras held rigid, which fixes the metric scale
from all views at once) and the cameras are expressed in the head frame.

Steps: (1) fit the ICT head model to the landmarks of all keyframes (per-frame pose, shared
identity and focal, per-frame expression); (2) choose the capture situation (``mode``): "orbit"
when the background moves between keyframes, else "turn" when the head turns more than
``min_turn_deg``, else "landmarks"; or import known cameras ("colmap" / "transforms"); (3) for
orbit/turn run pycolmap SfM (turn: features masked to the person) and fit the head to all views
with those cameras held rigid; fall back to landmark poses (mode "auto") or raise (explicit mode)
when SfM registers fewer than ``min_registered`` of the keyframes. Known cameras (imported or
SfM) of keyframes without landmarks (the back of the head) are carried into the head frame by
the similarity of that fit, so every view with a camera reaches the later stages.

Outputs (in the stage folder): ``cameras.json`` (see engine.cameras.camera), ``head_fit.npz``
(identity (NI,), expression (K, NE), R (K,3,3), t (K,3), focal, names, fitted), ``head.obj``
(fitted identity, neutral expression, metres, head frame), ``scalp.npz`` (the scalp moved onto
that head, :func:`engine.head.scalp.save_scalp`; read by the strands stage), ``fit.json``
(mode, reasons, residuals, SfM info), ``previews/<name>.png`` (fitted mesh over each keyframe).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from engine.cameras.camera import (BACK_AZIMUTH_DEG, Camera, align_cameras, import_colmap,
                                   import_transforms_json, save_cameras, transform_cameras,
                                   view_azimuths)
from engine.cameras.sfm import background_motion, landmark_hull_masks, run_sfm
from engine.errors import InputError, StrandcapError
from engine.head.fit import HeadFit, fit_head, solve_pnp
from engine.head.model import HeadModel, load_head_mesh, load_head_model, save_obj
from engine.head.scalp import fitted_scalp, save_scalp
from engine.io.files import file_sha256, write_json_atomic
from engine.io.media import image_files, write_image
from engine.pipeline import Stage, option
from engine.preprocess.artifacts import load_frame, load_keyframes, load_landmarks, load_mask

MODES = ("auto", "orbit", "turn", "landmarks", "colmap", "transforms")


@dataclass(frozen=True)
class CamerasConfig:
    mode: str = option("auto", "capture situation: auto chooses orbit/turn/landmarks from the "
                       "background motion and the head turn; colmap/transforms import "
                       "known cameras from `import_path`", choices=MODES)
    import_path: str = option("", "COLMAP sparse model folder or transforms.json for the import "
                              "modes (every keyframe needs a camera, matched by its source "
                              "image's file name or its video frame index)")
    import_scale: str = option("metric", "units of imported cameras: 'metric' (metres, e.g. a "
                               "calibrated rig or a renderer; kept, the head fit adapts to "
                               "them) or 'unknown' (e.g. COLMAP on its own: the scale is fitted "
                               "from the head model)", choices=("metric", "unknown"))
    focal_px: float | None = option(None, "known focal length at keyframe resolution; None "
                                    "estimates a shared one", unit="px", range=(1.0, None))
    iterations: int = option(400, "Adam steps of the head fit", range=(10, 5000))
    w_identity: float = option(100.0, "Gaussian prior weight on identity coefficients",
                               unit="px^2", range=(0.0, None))
    w_expression: float = option(0.5, "L1 + L2 prior weight on expression weights",
                                 unit="px^2", range=(0.0, None))
    min_frames: int = option(3, "fewest keyframes with landmarks accepted", range=(1, None))
    min_registered: float = option(0.7, "fewest fraction of keyframes SfM must register",
                                   range=(0.0, 1.0))
    orbit_motion: float = option(0.01, "median background flow per keyframe step above which "
                                 "the camera is taken to move (orbit)", unit="image widths",
                                 range=(0.0, 1.0))
    min_turn_deg: float = option(30.0, "head yaw range above which a still-camera capture is "
                                 "solved with masked SfM (turn)", unit="deg", range=(0.0, 180.0))
    sfm_features: int = option(4096, "SIFT features per keyframe", range=(256, 32768))
    threads: int = option(1, "CPU threads for SfM (more than 1 is faster on long clips but "
                          "makes the cameras depend on thread timing)", range=(1, 64),
                          affects_output=False)


def _load_inputs(inputs):
    kf = inputs["keyframes"].path
    meta, names = load_keyframes(kf)
    images = {n: load_frame(kf, n) for n in names}
    lm = load_landmarks(inputs["landmarks"].path)
    lm_names = [str(n) for n in lm["names"]]
    pts = np.full((len(names), 478, 3), np.nan, np.float32)
    found = np.zeros(len(names), bool)
    pose = np.full((len(names), 3), np.nan)
    for i, n in enumerate(lm_names):
        if n in names:
            j = names.index(n)
            pts[j], found[j] = lm["points"][i], bool(lm["found"][i])
            if "pose" in lm:
                pose[j] = lm["pose"][i]
    person = {}
    if "masks" in inputs:  # a finished masks stage has every mask: a missing one is an error
        for n in names:
            hair = load_mask(inputs["masks"].path, "hair", n)
            bust = load_mask(inputs["masks"].path, "bust", n)
            person[n] = np.maximum(hair, bust)
    return meta, names, images, pts, found, pose, person


def _cams_from_fit(fit, names, cx=None, cy=None) -> dict[str, Camera]:
    return {n: Camera(fx=fit.focal, fy=fit.focal, cx=fit.cx if cx is None else cx,
                      cy=fit.cy if cy is None else cy, width=fit.width, height=fit.height,
                      R=fit.R[i], t=fit.t[i])
            for i, n in enumerate(names) if fit.fitted[i]}


def _pnp_cameras(model, fit, pts, use, names, focal) -> dict[str, Camera]:
    """Per-frame head poses by PnP of the fitted head's landmark vertices at a known focal."""
    K = np.array([[focal, 0, fit.cx], [0, focal, fit.cy], [0, 0, 1.0]])
    out = {}
    for i, n in enumerate(names):
        if not use[i]:
            continue
        obj = model.vertices_np(fit.identity, fit.expression[i])[model.mp_vertex]
        r = solve_pnp(obj, pts[i, model.mp_index, :2].astype(np.float64), K)
        if r is not None:
            R = cv2.Rodrigues(r[0])[0]
            out[n] = Camera(fx=focal, fy=focal, cx=fit.cx, cy=fit.cy, width=fit.width,
                            height=fit.height, R=R, t=r[1])
    return out


def choose_mode(images, pts, found, person, fit, cfg) -> tuple[str, dict]:
    """Automatic capture-situation choice; returns (mode, evidence dict)."""
    names = sorted(images)
    H, W = images[names[0]].shape[:2]
    hull = landmark_hull_masks({n: pts[i] for i, n in enumerate(names) if found[i]}, (H, W),
                               grow=1.5)
    masks = {n: np.maximum(hull.get(n, 0), person.get(n, 0)) for n in names}
    motion = background_motion(images, masks)
    yaw = _yaw_range(fit)
    ev = {"background_motion": motion, "yaw_range_deg": yaw}
    if np.isfinite(motion) and motion > cfg.orbit_motion:
        return "orbit", ev
    if yaw > cfg.min_turn_deg:
        return "turn", ev
    return "landmarks", ev


def _yaw_range(fit) -> float:
    """Head yaw range (degrees) over the fitted frames, from the landmark-fit rotations."""
    fwd = fit.R[fit.fitted][:, :, 2]  # head +Z axis in camera coordinates
    yaw = np.degrees(np.arctan2(fwd[:, 0], -fwd[:, 2]))
    return float(np.ptp(yaw)) if len(yaw) > 1 else 0.0


def _source_files(meta: dict, project) -> list[Path]:
    """The source images of an image-folder capture in keyframe ``source_index`` order, or []."""
    if meta.get("source_kind") != "images":
        return []
    try:
        return list(image_files(project.source_path))
    except (OSError, StrandcapError):
        return []


def _by_keyframe(known: dict[str, Camera], meta: dict, project) -> dict[str, Camera]:
    """Imported cameras keyed by keyframe name. Keyframes are renumbered ``000, 001, ...`` in
    the order chosen, so for an image-folder source an imported camera belongs to a keyframe
    through the source image's file stem (``images/007.png`` -> ``007``, even when keyframe
    ``007`` is another image). Otherwise the keyframe's own name (cameras exported by
    Strandcap), then the source frame index written as ``007``, ``0007``, ``00007`` or
    nerfstudio's 1-based ``frame_00008``."""
    stems = [f.stem for f in _source_files(meta, project)]
    out = {}
    for fr in meta["frames"]:
        i = int(fr["source_index"])
        keys = ([stems[i]] if i < len(stems) else []) + [
            fr["name"], f"{i:03d}", f"{i:04d}", f"{i:05d}", f"frame_{i + 1:05d}"]
        hit = next((k for k in keys if k in known), None)
        if hit is not None:
            out[fr["name"]] = known[hit]
    return out


def match_imported(known: dict[str, Camera], meta: dict, project, path: Path
                   ) -> dict[str, Camera]:
    """:func:`_by_keyframe`, with every keyframe required to get a camera.

    Args:
        known: imported cameras by the names the file gives them (file stems for
            ``transforms.json``, image names for COLMAP), as :class:`Camera` in the file's frame.
        meta: the keyframes stage's ``keyframes.json`` (``source_kind``, ``frames`` with
            ``name`` and ``source_index``). project: the :class:`~engine.pipeline.Project`
            (its source folder names the images). path: the imported file, for the message.

    Returns: keyframe name -> its imported camera, every keyframe present.

    Raises:
        InputError: one line naming ``path``, the keyframes without a camera with the source
            image (or video frame) each was made from, and some of the names the file holds.
    """
    got = _by_keyframe(known, meta, project)
    missing = [fr for fr in meta["frames"] if fr["name"] not in got]
    if not missing:
        return got
    files = _source_files(meta, project)

    def label(fr) -> str:
        i = int(fr["source_index"])
        return f"{fr['name']} ({files[i].name if i < len(files) else f'video frame {i}'})"

    shown = ", ".join(label(fr) for fr in missing[:6]) + (
        f" and {len(missing) - 6} more" if len(missing) > 6 else "")
    names = sorted(known)
    held = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
    raise InputError(
        f"{path}: no camera for {len(missing)} of {len(meta['frames'])} keyframes: {shown}; "
        f"the file names {len(known)} cameras ({held}), matched by the source image's file name "
        "or the video frame index (007, 0007, frame_00008)")


def run_cameras(cfg: CamerasConfig, inputs, ctx) -> Iterator:
    meta, names, images, pts, found, _, person = _load_inputs(inputs)
    W, H = int(meta["width"]), int(meta["height"])
    model = load_head_model()
    yield ctx.progress(0, 4, "fitting the head model to the landmarks")

    def prog(step, total, losses):
        ctx.check()

    common = dict(names=names, iterations=cfg.iterations, w_identity=cfg.w_identity,
                  w_expression=cfg.w_expression, min_frames=cfg.min_frames, progress=prog)
    fit = fit_head(model, pts, found, W, H, focal=cfg.focal_px, **common)
    yield ctx.loss(cfg.iterations, {"landmark_median_px": fit.summary()["median_px"]})
    info: dict = {"landmark_fit": {k: v for k, v in fit.summary().items()
                                   if k != "per_frame_median_px"}}
    mode = cfg.mode
    if mode == "auto":
        mode, ev = choose_mode(images, pts, found, person, fit, cfg)
        info["auto"] = ev
        motion = ev["background_motion"]
        motion_text = (f"{motion:.4f} widths/step" if np.isfinite(motion)
                       else "not measurable (too little background)")
        yield ctx.log(f"capture looks like '{mode}' (background motion {motion_text}, yaw range "
                      f"{ev['yaw_range_deg']:.0f} deg)")
    info["mode"] = mode
    yield ctx.progress(1, 4, f"cameras: {mode}")
    known = yield from _known_cameras(cfg, mode, meta, names, images, pts, found, person, info,
                                      ctx)
    mode = info["mode"]  # "landmarks" after a failed structure from motion in auto mode
    if known is not None:
        fit, cams = yield from _head_frame_cameras(cfg, mode, model, fit, known, names, pts,
                                                   found, W, H, common, info, ctx)
    else:
        cams = _cams_from_fit(fit, names)
    info["head_fit"] = fit.summary()
    az = view_azimuths(cams)
    az_min, az_max = min(az.values()), max(az.values())
    back_seen = any(abs(a) > BACK_AZIMUTH_DEG for a in az.values())
    info["view_azimuth_deg"] = az
    if not back_seen:
        yield ctx.log(f"the back of the head was not seen: the {len(cams)} views lie "
                      f"{az_min:+.0f} to {az_max:+.0f} deg around the head (0 = the face, "
                      f"+-180 = the back); the back and crown will be inferred from the sides")
    yield ctx.progress(2, 4, "writing cameras, head and scalp")
    yield from _write_outputs(ctx, model, fit, cams, mode, names, images, pts, info)
    yield ctx.progress(4, 4, "done")
    return {"mode": mode, "cameras": len(cams), "median_px": fit.summary()["median_px"],
            "focal_px": fit.focal, "azimuth_min_deg": az_min, "azimuth_max_deg": az_max,
            "back_seen": back_seen}


def _known_cameras(cfg: CamerasConfig, mode: str, meta, names, images, pts, found, person,
                   info: dict, ctx) -> Iterator:
    """The cameras the capture itself gives, by mode: imported (COLMAP, transforms.json; matched
    to the keyframes) or from structure from motion (orbit, turn); a generator that returns
    {name: Camera} (any frame and scale) or None (landmark poses only). In auto mode a failed
    structure from motion falls back to landmark poses (``info["mode"]`` becomes "landmarks").
    Raises InputError for a missing or mismatched import, or too few registered views."""
    W, H = int(meta["width"]), int(meta["height"])
    if mode in ("colmap", "transforms"):
        if not cfg.import_path:
            raise InputError(f"cameras mode {mode} needs import_path (a COLMAP model folder or "
                             "a transforms.json)")
        p = Path(cfg.import_path)
        known = match_imported(import_colmap(p) if mode == "colmap"
                               else import_transforms_json(p), meta, ctx.project, p)
        sizes = {(c.width, c.height) for c in known.values()}
        if sizes != {(W, H)}:
            raise InputError(f"{p}: camera image size {sorted(sizes)} differs from the keyframes "
                             f"({W}x{H}); import cameras made for these frames")
        return known
    if mode not in ("orbit", "turn"):
        return None
    masks = None
    if mode == "turn":
        hull = landmark_hull_masks({n: pts[i] for i, n in enumerate(names) if found[i]},
                                   (H, W), grow=0.8)
        masks = {n: np.maximum(hull.get(n, 0), person.get(n, 0)) for n in names}
    try:
        sfm, sinfo = run_sfm(images, ctx.out_dir / "sfm", masks=masks, focal=cfg.focal_px,
                             max_features=cfg.sfm_features, num_threads=cfg.threads,
                             refine_focal=cfg.focal_px is None)
        info["sfm"] = sinfo
        if sinfo["registered"] < cfg.min_registered * len(names):
            raise InputError(f"structure from motion registered only {sinfo['registered']} of "
                             f"{len(names)} keyframes; capture more slowly with more overlap "
                             "and texture, or use cameras mode 'landmarks'")
        return sfm
    except InputError as exc:
        if cfg.mode != "auto":
            raise
        yield ctx.log(f"{exc}; falling back to landmark poses", "warning")
        info["mode"] = "landmarks"
        return None


def _head_frame_cameras(cfg: CamerasConfig, mode: str, model, fit, known: dict, names, pts,
                        found, W: int, H: int, common: dict, info: dict, ctx) -> Iterator:
    """Known cameras brought into the head frame: a similarity from the known cameras to the
    landmark poses, then the head model fitted once more to all views with the known cameras
    held rigid (metric imports keep their scale and the head fit adapts; structure from motion
    and imports of unknown scale get theirs from the head model); every known view without
    landmarks (the back of the head) is carried over by the same similarity. A generator that
    returns (the new fit, {name: Camera} head frame, metres). Raises InputError when fewer than
    3 keyframes have both a known camera and landmarks."""
    use = np.array([bool(found[i]) and n in known for i, n in enumerate(names)])
    Rr = np.stack([known[n].R if n in known else np.eye(3) for n in names])
    tr = np.stack([known[n].t if n in known else np.zeros(3) for n in names])
    f_known = float(np.median([0.5 * (c.fx + c.fy) for c in known.values()]))
    # initial similarity: per-frame PnP of the fitted head at the known focal length, rotation
    # from the camera orientations (centres alone leave the pitch free when the cameras lie on
    # one horizontal arc, and the rig fit below keeps that tilt)
    pnp_cams = _pnp_cameras(model, fit, pts, use, names, f_known)
    if len(pnp_cams) < 3:
        raise InputError("fewer than 3 keyframes have both known cameras and landmarks; "
                         "check that the imported frame names match the keyframes")
    _, s1, R1, t1 = align_cameras(known, pnp_cams, orientations=True)
    metric = mode in ("colmap", "transforms") and cfg.import_scale == "metric"
    if metric and not 0.7 < 1 / s1 < 1.4:
        yield ctx.log(f"the imported cameras look {1 / s1:.2f}x the size the head model "
                      "suggests; if they are not in metres, set cameras.import_scale "
                      "unknown", "warning")
    fit = fit_head(model, pts, use, W, H, focal=f_known, rig=(Rr, tr),
                   rig_init=(1.0 if metric else 1 / s1, R1.T, -(R1.T @ t1) / s1),
                   rig_scale=not metric, **common)
    info["import_scale"] = cfg.import_scale if mode in ("colmap", "transforms") else "sfm"
    cams = {n: replace(known[n], R=fit.R[i], t=fit.t[i]) for i, n in enumerate(names) if use[i]}
    info["head_from_known_scale"] = 1.0 if metric else 1.0 / s1
    others = {n: known[n] for n in names if n in known and n not in cams}
    if others:
        _, s2, R2, t2 = align_cameras({n: known[n] for n in cams}, cams, robust=False,
                                      orientations=True)
        cams.update(transform_cameras(others, s2, R2, t2))
    info["views_without_landmarks"] = sorted(others)
    return fit, cams


def _write_outputs(ctx, model, fit, cams: dict, mode: str, names, images, pts,
                   info: dict) -> Iterator:
    """Write the stage's files (module docstring: cameras.json, head.obj, scalp.npz,
    head_fit.npz, fit.json, previews/); yields the middle view's overlay preview."""
    save_cameras(ctx.out_dir / "cameras.json", cams, {"mode": mode, "frame": "head, metres"})
    neutral = model.vertices_np(fit.identity)
    save_obj(ctx.out_dir / "head.obj", neutral, model.faces)
    # the scalp follows the head as written (and as the later stages read it back)
    head_vertices, _ = load_head_mesh(ctx.out_dir / "head.obj")
    save_scalp(ctx.out_dir / "scalp.npz", fitted_scalp(head_vertices, model.vertices))
    np.savez_compressed(ctx.out_dir / "head_fit.npz", names=np.array(names),
                        fitted=fit.fitted, R=fit.R, t=fit.t, focal=fit.focal,
                        identity=fit.identity, expression=fit.expression,
                        residual_px=fit.residual_px)
    write_json_atomic(ctx.out_dir / "fit.json", info)
    prev = ctx.out_dir / "previews"
    prev.mkdir()
    for i, n in enumerate(names):
        img = draw_overlay(images[n], model, fit, i, pts[i])
        write_image(prev / f"{n}.png", img[:, :, ::-1])
        if i == len(names) // 2:
            yield ctx.preview("image", img, f"head fit {n}")


def _fingerprint(project, cfg: CamerasConfig):
    """Content hash of imported camera files (so editing them re-runs the stage)."""
    if cfg.mode not in ("colmap", "transforms") or not cfg.import_path:
        return None
    p = Path(cfg.import_path)
    files = sorted(x for x in p.iterdir() if x.is_file()) if p.is_dir() else [p]
    return [(x.name, file_sha256(x)) for x in files if x.exists()]


STAGES = [
    Stage("cameras", 5, CamerasConfig, ("keyframes", "landmarks", "masks"), run_cameras,
          _fingerprint,
          title="Cameras and head",
          presets={"preview": {"iterations": 200, "sfm_features": 2048},
                   "high": {"iterations": 800, "sfm_features": 8192}}),
]


def draw_overlay(image: np.ndarray, model: HeadModel, fit: HeadFit, k: int,
                 observed: np.ndarray | None = None) -> np.ndarray:
    """Preview of frame ``k``: fitted mesh wireframe (green) and landmarks (observed red,
    fitted model points yellow) over the keyframe.

    Args:
        image: (H, W, 3) uint8 RGB keyframe. observed: optional (478, 2+) pixels of frame k.
    Returns:
        (H, W, 3) uint8 RGB.
    """
    out = image.copy()
    if not fit.fitted[k]:
        return out
    v = model.vertices_np(fit.identity, fit.expression[k])
    uv = Camera(fx=fit.focal, fy=fit.focal, cx=fit.cx, cy=fit.cy, width=fit.width,
                height=fit.height, R=fit.R[k], t=fit.t[k]).project(v)
    # front-facing triangles of the face and scalp only, to keep the overlay readable
    f = model.faces[model.region[model.faces[:, 0]] != 2]
    p = uv[f]
    area = ((p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1])
            - (p[:, 2, 0] - p[:, 0, 0]) * (p[:, 1, 1] - p[:, 0, 1]))
    p = p[area < 0][::3]
    layer = out.copy()
    cv2.polylines(layer, [np.round(q * 4).astype(np.int32) for q in p], True, (0, 220, 0), 1,
                  cv2.LINE_AA, shift=2)
    out = cv2.addWeighted(layer, 0.45, out, 0.55, 0)
    if observed is not None:
        for x, y in np.asarray(observed)[model.mp_index, :2]:
            if np.isfinite(x):
                cv2.circle(out, (int(round(x)), int(round(y))), 1, (255, 0, 0), -1, cv2.LINE_AA)
    for x, y in uv[model.mp_vertex]:
        cv2.circle(out, (int(round(x)), int(round(y))), 1, (255, 255, 0), -1, cv2.LINE_AA)
    return out
