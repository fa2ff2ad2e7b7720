"""Cameras: the per-frame pinhole camera, ``cameras.json`` I/O, COLMAP and transforms.json import,
and similarity (Umeyama) alignment.

Convention (DESIGN.md): OpenCV camera (x right, y down, z forward), world-to-camera
``x_cam = R @ x_world + t``, ``R`` (3, 3), ``t`` (3,) metres, intrinsics ``fx, fy, cx, cy`` pixels
(pixel centres at integer coordinates, as COLMAP's 0.5-offset convention shifted by -0.5 where
noted), optional distortion coefficients in OpenCV order (k1, k2, p1, p2[, k3]).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.errors import InputError

CAMERAS_SCHEMA = 1


@dataclass
class Camera:
    """One calibrated view (OpenCV convention, world-to-camera, metres, pixels)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    R: np.ndarray  # (3, 3) float64
    t: np.ndarray  # (3,) float64 metres
    distortion: list[float] = field(default_factory=list)

    @property
    def K(self) -> np.ndarray:
        """(3, 3) float64 intrinsics matrix."""
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1.0]])

    @property
    def centre(self) -> np.ndarray:
        """(3,) camera centre in the world frame, metres: -R^T t."""
        return -np.asarray(self.R).T @ np.asarray(self.t)

    def project(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) world points (metres) -> (N, 2) pixels (distortion ignored)."""
        pc = np.asarray(points, np.float64) @ np.asarray(self.R).T + self.t
        return pc[:, :2] / pc[:, 2:] * [self.fx, self.fy] + [self.cx, self.cy]

    def to_dict(self) -> dict:
        d = {"fx": float(self.fx), "fy": float(self.fy), "cx": float(self.cx),
             "cy": float(self.cy), "width": int(self.width), "height": int(self.height),
             "R": np.asarray(self.R, float).tolist(), "t": np.asarray(self.t, float).tolist()}
        if self.distortion:
            d["distortion"] = [float(x) for x in self.distortion]
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "cameras") -> "Camera":
        """Build from a ``cameras.json`` entry. Raises InputError on missing/invalid fields."""
        try:
            cam = cls(float(d["fx"]), float(d["fy"]), float(d["cx"]), float(d["cy"]),
                      int(d["width"]), int(d["height"]), np.asarray(d["R"], np.float64),
                      np.asarray(d["t"], np.float64), [float(x) for x in d.get("distortion", [])])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{where}: bad camera entry ({exc!r}); need fx, fy, cx, cy, width, "
                             "height, R (3x3), t (3)") from exc
        check_camera(cam, where)
        return cam


def check_camera(cam: Camera, where: str) -> None:
    """Raise InputError when a camera is inconsistent (non-rotation R, bad intrinsics)."""
    R = np.asarray(cam.R)
    if R.shape != (3, 3) or np.asarray(cam.t).shape != (3,):
        raise InputError(f"{where}: R must be 3x3 and t must have 3 values")
    if not np.all(np.isfinite(R)) or not np.all(np.isfinite(cam.t)):
        raise InputError(f"{where}: camera pose has NaN or infinite values")
    if np.abs(R @ R.T - np.eye(3)).max() > 1e-3 or np.linalg.det(R) < 0.99:
        raise InputError(f"{where}: R is not a rotation matrix (R R^T != I or det != 1); "
                         "check the export's convention (world-to-camera, OpenCV)")
    if not (cam.fx > 0 and cam.fy > 0 and cam.width > 0 and cam.height > 0):
        raise InputError(f"{where}: focal lengths and image size must be positive")
    if not (-cam.width < cam.cx < 2 * cam.width and -cam.height < cam.cy < 2 * cam.height):
        raise InputError(f"{where}: principal point ({cam.cx}, {cam.cy}) is far outside the "
                         f"{cam.width}x{cam.height} image; are the intrinsics in pixels?")


def save_cameras(path: Path | str, cameras: dict[str, Camera], meta: dict | None = None) -> None:
    """Write ``cameras.json``: {"schema_version", "frames": {name: camera dict}, "meta": {...}}."""
    obj = {"schema_version": CAMERAS_SCHEMA,
           "frames": {k: c.to_dict() for k, c in sorted(cameras.items())}, "meta": meta or {}}
    Path(path).write_text(json.dumps(obj, indent=1), encoding="utf-8")


def load_cameras(path: Path | str) -> dict[str, Camera]:
    """Read ``cameras.json`` into {frame name: Camera}. Raises InputError when unreadable."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
        frames = obj["frames"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a cameras.json ({exc})") from exc
    return {k: Camera.from_dict(v, f"{path} [{k}]") for k, v in frames.items()}


# ------------------------------------------------------------------------------------------------
# Imports
# ------------------------------------------------------------------------------------------------

_GL_TO_CV = np.diag([1.0, -1.0, -1.0])


def import_transforms_json(path: Path | str) -> dict[str, Camera]:
    """Import a nerfstudio / instant-ngp ``transforms.json``.

    Frames carry ``file_path`` and a 4x4 camera-to-world ``transform_matrix`` in the OpenGL
    convention (x right, y up, z backwards); intrinsics ``fl_x``, ``fl_y``, ``cx``, ``cy``, ``w``,
    ``h`` (top level or per frame; ``camera_angle_x`` as a fallback) and optional ``k1, k2, p1,
    p2``. Converted to OpenCV world-to-camera: R = (C2W_R diag(1, -1, -1))^T, t = -R C2W_t.
    Keys of the result are the file stems of ``file_path``.

    Raises:
        InputError: unreadable file, missing intrinsics, or a non-rigid transform.
    """
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
        frames = obj["frames"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a transforms.json ({exc})") from exc
    out = {}
    for i, fr in enumerate(frames):
        g = {**obj, **fr}
        try:
            w, h = int(g["w"]), int(g["h"])
            fx = float(g["fl_x"]) if "fl_x" in g else 0.5 * w / np.tan(0.5 * float(g["camera_angle_x"]))
            fy = float(g.get("fl_y", fx))
            cx, cy = float(g.get("cx", w / 2.0)), float(g.get("cy", h / 2.0))
            M = np.asarray(fr["transform_matrix"], np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{path}: frame {i} lacks intrinsics or transform_matrix ({exc!r})") from exc
        if M.shape != (4, 4):
            raise InputError(f"{path}: frame {i} transform_matrix is not 4x4")
        Rc2w = M[:3, :3] @ _GL_TO_CV
        R = Rc2w.T
        t = -R @ M[:3, 3]
        dist = [float(g.get(k, 0.0)) for k in ("k1", "k2", "p1", "p2")]
        # nerfstudio's cx, cy use the pixel-corner origin; OpenCV uses pixel centres
        cam = Camera(fx, fy, cx - 0.5, cy - 0.5, w, h, R, t, dist if any(dist) else [])
        name = Path(str(fr.get("file_path", f"{i:03d}"))).stem
        check_camera(cam, f"{path} [{name}]")
        out[name] = cam
    return out


def export_transforms_json(path: Path | str, cameras: dict[str, Camera]) -> None:
    """Write cameras as a nerfstudio ``transforms.json`` (inverse of :func:`import_transforms_json`)."""
    frames = []
    for name, c in sorted(cameras.items()):
        M = np.eye(4)
        M[:3, :3] = np.asarray(c.R).T @ _GL_TO_CV
        M[:3, 3] = c.centre
        frames.append({"file_path": f"images/{name}.png", "transform_matrix": M.tolist(),
                       "fl_x": c.fx, "fl_y": c.fy, "cx": c.cx + 0.5, "cy": c.cy + 0.5,
                       "w": c.width, "h": c.height})
    Path(path).write_text(json.dumps({"frames": frames}, indent=1), encoding="utf-8")


def import_colmap(folder: Path | str) -> dict[str, Camera]:
    """Import a COLMAP sparse model folder (cameras/images .bin or .txt) with pycolmap.

    COLMAP's ``cam_from_world`` is already OpenCV world-to-camera; COLMAP places the pixel origin
    at the corner of the first pixel, so cx, cy are shifted by -0.5. Models PINHOLE,
    SIMPLE_PINHOLE, SIMPLE_RADIAL, RADIAL and OPENCV are supported. Keys are image-name stems.

    Raises:
        InputError: not a COLMAP model, or an unsupported camera model.
    """
    import pycolmap

    folder = Path(folder)
    try:
        rec = pycolmap.Reconstruction(str(folder))
    except Exception as exc:  # pycolmap raises plain RuntimeError / ValueError
        raise InputError(f"{folder}: not a COLMAP sparse model folder ({exc})") from exc
    out = {}
    for _, img in rec.images.items():
        if not img.has_pose:
            continue
        cam = rec.cameras[img.camera_id]
        p = list(cam.params)
        name = cam.model_name if hasattr(cam, "model_name") else str(cam.model)
        name = str(name).split(".")[-1]
        dist: list[float] = []
        if name == "SIMPLE_PINHOLE":
            fx = fy = p[0]; cx, cy = p[1], p[2]
        elif name == "PINHOLE":
            fx, fy, cx, cy = p[:4]
        elif name == "SIMPLE_RADIAL":
            fx = fy = p[0]; cx, cy = p[1], p[2]; dist = [p[3], 0.0, 0.0, 0.0]
        elif name == "RADIAL":
            fx = fy = p[0]; cx, cy = p[1], p[2]; dist = [p[3], p[4], 0.0, 0.0]
        elif name == "OPENCV":
            fx, fy, cx, cy = p[:4]; dist = list(p[4:8])
        else:
            raise InputError(f"{folder}: camera model {name} is not supported; undistort the "
                             "images in COLMAP first (image_undistorter) and import that model")
        pose = img.cam_from_world() if callable(img.cam_from_world) else img.cam_from_world
        M = np.asarray(pose.matrix())
        c = Camera(fx, fy, cx - 0.5, cy - 0.5, int(cam.width), int(cam.height), M[:3, :3],
                   M[:3, 3], [float(x) for x in dist] if any(dist) else [])
        key = Path(img.name).stem
        check_camera(c, f"{folder} [{key}]")
        out[key] = c
    if not out:
        raise InputError(f"{folder}: COLMAP model has no registered images")
    return out


# ------------------------------------------------------------------------------------------------
# Similarity alignment and errors
# ------------------------------------------------------------------------------------------------


def umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool = True
            ) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity dst ~ s R src + t (Umeyama, TPAMI 1991, Eq. 40-42).

    Args:
        src, dst: (N, 3) corresponding points, N >= 3 not collinear.
    Returns:
        s (float), R (3, 3), t (3,).
    Raises:
        InputError: fewer than 3 points or degenerate configuration.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if len(src) < 3:
        raise InputError("similarity alignment needs at least 3 cameras in common")
    ms, md = src.mean(0), dst.mean(0)
    xs, xd = src - ms, dst - md
    cov = xd.T @ xs / len(src)
    U, D, Vt = np.linalg.svd(cov)
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1
    R = U @ S @ Vt
    var = (xs ** 2).sum() / len(src)
    if var < 1e-18:
        raise InputError("similarity alignment: the cameras are all at one place")
    s = float(np.trace(np.diag(D) @ S) / var) if with_scale else 1.0
    return s, R, md - s * R @ ms


def transform_cameras(cameras: dict[str, Camera], s: float, Rs: np.ndarray, ts: np.ndarray
                      ) -> dict[str, Camera]:
    """Apply the world similarity x' = s Rs x + ts to cameras (their centres and orientations)."""
    out = {}
    for k, c in cameras.items():
        R = np.asarray(c.R) @ Rs.T
        centre = s * Rs @ c.centre + ts
        out[k] = Camera(c.fx, c.fy, c.cx, c.cy, c.width, c.height, R, -R @ centre,
                        list(c.distortion))
    return out


def align_cameras(src: dict[str, Camera], dst: dict[str, Camera], with_scale: bool = True,
                  robust: bool = True) -> tuple[dict[str, Camera], float, np.ndarray, np.ndarray]:
    """Similarity-align ``src`` cameras to ``dst`` on the centres of their common frames.

    With ``robust``, frames whose aligned centre is off by more than 3x the median are dropped
    and the fit repeated once.

    Returns:
        (aligned src cameras, s, R, t) with x_dst = s R x_src + t.
    Raises:
        InputError: fewer than 3 common frames.
    """
    keys = sorted(set(src) & set(dst))
    a = np.array([src[k].centre for k in keys]).reshape(-1, 3)
    b = np.array([dst[k].centre for k in keys]).reshape(-1, 3)
    s, R, t = umeyama(a, b, with_scale)
    if robust and len(keys) >= 6:
        err = np.linalg.norm((s * a @ R.T + t) - b, axis=1)
        keep = err <= 3 * np.median(err) + 1e-9
        if keep.sum() >= 3:
            s, R, t = umeyama(a[keep], b[keep], with_scale)
    return transform_cameras(src, s, R, t), s, R, t


def camera_errors(est: dict[str, Camera], truth: dict[str, Camera]) -> dict:
    """Per-frame rotation error (degrees) and centre error (metres) over common frames.

    Returns:
        dict with ``rot_deg`` and ``centre_m`` lists and their medians.
    """
    keys = sorted(set(est) & set(truth))
    rot, cen = [], []
    for k in keys:
        dR = np.asarray(est[k].R) @ np.asarray(truth[k].R).T
        rot.append(float(np.degrees(np.arccos(np.clip((np.trace(dR) - 1) / 2, -1, 1)))))
        cen.append(float(np.linalg.norm(est[k].centre - truth[k].centre)))
    return {"frames": keys, "rot_deg": rot, "centre_m": cen,
            "median_rot_deg": float(np.median(rot)) if rot else float("nan"),
            "median_centre_m": float(np.median(cen)) if cen else float("nan")}


def camera_accuracy(est: dict[str, Camera], truth: dict[str, Camera]) -> dict:
    """Estimated cameras against true ones (same keys, head frame): median rotation error in
    degrees and centre error in millimetres, as estimated and, with 3 or more common frames,
    after a similarity alignment of the centres (:func:`align_cameras`).

    Returns:
        dict with ``camera_frames``, ``camera_rot_deg``, ``camera_centre_mm`` and, when aligned,
        ``camera_rot_deg_aligned``, ``camera_centre_mm_aligned`` and ``camera_scale`` (the
        alignment's scale: 1.0 means the estimate's metric scale is right).
    """
    raw = camera_errors(est, truth)
    out = {"camera_frames": len(raw["frames"]),
           "camera_rot_deg": round(raw["median_rot_deg"], 2),
           "camera_centre_mm": round(1000 * raw["median_centre_m"], 1)}
    if len(raw["frames"]) >= 3:
        aligned_cams, scale, _, _ = align_cameras(est, truth)
        aligned = camera_errors(aligned_cams, truth)
        out.update(camera_rot_deg_aligned=round(aligned["median_rot_deg"], 2),
                   camera_centre_mm_aligned=round(1000 * aligned["median_centre_m"], 1),
                   camera_scale=round(float(scale), 4))
    return out
