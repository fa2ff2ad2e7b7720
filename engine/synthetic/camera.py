"""Camera rigs for synthetic captures, and the synthetic capture's camera files.

The camera itself is :class:`engine.cameras.camera.Camera` (re-exported here); this module adds
what only synthetic captures need: the orbit and turning-head rigs, ``look_at``, head poses, and
the capture's ``cameras.json`` (with per-frame index, time and head pose) and ``transforms.json``
writers.

Conventions (DESIGN.md "Data contracts"): OpenCV camera axes (x right, y down, z forward),
world-to-camera ``x_cam = R @ x_world + t`` with ``t`` in metres, intrinsics ``fx, fy, cx, cy`` in
pixels with pixel *centres* at integer coordinates (pixel (0, 0) covers [-0.5, 0.5]^2). The
"world" of every rig here is the head frame (metres, +Y up, +Z out of the face), so cameras are
returned in the head frame whether the camera moves (orbit) or the head turns (turning head).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from engine.cameras.camera import CAMERAS_SCHEMA, Camera
from engine.errors import InputError

__all__ = ["Camera", "CAMERAS_SCHEMA_VERSION", "HeadPose", "frame_key", "intrinsics_from_fov",
           "load_camera_records", "load_cameras", "look_at", "orbit_rig", "rotation_ypr",
           "save_cameras", "save_transforms_json", "turning_head_rig"]

CAMERAS_SCHEMA_VERSION = CAMERAS_SCHEMA  # the project's cameras.json schema


def intrinsics_from_fov(width: int, height: int,
                        fov_x_deg: float) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) of a centred square-pixel camera with horizontal field of view
    ``fov_x_deg`` degrees; the principal point is the image centre ((W - 1) / 2, (H - 1) / 2)."""
    fx = 0.5 * width / math.tan(math.radians(fov_x_deg) / 2.0)
    return fx, fx, (width - 1) / 2.0, (height - 1) / 2.0


def look_at(eye: Sequence[float], target: Sequence[float] = (0.0, 0.0, 0.0),
            up: Sequence[float] = (0.0, 1.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera (R (3, 3), t (3,)) of an OpenCV camera at ``eye`` looking at ``target``
    with world direction ``up`` appearing upwards in the image. Raises InputError when ``up`` is
    parallel to the viewing direction."""
    c = np.asarray(eye, np.float64)
    z = np.asarray(target, np.float64) - c
    z /= np.linalg.norm(z)
    x = np.cross(-np.asarray(up, np.float64), z)  # right = down x forward
    n = np.linalg.norm(x)
    if n < 1e-9:
        raise InputError("look_at: up is parallel to the viewing direction")
    x /= n
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    return R, -R @ c


def rotation_ypr(yaw_deg: float, pitch_deg: float = 0.0, roll_deg: float = 0.0) -> np.ndarray:
    """(3, 3) rotation of the head frame: yaw about +Y, then pitch about +X, then roll about +Z
    (``R = Ry @ Rx @ Rz``), angles in degrees; positive yaw turns the face (+Z) towards +X."""
    y, p, r = (math.radians(a) for a in (yaw_deg, pitch_deg, roll_deg))
    Ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    Rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    Rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return Ry @ Rx @ Rz


def orbit_rig(n_views: int, width: int = 512, height: int = 512, fov_x_deg: float = 30.0,
              radius_m: float = 0.6, yaw_range_deg: tuple[float, float] = (-90.0, 90.0),
              pitch_deg: float = 10.0, target: Sequence[float] = (0.0, 0.03, 0.0),
              ) -> list[Camera]:
    """Cameras on a horizontal arc around a still head, all looking at ``target`` (head frame).

    View ``i`` sits at yaw ``linspace(*yaw_range_deg, n_views)[i]`` (0 = in front of the face,
    +90 = on the +X side) and elevation ``pitch_deg`` above ``target``, at ``radius_m`` metres.
    Returns ``n_views`` :class:`Camera` in the head frame. Raises InputError for n_views < 1.
    """
    if n_views < 1:
        raise InputError(f"orbit_rig: need at least one view, got {n_views}")
    fx, fy, cx, cy = intrinsics_from_fov(width, height, fov_x_deg)
    tgt = np.asarray(target, np.float64)
    cams = []
    for yaw in np.linspace(yaw_range_deg[0], yaw_range_deg[1], n_views):
        a, e = math.radians(float(yaw)), math.radians(pitch_deg)
        eye = tgt + radius_m * np.array([math.cos(e) * math.sin(a), math.sin(e),
                                         math.cos(e) * math.cos(a)])
        R, t = look_at(eye, tgt)
        cams.append(Camera(fx=fx, fy=fy, cx=cx, cy=cy, width=width, height=height, R=R, t=t))
    return cams


@dataclass(frozen=True)
class HeadPose:
    """Pose of the head in front of a still camera at one frame: angles in degrees (see
    :func:`rotation_ypr`), ``time_s`` the frame time in seconds."""

    yaw_deg: float
    pitch_deg: float
    roll_deg: float
    time_s: float


def turning_head_rig(n_frames: int, width: int = 512, height: int = 512, fov_x_deg: float = 30.0,
                     distance_m: float = 0.85, yaw_range_deg: tuple[float, float] = (-60.0, 60.0),
                     pitch_amplitude_deg: float = 4.0, roll_amplitude_deg: float = 2.0,
                     pivot: Sequence[float] = (0.0, -0.02, -0.02),
                     target: Sequence[float] = (0.0, -0.01, 0.0), fps: float = 30.0,
                     ) -> tuple[list[Camera], list[HeadPose]]:
    """A still camera and a head that turns from one side to the other.

    The camera sits on the world +Z axis ``distance_m`` metres from the head's ``target`` point
    (head frame, at rest), looking along -Z. The head rotates about ``pivot`` (head frame, near
    the top of the neck) by yaw ``yaw_range_deg[0] -> yaw_range_deg[1]`` following a smooth
    cosine ease, with small pitch and roll wobbles (one period over the clip). Expressed in the
    head frame, frame ``k``'s camera is ``R_k = R_c @ H_k``, ``t_k = R_c @ (pivot - H_k @ pivot)
    + t_c`` where ``H_k`` is the head rotation (world = head frame at rest).

    Returns (cameras in the head frame, per-frame :class:`HeadPose`). Raises InputError for
    n_frames < 1.
    """
    if n_frames < 1:
        raise InputError(f"turning_head_rig: need at least one frame, got {n_frames}")
    fx, fy, cx, cy = intrinsics_from_fov(width, height, fov_x_deg)
    tgt = np.asarray(target, np.float64)
    Rc, tc = look_at(tgt + np.array([0.0, 0.0, distance_m]), tgt)
    piv = np.asarray(pivot, np.float64)
    cams, poses = [], []
    for k in range(n_frames):
        s = k / max(n_frames - 1, 1)
        ease = 0.5 - 0.5 * math.cos(math.pi * s)
        yaw = yaw_range_deg[0] + (yaw_range_deg[1] - yaw_range_deg[0]) * ease
        pitch = pitch_amplitude_deg * math.sin(2 * math.pi * s)
        roll = roll_amplitude_deg * math.sin(2 * math.pi * s + 1.0)
        H = rotation_ypr(yaw, pitch, roll)
        # head point x moves to H (x - pivot) + pivot in the world
        R = Rc @ H
        t = Rc @ (piv - H @ piv) + tc
        cams.append(Camera(fx=fx, fy=fy, cx=cx, cy=cy, width=width, height=height, R=R, t=t))
        poses.append(HeadPose(yaw, pitch, roll, k / fps))
    return cams, poses


def frame_key(index: int, count: int) -> str:
    """Name of frame ``index`` of ``count``: the zero-padded index ("000", "001", ...), as the
    keyframes stage and :func:`engine.synthetic.render_capture` name frames."""
    return f"{index:0{max(3, len(str(max(count - 1, 0))))}d}"


def save_cameras(path: str | os.PathLike, cameras: Sequence[Camera], *, fps: float | None = None,
                 poses: Sequence[HeadPose] | None = None, extra: dict | None = None) -> Path:
    """Write cameras as the project's ``cameras.json`` (the layout of
    :mod:`engine.cameras.camera`, which reads it)::

        {"schema_version": 1,
         "frames": {"000": {"fx", "fy", "cx", "cy", "width", "height", "R": 3x3, "t": 3,
                            "index": i, "time_s": .. | null, ["yaw_deg", "pitch_deg", "roll_deg"]},
                    "001": ...},
         "meta": {"frame": "head", "units": "m", "convention": "opencv", "fps": fps | null,
                  "keys": "video frame index", ...extra}}

    Keys are :func:`frame_key` of the frame index (for a video: its frame number). Written
    atomically; returns the path.
    """
    from engine.io.files import write_json_atomic

    frames = {}
    for i, cam in enumerate(cameras):
        d = {"index": i, "time_s": (i / fps) if fps else None, **cam.to_dict()}
        if poses is not None:
            p = poses[i]
            d.update(yaw_deg=p.yaw_deg, pitch_deg=p.pitch_deg, roll_deg=p.roll_deg,
                     time_s=p.time_s)
        frames[frame_key(i, len(cameras))] = d
    meta = {"frame": "head", "units": "m", "convention": "opencv", "fps": fps,
            "keys": "frame index, zero-padded", **(extra or {})}
    write_json_atomic(Path(path), {"schema_version": CAMERAS_SCHEMA_VERSION, "frames": frames,
                                   "meta": meta})
    return Path(path)


def load_camera_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The per-frame entries of a ``cameras.json`` (dicts with the camera fields and, when
    written by :func:`save_cameras`, ``index``, ``time_s`` and the head pose), in key order
    (a ``frames`` dict) or list order (a ``frames`` list). Raises InputError naming the file
    when it is missing or malformed."""
    p = Path(path)
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
        frames = obj["frames"]
    except FileNotFoundError as exc:
        raise InputError(f"{p}: no such cameras file") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{p}: not a Strandcap cameras file ({exc})") from exc
    if isinstance(frames, dict):
        return [frames[k] for k in sorted(frames)]
    if isinstance(frames, list):
        return list(frames)
    raise InputError(f"{p}: 'frames' must be an object or a list")


def load_cameras(path: str | os.PathLike) -> list[Camera]:
    """Read a ``cameras.json`` (:func:`save_cameras`) into cameras in frame order.

    Raises InputError naming the file when it is missing or malformed.
    """
    return [Camera.from_dict(f, f"{Path(path)} [{i}]")
            for i, f in enumerate(load_camera_records(path))]


def save_transforms_json(path: str | os.PathLike, cameras: Sequence[Camera],
                         file_paths: Sequence[str], *, extra: dict | None = None) -> Path:
    """Write cameras as a nerfstudio / instant-ngp ``transforms.json`` (per-frame intrinsics).

    Each frame gets ``file_path`` (relative to the JSON file), ``fl_x, fl_y, cx, cy, w, h`` (the
    principal point in nerfstudio's pixel-corner origin: OpenCV's ``cx + 0.5``) and
    ``transform_matrix``: the 4x4 camera-to-world matrix in the OpenGL camera convention (x right,
    y up, z backwards), i.e. ``[[R^T, -R^T t], [0, 1]] @ diag(1, -1, -1, 1)``. World = head frame,
    metres. Written atomically; returns the path. Raises InputError when the lengths differ.
    """
    from engine.io.files import write_json_atomic

    if len(cameras) != len(file_paths):
        raise InputError(f"{path}: {len(cameras)} cameras but {len(file_paths)} file paths")
    flip = np.diag([1.0, -1.0, -1.0, 1.0])
    frames = []
    for cam, fp in zip(cameras, file_paths):
        c2w = np.eye(4)
        c2w[:3, :3] = cam.R.T
        c2w[:3, 3] = cam.centre
        frames.append({"file_path": str(fp), "fl_x": cam.fx, "fl_y": cam.fy, "cx": cam.cx + 0.5,
                       "cy": cam.cy + 0.5, "w": cam.width, "h": cam.height,
                       "transform_matrix": (c2w @ flip).tolist()})
    obj = {"camera_model": "OPENCV", "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0,
           "frames": frames, **(extra or {})}
    write_json_atomic(Path(path), obj)
    return Path(path)
