"""Vectorised CPU rasterisation with a per-pixel z-buffer: triangle meshes and thick polylines.

Both rasterisers enumerate, for every primitive, the pixel centres in its screen-space bounding
box (a ragged expansion, processed in chunks of a few million candidates), keep the centres the
primitive covers, and resolve visibility per pixel with a z-buffer: within a chunk the nearest
fragment of each pixel is found with one ``scatter_reduce(amin)`` over 64-bit keys
``(float32 depth bits << 32) | fragment index`` (positive float32 bit patterns sort like the
floats), and the chunk's winners replace the running buffer where they are nearer.

* Triangles: a pixel centre is covered when its three screen-space edge functions agree in sign
  (top-left rule not applied: shared edges may be drawn by both triangles, the z-test keeps one).
  Barycentric weights are perspective-corrected with the vertices' 1/z, so interpolated
  attributes and depth are exact for planar triangles.
* Strands: each polyline segment is drawn as a camera-facing ribbon, i.e. a screen-space capsule
  of radius ``0.5 * width_px`` around the projected segment, with
  ``width_px = max(min_width_px, fx * width_m / z)`` (the ribbon's projected width). Depth is
  interpolated linearly in screen space along the segment (segments are a few pixels long).

Pixel centres are at integer coordinates, as in :class:`engine.synthetic.camera.Camera`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

_EMPTY = np.iinfo(np.int64).max
_CHUNK = 1 << 22  # candidate pixels per chunk


@dataclass
class MeshFragments:
    """Visible surface of a mesh: ``depth`` (H, W) float32 camera z in metres (inf where
    empty), ``face`` (H, W) int32 triangle index (-1 where empty), ``bary`` (H, W, 3) float32
    perspective-correct barycentric weights of the triangle's vertices (0 where empty)."""

    depth: np.ndarray
    face: np.ndarray
    bary: np.ndarray


@dataclass
class StrandFragments:
    """Visible strand segments: ``depth`` (H, W) float32 camera z in metres (inf where empty),
    ``segment`` (H, W) int64 flat segment index ``strand * (L - 1) + j`` for the segment from
    point ``j`` to ``j + 1`` (-1 where empty), ``t`` (H, W) float32 position along that segment
    in [0, 1]."""

    depth: np.ndarray
    segment: np.ndarray
    t: np.ndarray


def _ragged_boxes(x0: np.ndarray, y0: np.ndarray, bw: np.ndarray, bh: np.ndarray, ids: np.ndarray):
    """Pixel centres of the boxes [x0, x0 + bw) x [y0, y0 + bh) of primitives ``ids``.

    Returns (prim (M,) int64 primitive index into ``ids``' arrays, px (M,) int32, py (M,) int32).
    """
    counts = (bw * bh).astype(np.int64)
    total = int(counts.sum())
    prim = np.repeat(np.arange(len(ids), dtype=np.int64), counts)
    starts = np.cumsum(counts) - counts
    off = np.arange(total, dtype=np.int64) - np.repeat(starts, counts)
    w = bw.astype(np.int64)[prim]
    dy = off // w
    dx = off - dy * w
    return prim, (x0[prim] + dx).astype(np.int32), (y0[prim] + dy).astype(np.int32)


def _chunks(counts: np.ndarray, limit: int = _CHUNK):
    """Split primitives into consecutive runs whose candidate counts sum to about ``limit``."""
    cum = np.cumsum(counts)
    start = 0
    n = len(counts)
    while start < n:
        base = cum[start - 1] if start > 0 else 0
        stop = int(np.searchsorted(cum, base + limit, side="right"))
        stop = max(stop, start + 1)
        yield start, min(stop, n)
        start = stop


class _ZBuffer:
    """Running nearest-fragment buffer over a flat (H * W) image."""

    def __init__(self, height: int, width: int) -> None:
        self.hw = height * width
        self.depth = np.full(self.hw, np.inf, np.float32)

    def merge(self, pix: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Offer fragments (pix (M,) int64 flat pixel, depth (M,) float32 > 0). Returns (pixels
        whose buffer entry changed, index of the winning fragment for each) and updates depth."""
        if len(pix) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        bits = torch.from_numpy(np.ascontiguousarray(depth, np.float32)).view(torch.int32)
        key = (bits.to(torch.int64) << 32) | torch.arange(len(pix), dtype=torch.int64)
        best = torch.full((self.hw,), _EMPTY, dtype=torch.int64)
        best.scatter_reduce_(0, torch.from_numpy(pix), key, reduce="amin", include_self=True)
        best = best.numpy()
        hit = np.nonzero(best != _EMPTY)[0]
        win = best[hit] & 0xFFFFFFFF
        nearer = depth[win] < self.depth[hit]
        hit, win = hit[nearer], win[nearer]
        self.depth[hit] = depth[win]
        return hit, win


def rasterize_mesh(pixels: np.ndarray, depth: np.ndarray, faces: np.ndarray, height: int,
                   width: int, cull_backfaces: bool = True, near: float = 1e-3) -> MeshFragments:
    """Z-buffered rasterisation of a triangle mesh.

    Args:
        pixels: (V, 2) projected vertices, pixels (x right, y down, centres at integers).
        depth: (V,) camera z of the vertices, metres.
        faces: (F, 3) int vertex indices, counter-clockwise when seen from the outside.
        height, width: image size in pixels.
        cull_backfaces: drop triangles seen from behind (clockwise on screen with y up, i.e.
            positive signed area in y-down pixel coordinates).
        near: triangles with a vertex closer than this (metres) are dropped.
    Returns:
        :class:`MeshFragments`.
    """
    faces = np.asarray(faces, np.int64)
    P = np.asarray(pixels, np.float64)[faces]  # (F, 3, 2)
    Z = np.asarray(depth, np.float64)[faces]  # (F, 3)
    area = ((P[:, 1, 0] - P[:, 0, 0]) * (P[:, 2, 1] - P[:, 0, 1])
            - (P[:, 2, 0] - P[:, 0, 0]) * (P[:, 1, 1] - P[:, 0, 1]))
    keep = (Z > near).all(1) & (np.abs(area) > 1e-12)
    if cull_backfaces:
        keep &= area < 0  # front-facing CCW-outward faces are clockwise in y-down pixels
    x0 = np.ceil(P[:, :, 0].min(1)).clip(0, width)
    x1 = np.floor(P[:, :, 0].max(1)).clip(-1, width - 1)
    y0 = np.ceil(P[:, :, 1].min(1)).clip(0, height)
    y1 = np.floor(P[:, :, 1].max(1)).clip(-1, height - 1)
    keep &= (x1 >= x0) & (y1 >= y0)
    ids = np.nonzero(keep)[0]
    zb = _ZBuffer(height, width)
    face_buf = np.full(height * width, -1, np.int32)
    bary_buf = np.zeros((height * width, 3), np.float32)
    if len(ids) == 0:
        return MeshFragments(zb.depth.reshape(height, width), face_buf.reshape(height, width),
                             bary_buf.reshape(height, width, 3))
    x0, y0 = x0[ids].astype(np.int32), y0[ids].astype(np.int32)
    bw = (x1[ids] - x0 + 1).astype(np.int32)
    bh = (y1[ids] - y0 + 1).astype(np.int32)
    counts = bw.astype(np.int64) * bh
    for a, b in _chunks(counts):
        sel = ids[a:b]
        prim, px, py = _ragged_boxes(x0[a:b], y0[a:b], bw[a:b], bh[a:b], sel)
        f = sel[prim]
        p0, p1, p2 = P[f, 0], P[f, 1], P[f, 2]
        qx, qy = px.astype(np.float64), py.astype(np.float64)
        # edge functions: w_i is the signed area of the sub-triangle opposite vertex i
        w0 = (p2[:, 0] - p1[:, 0]) * (qy - p1[:, 1]) - (p2[:, 1] - p1[:, 1]) * (qx - p1[:, 0])
        w1 = (p0[:, 0] - p2[:, 0]) * (qy - p2[:, 1]) - (p0[:, 1] - p2[:, 1]) * (qx - p2[:, 0])
        w2 = (p1[:, 0] - p0[:, 0]) * (qy - p0[:, 1]) - (p1[:, 1] - p0[:, 1]) * (qx - p0[:, 0])
        ar = area[f]
        inside = np.where(ar < 0, (w0 <= 0) & (w1 <= 0) & (w2 <= 0),
                          (w0 >= 0) & (w1 >= 0) & (w2 >= 0))
        idx = np.nonzero(inside)[0]
        f, w = f[idx], np.stack([w0[idx], w1[idx], w2[idx]], 1) / ar[idx, None]
        iz = w / Z[f]  # perspective correction: weights / z, renormalised
        s = iz.sum(1)
        zfrag = (1.0 / s).astype(np.float32)
        pix = py[idx].astype(np.int64) * width + px[idx]
        hit, win = zb.merge(pix, zfrag)
        face_buf[hit] = f[win]
        bary_buf[hit] = (iz[win] / s[win, None]).astype(np.float32)
    return MeshFragments(zb.depth.reshape(height, width), face_buf.reshape(height, width),
                         bary_buf.reshape(height, width, 3))


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals of a triangle mesh.

    Args:
        vertices: (V, 3) float, any unit. faces: (F, 3) int, counter-clockwise seen from outside.
    Returns:
        (V, 3) float64 unit normals pointing outwards (sum of the adjacent faces' cross products,
        normalised; 0 for unused vertices).
    """
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, f[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)


def rasterize_strands(pixels: np.ndarray, depth: np.ndarray, width_px: np.ndarray, height: int,
                      width: int, near: float = 1e-3) -> StrandFragments:
    """Z-buffered rasterisation of polylines as screen-space capsules (camera-facing ribbons).

    Args:
        pixels: (N, L, 2) projected strand points, pixels.
        depth: (N, L) camera z of the points, metres.
        width_px: ribbon width in pixels, scalar, (N,) or (N, L) (a segment uses the mean of its
            two end points).
        height, width: image size in pixels.
        near: segments with an end closer than this (metres) are dropped.
    Returns:
        :class:`StrandFragments` (segment index ``n * (L - 1) + j``).
    """
    P = np.asarray(pixels, np.float32)
    Z = np.asarray(depth, np.float32)
    N, L = Z.shape
    w = np.asarray(width_px, np.float32)
    if w.ndim == 0:
        wpx = np.full((N, L), float(w), np.float32)
    elif w.ndim == 1:
        wpx = np.broadcast_to(w[:, None], (N, L))
    else:
        wpx = w.reshape(N, L)
    A = P[:, :-1].reshape(-1, 2)
    B = P[:, 1:].reshape(-1, 2)
    za = Z[:, :-1].reshape(-1)
    zb_ = Z[:, 1:].reshape(-1)
    r = (0.25 * (wpx[:, :-1] + wpx[:, 1:])).reshape(-1)  # half width
    lo = np.minimum(A, B) - r[:, None]
    hi = np.maximum(A, B) + r[:, None]
    x0 = np.ceil(lo[:, 0]).clip(0, width)
    x1 = np.floor(hi[:, 0]).clip(-1, width - 1)
    y0 = np.ceil(lo[:, 1]).clip(0, height)
    y1 = np.floor(hi[:, 1]).clip(-1, height - 1)
    keep = (za > near) & (zb_ > near) & (x1 >= x0) & (y1 >= y0)
    ids = np.nonzero(keep)[0]
    zbuf = _ZBuffer(height, width)
    seg_buf = np.full(height * width, -1, np.int64)
    t_buf = np.zeros(height * width, np.float32)
    if len(ids):
        x0i, y0i = x0[ids].astype(np.int32), y0[ids].astype(np.int32)
        bw = (x1[ids] - x0[ids] + 1).astype(np.int32)
        bh = (y1[ids] - y0[ids] + 1).astype(np.int32)
        counts = bw.astype(np.int64) * bh
        AB = B - A
        len2 = np.maximum((AB * AB).sum(1), 1e-12)
        for a, b in _chunks(counts):
            sel = ids[a:b]
            prim, px, py = _ragged_boxes(x0i[a:b], y0i[a:b], bw[a:b], bh[a:b], sel)
            s = sel[prim]
            ax, ay = A[s, 0], A[s, 1]
            dx, dy = AB[s, 0], AB[s, 1]
            qx = px.astype(np.float32) - ax
            qy = py.astype(np.float32) - ay
            t = np.clip((qx * dx + qy * dy) / len2[s], 0.0, 1.0)
            ex = qx - t * dx
            ey = qy - t * dy
            rr = r[s]
            inside = np.nonzero(ex * ex + ey * ey <= rr * rr)[0]
            s, t = s[inside], t[inside]
            zfrag = za[s] + t * (zb_[s] - za[s])
            pix = py[inside].astype(np.int64) * width + px[inside]
            hit, win = zbuf.merge(pix, zfrag)
            seg_buf[hit] = s[win]
            t_buf[hit] = t[win]
    return StrandFragments(zbuf.depth.reshape(height, width), seg_buf.reshape(height, width),
                           t_buf.reshape(height, width))
