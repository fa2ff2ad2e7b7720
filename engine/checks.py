"""Checks of a groom that need no ground truth, for real captures.

They read a groom, the fitted head and the capture (keyframes, hair masks, cameras) and put
numbers on what a hair artist sees wrong:

* ``fold_share``: percentage of strands that double back (:func:`engine.metrics.strand_folds`).
* ``face_intrusion``: percentage of strands with a point in front of the face below the brow
  line (:meth:`engine.metrics.HeadGeometry.face_intrusion`); ``inside_head``: percentage of
  strand points deeper than 1 mm inside the head.
* ``silhouette``: in every keyframe, the strands drawn with head occlusion (1.5 px ribbons,
  hidden where they lie more than 4 mm behind the head surface) against the hair mask:
  precision, recall and IoU in percent, per frame and their mean.
* ``bald_scalp``: in turntable views at 0, 90, 180 and 270 degrees, the percentage of the
  visible scalp (the head model's scalp triangles) not covered by a strand in front of it; per
  view and over all four.
* ``colour_de2000``: median CIEDE2000 (``skimage.color.deltaE_ciede2000``) between each
  strand's colour (``Groom.colors``, linear RGB, converted to sRGB then CIELAB) and the image
  at the pixels where that strand is the front-most one and the hair mask is above 0.5, over
  all keyframes. About 2.3 is a just noticeable difference; 10 is a clearly different colour.

Frames: strands and head in the head frame, metres; cameras OpenCV world-to-camera
(:class:`engine.cameras.camera.Camera`), intrinsics scaled to the mask's size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from engine.cameras.camera import load_cameras
from engine.errors import InputError
from engine.head.model import load_head_mesh, load_head_model
from engine.io.export import load_groom
from engine.io.groom import Groom
from engine.metrics import HeadGeometry, fold_share, silhouette_scores
from engine.pipeline import PipelineConfig, Project, resolve_artifact
from engine.preprocess.artifacts import load_frame, load_keyframes, load_mask
from engine.preview.turntable import scaled_intrinsics, strand_subset, turntable_camera
from engine.raster import rasterize_mesh, rasterize_strands
from engine.registry import default_stages

__all__ = ["RenderedStrands", "render_strands", "silhouette_check", "bald_scalp_check",
           "colour_check", "groom_checks", "project_checks"]

RIBBON_PX = 1.5  # drawn strand width, pixels
OCCLUSION_M = 0.004  # a strand fragment this far behind the head surface is hidden
MAX_STRANDS = 20_000  # strands drawn per view (a seeded subset of larger grooms)


class RenderedStrands:
    """Strands and head seen by one pinhole camera, (H, W) arrays:
    ``strand`` int64 index of the front-most visible strand (-1 where none), ``head_face``
    int32 triangle of the head mesh seen at the pixel (-1 where none)."""

    def __init__(self, strand: np.ndarray, head_face: np.ndarray) -> None:
        self.strand = strand
        self.head_face = head_face

    @property
    def hair(self) -> np.ndarray:
        """(H, W) bool: a strand is visible."""
        return self.strand >= 0


def render_strands(strands: np.ndarray, K: np.ndarray, R: np.ndarray, t: np.ndarray,
                   width: int, height: int,
                   head: tuple[np.ndarray, np.ndarray] | None = None,
                   ribbon_px: float = RIBBON_PX) -> RenderedStrands:
    """Z-buffered strands (ribbons ``ribbon_px`` wide) and head mesh in one camera.

    Args:
        strands: (N, L, 3) metres, head frame. K (3, 3) pixels; R (3, 3), t (3,) metres,
            world-to-camera (OpenCV). width, height: pixels.
        head: (vertices (V, 3) metres, faces (F, 3) CCW outward) or None.
    Returns:
        :class:`RenderedStrands`; strand fragments more than 4 mm behind the head are hidden.
    """
    K = np.asarray(K, np.float64)
    R = np.asarray(R, np.float64)
    t = np.asarray(t, np.float64)

    def project(p: np.ndarray):
        xc = p @ R.T + t
        z = np.maximum(xc[..., 2], 1e-3)
        uv = np.stack([xc[..., 0] / z * K[0, 0] + K[0, 2], xc[..., 1] / z * K[1, 1] + K[1, 2]],
                      -1)
        return uv, xc[..., 2]

    head_depth = np.full((height, width), np.inf, np.float32)
    head_face = np.full((height, width), -1, np.int32)
    if head is not None:
        uv, z = project(np.asarray(head[0], np.float64))
        frag = rasterize_mesh(uv, z, head[1], height, width, cull_backfaces=True)
        head_depth, head_face = frag.depth, frag.face
    s = np.asarray(strands, np.float64)
    uv, z = project(s)
    frag = rasterize_strands(uv, z, ribbon_px, height, width)
    L = s.shape[1]
    strand = np.where(frag.segment >= 0, frag.segment // (L - 1), -1)
    strand[frag.depth > head_depth + OCCLUSION_M] = -1
    return RenderedStrands(strand.astype(np.int64), head_face.astype(np.int32))


def silhouette_check(strands: np.ndarray, cameras: Mapping[str, Any],
                     masks: Mapping[str, np.ndarray],
                     head: tuple[np.ndarray, np.ndarray] | None = None,
                     renders: dict | None = None) -> dict:
    """Strands drawn in every keyframe against its hair mask.

    ``masks``: name -> (H, W) float32 hair mask in [0, 1]; frames without a camera are skipped.
    ``renders``: an optional dict that receives name -> :class:`RenderedStrands` (reused by
    :func:`colour_check`). Returns ``{"frames": {name: {precision, recall, iou}}, "mean":
    {...}}`` (percent). Raises InputError when no mask has a camera."""
    per = {}
    for name, mask in masks.items():
        if name not in cameras:
            continue
        h, w = mask.shape[:2]
        cam = cameras[name]
        r = render_strands(strands, scaled_intrinsics(cam, w, h), cam.R, cam.t, w, h, head)
        if renders is not None:
            renders[name] = r
        per[name] = silhouette_scores(r.hair, mask)
    if not per:
        raise InputError("silhouette check: no keyframe with a hair mask has a camera")
    mean = {k: float(np.mean([v[k] for v in per.values()])) for k in ("precision", "recall",
                                                                      "iou")}
    return {"frames": per, "mean": mean}


def bald_scalp_check(strands: np.ndarray, head_vertices: np.ndarray, head_faces: np.ndarray,
                     scalp_faces: np.ndarray, size: int = 256,
                     angles: Sequence[float] = (0.0, 90.0, 180.0, 270.0)) -> dict:
    """Share of the visible scalp not covered by hair, in turntable views.

    ``scalp_faces``: (S,) indices into ``head_faces`` of the scalp triangles. The turntable
    cameras (:func:`engine.preview.turntable.turntable_camera`) look at the head's bounding
    sphere from +Z turned by each angle about +Y. Returns ``{"views": {angle: percent},
    "all": percent}`` (0 where the scalp is hidden in every view)."""
    v = np.asarray(head_vertices, np.float64)
    centre = 0.5 * (v.min(0) + v.max(0))
    radius = float(np.linalg.norm(v - centre, axis=1).max())
    is_scalp = np.zeros(len(head_faces), bool)
    is_scalp[np.asarray(scalp_faces, np.int64)] = True
    views, bare_all, seen_all = {}, 0, 0
    for a in angles:
        K, R, t = turntable_camera(centre, radius * 1.15, a, size)
        r = render_strands(strands, K, R, t, size, size, (v, head_faces))
        scalp = (r.head_face >= 0) & is_scalp[np.maximum(r.head_face, 0)]
        bare = scalp & ~r.hair
        views[f"{a:g}"] = 100.0 * float(bare.sum()) / max(float(scalp.sum()), 1.0)
        bare_all += int(bare.sum())
        seen_all += int(scalp.sum())
    return {"views": views, "all": 100.0 * bare_all / max(seen_all, 1)}


def _linear_to_srgb(c: np.ndarray) -> np.ndarray:
    c = np.clip(c, 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(c, 1 / 2.4) - 0.055)


def colour_check(colors: np.ndarray, renders: Mapping[str, RenderedStrands],
                 frames: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray],
                 max_pixels: int = 200_000, seed: int = 0) -> dict:
    """Median CIEDE2000 between strand colours and the image under them (see the module
    docstring). ``colors``: (N, 3) linear RGB of the drawn strands (indexed like the render's
    strand ids); ``frames``: name -> (H, W, 3) uint8 RGB, resized to the mask when they
    differ. Returns ``{"median": dE, "p90": dE, "pixels": count}`` (NaN without pixels)."""
    import cv2
    from skimage.color import deltaE_ciede2000, rgb2lab

    ours, theirs = [], []
    for name, r in renders.items():
        if name not in frames or name not in masks:
            continue
        m = masks[name]
        img = np.asarray(frames[name])
        if img.shape[:2] != m.shape[:2]:
            img = cv2.resize(img, (m.shape[1], m.shape[0]), interpolation=cv2.INTER_AREA)
        sel = r.hair & (m > 0.5)
        if sel.any():
            ours.append(np.asarray(colors, np.float64)[r.strand[sel]])
            theirs.append(img[sel].astype(np.float64) / 255.0)
    if not ours:
        return {"median": float("nan"), "p90": float("nan"), "pixels": 0}
    a, b = np.concatenate(ours), np.concatenate(theirs)
    if len(a) > max_pixels:
        pick = np.random.default_rng(seed).choice(len(a), max_pixels, replace=False)
        a, b = a[pick], b[pick]
    de = deltaE_ciede2000(rgb2lab(_linear_to_srgb(a)[None])[0], rgb2lab(b[None])[0])
    return {"median": float(np.median(de)), "p90": float(np.percentile(de, 90)),
            "pixels": int(len(a))}


def groom_checks(groom: Groom, head_vertices: np.ndarray, *,
                 cameras: Mapping[str, Any] | None = None,
                 frames: Mapping[str, np.ndarray] | None = None,
                 masks: Mapping[str, np.ndarray] | None = None,
                 max_strands: int = MAX_STRANDS, workers: int = 1) -> dict:
    """Every no-ground-truth check of ``groom`` on a head in the ICT Face Model's topology
    (``head_vertices`` (V, 3) metres, head frame, e.g. the cameras stage's ``head.obj``).

    The silhouette and colour checks run when ``cameras`` and ``masks`` (and ``frames`` for
    colour) are given. Folds, face and head checks use every strand; renders a seeded subset
    of ``max_strands``. Returns a JSON-ready dict (see the module docstring for the keys).
    Raises InputError when the head is not in the model's topology."""
    model = load_head_model()
    geo = HeadGeometry.from_head_model(head_vertices, model)
    strands = np.asarray(groom.strands)
    out: dict[str, Any] = {
        "strands": int(len(strands)),
        "fold_share": fold_share(strands),
        "face_intrusion": 100.0 * float(geo.face_intrusion(strands).mean()),
        "inside_head": geo.inside_share(strands, workers=workers),
    }

    pick = strand_subset(len(strands), max_strands)
    sub = strands[pick]
    faces = geo.faces
    # the scalp triangles, re-indexed into the faces kept (eyeballs dropped)
    keep = ~(model.region == 2)[model.faces].any(1)
    remap = np.cumsum(keep) - 1
    scalp = remap[model.scalp_faces[keep[model.scalp_faces]]]
    out["bald_scalp"] = bald_scalp_check(sub, geo.vertices, faces, scalp)
    if cameras and masks:
        renders: dict = {}
        out["silhouette"] = silhouette_check(sub, cameras, masks, (geo.vertices, faces),
                                             renders)
        if frames is not None and groom.colors is not None:
            out["colour_de2000"] = colour_check(np.asarray(groom.colors)[pick], renders,
                                                frames, masks)
    return out


def project_checks(project_root: str | Path, *, max_frames: int = 12, workers: int = 1,
                   stages: Sequence[Any] | None = None) -> dict:
    """:func:`groom_checks` of a project's finished groom, with its keyframes, hair masks,
    cameras and fitted head (``head.obj`` of the cameras stage): the finished stages of the
    project's saved config in ``stages`` (default :func:`engine.registry.default_stages`). At
    most ``max_frames`` keyframes, evenly spread. Raises InputError naming the project when the
    groom or the fitted head is not finished."""
    project = Project.open(project_root)
    saved = project.manifest.get("config") or {}
    stages = list(stages) if stages is not None else default_stages()
    config = PipelineConfig(stages, preset=saved.get("preset", "standard"),
                            overrides=saved.get("overrides"), device="cpu")
    found = {}
    for name in ("keyframes", "masks", "cameras", "strands"):
        art = resolve_artifact(project, stages, config, name)
        if art is not None:
            found[name] = art.path
    for need in ("cameras", "strands"):
        if need not in found:
            raise InputError(f"{project.root}: no finished {need} stage to check")
    if not (found["cameras"] / "head.obj").is_file():
        raise InputError(f"{project.root}: the cameras stage fitted no head (head.obj)")
    groom = load_groom(found["strands"] / "groom.npz")
    head_v, _ = load_head_mesh(found["cameras"] / "head.obj")
    cameras = load_cameras(found["cameras"] / "cameras.json")
    frames = masks = None
    if "keyframes" in found and "masks" in found:
        _, names = load_keyframes(found["keyframes"])
        names = [n for n in names if n in cameras]
        if len(names) > max_frames:
            names = [names[i] for i in np.round(np.linspace(0, len(names) - 1, max_frames)
                                                ).astype(int)]
        frames = {n: load_frame(found["keyframes"], n) for n in names}
        masks = {n: load_mask(found["masks"], "hair", n) for n in names}
    return groom_checks(groom, head_v, cameras=cameras, frames=frames, masks=masks,
                        workers=workers)
