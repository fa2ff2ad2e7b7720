"""Benchmark captures rendered by Blender (Cycles, CPU) instead of the project's own renderer.

The synthetic cases of ``benchmarks/run.py`` are drawn by :mod:`engine.synthetic`, the same code
base whose reconstruction they score, so a good score there can come from shared assumptions. The
captures here are path traced by Blender 4.5 (the ``bpy`` wheel): real hair shading (Principled
Hair BSDF, Chiang model, melanin pigment), a skin BSDF, a key light plus world light, antialiasing
and sampling noise. The ground truth stays exact: the groom and the head are the same arrays the
render was made from, in the head frame.

Usage::

    python benchmarks/blender_capture.py --groom wavy --kind orbit --out DIR [--views 32]
        [--size 384] [--samples 24] [--strands 10000] [--hair-color dark_brown|black]
    python benchmarks/blender_capture.py --groom sintel --kind turn --frames 60 --fps 30 --out DIR

Capture kinds (``DIR`` gets ``groom.npz`` (ground truth, metres, head frame), ``case.json`` and):

* ``orbit``: ``views`` cameras on a full 360-degree circle around the still head (elevation
  10 +- 8 degrees, varying twice per turn), ``images/000.png ...`` and a nerfstudio /
  instant-ngp ``transforms.json`` (OpenGL camera-to-world, head frame, metres) that
  :func:`engine.cameras.camera.import_transforms_json` reads back into the cameras used. The key
  light is fixed relative to the head.
* ``turn``: a still camera in front of a head that turns yaw -50 -> +50 degrees over ``frames``
  frames (:func:`engine.synthetic.turning_head_rig`, as ``make_synthetic_case`` in
  ``benchmarks/run.py``): ``capture.mp4`` (OpenCV, mp4v), the lossless ``frames/000.png ...`` and
  ``cameras.json`` (:func:`engine.synthetic.save_cameras`: cameras in the head frame, per-frame
  head pose). Blender renders the head still and moves the camera *with the key light*; the world
  light is a uniform colour (rotation invariant), so the image equals a head turning under fixed
  lights in front of a fixed camera.

Frames. Head frame (DESIGN.md): right-handed, metres, +Y up, +Z out of the face. Blender is
Z-up; every head-frame point ``p`` enters the Blender scene as ``HEAD_TO_BLENDER @ p`` with

    HEAD_TO_BLENDER = [[1, 0, 0],
                       [0, 0, -1],
                       [0, 1, 0]]        (x, y, z)_head -> (x, -z, y)_blender

(a +90 degree rotation about X: head +Y up -> Blender +Z up, face +Z -> Blender -Y, Blender's
"front" view), one Blender unit = 1 m. An OpenCV world-to-camera ``(R, t)`` becomes the Blender
camera's ``matrix_world = HEAD_TO_BLENDER_4 @ [[R^T diag(1, -1, -1), -R^T t], [0, 1]]`` (Blender
cameras look down their local -Z with +Y up, the OpenGL convention).

Skipping: a capture folder whose ``case.json`` holds the same description (groom, kind, views or
frames, size, samples, strands, points, colour, settings and groom versions) and whose outputs
exist is not rendered again.

``bpy`` is imported only by the rendering functions, so :func:`benchmark_groom` works without it.
Tests run the CLI in a subprocess (Blender must not share a process with Qt, see
tests/engine/test_dcc_import.py).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from engine.cameras.camera import Camera  # noqa: E402
from engine.errors import InputError  # noqa: E402
from engine.head.model import sample_mesh  # noqa: E402
from engine.io.groom import Groom  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
SINTEL = SHARED / "grooms" / "sintel_lite_guides.npz"
GROOMS = ("straight", "wavy", "curly", "short", "sintel", "bald")
KINDS = ("orbit", "turn", "turn360")
YAW_RANGE_DEG = {"turn": (-50.0, 50.0), "turn360": (0.0, 360.0)}  # head yaw over a turn clip
SYNTH_SEED = 3_000_000  # as benchmarks/run.py: seed = SYNTH_SEED + curl class index
SHORT_SEED = SYNTH_SEED + 10
SETTINGS_VERSION = 1  # bump when the scene (lights, materials, widths) changes
GROOM_VERSION = {"sintel": 4}  # bump when a groom's construction changes (others: 1)

HEAD_TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
_GL_FROM_CV = np.diag([1.0, -1.0, -1.0])  # OpenCV camera axes -> OpenGL/Blender camera axes

# linear RGB; the skin albedo of engine.synthetic.head is display-referred, converted by ^2.2
WORLD_RGB = (0.16, 0.17, 0.19)  # neutral, slightly cool grey: backdrop and fill light
MELANIN = {"dark_brown": (0.80, 0.35), "black": (0.97, 0.10), "brown": (0.60, 0.45)}
KEY_DIR_HEAD = np.array([0.45, 0.65, 0.62])  # direction *towards* the key light, head frame
# orbit framing: a 30-degree camera 0.75 m from a point just above the head centre
ORBIT_TARGET = (0.0, 0.01, -0.01)
ORBIT_RADIUS_M = 0.75
FOV_X_DEG = 30.0
TURN_PIVOT = (0.0, -0.02, -0.02)


# ------------------------------------------------------------------------------------------------
# Grooms and head
# ------------------------------------------------------------------------------------------------


# projection centre (metres, head frame) near the skull centre, chosen by a grid search that
# minimised the area distortion of the neutral scalp
_UV_CENTRE = np.array([0.0, 0.03, 0.01])
_UV_TILT_DEG = 30.0
_UV_SCALE = 3.1  # Lambert-plane extent of the neutral scalp is 1.46 -> UV in [0.03, 0.97]


def _scalp_uv(vertices: np.ndarray) -> np.ndarray:
    """Scalp UV of points: radial projection onto a sphere, then azimuthal equal-area map.

    Direction d = normalise(p - _UV_CENTRE); in the pole frame (pole = +Y tilted _UV_TILT_DEG
    backwards) Lambert's azimuthal equal-area projection gives (X, Y) = sqrt(2 / (1 + d_pole)) *
    (d . e1, d . e2); UV = 0.5 + (X, Y) / _UV_SCALE (u grows towards the subject's left (+x), v
    towards the back of the head). On the neutral scalp the area distortion (UV area share over 3D
    area share) has 5th-95th percentiles 0.79-1.45 and no flipped triangles.

    Args:
        vertices: (N, 3) metres, head frame.
    Returns:
        (N, 2) float64 UV in [0, 1]^2.
    """
    p = np.asarray(vertices, np.float64) - _UV_CENTRE
    d = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
    a = np.radians(_UV_TILT_DEG)
    pole = np.array([0.0, np.cos(a), -np.sin(a)])
    e1 = np.array([1.0, 0.0, 0.0])
    e2 = np.cross(e1, pole)  # points backwards-ish (-z)
    k = np.sqrt(2.0 / np.maximum(1.0 + d @ pole, 1e-9))
    X = k * (d @ e1)
    Y = k * (d @ -e2)
    return np.clip(0.5 + np.stack([X, Y], axis=1) / _UV_SCALE, 0.0, 1.0)


def hair_radius_m(n_strands: int) -> float:
    """Root radius (metres) of the rendered strands: 0.1 mm at 10,000 strands, scaled by
    sqrt(10000 / N) for fewer strands so the covered area stays similar (as
    ``case_render_settings`` in benchmarks/run.py), clipped to [0.04 mm, 1.5 mm]."""
    return float(np.clip(1e-4 * math.sqrt(10000.0 / max(n_strands, 1)), 4e-5, 1.5e-3))


def head_mesh(torso: bool = True, albedo: bool = True
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """The neutral ICT Face Model head the pipeline fits (the shared
    ``heads/ict_face_model_light.npz`` when present, else the shipped head; as
    ``bench_head_path`` in benchmarks/run.py), loaded with :class:`engine.synthetic.HeadModel`.

    Returns:
        vertices (V, 3) float32 metres, head frame; faces (F, 3) int32 CCW outward; region (V,)
        int8 (0 face, 1 head and neck, 2 eyeballs, 3 torso); albedo (V, 3) float32 display RGB
        in [0, 1] (the procedural skin, brows, lips and eyes of engine.synthetic, per vertex;
        None unless ``albedo``).
    Raises:
        InputError: no head model file.
    """
    from engine.synthetic.head import ICT_SHARED, SHIPPED_HEAD, HeadModel

    head = HeadModel.load(ICT_SHARED if ICT_SHARED.is_file() else SHIPPED_HEAD, torso=torso)
    reg = head.region
    col = head.albedo(head.vertices, (reg == 2).astype(np.float64),
                      (reg == 3).astype(np.float64)) if albedo else None
    return head.vertices, head.faces, reg, col


def _synth_style(name: str):
    from engine.prior.synth import CURL_CLASSES, sample_style

    if name == "short":
        return sample_style(SHORT_SEED, curl="straight", length="short", parting="none",
                            fringe=False)
    return sample_style(SYNTH_SEED + CURL_CLASSES.index(name), curl=name, length="medium",
                        parting="none", fringe=False)


def sintel_transform(path: Path | str = SINTEL) -> tuple[float, np.ndarray]:
    """Similarity ``x_head = s * x_sintel + t`` putting the Sintel Lite guides onto the ICT scalp.

    The file is Y-up with the face towards +Z like the head frame, in its own units (the head is
    about 20 units wide). ``s`` is the mean of the x and z extents of the ICT scalp (the prior's
    scalp table, :func:`engine.head.scalp.default_scalp`) over those of the guide roots; ``t``
    centres the root box on the scalp box in x and z and puts the highest root at the scalp's top.
    With the shipped scalp: s = 0.00913 m per unit, t = (0.0003, -0.2743, 0.0043) m.

    Returns:
        s (float, metres per source unit), t (3,) float64 metres.
    """
    from engine.head.scalp import default_scalp

    roots = np.load(path)["strands"][:, 0].astype(np.float64)
    sc = default_scalp()
    pos = sc.table[..., :3][sc.mask_table]
    lo_t, hi_t = pos.min(0), pos.max(0)
    lo_s, hi_s = roots.min(0), roots.max(0)
    s = float(np.mean([(hi_t[i] - lo_t[i]) / (hi_s[i] - lo_s[i]) for i in (0, 2)]))
    t = np.array([0.5 * (lo_t[0] + hi_t[0]) - s * 0.5 * (lo_s[0] + hi_s[0]),
                  hi_t[1] - s * hi_s[1],
                  0.5 * (lo_t[2] + hi_t[2]) - s * 0.5 * (lo_s[2] + hi_s[2])])
    return s, t


def _settle_on_head(strands: np.ndarray, sdf, clearance_m: float = 0.001) -> np.ndarray:
    """Move each strand (N, L, 3) metres rigidly so its root lies on the head surface (three
    Newton steps ``r <- r - d(r) grad d(r)`` onto the zero set of ``sdf``, a
    :class:`engine.head.scalp.HeadSDF` of the ICT head), then push the other points nearer
    than ``clearance_m`` to the head out along the SDF gradient. Returns (N, L, 3) float64."""
    from engine.prior.synth import push_out

    roots = np.asarray(strands[:, 0], np.float64)
    on = roots.copy()
    for _ in range(3):
        d, g = sdf.query(on)
        on = on - d[:, None] * g
    out = np.asarray(strands, np.float64) + (on - roots)[:, None]
    body = out[:, 1:].reshape(-1, 3)
    for _ in range(3):
        body = push_out(body, sdf, clearance_m)
    out[:, 1:] = body.reshape(out[:, 1:].shape)
    return out


def sintel_groom(n_strands: int = 6000, n_points: int = 48, seed: int = 0,
                 path: Path | str = SINTEL, reach_m: float = 0.018) -> Groom:
    """The Sintel Lite hair (Blender Foundation, CC-BY 3.0) on the ICT head, densified.

    The 228 guides are mapped by :func:`sintel_transform` (uniform scale and translation, no
    rotation: both frames are Y-up, face +Z), resampled to ``n_points`` and each moved rigidly
    so its root lies on the ICT head surface (the zero set of the prior's head SDF, built from
    the same ICT mesh); points nearer than 1 mm to the head are pushed out. Then ``n_strands``
    child roots are drawn uniformly by area on the ICT head and neck (regions 0 and 1) among
    the points within ``reach_m`` metres of a guide root, and each child is its root plus the
    inverse-square-distance weighted mean of the root-relative shapes of its 4 nearest guides,
    plus a random offset growing linearly to 2 mm at the tip; children are settled on the head
    like the guides.

    Returns:
        :class:`Groom`: strands (n_strands, n_points, 3) float32 metres, head frame, root first,
        uniform arc length; root_uv (scalp UV of :func:`_scalp_uv`).
    Raises:
        InputError: the file is missing.
    """
    from scipy.spatial import cKDTree

    from engine.head.scalp import default_scalp
    from engine.io.groom import resample_strands

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: Sintel Lite guides not found (shared data absent)")
    s, t = sintel_transform(path)
    guides = np.load(path)["strands"].astype(np.float64) * s + t
    guides = resample_strands(guides, n_points)
    sdf = default_scalp().sdf
    guides = _settle_on_head(guides, sdf)
    rng = np.random.default_rng(seed)
    v, f, reg, _ = head_mesh(torso=False, albedo=False)
    f = f[(reg[f] <= 1).all(1)]
    tree = cKDTree(guides[:, 0])
    roots = np.zeros((0, 3))
    while len(roots) < n_strands:
        cand = sample_mesh(v, f, 4 * n_strands, rng)[0].astype(np.float64)
        roots = np.concatenate([roots, cand[tree.query(cand)[0] < reach_m]])
    roots = roots[:n_strands]
    dist, idx = tree.query(roots, k=4)
    w = 1.0 / (dist + 1e-3) ** 2
    w /= w.sum(1, keepdims=True)
    shape = guides - guides[:, :1]
    kids = roots[:, None] + (w[:, :, None, None] * shape[idx]).sum(1)
    jitter = rng.normal(size=(n_strands, 1, 3)) * 0.002 / math.sqrt(3)
    kids = kids + jitter * np.linspace(0.0, 1.0, n_points)[None, :, None]
    kids = resample_strands(_settle_on_head(kids, sdf), n_points).astype(np.float32)
    return Groom(kids, root_uv=_scalp_uv(kids[:, 0]).astype(np.float32))


def bald_groom() -> Groom:
    """No hair: one 2 mm strand 1 cm inside the crown, which no camera sees (a groom holds at
    least one strand). The case a reconstruction must not invent a groom for."""
    from engine.head.scalp import default_scalp

    top = np.array([0.0, 0.12, -0.01])  # head frame, near the crown
    sdf = default_scalp().sdf
    y = top.copy()
    while float(np.asarray(sdf(y[None]))[0]) > -0.01 and y[1] > 0.0:  # down to 1 cm inside
        y[1] -= 0.001
    strand = np.stack([y, y + np.array([0.0, 0.002, 0.0])])[None].astype(np.float32)
    return Groom(strand, root_uv=np.zeros((1, 2), np.float32))


def benchmark_groom(name: str, n_strands: int | None = None, n_points: int | None = None
                    ) -> Groom:
    """A benchmark groom by name, strands in head-frame metres on the neutral ICT head.

    ``straight``, ``wavy``, ``curly``: :func:`engine.prior.synth.synth_groom` of
    ``sample_style(3_000_000 + curl index, curl, length="medium", parting="none", fringe=False)``
    (the styles of benchmarks/run.py's synthetic cases); ``short``: ``sample_style(3_000_010,
    "straight", length="short", ...)``; ``sintel``: :func:`sintel_groom` (a CG groom fitted onto
    the ICT scalp); ``bald``: :func:`bald_groom`. Defaults: 10,000 strands of 100 points
    (sintel: 6,000 of 48).

    Returns:
        :class:`Groom` with strands (N, L, 3) float32 metres, head frame, root first, and root_uv.
    Raises:
        InputError: unknown name, or the Sintel file is missing.
    """
    if name == "sintel":
        return sintel_groom(n_strands or 6000, n_points or 48)
    if name == "bald":
        return bald_groom()
    if name not in GROOMS:
        raise InputError(f"unknown benchmark groom {name!r} (expected one of {', '.join(GROOMS)})")
    from engine.prior.synth import synth_groom

    g = synth_groom(_synth_style(name), n_strands=n_strands or 10000, n_points=n_points or 100)
    return Groom(g.strands, root_uv=g.uv)


# ------------------------------------------------------------------------------------------------
# Cameras
# ------------------------------------------------------------------------------------------------


def orbit_cameras(n_views: int, width: int, height: int | None = None,
                  fov_x_deg: float = FOV_X_DEG, radius_m: float = ORBIT_RADIUS_M,
                  target: Sequence[float] = ORBIT_TARGET) -> list[Camera]:
    """``n_views`` cameras on a 360-degree circle around the head, looking at ``target``.

    View ``i`` is at azimuth ``360 i / n_views`` degrees (0 = in front of the face, 90 = on the
    +X side) and elevation ``10 + 8 sin(2 * azimuth)`` degrees, ``radius_m`` from ``target``
    (head frame, metres), head-frame +Y up in the image; centred square-pixel intrinsics with
    horizontal field of view ``fov_x_deg``. Returns OpenCV world-to-camera :class:`Camera` in the
    head frame. Raises InputError for n_views < 1.
    """
    from engine.synthetic.camera import intrinsics_from_fov, look_at

    if n_views < 1:
        raise InputError(f"orbit: need at least one view, got {n_views}")
    height = height or width
    fx, fy, cx, cy = intrinsics_from_fov(width, height, fov_x_deg)
    tgt = np.asarray(target, np.float64)
    cams = []
    for i in range(n_views):
        a = 2.0 * math.pi * i / n_views
        e = math.radians(10.0 + 8.0 * math.sin(2.0 * a))
        eye = tgt + radius_m * np.array([math.cos(e) * math.sin(a), math.sin(e),
                                         math.cos(e) * math.cos(a)])
        R, t = look_at(eye, tgt)
        cams.append(Camera(fx=fx, fy=fy, cx=cx, cy=cy, width=width, height=height, R=R, t=t))
    return cams


def turn_cameras(n_frames: int, size: int, fps: float = 30.0, kind: str = "turn"):
    """The turning-head rig of benchmarks/run.py's synthetic cases
    (:func:`engine.synthetic.turning_head_rig`, 30-degree camera 0.85 m away, pivot
    (0, -0.02, -0.02) m), the head's yaw over ``YAW_RANGE_DEG[kind]``: -50 -> +50 degrees for a
    "turn", a whole turn 0 -> 360 (face, side, back, other side, face) for a "turn360".
    Returns (cameras in the head frame, head poses)."""
    from engine.synthetic import turning_head_rig

    return turning_head_rig(n_frames, size, size, yaw_range_deg=YAW_RANGE_DEG[kind], fps=fps,
                            pivot=TURN_PIVOT)


def blender_camera_matrix(cam: Camera) -> np.ndarray:
    """(4, 4) float64 Blender ``matrix_world`` of an OpenCV world-to-camera ``cam`` whose world
    is the head frame (see the module docstring)."""
    m = np.eye(4)
    m[:3, :3] = HEAD_TO_BLENDER @ cam.R.T @ _GL_FROM_CV
    m[:3, 3] = HEAD_TO_BLENDER @ cam.centre
    return m


# ------------------------------------------------------------------------------------------------
# Scene
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SceneSettings:
    """Render settings. ``samples``: Cycles samples per pixel; ``hair_color``: a key of
    ``MELANIN`` (melanin, redness); ``radius_m``: root radius of the strands, metres (None:
    :func:`hair_radius_m`), tapering linearly to half at the tip; ``torso``: add the shoulders
    stand-in of engine.synthetic; ``threads``: Cycles CPU threads (0: all available cores);
    ``denoise``: OpenImageDenoise on the result."""

    samples: int = 24
    hair_color: str = "dark_brown"
    radius_m: float | None = None
    torso: bool = True
    threads: int = 0
    denoise: bool = False


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _to_blender(points: np.ndarray) -> np.ndarray:
    return np.asarray(points, np.float64) @ HEAD_TO_BLENDER.T


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.clip(c, 0.0, 1.0) ** 2.2


def _skin_material(bpy):
    mat = bpy.data.materials.new("skin")
    mat.use_nodes = True
    nt = mat.node_tree
    bsdf = nt.nodes["Principled BSDF"]
    attr = nt.nodes.new("ShaderNodeAttribute")
    attr.attribute_name = "albedo"
    nt.links.new(attr.outputs["Color"], bsdf.inputs["Base Color"])
    bsdf.inputs["Roughness"].default_value = 0.55
    bsdf.inputs["Specular IOR Level"].default_value = 0.35
    return mat


def _hair_material(bpy, color: str):
    if color not in MELANIN:
        raise InputError(f"unknown hair colour {color!r} (expected one of {', '.join(MELANIN)})")
    mat = bpy.data.materials.new("hair")
    mat.use_nodes = True
    nt = mat.node_tree
    for n in list(nt.nodes):
        if n.type != "OUTPUT_MATERIAL":
            nt.nodes.remove(n)
    hair = nt.nodes.new("ShaderNodeBsdfHairPrincipled")
    hair.parametrization = "MELANIN"
    melanin, redness = MELANIN[color]
    hair.inputs["Melanin"].default_value = melanin
    hair.inputs["Melanin Redness"].default_value = redness
    hair.inputs["Roughness"].default_value = 0.3
    hair.inputs["Radial Roughness"].default_value = 0.3
    hair.inputs["Random Color"].default_value = 0.15
    hair.inputs["Random Roughness"].default_value = 0.2
    nt.links.new(hair.outputs[0], nt.nodes["Material Output"].inputs["Surface"])
    return mat


def _light_matrix(direction_blender: np.ndarray) -> np.ndarray:
    """matrix_world of a sun whose -Z axis points along -direction (light comes from there)."""
    z = direction_blender / np.linalg.norm(direction_blender)
    x = np.cross([0.0, 0.0, 1.0], z)
    if np.linalg.norm(x) < 1e-6:
        x = np.array([1.0, 0.0, 0.0])
    x /= np.linalg.norm(x)
    m = np.eye(4)
    m[:3, :3] = np.stack([x, np.cross(z, x), z], 1)
    return m


def build_scene(groom: Groom, size: tuple[int, int], settings: SceneSettings):
    """Reset Blender and build the scene: ICT head (skin, per-vertex albedo), hair curves,
    world, key light, camera. ``size``: (width, height) pixels. Returns (scene, camera object,
    key light object). Needs ``bpy``."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    # --- head
    v, f, reg, albedo = head_mesh(settings.torso)
    mesh = bpy.data.meshes.new("head")
    mesh.from_pydata(_to_blender(v).tolist(), [], f.tolist())
    mesh.update()
    mesh.shade_smooth()
    col = mesh.color_attributes.new("albedo", "FLOAT_COLOR", "POINT")
    rgba = np.concatenate([_srgb_to_linear(albedo), np.ones((len(v), 1))], 1)
    col.data.foreach_set("color", rgba.astype(np.float32).ravel())
    mesh.materials.append(_skin_material(bpy))
    head = bpy.data.objects.new("head", mesh)
    scene.collection.objects.link(head)
    # --- hair
    n, p = groom.strands.shape[:2]
    curves = bpy.data.hair_curves.new("hair")
    curves.add_curves([p] * n)
    curves.position_data.foreach_set("vector", _to_blender(groom.strands.reshape(-1, 3))
                                     .astype(np.float32).ravel())
    r0 = settings.radius_m or hair_radius_m(n)
    radius = np.tile(r0 * (1.0 - 0.5 * np.linspace(0.0, 1.0, p)), n).astype(np.float32)
    attr = curves.attributes.get("radius") or curves.attributes.new("radius", "FLOAT", "POINT")
    attr.data.foreach_set("value", radius)
    curves.materials.append(_hair_material(bpy, settings.hair_color))
    hair = bpy.data.objects.new("hair", curves)
    scene.collection.objects.link(hair)
    # --- world (backdrop and fill) and key light
    world = bpy.data.worlds.new("world")
    world.use_nodes = True
    bg = world.node_tree.nodes["Background"]
    bg.inputs["Color"].default_value = (*WORLD_RGB, 1.0)
    bg.inputs["Strength"].default_value = 1.0
    scene.world = world
    sun = bpy.data.lights.new("key", "SUN")
    sun.energy = 3.0
    sun.angle = math.radians(8.0)
    key = bpy.data.objects.new("key", sun)
    scene.collection.objects.link(key)
    # --- camera
    cam = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    cam.data.sensor_fit = "HORIZONTAL"
    cam.data.sensor_width = 36.0
    cam.data.clip_start, cam.data.clip_end = 0.01, 20.0
    scene.collection.objects.link(cam)
    scene.camera = cam
    # --- render settings
    r = scene.render
    r.engine = "CYCLES"
    r.resolution_x, r.resolution_y = int(size[0]), int(size[1])
    r.resolution_percentage = 100
    r.pixel_aspect_x = r.pixel_aspect_y = 1.0
    r.threads_mode = "FIXED"
    r.threads = settings.threads or _cores()
    r.use_persistent_data = True
    r.image_settings.file_format = "PNG"
    r.image_settings.color_mode = "RGB"
    r.image_settings.color_depth = "8"
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    c = scene.cycles
    c.device = "CPU"
    c.samples = int(settings.samples)
    c.use_adaptive_sampling = False
    c.use_denoising = bool(settings.denoise)
    c.seed = 0
    c.max_bounces, c.diffuse_bounces, c.glossy_bounces = 8, 2, 4
    c.transmission_bounces, c.transparent_max_bounces = 8, 8
    c.caustics_reflective = c.caustics_refractive = False
    c.sample_clamp_indirect = 4.0  # no fireflies from the hair's glints at low sample counts
    scene.cycles_curves.shape = "RIBBONS"
    scene.cycles_curves.subdivisions = 2
    return scene, cam, key


def set_camera(cam_obj, key_obj, cam: Camera, key_follows_camera: bool) -> None:
    """Place the Blender camera for ``cam`` (OpenCV, head frame) and aim the key light: fixed in
    the head frame (``KEY_DIR_HEAD``), or, with ``key_follows_camera``, the same direction
    expressed in the camera's frame relative to a camera facing the face (turning-head capture).

    Raises InputError for non-square pixels or an off-centre principal point (not modelled)."""
    import mathutils

    if abs(cam.fx - cam.fy) > 1e-6 * cam.fx or abs(cam.cx - (cam.width - 1) / 2) > 1e-6 \
            or abs(cam.cy - (cam.height - 1) / 2) > 1e-6:
        raise InputError("blender_capture: only centred square-pixel cameras are supported")
    cam_obj.data.lens = cam.fx * cam_obj.data.sensor_width / cam.width
    cam_obj.data.shift_x = cam_obj.data.shift_y = 0.0
    cam_obj.matrix_world = mathutils.Matrix(blender_camera_matrix(cam).tolist())
    d = KEY_DIR_HEAD
    if key_follows_camera:
        d = cam.R.T @ _GL_FROM_CV @ KEY_DIR_HEAD  # GL camera axes = head axes at the front view
    key_obj.matrix_world = mathutils.Matrix(_light_matrix(HEAD_TO_BLENDER @ d).tolist())


def render_views(groom: Groom, cameras: Sequence[Camera], paths: Sequence[Path],
                 settings: SceneSettings, key_follows_camera: bool = False) -> float:
    """Render one PNG (H, W, 3 RGB uint8) per camera to ``paths``; all cameras share one size.
    Returns the mean wall time per frame, seconds (scene building excluded)."""
    import bpy

    scene, cam_obj, key = build_scene(groom, (cameras[0].width, cameras[0].height), settings)
    t0 = time.perf_counter()
    for cam, path in zip(cameras, paths):
        set_camera(cam_obj, key, cam, key_follows_camera)
        scene.render.filepath = str(path)
        bpy.ops.render.render(write_still=True)
    return (time.perf_counter() - t0) / max(len(cameras), 1)


# ------------------------------------------------------------------------------------------------
# Captures
# ------------------------------------------------------------------------------------------------


def _description(groom: str, kind: str, count: int, size: int, settings: SceneSettings,
                 n_strands: int | None, n_points: int | None, fps: float) -> dict:
    d = {"groom": groom, "kind": kind, "size": size, "strands": n_strands, "points": n_points,
         "settings": {k: v for k, v in asdict(settings).items() if k != "threads"},
         "settings_version": SETTINGS_VERSION, "groom_version": GROOM_VERSION.get(groom, 1)}
    if kind == "orbit":
        d["views"] = count
    else:
        d.update(frames=count, fps=fps, yaw_range_deg=list(YAW_RANGE_DEG[kind]))
    return d


def _outputs(out: Path, kind: str) -> list[Path]:
    names = ["groom.npz", "transforms.json"] if kind == "orbit" else \
        ["groom.npz", "cameras.json", "capture.mp4"]
    return [out / n for n in names]


def make_capture(groom_name: str, out: Path | str, kind: str = "orbit", views: int = 32,
                 frames: int = 60, fps: float = 30.0, size: int = 384,
                 settings: SceneSettings = SceneSettings(), n_strands: int | None = None,
                 n_points: int | None = None, groom: Groom | None = None,
                 force: bool = False) -> dict:
    """Render a benchmark capture of ``groom_name`` into ``out`` (see the module docstring).

    Args:
        groom_name: one of ``GROOMS`` (ignored for the groom itself when ``groom`` is given,
            but recorded).
        kind: "orbit" (``views`` images + transforms.json) or "turn" (``frames`` frames at
            ``fps`` as capture.mp4 + cameras.json).
        size: image width and height, pixels.
        n_strands, n_points: groom size (None: :func:`benchmark_groom` defaults).
        groom: use this groom (head-frame metres) instead of :func:`benchmark_groom`.
        force: render even when ``case.json`` matches.
    Returns:
        the ``case.json`` dict: {"desc": description, "out": {"render_s_per_frame", "groom_s",
        "blender", "strands", "points", "radius_m", "cores"}}.
    Raises:
        InputError: unknown groom or kind.
    """
    import cv2

    from engine.io.export import export_groom

    if kind not in KINDS:
        raise InputError(f"unknown capture kind {kind!r} (expected one of {', '.join(KINDS)})")
    out = Path(out)
    count = views if kind == "orbit" else frames
    desc = _description(groom_name, kind, count, size, settings, n_strands, n_points, fps)
    if groom is not None:
        desc["groom_arrays"] = [int(x) for x in groom.strands.shape[:2]]
        desc["groom_checksum"] = float(np.round(np.abs(groom.strands).sum(), 3))
    meta = out / "case.json"
    if not force and meta.is_file() and all(p.is_file() for p in _outputs(out, kind)):
        old = json.loads(meta.read_text(encoding="utf-8"))
        if old.get("desc") == desc:
            return old
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    g = groom if groom is not None else benchmark_groom(groom_name, n_strands, n_points)
    groom_s = time.perf_counter() - t0
    radius = settings.radius_m or hair_radius_m(g.num_strands)
    import bpy  # after the groom: fail early on bad input, import Blender only to render

    info = {"blender": bpy.app.version_string, "strands": g.num_strands,
            "points": g.points_per_strand, "radius_m": radius,
            "cores": settings.threads or _cores(),
            "groom_s": round(groom_s, 2)}
    if kind == "orbit":
        from engine.synthetic.camera import save_transforms_json

        cams = orbit_cameras(views, size)
        img_dir = out / "images"
        img_dir.mkdir(exist_ok=True)
        names = [f"{i:03d}" for i in range(len(cams))]
        per_frame = render_views(g, cams, [img_dir / f"{n}.png" for n in names], settings)
        save_transforms_json(out / "transforms.json", cams, [f"images/{n}.png" for n in names],
                             extra={"frame": "head", "units": "m"})
    else:
        from engine.synthetic import frame_key, save_cameras

        cams, poses = turn_cameras(frames, size, fps, kind)
        fr_dir = out / "frames"
        fr_dir.mkdir(exist_ok=True)
        paths = [fr_dir / f"{frame_key(i, len(cams))}.png" for i in range(len(cams))]
        per_frame = render_views(g, cams, paths, settings, key_follows_camera=True)
        tmp = Path(tempfile.mkdtemp(dir=out)) / "capture.mp4"
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (size, size))
        for p in paths:
            writer.write(cv2.imread(str(p), cv2.IMREAD_COLOR))
        writer.release()
        os.replace(tmp, out / "capture.mp4")
        shutil.rmtree(tmp.parent, ignore_errors=True)
        save_cameras(out / "cameras.json", cams, fps=fps, poses=poses,
                     extra={"renderer": f"Blender {bpy.app.version_string} Cycles"})
    widths = np.full(g.num_strands, 2.0 * radius, np.float32)
    export_groom(Groom(g.strands, root_uv=g.root_uv, widths=widths), out / "groom.npz", units="m")
    info["render_s_per_frame"] = round(per_frame, 3)
    case = {"schema_version": 1, "desc": desc, "out": info}
    meta.write_text(json.dumps(case, indent=1), encoding="utf-8")
    return case


def contact_sheet(images: Sequence[Path], out: Path | str, columns: int = 6, tile: int = 144,
                  labels: Sequence[str] | None = None) -> Path:
    """Tile images (any size, resized to ``tile`` x ``tile`` pixels) into one PNG, ``columns``
    per row, each labelled (default: its file stem) in the top-left corner. Colours are
    quantised to 32 levels per channel (the render noise otherwise makes the PNG large).
    Returns ``out``."""
    import cv2

    tiles = []
    for i, p in enumerate(images):
        im = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if im is None:
            raise InputError(f"{p}: not an image")
        im = cv2.resize(im, (tile, tile), interpolation=cv2.INTER_AREA)
        text = labels[i] if labels else Path(p).stem
        cv2.putText(im, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1,
                    cv2.LINE_AA)
        tiles.append(im)
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[i:i + columns]) for i in range(0, len(tiles), columns)]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), np.vstack(rows) & 0xF8, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Render a Blender (Cycles, CPU) benchmark capture.")
    ap.add_argument("--groom", required=True, choices=GROOMS)
    ap.add_argument("--out", required=True, type=Path, help="capture folder")
    ap.add_argument("--kind", default="orbit", choices=KINDS)
    ap.add_argument("--views", type=int, default=32, help="orbit views")
    ap.add_argument("--frames", type=int, default=60, help="turn: video frames")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--size", type=int, default=384, help="image width = height, pixels")
    ap.add_argument("--samples", type=int, default=24, help="Cycles samples per pixel")
    ap.add_argument("--strands", type=int, default=None,
                    help="strands (default 10000, sintel 6000)")
    ap.add_argument("--points", type=int, default=None, help="points per strand")
    ap.add_argument("--hair-color", default="dark_brown", choices=sorted(MELANIN))
    ap.add_argument("--radius-mm", type=float, default=None, help="root radius of the strands")
    ap.add_argument("--no-torso", action="store_true", help="head and neck only")
    ap.add_argument("--threads", type=int, default=0, help="Cycles threads (0: all cores)")
    ap.add_argument("--denoise", action="store_true")
    ap.add_argument("--force", action="store_true", help="render even when case.json matches")
    ap.add_argument("--sheet", type=Path, default=None,
                    help="also write a contact sheet of the images (PNG) here")
    a = ap.parse_args(argv)
    settings = SceneSettings(samples=a.samples, hair_color=a.hair_color,
                             radius_m=None if a.radius_mm is None else a.radius_mm / 1000.0,
                             torso=not a.no_torso, threads=a.threads, denoise=a.denoise)
    try:
        case = make_capture(a.groom, a.out, a.kind, views=a.views, frames=a.frames, fps=a.fps,
                            size=a.size, settings=settings, n_strands=a.strands,
                            n_points=a.points, force=a.force)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if a.sheet is not None:
        sub = "images" if a.kind == "orbit" else "frames"
        frames = sorted((a.out / sub).glob("*.png"))
        if a.kind != "orbit":  # at most 12 evenly spaced frames
            frames = [frames[i] for i in np.linspace(0, len(frames) - 1, min(12, len(frames)))
                      .round().astype(int)]
        contact_sheet(frames, a.sheet)
    print(json.dumps(case["out"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
