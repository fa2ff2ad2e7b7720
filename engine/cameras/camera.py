"""Cameras: the one pinhole :class:`Camera` of the code base (used by the cameras stage, the coarse
stage, the preview, the CLI, the benchmarks and the synthetic-capture renderer), ``cameras.json``
I/O, COLMAP and transforms.json import, and similarity (Umeyama) alignment.

Convention (DESIGN.md): OpenCV camera (x right, y down, z forward), world-to-camera
``x_cam = R @ x_world + t``, ``R`` (3, 3), ``t`` (3,) metres, intrinsics ``fx, fy, cx, cy`` pixels
(pixel centres at integer coordinates, as COLMAP's 0.5-offset convention shifted by -0.5 where
noted), optional distortion coefficients in OpenCV order (k1, k2, p1, p2[, k3]).
"""

from __future__ import annotations

import json
from dataclasses import InitVar, dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation
from skimage.transform import EuclideanTransform, SimilarityTransform

from engine.errors import InputError

CAMERAS_SCHEMA = 1


@dataclass(frozen=True, kw_only=True)
class Camera:
    """One calibrated pinhole view (OpenCV convention, world-to-camera, metres, pixels).

    Built with keyword arguments only (``Camera(fx=.., fy=.., cx=.., cy=.., width=.., height=..,
    R=.., t=..)``), so no call can swap a focal length and an image size. Immutable; use
    :func:`dataclasses.replace` for a changed copy (it is validated again).

    Attributes:
        fx, fy: focal lengths, pixels (> 0).
        cx, cy: principal point, pixels, pixel centres at integer coordinates (pixel (0, 0)
            covers [-0.5, 0.5]^2); within (-width, 2 width) x (-height, 2 height).
        width, height: image size, pixels (>= 1).
        R: (3, 3) float64 world-to-camera rotation (identity by default).
        t: (3,) float64 world-to-camera translation, metres (zero by default).
        distortion: OpenCV lens distortion coefficients (k1, k2, p1, p2[, k3]) as a tuple of
            floats; empty for none. :meth:`project` ignores it.
        where: (init only) what to name in error messages, e.g. ``"cameras.json [003]"``.

    Raises:
        InputError: (on construction) R not a rotation matrix, t not 3 values, NaN or infinite
            pose, non-positive focal length or image size, or a principal point far outside
            the image; the message starts with ``where``.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    t: np.ndarray = field(default_factory=lambda: np.zeros(3))
    distortion: tuple[float, ...] = ()
    where: InitVar[str] = "camera"

    def __post_init__(self, where: str) -> None:
        R = np.asarray(self.R, np.float64)
        t = np.asarray(self.t, np.float64)
        if R.shape != (3, 3) or t.size != 3:
            raise InputError(f"{where}: R must be 3x3 and t must have 3 values")
        t = t.reshape(3)
        if not (np.isfinite(R).all() and np.isfinite(t).all()):
            raise InputError(f"{where}: camera pose has NaN or infinite values")
        if np.abs(R @ R.T - np.eye(3)).max() > 1e-3 or np.linalg.det(R) < 0.99:
            raise InputError(f"{where}: R is not a rotation matrix (R R^T != I or det != 1); "
                             "check the export's convention (world-to-camera, OpenCV)")
        if not (self.fx > 0 and self.fy > 0 and self.width >= 1 and self.height >= 1):
            raise InputError(f"{where}: focal lengths ({self.fx}, {self.fy}) and image size "
                             f"({self.width}x{self.height}) must be positive")
        if self.width != int(self.width) or self.height != int(self.height):
            raise InputError(f"{where}: image size {self.width}x{self.height} is not whole pixels")
        if not (-self.width < self.cx < 2 * self.width
                and -self.height < self.cy < 2 * self.height):
            raise InputError(f"{where}: principal point ({self.cx}, {self.cy}) is far outside the "
                             f"{self.width}x{self.height} image; are the intrinsics in pixels?")
        object.__setattr__(self, "R", R)
        object.__setattr__(self, "t", t)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))
        object.__setattr__(self, "distortion", tuple(float(k) for k in self.distortion))

    @property
    def K(self) -> np.ndarray:
        """(3, 3) float64 intrinsics matrix, pixels."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def centre(self) -> np.ndarray:
        """(3,) float64 camera centre in the world frame, metres: ``-R^T t``."""
        return -self.R.T @ self.t

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world points, metres -> (..., 3) float64 camera-frame points, metres
        (``R @ x + t``, OpenCV axes)."""
        return np.asarray(points, np.float64) @ self.R.T + self.t

    def project_with_depth(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pinhole projection with the depth of every point (distortion ignored).

        Args:
            points: (..., 3) world points, metres.
        Returns:
            pixels (..., 2) float64 (x right, y down, pixel centres at integers) and depth
            (...,) float64 camera z in metres. Points with z <= 0 (behind the camera) get
            meaningless pixels; |z| < 1e-12 is divided as 1e-12.
        """
        pc = self.to_camera(points)
        z = pc[..., 2]
        zs = np.where(np.abs(z) < 1e-12, 1e-12, z)
        px = np.stack([self.fx * pc[..., 0] / zs + self.cx,
                       self.fy * pc[..., 1] / zs + self.cy], -1)
        return px, z

    def project(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world points, metres -> (..., 2) float64 pixels (distortion ignored); see
        :meth:`project_with_depth` for the depth and the points behind the camera."""
        return self.project_with_depth(points)[0]

    def scaled(self, factor: int) -> "Camera":
        """The same camera sampled ``factor`` (int >= 1) times finer, for supersampling: size and
        focal lengths times ``factor``; pixel centre ``i`` of the fine image lies at
        ``(i + 0.5) / factor - 0.5`` in this camera's pixels. Distortion is kept (it acts on
        normalised coordinates)."""
        f = int(factor)
        return Camera(fx=self.fx * f, fy=self.fy * f, cx=self.cx * f + (f - 1) / 2.0,
                      cy=self.cy * f + (f - 1) / 2.0, width=self.width * f,
                      height=self.height * f, R=self.R, t=self.t, distortion=self.distortion)

    def to_dict(self) -> dict:
        """JSON-able dict of a ``cameras.json`` entry: fx, fy, cx, cy, width, height, R (3x3
        nested list), t (3 list) and, when set, distortion (list)."""
        d = {"fx": float(self.fx), "fy": float(self.fy), "cx": float(self.cx),
             "cy": float(self.cy), "width": int(self.width), "height": int(self.height),
             "R": np.asarray(self.R, float).tolist(), "t": np.asarray(self.t, float).tolist()}
        if self.distortion:
            d["distortion"] = [float(x) for x in self.distortion]
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "camera") -> "Camera":
        """Inverse of :meth:`to_dict` (other keys of ``d`` are ignored).

        Raises:
            InputError: missing or invalid fields, message starting with ``where``.
        """
        try:
            fields = dict(fx=float(d["fx"]), fy=float(d["fy"]), cx=float(d["cx"]),
                          cy=float(d["cy"]), width=int(d["width"]), height=int(d["height"]),
                          R=np.asarray(d["R"], np.float64), t=np.asarray(d["t"], np.float64),
                          distortion=tuple(float(x) for x in d.get("distortion", [])))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{where}: bad camera entry ({exc!r}); need fx, fy, cx, cy, width, "
                             "height, R (3x3), t (3)") from exc
        return cls(**fields, where=where)


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


BACK_AZIMUTH_DEG = 120.0  # a view farther round than this sees the back of the head


def view_azimuths(cameras: dict[str, Camera]) -> dict[str, float]:
    """Where each camera sits around the head: name -> azimuth in degrees, (-180, 180], of its
    centre in the head frame (``atan2(c_x, c_z)``; 0 in front of the face (+Z), +90 on the
    head's +X side, +-180 behind it). Views with ``|azimuth| > BACK_AZIMUTH_DEG`` see the back
    of the head."""
    out = {}
    for name, cam in cameras.items():
        c = cam.centre
        out[name] = float(np.degrees(np.arctan2(c[0], c[2])))
    return out


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
        name = Path(str(fr.get("file_path", f"{i:03d}"))).stem
        # nerfstudio's cx, cy use the pixel-corner origin; OpenCV uses pixel centres
        out[name] = Camera(fx=fx, fy=fy, cx=cx - 0.5, cy=cy - 0.5, width=w, height=h, R=R, t=t,
                           distortion=dist if any(dist) else (), where=f"{path} [{name}]")
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
        key = Path(img.name).stem
        out[key] = Camera(fx=fx, fy=fy, cx=cx - 0.5, cy=cy - 0.5, width=int(cam.width),
                          height=int(cam.height), R=M[:3, :3], t=M[:3, 3],
                          distortion=dist if any(dist) else (), where=f"{folder} [{key}]")
    if not out:
        raise InputError(f"{folder}: COLMAP model has no registered images")
    return out


# ------------------------------------------------------------------------------------------------
# Similarity alignment and errors
# ------------------------------------------------------------------------------------------------


def umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool = True
            ) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity dst ~ s R src + t (Umeyama, TPAMI 1991, Eq. 40-42), estimated by
    scikit-image (``SimilarityTransform``, or ``EuclideanTransform`` with ``s = 1``).

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
    if ((src - src.mean(0)) ** 2).sum() / len(src) < 1e-18:
        raise InputError("similarity alignment: the cameras are all at one place")
    fit = (SimilarityTransform if with_scale else EuclideanTransform).from_estimate(src, dst)
    if not fit:
        raise InputError(f"similarity alignment: no solution ({fit})")
    sR, t = fit.params[:3, :3], fit.params[:3, 3]
    s = float(np.cbrt(np.linalg.det(sR))) if with_scale else 1.0
    return s, sR / s, t.copy()


def transform_cameras(cameras: dict[str, Camera], s: float, Rs: np.ndarray, ts: np.ndarray
                      ) -> dict[str, Camera]:
    """Apply the world similarity x' = s Rs x + ts to cameras (their centres and orientations)."""
    out = {}
    for k, c in cameras.items():
        R = np.asarray(c.R) @ Rs.T
        centre = s * Rs @ c.centre + ts
        out[k] = replace(c, R=R, t=-R @ centre)
    return out


def rotation_angle(R: np.ndarray) -> float:
    """Angle of a rotation matrix (3, 3), radians in [0, pi]: arccos((trace R - 1) / 2)."""
    return float(np.arccos(np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0)))


def rotation_mean(rotations: np.ndarray) -> np.ndarray:
    """Chordal L2 mean of rotations (Hartley et al., "Rotation averaging", IJCV 2013, Sec. 5.3),
    by scipy's ``Rotation.mean``.

    Args:
        rotations: (N, 3, 3) rotation matrices, N >= 1.
    Returns:
        (3, 3) float64 rotation.
    """
    return Rotation.from_matrix(np.asarray(rotations, np.float64)).mean().as_matrix()


def _similarity_from_poses(src: list[Camera], dst: list[Camera], with_scale: bool
                           ) -> tuple[float, np.ndarray, np.ndarray]:
    """x_dst = s R x_src + t from whole camera poses: R from the orientations (each camera gives
    R = R_dst^T R_src; chordal mean), then s and t by least squares on the centres with R held."""
    R = rotation_mean(np.stack([d.R.T @ c.R for c, d in zip(src, dst)]))
    a = np.array([c.centre for c in src])
    b = np.array([d.centre for d in dst])
    xa = (a - a.mean(0)) @ R.T
    xb = b - b.mean(0)
    var = (xa ** 2).sum()
    if with_scale and var < 1e-18:
        raise InputError("similarity alignment: the cameras are all at one place")
    s = float((xa * xb).sum() / var) if with_scale else 1.0
    return s, R, b.mean(0) - s * R @ a.mean(0)


def align_cameras(src: dict[str, Camera], dst: dict[str, Camera], with_scale: bool = True,
                  robust: bool = True, orientations: bool = False
                  ) -> tuple[dict[str, Camera], float, np.ndarray, np.ndarray]:
    """Similarity-align ``src`` cameras to ``dst`` over their common frames.

    By default on the centres only (Umeyama). With ``orientations`` the rotation comes from the
    camera orientations (chordal mean of the per-frame R_dst^T R_src) and only scale and
    translation from the centres: use it when the centres alone leave the rotation poorly
    determined, e.g. cameras on one horizontal arc (the rotation about the arc's chord is then
    barely constrained by the centres, so noisy centres tilt the frame).

    With ``robust``, frames whose aligned centre is off by more than 3x the median (and, with
    ``orientations``, whose rotation is off by more than 3x the median) are dropped and the fit
    repeated once.

    Returns:
        (aligned src cameras, s, R, t) with x_dst = s R x_src + t.
    Raises:
        InputError: fewer than 3 common frames.
    """
    keys = sorted(set(src) & set(dst))
    if len(keys) < 3:
        raise InputError("similarity alignment needs at least 3 cameras in common")
    a = np.array([src[k].centre for k in keys]).reshape(-1, 3)
    b = np.array([dst[k].centre for k in keys]).reshape(-1, 3)
    sc, dc = [src[k] for k in keys], [dst[k] for k in keys]

    def fit(m):
        if orientations:
            return _similarity_from_poses([x for x, k in zip(sc, m) if k],
                                          [x for x, k in zip(dc, m) if k], with_scale)
        return umeyama(a[m], b[m], with_scale)

    keep = np.ones(len(keys), bool)
    s, R, t = fit(keep)
    if robust and len(keys) >= 6:
        err = np.linalg.norm((s * a @ R.T + t) - b, axis=1)
        keep = err <= 3 * np.median(err) + 1e-9
        if orientations:
            ang = np.array([rotation_angle(d.R.T @ c.R @ R.T) for c, d in zip(sc, dc)])
            keep &= ang <= 3 * np.median(ang) + 1e-9
        if keep.sum() >= 3:
            s, R, t = fit(keep)
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
        rot.append(float(np.degrees(rotation_angle(dR))))
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
