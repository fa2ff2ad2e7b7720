"""The views of a capture as training tensors: :func:`load_capture_data` reads the
preprocessing artifacts (keyframes, hair and bust masks, orientation maps), the cameras and the
fitted head mesh into :class:`~engine.coarse.train.CoarseData`, for the coarse and strands stages.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from engine.cameras.camera import Camera, load_cameras
from engine.coarse.render import CameraSet
from engine.coarse.train import CoarseData, box_from_points
from engine.errors import InputError
from engine.head.model import sample_mesh
from engine.preprocess.artifacts import load_frame, load_keyframes, load_mask, load_orientation
from engine.raster import rasterize_mesh

__all__ = ["load_capture_data", "hair_presence"]


def _resize_orientation(angle: np.ndarray, conf: np.ndarray, size: tuple[int, int]
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Area-resize an undirected angle map through its doubled-angle vector field."""
    c2 = cv2.resize(conf * np.cos(2 * angle), size, interpolation=cv2.INTER_AREA)
    s2 = cv2.resize(conf * np.sin(2 * angle), size, interpolation=cv2.INTER_AREA)
    cr = cv2.resize(conf, size, interpolation=cv2.INTER_AREA)
    ang = np.mod(0.5 * np.arctan2(s2, c2), np.pi).astype(np.float32)
    coherence = np.hypot(c2, s2) / np.maximum(cr, 1e-8)
    return ang, (cr * np.clip(coherence, 0, 1)).astype(np.float32)


def load_capture_data(keyframes_dir: Path, masks_dir: Path, orientation_dir: Path,
                      cameras_json: Path, head_vertices: np.ndarray, head_faces: np.ndarray,
                      image_size: int, box_margin: float, head_samples: int = 20000,
                      max_views: int = 0) -> tuple[CoarseData, list[str]]:
    """Build :class:`CoarseData` from stage folders in the preprocessing artifact formats.

    Args:
        keyframes_dir, masks_dir, orientation_dir: stage folders (or one capture folder with all
            of them, as :func:`engine.synthetic.render_capture` writes).
        cameras_json: ``cameras.json`` (head frame, metres; keys = keyframe names).
        head_vertices (V, 3) metres, head_faces (F, 3): the fitted head mesh.
        image_size: training size of the longer image side, pixels (images are area-resized).
        box_margin: box half-size over the head mesh's half-extent.
        max_views: use at most this many views, evenly spread (0: all).
    Returns:
        (data, names of the views used).
    Raises:
        InputError: no keyframe has a camera, or files are missing/unreadable.
    """
    try:
        meta, names = load_keyframes(keyframes_dir)
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{keyframes_dir}: unreadable keyframes ({exc})") from exc
    cams = load_cameras(cameras_json)
    names = [n for n in names if n in cams]
    if not names:
        raise InputError(f"{cameras_json}: no keyframe has a camera; re-run the cameras stage")
    if max_views and len(names) > max_views:
        pick = np.unique(np.round(np.linspace(0, len(names) - 1, max_views)).astype(int))
        names = [names[i] for i in pick]
    W0, H0 = int(cams[names[0]].width), int(cams[names[0]].height)
    s = image_size / max(W0, H0)
    W, H = max(8, int(round(W0 * s))), max(8, int(round(H0 * s)))
    imgs, hair, bust, ang, conf, Ks, Rs, ts = [], [], [], [], [], [], [], []
    for n in names:
        c = cams[n]
        if (int(c.width), int(c.height)) != (W0, H0):
            raise InputError(f"{cameras_json}: camera {n} is {c.width}x{c.height}, others "
                             f"{W0}x{H0}; all keyframes must share one size")
        try:
            img = load_frame(keyframes_dir, n)
            mh = load_mask(masks_dir, "hair", n)
            mb = load_mask(masks_dir, "bust", n)
            a, cf = load_orientation(orientation_dir, n)
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(f"coarse stage: missing or unreadable input for frame {n} ({exc})"
                             ) from exc
        if img.shape[:2] != (H0, W0):
            raise InputError(f"{keyframes_dir}: frame {n} is {img.shape[1]}x{img.shape[0]} but its "
                             f"camera is {W0}x{H0}")
        imgs.append(cv2.resize(img, (W, H), interpolation=cv2.INTER_AREA).astype(np.float32) / 255)
        # INTER_AREA at a non-integer scale overshoots 1 by float rounding (1 + 2e-7 at 480 ->
        # 128 px), which binary cross-entropy refuses: masks are probabilities, keep them so
        hair.append(np.clip(cv2.resize(mh, (W, H), interpolation=cv2.INTER_AREA), 0.0, 1.0))
        bust.append(np.clip(cv2.resize(mb, (W, H), interpolation=cv2.INTER_AREA), 0.0, 1.0))
        ar, cr = _resize_orientation(a.astype(np.float32), cf.astype(np.float32), (W, H))
        ang.append(ar)
        conf.append(cr)
        Ks.append(c.K)
        Rs.append(c.R)
        ts.append(c.t)
    f32 = lambda a: torch.from_numpy(np.asarray(a, np.float32))  # noqa: E731
    camset = CameraSet(f32(Ks), f32(Rs), f32(ts), H0, W0).scaled(H, W)
    used = np.asarray(head_vertices)[np.unique(np.asarray(head_faces))]  # referenced vertices
    centre, scale = box_from_points(used, box_margin)
    hp, hn = sample_mesh(head_vertices, head_faces, head_samples)
    data = CoarseData(images=f32(imgs), hair=f32(hair), bust=f32(bust), angle=f32(ang),
                      confidence=f32(conf), cams=camset, head_points=f32(hp),
                      head_normals=f32(hn), centre=f32(centre), scale=scale)
    return data, names


def hair_presence(data: CoarseData, head_vertices: np.ndarray, head_faces: np.ndarray, scalp,
                  samples: int = 3000, seed: int = 0, tolerance_m: float = 0.003,
                  margin_m: float = 0.004) -> dict:
    """Whether the views show hair on the head: the test for a bald or shaved head, which has
    no groom to reconstruct. Two measures over the views of ``data`` (hair masks, cameras):

    * ``share_pct``: how much of the scalp the views see is hair in the masks. ``samples`` root
      positions uniform over the fitted scalp's UV disc (``scalp``, a
      :class:`engine.head.scalp.Scalp` on the fitted head) are projected into every view; a view
      sees one when it falls inside the image within ``tolerance_m`` of the fitted head's depth
      there (not behind the head). Hair hides the scalp but covers the same pixel, so a point
      counts as hair when the hair mask there is above 0.5. Low on a bald head.
    * ``extent_mm``: how far the hair stands off the head, the median over the views of the
      hair-mask area outside the fitted head's silhouette (dilated by ``margin_m``) over half
      the silhouette's perimeter, in millimetres at the head's median depth. Near 0 on a shaved
      head whose stubble the masks call hair (measured at the preview preset's 128 px: 0.6 on
      the Blender shaved head, 11 on the Sintel short cut, 20 on a bob, 21-32 on real clips).

    Args: head_vertices (V, 3) metres and head_faces (F, 3), the fitted head.
    Returns {"share_pct", "extent_mm" (nan when no view sees the scalp / the head),
    "per_view_share_pct", "per_view_extent_mm" (nan where a view sees neither), "pairs"}.
    Ours (not in Neural Haircut, which assumes hair).
    """
    rng = np.random.default_rng(seed)
    roots = scalp.frames(scalp.sample_uv(samples, rng)).positions
    hair = data.hair.detach().cpu().numpy() > 0.5
    V, H, W = hair.shape
    K = data.cams.K.detach().cpu().numpy().astype(np.float64)
    R = data.cams.R.detach().cpu().numpy().astype(np.float64)
    t = data.cams.t.detach().cpu().numpy().astype(np.float64)
    hv = np.asarray(head_vertices, np.float64)
    share, extent, hits, seen = [], [], 0, 0
    for v in range(V):
        cam = Camera(fx=K[v, 0, 0], fy=K[v, 1, 1], cx=K[v, 0, 2], cy=K[v, 1, 2], width=W,
                     height=H, R=R[v], t=t[v], where=f"view {v}")
        hp, hz = cam.project_with_depth(hv)
        depth = rasterize_mesh(hp, hz, head_faces, H, W, cull_backfaces=False).depth
        px, pz = cam.project_with_depth(roots)
        x, y = np.round(px[:, 0]).astype(np.int64), np.round(px[:, 1]).astype(np.int64)
        inside = (pz > 0) & (x >= 0) & (x < W) & (y >= 0) & (y < H)
        ok = np.zeros(len(roots), bool)
        ok[inside] = pz[inside] <= depth[y[inside], x[inside]] + tolerance_m
        n = int(ok.sum())
        h = int(hair[v][y[ok], x[ok]].sum()) if n else 0
        share.append(100.0 * h / n if n else float("nan"))
        hits, seen = hits + h, seen + n
        head = np.isfinite(depth)
        if head.sum() < 50:
            extent.append(float("nan"))
            continue
        ppm = float(K[v, 0, 0] / np.median(depth[head]))  # pixels per metre at the head
        r = max(1, int(round(margin_m * ppm)))
        grown = cv2.dilate(head.astype(np.uint8), cv2.getStructuringElement(
            cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) > 0
        contours, _ = cv2.findContours(head.astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_NONE)
        half_perimeter = 0.5 * sum(cv2.arcLength(c, True) for c in contours)
        extent.append(1000.0 * float((hair[v] & ~grown).sum()) / max(half_perimeter, 1.0) / ppm)
    finite = [e for e in extent if np.isfinite(e)]
    return {"share_pct": 100.0 * hits / seen if seen else float("nan"),
            "extent_mm": float(np.median(finite)) if finite else float("nan"),
            "per_view_share_pct": share, "per_view_extent_mm": extent, "pairs": seen}
