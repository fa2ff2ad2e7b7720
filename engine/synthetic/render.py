"""Render a synthetic capture frame: head mesh, hair strands and/or a hair shell, with ground truth.

One :func:`render` call rasterises (z-buffered, :mod:`engine.raster`) the head mesh,
an optional hair shell mesh and optional strands seen by a :class:`Camera`, then shades:

* skin: the head's procedural albedo (:meth:`HeadModel.albedo`), Lambert plus ambient plus a weak
  Blinn-Phong highlight, one directional light;
* hair (strands and shell): the Kajiya-Kay model (Kajiya & Kay, "Rendering fur with three
  dimensional textures", SIGGRAPH 1989): diffuse ``sin(T, L)``, specular
  ``sin(T, H)^p`` with the half vector ``H``, per-strand albedo variation and darker roots
  (a cheap stand-in for self-shadowing);

and returns the ground truth of the frame: hair and bust masks, depth, the 2D orientation map
(angle of the projected strand tangent) and the 3D tangent per hair pixel.
With ``ssaa = s > 1`` everything is rendered at ``s`` times the resolution and box-filtered
(RGB, masks) or taken from the nearest hair sub-pixel (orientation, tangent, strand index).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from engine.cameras.camera import Camera
from engine.errors import InputError
from engine.raster import rasterize_mesh, rasterize_strands, vertex_normals
from engine.synthetic.head import REGION_TORSO, HeadModel, smooth_noise


class ShellLike(Protocol):
    """A closed hair-shell mesh with a growth-direction field (:mod:`engine.synthetic.shell`)."""

    vertices: np.ndarray  # (V, 3) float32 metres, head frame
    faces: np.ndarray  # (F, 3) int32, counter-clockwise seen from outside

    def direction(self, points: np.ndarray) -> np.ndarray: ...  # (M, 3) -> (M, 3) unit


@dataclass(frozen=True)
class RenderSettings:
    """Shading and sampling options.

    light_dir_cam: direction *towards* the light in camera coordinates (OpenCV: x right, y down,
        z forward); the default lights from the upper left of the camera.
    ambient: ambient fraction in [0, 1].
    hair_color: base hair albedo (RGB in [0, 1]).
    hair_color_variation: relative per-strand albedo jitter (0..0.5).
    hair_width_m: ribbon width in metres (scalar), drawn at least ``min_width_px`` pixels wide.
    specular: strength of the primary Kajiya-Kay highlight; specular_exponent: its sharpness.
    skin_specular: strength of the skin's Blinn-Phong highlight.
    background: RGB in [0, 1] (flat), "studio" (a smooth image-fixed backdrop, for a still
        camera), "environment" (a textured sphere fixed in the head frame, for orbiting
        cameras) or an (H, W, 3) uint8 image at the output size.
    ssaa: supersampling factor (1 = off).
    seed: seed of the per-strand colour jitter and textures.
    """

    light_dir_cam: tuple[float, float, float] = (-0.35, -0.55, -1.0)
    ambient: float = 0.35
    hair_color: tuple[float, float, float] = (0.24, 0.15, 0.09)
    hair_color_variation: float = 0.25
    hair_width_m: float = 0.0005
    min_width_px: float = 1.0
    specular: float = 0.18
    specular_exponent: float = 120.0
    skin_specular: float = 0.08
    background: object = "studio"
    ssaa: int = 1
    seed: int = 0


@dataclass
class RenderResult:
    """Output of :func:`render` (all (H, W, ...) at the camera's size).

    rgb: (H, W, 3) uint8. hair_mask, bust_mask: (H, W) float32 in [0, 1]: visible strands or
    shell / visible head not covered by hair (soft at edges when supersampled).
    depth: (H, W) float32 camera z of the nearest surface in metres, 0 where empty.
    orientation: (H, W) float32 angle of the projected strand tangent in [0, pi), measured
    counter-clockwise from image +x as seen on screen (image y points down, so an up-right
    direction (dx > 0, dy < 0) has angle in (0, pi/2)); 0 outside hair.
    tangent: (H, W, 3) float32 unit 3D tangent (root to tip) in the head frame, 0 outside hair.
    strand_index: (H, W) int32 index of the visible strand, -1 elsewhere (and on the shell).
    """

    rgb: np.ndarray
    hair_mask: np.ndarray
    bust_mask: np.ndarray
    depth: np.ndarray
    orientation: np.ndarray
    tangent: np.ndarray
    strand_index: np.ndarray
    extra: dict = field(default_factory=dict)


def studio_backdrop(height: int, width: int, seed: int = 3) -> np.ndarray:
    """A smooth, softly textured grey-blue backdrop (H, W, 3) uint8 (image-fixed)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    p = np.stack([xs / max(width, height), ys / max(width, height), np.zeros_like(xs)], -1)
    n = smooth_noise(p.reshape(-1, 3), 0.6, seed, octaves=3).reshape(height, width)
    g = 0.55 - 0.18 * (ys / height) + 0.06 * n
    rgb = np.stack([g * 0.92, g * 0.97, g * 1.05], -1)
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def backdrop_points(camera: Camera, radius_m: float = 1.5) -> np.ndarray:
    """Where each pixel's ray meets a sphere of ``radius_m`` metres around the head frame's
    origin (a room fixed in the head frame; the camera must be inside it).

    Returns:
        (H * W, 3) float64 head-frame points in metres, row-major over the camera's pixels
        (pixel centres at integer coordinates).
    """
    H, W = camera.height, camera.width
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    d = np.stack([(xs - camera.cx) / camera.fx, (ys - camera.cy) / camera.fy, np.ones_like(xs)], -1)
    d = _unit(d.reshape(-1, 3) @ camera.R)  # camera rays in the head frame
    c = camera.centre
    b = d @ c
    disc = np.maximum(b * b - (c @ c - radius_m ** 2), 0.0)
    return c + (-b + np.sqrt(disc))[:, None] * d


def environment_backdrop(camera: Camera, radius_m: float = 1.5, seed: int = 7) -> np.ndarray:
    """Image (H, W, 3) uint8 of a softly textured sphere of ``radius_m`` metres around the head
    frame's origin (:func:`backdrop_points`): a backdrop fixed in the head frame, which moves in
    the image when the camera orbits (use it with :func:`orbit_rig`; use the image-fixed
    "studio" backdrop for a still camera and a turning head)."""
    p = backdrop_points(camera, radius_m)
    g = smooth_noise(p, 0.5, seed, octaves=4)
    h = smooth_noise(p, 1.2, seed + 3, octaves=2)
    rgb = np.stack([0.5 + 0.2 * g, 0.5 + 0.15 * h, 0.52 - 0.15 * g], -1)
    return (np.clip(rgb, 0, 1).reshape(camera.height, camera.width, 3) * 255
            + 0.5).astype(np.uint8)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def projected_angle(camera: Camera, points: np.ndarray, tangents: np.ndarray) -> np.ndarray:
    """Image-plane angle of 3D directions ``tangents`` (M, 3) at ``points`` (M, 3) (head frame).

    Uses the exact derivative of the pinhole projection: for camera point (X, Y, Z) and camera
    direction (dX, dY, dZ), ``du = fx (dX - X dZ / Z) / Z``, ``dv = fy (dY - Y dZ / Z) / Z``.
    Returns (M,) float32 angle in [0, pi), counter-clockwise from image +x on screen
    (``atan2(-dv, du) mod pi``).
    """
    pc = camera.to_camera(points)
    dc = np.asarray(tangents, np.float64) @ camera.R.T
    Z = pc[:, 2:3]
    du = camera.fx * (dc[:, 0:1] - pc[:, 0:1] * dc[:, 2:3] / Z) / Z
    dv = camera.fy * (dc[:, 1:2] - pc[:, 1:2] * dc[:, 2:3] / Z) / Z
    return (np.arctan2(-dv[:, 0], du[:, 0]) % np.pi).astype(np.float32)


def _kajiya_kay(T_cam, V, L, albedo, s: RenderSettings):
    """Kajiya-Kay shading of hair: T_cam (M, 3) unit tangents, V (M, 3) unit directions to the
    eye, L (3,) unit direction to the light, all camera frame; albedo (M, 3)."""
    tl = T_cam @ L
    diff = np.sqrt(np.clip(1.0 - tl * tl, 0.0, 1.0))
    H = _unit(V + L[None])
    th = (T_cam * H).sum(1)
    sin_th = np.sqrt(np.clip(1.0 - th * th, 0.0, 1.0))
    spec1 = sin_th ** s.specular_exponent
    spec2 = sin_th ** (s.specular_exponent / 4.0)
    col = albedo * (s.ambient + (1.0 - s.ambient) * diff)[:, None]
    col += s.specular * spec1[:, None] * np.array([1.0, 0.97, 0.92])
    col += 1.5 * s.specular * spec2[:, None] * albedo
    return col


def render(camera: Camera, head: HeadModel | None = None, strands: np.ndarray | None = None,
           shell: ShellLike | None = None, settings: RenderSettings = RenderSettings(),
           strand_colors: np.ndarray | None = None) -> RenderResult:
    """Render one frame of a synthetic capture with its ground truth.

    Args:
        camera: the view (head frame, OpenCV convention).
        head: the head mesh (the "bust"), or None.
        strands: (N, L, 3) float32 metres, head frame, root first; drawn as camera-facing
            ribbons ``settings.hair_width_m`` wide.
        shell: a closed hair-shell mesh with a growth-direction field (``direction``), or None.
        settings: :class:`RenderSettings`.
        strand_colors: optional (N, 3) per-strand albedo in [0, 1] (default: hair_color with
            jitter).
    Returns:
        :class:`RenderResult`.
    Raises:
        InputError: strands of the wrong shape or not finite.
    """
    s = settings
    f = max(1, int(s.ssaa))
    cam = camera.scaled(f) if f > 1 else camera
    H, W = cam.height, cam.width
    L_light = _unit(np.asarray(s.light_dir_cam, np.float64))
    rng = np.random.default_rng(s.seed)

    # ---- meshes (head = kind 0, shell = kind 1) ----------------------------------------------
    verts, faces, kinds = [], [], []
    nv = 0
    if head is not None:
        verts.append(head.vertices)
        faces.append(head.faces)
        kinds.append(np.zeros(len(head.faces), np.int8))
        nv += len(head.vertices)
    if shell is not None:
        verts.append(np.asarray(shell.vertices, np.float32))
        faces.append(np.asarray(shell.faces, np.int64) + nv)
        kinds.append(np.ones(len(shell.faces), np.int8))
    mesh_depth = np.full((H, W), np.inf, np.float32)
    face = np.full((H, W), -1, np.int32)
    if verts:
        V = np.concatenate(verts).astype(np.float64)
        F = np.concatenate(faces).astype(np.int64)
        K = np.concatenate(kinds)
        px, z = cam.project_with_depth(V)
        mf = rasterize_mesh(px, z, F, H, W)
        mesh_depth, face, bary = mf.depth, mf.face, mf.bary

    # ---- strands -----------------------------------------------------------------------------
    seg = np.full((H, W), -1, np.int64)
    hair_depth = np.full((H, W), np.inf, np.float32)
    if strands is not None:
        S = np.asarray(strands, np.float32)
        if S.ndim != 3 or S.shape[2] != 3 or S.shape[1] < 2 or not np.isfinite(S).all():
            raise InputError(f"render: strands must be finite (N, L>=2, 3), got {S.shape}")
        N, Lp = S.shape[:2]
        spx, sz = cam.project_with_depth(S)
        wpx = np.maximum(cam.fx * s.hair_width_m / np.maximum(sz, 1e-6), s.min_width_px * f)
        sf = rasterize_strands(spx, sz, wpx, H, W)
        seg, hair_depth = sf.segment, sf.depth
        seg_t = sf.t

    strand_vis = (seg >= 0) & (hair_depth < mesh_depth)
    if s.background is None or (isinstance(s.background, str) and s.background == "studio"):
        bg = studio_backdrop(camera.height, camera.width, seed=s.seed + 3)
    elif isinstance(s.background, str) and s.background == "environment":
        bg = environment_backdrop(camera, seed=s.seed + 7)
    elif isinstance(s.background, str):
        raise InputError(f"render: unknown background {s.background!r} (studio, environment, "
                         "an RGB triple or an image)")
    elif isinstance(s.background, np.ndarray):
        bg = s.background
        if bg.shape != (camera.height, camera.width, 3):
            raise InputError(f"render: background must be ({camera.height}, {camera.width}, 3)")
    else:
        bg = np.empty((camera.height, camera.width, 3), np.uint8)
        bg[:] = (np.clip(np.asarray(s.background, np.float64), 0, 1) * 255 + 0.5).astype(np.uint8)
    if f > 1:
        bg_hi = np.repeat(np.repeat(bg, f, 0), f, 1)
    else:
        bg_hi = bg
    rgb = bg_hi.astype(np.float32) / 255.0
    tangent = np.zeros((H, W, 3), np.float32)
    orient = np.zeros((H, W), np.float32)
    strand_idx = np.full((H, W), -1, np.int32)
    hair = np.zeros((H, W), bool)
    bust = np.zeros((H, W), bool)

    # ---- shade mesh pixels -----------------------------------------------------------------
    mesh_vis = (face >= 0) & ~strand_vis
    if mesh_vis.any():
        ys, xs = np.nonzero(mesh_vis)
        fi = face[ys, xs]
        w = bary[ys, xs].astype(np.float64)
        fv = F[fi]
        P = (V[fv] * w[:, :, None]).sum(1)
        kind = K[fi]
        vn = vertex_normals(V, F)  # smooth vertex normals of the combined mesh
        Nw = _unit((vn[fv] * w[:, :, None]).sum(1))
        Nc = Nw @ cam.R.T
        Pc = cam.to_camera(P)
        Vd = _unit(-Pc)
        Nc = np.where(((Nc * Vd).sum(1) < 0)[:, None], -Nc, Nc)
        col = np.zeros((len(P), 3))
        sk = kind == 0
        if sk.any() and head is not None:
            fvs = fv[sk]
            ew = ((head.region == 2)[fvs] * w[sk]).sum(1)
            cw = ((head.region == REGION_TORSO)[fvs] * w[sk]).sum(1)
            alb = head.albedo(P[sk], ew, cw)
            nl = np.clip(Nc[sk] @ L_light, 0, 1)
            Hh = _unit(Vd[sk] + L_light[None])
            spec = np.clip((Nc[sk] * Hh).sum(1), 0, 1) ** 40
            col[sk] = (alb * (s.ambient + (1 - s.ambient) * nl)[:, None]
                       + s.skin_specular * spec[:, None])
            bust[ys[sk], xs[sk]] = True
        sh = kind == 1
        if sh.any() and shell is not None:
            T = _unit(np.asarray(shell.direction(P[sh]), np.float64))
            # streaks: noise of the position across the local growth direction
            across = P[sh] - (P[sh] * T).sum(1, keepdims=True) * T
            streak = smooth_noise(across, 0.004, s.seed + 11, octaves=2)
            alb = np.asarray(s.hair_color)[None] * (1 + 0.35 * streak)[:, None]
            Tc = T @ cam.R.T
            col[sh] = _kajiya_kay(Tc, Vd[sh], L_light, alb, s)
            tangent[ys[sh], xs[sh]] = T
            orient[ys[sh], xs[sh]] = projected_angle(cam, P[sh], T)
            hair[ys[sh], xs[sh]] = True
        rgb[ys, xs] = col

    # ---- shade strand pixels ---------------------------------------------------------------
    if strand_vis.any():
        ys, xs = np.nonzero(strand_vis)
        sg = seg[ys, xs]
        n_idx = sg // (Lp - 1)
        j = sg - n_idx * (Lp - 1)
        tt = seg_t[ys, xs].astype(np.float64)[:, None]
        A = S[n_idx, j].astype(np.float64)
        B = S[n_idx, j + 1].astype(np.float64)
        P = A + tt * (B - A)
        T = _unit(B - A)
        Tc = T @ cam.R.T
        Vd = _unit(-cam.to_camera(P))
        if strand_colors is None:
            jitter = 1.0 + s.hair_color_variation * rng.uniform(-1, 1, N)
            base = np.asarray(s.hair_color)[None] * jitter[:, None]
        else:
            base = np.asarray(strand_colors, np.float64)
        arc = (j + tt[:, 0]) / (Lp - 1)
        root_dark = 0.55 + 0.45 * np.clip(arc / 0.3, 0, 1)
        alb = base[n_idx] * root_dark[:, None]
        rgb[ys, xs] = _kajiya_kay(Tc, Vd, L_light, alb, s)
        tangent[ys, xs] = T
        ax = spx[n_idx, j + 1] - spx[n_idx, j]
        orient[ys, xs] = (np.arctan2(-ax[:, 1], ax[:, 0]) % np.pi).astype(np.float32)
        strand_idx[ys, xs] = n_idx
        hair[ys, xs] = True

    depth = np.where(strand_vis, hair_depth, mesh_depth)
    depth = np.where(np.isfinite(depth), depth, np.float32(0)).astype(np.float32)

    if f > 1:
        rgb = rgb.reshape(camera.height, f, camera.width, f, 3).mean((1, 3))
        hair_soft = hair.reshape(camera.height, f, camera.width, f).mean((1, 3))
        bust_soft = bust.reshape(camera.height, f, camera.width, f).mean((1, 3))
        # representative sub-pixel: the nearest hair sub-pixel, else the nearest surface
        dkey = np.where(hair, depth, np.where(depth > 0, 1e3 + depth, 1e9))
        blk = dkey.reshape(camera.height, f, camera.width, f).transpose(0, 2, 1, 3).reshape(
            camera.height, camera.width, f * f)
        pick = blk.argmin(-1)
        oy, ox = np.divmod(pick, f)
        gy = np.arange(camera.height)[:, None] * f + oy
        gx = np.arange(camera.width)[None, :] * f + ox
        tangent, orient = tangent[gy, gx], orient[gy, gx]
        strand_idx, depth = strand_idx[gy, gx], depth[gy, gx]
        hair_mask, bust_mask = hair_soft.astype(np.float32), bust_soft.astype(np.float32)
        any_hair = hair_soft > 0
        tangent[~any_hair] = 0
        orient[~any_hair] = 0
    else:
        hair_mask, bust_mask = hair.astype(np.float32), bust.astype(np.float32)
    rgb8 = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
    return RenderResult(rgb8, hair_mask, bust_mask, depth.astype(np.float32),
                        orient.astype(np.float32), tangent.astype(np.float32),
                        strand_idx.astype(np.int32))
