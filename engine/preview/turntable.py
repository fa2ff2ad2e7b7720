"""Previews of a groom: strands drawn over the input keyframes, and a turntable of the groom.

Everything is drawn with OpenCV (anti-aliased polylines, sub-pixel coordinates) over numpy images;
the fitted head, when there is one, is rasterised with the z-buffered
:func:`engine.raster.rasterize_mesh` and smooth-shaded (Lambert, one light near the
camera). Strand segments are sorted far to near (painter's algorithm in depth slabs) and segments
whose midpoint lies behind the head's depth at that pixel are hidden.

Conventions (DESIGN.md): strands ``(N, L, 3)`` float32 metres in the head frame (+Y up, +Z out of
the face), root first; cameras OpenCV (x right, y down, z forward), world-to-camera ``R``, ``t``
metres, intrinsics ``K`` pixels with pixel centres at integer coordinates; images RGB uint8.

Colours: over the input frames strands are coloured root to tip along matplotlib's *plasma*
colour map (dark violet roots, yellow tips) so they stand out on any hair colour; in the turntable
they carry the groom's own colours (``Groom.colors``, linear RGB) or a brown-to-blond gradient,
lit with the diffuse term of Kajiya and Kay (1989), ``sin(T, light)``, and dimmed with depth.

Outputs of :func:`write_preview`: ``preview.png`` (turntable views at 0, 90, 180 and 270 degrees,
plus strands over up to 8 keyframes when cameras and frames are given) and ``turntable.mp4``
(``mp4v``), both written atomically (temporary file renamed into place).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from engine.cameras.camera import load_cameras
from engine.errors import InputError
from engine.head.model import load_head_mesh
from engine.io.export import ExportError, atomic_write
from engine.io.groom import Groom
from engine.preprocess.artifacts import load_frame, load_keyframes
from engine.preprocess.previews import contact_sheet
from engine.raster import rasterize_mesh

__all__ = ["overlay_frames", "render_view", "turntable_camera", "turntable_frames",
           "write_preview", "write_project_preview"]

MAX_STRANDS = 3000  # strands drawn per view (a seeded random subset of larger grooms)
_NEAR = 1e-3  # metres: segments with an end closer to the camera are dropped
_OCCLUSION_TOL = 0.004  # metres: a segment midpoint this far behind the head surface is hidden
_SLABS = 8  # depth slabs of the painter's algorithm
_HEAD_RGB = np.array([205.0, 200.0, 195.0])
_LIGHT_CAM = np.array([-0.35, -0.55, -1.0]) / np.linalg.norm([-0.35, -0.55, -1.0])  # to the light


# -- geometry ------------------------------------------------------------------------------------


def _head_of(groom: Groom, head: tuple[np.ndarray, np.ndarray] | None):
    if head is not None:
        v, f = head
        return np.asarray(v, np.float64), np.asarray(f, np.int64)
    if groom.has_head:
        return np.asarray(groom.head_vertices, np.float64), np.asarray(groom.head_faces, np.int64)
    return None


def strand_subset(count: int, max_strands: int, seed: int = 0) -> np.ndarray:
    """Indices of at most ``max_strands`` of ``count`` strands (seeded random choice, sorted)."""
    if count <= max_strands:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, max_strands, replace=False))


def _to_camera(points: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(..., 3) head-frame metres -> (..., 3) camera-frame metres (OpenCV, world-to-camera)."""
    return points @ np.asarray(R, np.float64).T + np.asarray(t, np.float64)


def _pixels(xc: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(..., 3) camera-frame points -> (..., 2) pixels (z clamped to the near plane)."""
    z = np.maximum(xc[..., 2:3], _NEAR)
    return xc[..., :2] / z * [K[0, 0], K[1, 1]] + [K[0, 2], K[1, 2]]


def _head_layer(vertices: np.ndarray, faces: np.ndarray, K: np.ndarray, R: np.ndarray,
                t: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise the head: (depth (H, W) float32 camera z in metres, inf where empty; shade
    (H, W) float32 in [0, 1], smooth Lambert with a light near the camera plus ambient)."""
    xc = _to_camera(vertices, R, t)
    frag = rasterize_mesh(_pixels(xc, K), xc[:, 2], faces, height, width, cull_backfaces=True,
                          near=_NEAR)
    # vertex normals (area-weighted face normals), outward for counter-clockwise faces
    fn = np.cross(xc[faces[:, 1]] - xc[faces[:, 0]], xc[faces[:, 2]] - xc[faces[:, 0]])
    vn = np.zeros_like(xc)
    for k in range(3):
        np.add.at(vn, faces[:, k], fn)
    vn /= np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-12)
    shade = np.zeros((height, width), np.float32)
    hit = frag.face >= 0
    if hit.any():
        f = frag.face[hit]
        n = (frag.bary[hit][:, :, None] * vn[faces[f]]).sum(1)
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        shade[hit] = 0.3 + 0.7 * np.clip(n @ _LIGHT_CAM, 0.0, 1.0)
    return frag.depth, shade


def _plasma(t: np.ndarray) -> np.ndarray:
    """(M,) values in [0, 1] -> (M, 3) float RGB 0..255 along OpenCV's plasma colour map."""
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_PLASMA)
    lut = lut[:, 0, ::-1].astype(np.float64)  # BGR -> RGB
    return lut[np.clip(np.round(t * 255), 0, 255).astype(np.int64)]


def _draw_segments(img: np.ndarray, a: np.ndarray, b: np.ndarray, depth: np.ndarray,
                   rgb: np.ndarray, thickness: int = 1) -> None:
    """Draw segments ``a[i] -> b[i]`` ((M, 2) pixels) in place, far to near in depth slabs;
    colours (M, 3) RGB 0..255 are quantised to 32 levels per channel so that each slab takes
    one ``cv2.polylines`` call per colour."""
    if len(a) == 0:
        return
    h, w = img.shape[:2]
    lim = 4.0 * max(h, w)
    pts = np.stack([a, b], 1).clip(-lim, lim + max(h, w))
    pts = np.round(pts * 16).astype(np.int32)  # 4 bits of sub-pixel precision (shift=4)
    q = np.clip(rgb, 0, 255).astype(np.int32) >> 3
    key = (q[:, 0] << 10) | (q[:, 1] << 5) | q[:, 2]
    order = np.argsort(-depth, kind="stable")
    for chunk in np.array_split(order, min(_SLABS, len(order))):
        uniq, inv = np.unique(key[chunk], return_inverse=True)
        by = np.argsort(inv, kind="stable")
        starts = np.searchsorted(inv[by], np.arange(len(uniq)))
        groups = np.split(chunk[by], starts[1:])
        for u, g in zip(uniq, groups):
            colour = (int((u >> 10) & 31) * 8 + 4, int((u >> 5) & 31) * 8 + 4, int(u & 31) * 8 + 4)
            cv2.polylines(img, pts[g], False, colour, thickness, cv2.LINE_AA, 4)


def render_view(groom: Groom, K: np.ndarray, R: np.ndarray, t: np.ndarray, width: int,
                height: int, background: np.ndarray | None = None, *, style: str = "overlay",
                head: tuple[np.ndarray, np.ndarray] | None = None, head_alpha: float = 0.35,
                max_strands: int = MAX_STRANDS, thickness: int = 1, seed: int = 0) -> np.ndarray:
    """Draw the groom (and head) as seen by one pinhole camera.

    Args:
        groom: the groom (strands (N, L, 3) metres, head frame); its head mesh is used when
            ``head`` is None and the groom has one.
        K: (3, 3) intrinsics, pixels. R: (3, 3), t: (3,) world-to-camera (OpenCV), metres.
        width, height: output size in pixels.
        background: (height, width, 3) uint8 RGB to draw over (copied), or None for a dark
            vertical gradient.
        style: "overlay" (plasma root-to-tip colours, for drawing over photographs) or "shaded"
            (the groom's colours lit with Kajiya-Kay's diffuse term, for the turntable).
        head: (vertices (V, 3) metres head frame, faces (F, 3) int) to shade underneath and to
            hide the strands behind it; None: the groom's own head if any.
        head_alpha: opacity of the shaded head over the background (1 = opaque).
        max_strands: draw a seeded random subset of at most this many strands.
    Returns:
        (height, width, 3) uint8 RGB.
    Raises:
        InputError: unknown ``style`` or a background of the wrong shape.
    """
    if style not in ("overlay", "shaded"):
        raise InputError(f"unknown preview style {style!r} (overlay or shaded)")
    K = np.asarray(K, np.float64)
    if background is None:
        ramp = np.linspace(58.0, 22.0, height)[:, None, None]
        img = np.broadcast_to(ramp * np.array([1.0, 1.03, 1.12]), (height, width, 3))
        img = np.ascontiguousarray(np.clip(img, 0, 255).astype(np.uint8))
    else:
        if background.shape[:2] != (height, width) or background.ndim != 3:
            raise InputError(f"background is {background.shape}, expected ({height}, {width}, 3)")
        img = np.ascontiguousarray(background[..., :3], np.uint8).copy()

    head_depth = None
    mesh = _head_of(groom, head)
    if mesh is not None:
        head_depth, shade = _head_layer(mesh[0], mesh[1], K, R, t, height, width)
        cover = (np.isfinite(head_depth) * head_alpha)[..., None]
        lit = shade[..., None] * _HEAD_RGB
        img = np.clip(img * (1 - cover) + lit * cover, 0, 255).astype(np.uint8)

    pick = strand_subset(len(groom.strands), max_strands, seed)
    s = np.asarray(groom.strands[pick], np.float64)
    n, L = s.shape[:2]
    xc = _to_camera(s, R, t)  # (n, L, 3)
    uv = _pixels(xc, K)
    z = xc[..., 2]
    a, b = uv[:, :-1].reshape(-1, 2), uv[:, 1:].reshape(-1, 2)
    zm = 0.5 * (z[:, :-1] + z[:, 1:]).ravel()
    keep = ((z[:, :-1] > _NEAR) & (z[:, 1:] > _NEAR)).ravel()
    if head_depth is not None:
        mid = np.round(0.5 * (a + b)).astype(np.int64)
        inside = (mid[:, 0] >= 0) & (mid[:, 0] < width) & (mid[:, 1] >= 0) & (mid[:, 1] < height)
        hd = np.full(len(mid), np.inf)
        hd[inside] = head_depth[mid[inside, 1], mid[inside, 0]]
        keep &= zm <= hd + _OCCLUSION_TOL
    tseg = np.broadcast_to((np.arange(L - 1) + 0.5) / (L - 1), (n, L - 1)).ravel()
    if style == "overlay":
        rgb = _plasma(0.1 + 0.85 * tseg)
    else:
        if groom.colors is not None and len(groom.colors) == len(groom.strands):
            base = np.clip(np.asarray(groom.colors[pick], np.float64), 0, 1) ** (1 / 2.2) * 255
            base = np.repeat(base, L - 1, 0)
        else:
            base = (np.array([95.0, 60.0, 35.0])[None] * (1 - tseg[:, None])
                    + np.array([225.0, 180.0, 115.0])[None] * tseg[:, None])
        tang = (xc[:, 1:] - xc[:, :-1]).reshape(-1, 3)
        tang /= np.maximum(np.linalg.norm(tang, axis=1, keepdims=True), 1e-12)
        diffuse = np.sqrt(np.clip(1 - (tang @ _LIGHT_CAM) ** 2, 0, 1))
        rgb = base * (0.35 + 0.75 * diffuse)[:, None]
    zk = zm[keep]
    if len(zk):
        span = max(float(zk.max() - zk.min()), 1e-6)
        rgb = rgb[keep] * (1.0 - 0.4 * (zk - zk.min()) / span)[:, None]
        _draw_segments(img, a[keep], b[keep], zk, rgb, thickness)
    return img


# -- turntable ------------------------------------------------------------------------------------


def _turntable_frame_of(groom: Groom, head) -> tuple[np.ndarray, float]:
    """Centre (3,) and radius (metres) of the sphere about the bounding-box centre that holds
    every strand point and head vertex."""
    pts = np.asarray(groom.strands, np.float64).reshape(-1, 3)
    if head is not None:
        pts = np.concatenate([pts, head[0]], 0)
    centre = 0.5 * (pts.min(0) + pts.max(0))
    radius = float(np.linalg.norm(pts - centre, axis=1).max())
    return centre, max(radius, 1e-4)


def turntable_camera(centre: np.ndarray, radius: float, angle_deg: float, size: int,
                     distance_radii: float = 3.5, fill: float = 0.47
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The turntable's pinhole camera after the subject turned ``angle_deg`` about +Y.

    At 0 degrees the camera looks at the face from +Z (head frame +X to the image right, +Y
    up); the subject turns counter-clockwise seen from above (+Z towards +X) as the angle grows,
    which is the camera orbiting the other way. The sphere (``centre`` (3,), ``radius`` metres)
    fills ``fill`` of the half-image.

    Returns (K (3, 3), R (3, 3), t (3,)): OpenCV world-to-camera, metres, pixels.
    """
    d = distance_radii * radius
    f = fill * size * math.sqrt(d * d - radius * radius) / radius
    c = (size - 1) / 2.0
    K = np.array([[f, 0.0, c], [0.0, f, c], [0.0, 0.0, 1.0]])
    th = math.radians(angle_deg)
    Ry = np.array([[math.cos(th), 0.0, math.sin(th)], [0.0, 1.0, 0.0],
                   [-math.sin(th), 0.0, math.cos(th)]])
    R = np.diag([1.0, -1.0, -1.0]) @ Ry
    t = -R @ np.asarray(centre, np.float64) + np.array([0.0, 0.0, d])
    return K, R, t


def turntable_frames(groom: Groom, n_frames: int = 48, size: int = 512, *,
                     head: tuple[np.ndarray, np.ndarray] | None = None,
                     angles_deg: Sequence[float] | None = None,
                     max_strands: int = MAX_STRANDS) -> list[np.ndarray]:
    """The groom (and head: ``head`` or the groom's own) turning a full circle about +Y.

    Frame ``k`` shows the subject turned ``360 * k / n_frames`` degrees (see
    :func:`turntable_camera`; frame 0 is the front view), or the given ``angles_deg``.
    Returns ``n_frames`` (or ``len(angles_deg)``) arrays (size, size, 3) uint8 RGB, shaded style
    (:func:`render_view`). Raises InputError for ``n_frames < 1`` or ``size < 16``.
    """
    if angles_deg is None:
        if n_frames < 1:
            raise InputError(f"a turntable needs at least one frame, got {n_frames}")
        angles_deg = [360.0 * k / n_frames for k in range(n_frames)]
    if size < 16:
        raise InputError(f"turntable size {size} px is too small (at least 16)")
    mesh = _head_of(groom, head)
    centre, radius = _turntable_frame_of(groom, mesh)
    out = []
    for ang in angles_deg:
        K, R, t = turntable_camera(centre, radius, ang, size)
        out.append(render_view(groom, K, R, t, size, size, style="shaded", head=mesh,
                               head_alpha=1.0, max_strands=max_strands))
    return out


# -- overlays over the input keyframes ---------------------------------------------------------


def _label(img: np.ndarray, text: str) -> np.ndarray:
    scale = max(0.4, img.shape[1] / 640)
    cv2.putText(img, text, (6, int(20 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale,
                (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, (6, int(20 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale,
                (255, 255, 255), 1, cv2.LINE_AA)
    return img


def scaled_intrinsics(cam: Any, width: int, height: int) -> np.ndarray:
    """The camera's K for an image of ``width`` x ``height`` (pixel centres at integers)."""
    sx, sy = width / float(cam.width), height / float(cam.height)
    K = np.asarray(cam.K, np.float64).copy()
    K[0, 0] *= sx
    K[1, 1] *= sy
    K[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
    K[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
    return K


def overlay_frames(groom: Groom, cameras: Mapping[str, Any],
                   frames: Sequence[np.ndarray] | Mapping[str, np.ndarray], names: Sequence[str],
                   n: int = 6, *, columns: int = 3, tile_width: int = 384,
                   head: tuple[np.ndarray, np.ndarray] | None = None, head_alpha: float = 0.3,
                   max_strands: int = MAX_STRANDS) -> np.ndarray:
    """Strands projected over ``n`` evenly spread input keyframes, as one contact sheet.

    Args:
        groom: the groom, head frame metres.
        cameras: frame name -> camera with ``K`` (3, 3), ``R``, ``t`` (world-to-camera OpenCV,
            metres) and the ``width``, ``height`` its intrinsics refer to
            (:class:`engine.cameras.camera.Camera`); lens distortion is ignored.
        frames: RGB uint8 (H, W, 3) keyframes, in the order of ``names`` or keyed by name. A
            frame whose size differs from its camera's has the intrinsics scaled to it.
        names: the keyframe names; those without a camera are skipped.
        n: how many frames to show (evenly spread over those with cameras).
        columns, tile_width: layout of the sheet (each frame resized to ``tile_width`` wide).
        head: a head mesh (vertices, faces) shaded at ``head_alpha`` under the strands and
            hiding those behind it; None: the groom's own head if any.
    Returns:
        (H', W', 3) uint8 RGB contact sheet, ``columns * tile_width`` wide.
    Raises:
        InputError: no keyframe has a camera, or ``frames`` and ``names`` differ in length.
    """
    names = list(names)
    if not isinstance(frames, Mapping):
        if len(frames) != len(names):
            raise InputError(f"overlay: {len(frames)} frames but {len(names)} names")
        frames = dict(zip(names, frames))
    usable = [nm for nm in names if nm in cameras and nm in frames]
    if not usable:
        raise InputError("overlay: none of the keyframes has a camera "
                         f"(frames {names[:3]}..., cameras {list(cameras)[:3]}...)")
    pick = sorted(set(np.round(np.linspace(0, len(usable) - 1, max(1, min(n, len(usable))))
                               ).astype(int).tolist()))
    mesh = _head_of(groom, head)
    tiles = []
    for i in pick:
        name = usable[i]
        img = np.asarray(frames[name])
        scale = tile_width / img.shape[1]
        h = max(1, round(img.shape[0] * scale))
        small = cv2.resize(img, (tile_width, h), interpolation=cv2.INTER_AREA)
        cam = cameras[name]
        K = scaled_intrinsics(cam, tile_width, h)
        tile = render_view(groom, K, cam.R, cam.t, tile_width, h, small, style="overlay",
                           head=mesh, head_alpha=head_alpha, max_strands=max_strands)
        tiles.append(_label(tile, f"frame {name}"))
    return contact_sheet(tiles, columns=columns, width=tile_width)


# -- files -----------------------------------------------------------------------------------------


def _write_png(path: Path, rgb: np.ndarray) -> Path:
    def write(tmp: Path) -> None:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise ExportError(f"{path}: OpenCV could not write the PNG")
    return atomic_write(path, write)


def _write_mp4(path: Path, frames: Sequence[np.ndarray], fps: float) -> Path:
    h, w = frames[0].shape[:2]

    def write(tmp: Path) -> None:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
        if not writer.isOpened():
            raise ExportError(f"{path}: OpenCV could not open an MP4 (mp4v) video writer")
        try:
            for f in frames:
                writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
        finally:
            writer.release()
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise ExportError(f"{path}: the MP4 writer produced an empty file")
    return atomic_write(path, write)


def write_preview(groom: Groom, out_dir: str | Path, cameras: Mapping[str, Any] | None = None,
                  frames: Sequence[np.ndarray] | Mapping[str, np.ndarray] | None = None,
                  names: Sequence[str] | None = None, *,
                  head: tuple[np.ndarray, np.ndarray] | None = None, n_frames: int = 48,
                  size: int = 512, fps: float = 24.0, tile_width: int = 320,
                  max_strands: int = MAX_STRANDS) -> dict[str, Path]:
    """Write ``preview.png`` and ``turntable.mp4`` of a groom into ``out_dir`` (created).

    ``preview.png``: one row of turntable views at 0, 90, 180 and 270 degrees, then (when
    ``cameras``, ``frames`` and ``names`` are given, see :func:`overlay_frames`) strands over up
    to 8 keyframes, 4 per row, each tile ``tile_width`` pixels wide. ``turntable.mp4``:
    ``n_frames`` frames of ``size`` x ``size`` pixels at ``fps`` (``mp4v``). ``head``: a head
    mesh to draw when the groom carries none (e.g. the cameras stage's ``head.obj``).

    Returns {"preview": path, "turntable": path}. Raises ExportError (a StrandcapError, one
    line naming the file) when a file cannot be written or the video writer fails, InputError
    for bad arguments.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"{out}: cannot create the preview folder ({exc.strerror or exc})") \
            from None
    mesh = _head_of(groom, head)
    video = turntable_frames(groom, n_frames, size, head=mesh, max_strands=max_strands)
    if n_frames % 4 == 0:
        views = [video[k * n_frames // 4] for k in range(4)]
    else:
        views = turntable_frames(groom, size=size, head=mesh, angles_deg=[0, 90, 180, 270],
                                 max_strands=max_strands)
    views = [_label(cv2.resize(v, (tile_width, round(v.shape[0] * tile_width / v.shape[1])),
                               interpolation=cv2.INTER_AREA), f"{deg} deg")
             for v, deg in zip(views, (0, 90, 180, 270))]

    sheet = contact_sheet(views, columns=4, width=tile_width)
    if cameras and frames is not None and names:
        over = overlay_frames(groom, cameras, frames, names, n=8, columns=4,
                              tile_width=tile_width, head=mesh, max_strands=max_strands)
        sheet = np.concatenate([sheet, over], 0)
    paths = {"preview": _write_png(out / "preview.png", sheet),
             "turntable": _write_mp4(out / "turntable.mp4", video, fps)}
    return paths


def write_project_preview(groom, outputs: dict[str, Path], out_dir: Path) -> dict[str, Path]:
    """``preview.png`` and ``turntable.mp4`` of ``groom`` in ``out_dir``: the turntable, and the
    strands over up to 8 keyframes when the run has keyframes and cameras (the cameras stage's
    fitted ``head.obj`` is shaded underneath when the groom carries no head).
    ``outputs``: stage name -> finished stage folder. Returns :func:`write_preview`'s
    paths."""
    cameras = frames = names = head = None
    cam_dir = outputs.get("cameras")
    if cam_dir is not None and (cam_dir / "cameras.json").is_file():
        cameras = load_cameras(cam_dir / "cameras.json")
        if not groom.has_head and (cam_dir / "head.obj").is_file():
            head = load_head_mesh(cam_dir / "head.obj")
    kf_dir = outputs.get("keyframes")
    if cameras and kf_dir is not None:
        _, all_names = load_keyframes(kf_dir)
        usable = [n for n in all_names if n in cameras]
        if usable:
            k = min(8, len(usable))
            pick = sorted({round(i * (len(usable) - 1) / max(k - 1, 1)) for i in range(k)})
            names = [usable[i] for i in pick]
            frames = [load_frame(kf_dir, n) for n in names]
    return write_preview(groom, out_dir, cameras, frames, names, head=head)
