"""Differentiable soft rasteriser of hair strands ("hair quads"), in plain torch.

The fine strand stage of Neural Haircut (Sklyarova et al., ICCV 2023, Sec. 3.3 "Fine strand-based
reconstruction", Fig. 3) renders strands as camera-facing stripes and soft-rasterises them so that
the K nearest-in-depth faces of every pixel receive gradients. The seed uses pytorch3d's mesh
rasteriser (Liu et al., "Soft Rasterizer", ICCV 2019) on quads; pytorch3d cannot be installed
here, so this module rasterises the stripes directly:

* A strand is a polyline of P projected points; segment ``p`` of strand ``s`` joins points ``p``
  and ``p + 1`` and has the flat index ``s * (P - 1) + p``. Its stripe is the set of image points
  whose 2D distance to the segment is below the half-width (a capsule: a camera-facing quad with
  round caps, so consecutive segments join without gaps).
* Pixel coordinates: the centre of pixel (row ``i``, column ``j``) is ``x = j + 0.5``,
  ``y = i + 0.5`` (image x to the right, y down, the OpenCV convention with pixel corners on
  integers).
* For pixel centre ``q`` and segment ``(a, b)`` (2D parts):
  ``t = clamp(((q - a) . (b - a)) / max(|b - a|^2, 1e-12), 0, 1)`` is the closest point's position
  along the segment, ``dist = |q - (a + t (b - a))|`` its distance, the half-width there is
  ``w(t) = w_a + t (w_b - w_a)`` (per-point widths are interpolated; per-strand or scalar widths
  are constant), the depth there is the linear interpolation of the endpoint camera depths
  ``z(t) = z_a + t (z_b - z_a)`` (exact for the screen-space interpolation of an orthographic
  camera; a first-order approximation of the perspective-correct depth, with an error of
  second order in the segment's depth change, which is tiny for ~1 mm hair segments), and the
  soft coverage is ``sigmoid((w(t) - dist) / sigma)`` (the Soft Rasterizer probability map with
  the sigmoid of the signed distance, scale ``sigma`` pixels).
* A segment is a candidate for a pixel when ``dist < w(t) + 3 sigma``, ``z(t) > 1e-4`` and, when
  an occluder depth map is given (the head / bust z-buffer), ``z(t) < occluder_depth[pixel]``.
  Each pixel keeps its ``K = faces_per_pixel`` candidates of smallest depth, sorted front to back
  (ties of the float32 depth broken by the smaller segment index).

Implementation (:func:`rasterize_strands`): the candidate search and the top-K selection run under
``torch.no_grad()``, tile-binned: every segment is assigned to the ``bin_size`` x ``bin_size``
tiles its pixel bounding box (expanded by ``w + 3 sigma``) overlaps, and the (segment, tile)
pairs are sorted by tile and, inside a tile, by the segment's nearest endpoint depth. Tiles are
processed in chunks (tiles of similar load together) so that memory stays bounded by
``chunk_pairs`` pixel-segment pairs; inside a chunk the segments are visited front to back,
``SLAB_SEGMENTS`` at a time, merging each slab's candidates into a running top-K per pixel, and
a tile stops as soon as every one of its pixels holds K faces nearer than the next segment can
be (exact early termination, so dense hair costs only its front layers). Then, with gradients,
``t``, distance, depth and coverage are recomputed for the selected (pixel, k) pairs only, by an
autograd function with a hand-written backward that saves two floats per pair, so autograd
memory is O(H W K) whatever the number of segments. The selection is piecewise constant:
gradients flow through coverage, depth and ``t`` of the selected faces (as in the seed's soft
rasteriser), not through changes of which faces are selected (a face entering or leaving the
3-sigma band or the top K makes a small jump, sigmoid(-3) = 0.047 at the band's edge).

:func:`rasterize_strands_reference` is a brute-force version (all pixels x all segments, per-pixel
Python sort) for tests. :func:`blend` composites per-segment features front to back.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.errors import InputError

__all__ = [
    "Fragments",
    "NEAR",
    "RasterSettings",
    "blend",
    "rasterize_strands",
    "rasterize_strands_reference",
]

#: Smallest camera depth (same unit as the input depth) a candidate may have.
NEAR = 1e-4
#: Floor of the squared 2D segment length (px^2): a degenerate segment acts as its first point.
_EPS_LEN2 = 1e-12
#: Added to the squared distance (px^2) before the square root so its gradient stays finite.
_EPS_DIST2 = 1e-12
_EMPTY = torch.iinfo(torch.int64).max
#: Segments per tile merged at a time in the candidate search (see :func:`_select_binned`).
SLAB_SEGMENTS = 64
_LOW32 = 0xFFFFFFFF


@dataclass(frozen=True)
class RasterSettings:
    """Image size and softness of :func:`rasterize_strands`.

    Attributes:
        height, width: image size in pixels.
        faces_per_pixel: K, the nearest-in-depth segments kept per pixel (the seed uses 16).
        sigma: softness of the coverage edge in pixels (the sigmoid's scale); segments farther
            than ``half_width + 3 sigma`` from a pixel centre are not candidates for it.
        bin_size: tile edge in pixels for the binned candidate search (a speed knob only; the
            result does not depend on it). 4 was fastest on a CPU at 96, 256 and 512 px with
            1-px strands, against 3 and 8 (docs/speed.md).
    """

    height: int
    width: int
    faces_per_pixel: int = 16
    sigma: float = 0.5
    bin_size: int = 4


@dataclass
class Fragments:
    """Per-pixel list of the K nearest segments, front to back.

    Attributes:
        seg: (H, W, K) int64, index into the flattened segments (``s * (P - 1) + p``), -1 = empty.
        coverage: (H, W, K) float, ``sigmoid((half_width - dist) / sigma)`` in [0, 1], 0 where
            empty; differentiable w.r.t. the vertices (and the half-width when it is a tensor).
        depth: (H, W, K) float, camera depth at the segment's closest point (same unit as the
            input depth, linear interpolation of the endpoints' depths), -1 where empty;
            differentiable.
        t: (H, W, K) float in [0, 1], position of the closest point along the segment (0 at the
            point nearer the root), 0 where empty; differentiable.
    """

    seg: torch.Tensor
    coverage: torch.Tensor
    depth: torch.Tensor
    t: torch.Tensor


# --------------------------------------------------------------------------------------------
# input checks


def _check_settings(settings: RasterSettings) -> None:
    if not isinstance(settings, RasterSettings):
        raise InputError(f"rasterize_strands: settings must be a RasterSettings, got {type(settings).__name__}")
    for name in ("height", "width", "faces_per_pixel", "bin_size"):
        v = getattr(settings, name)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise InputError(f"rasterize_strands: settings.{name} must be an integer >= 1, got {v!r}")
    if not (float(settings.sigma) > 0.0):
        raise InputError(f"rasterize_strands: settings.sigma must be > 0 pixels, got {settings.sigma!r}")


def _prepare(verts, half_width, settings, occluder_depth):
    """Validate inputs; return segment endpoints a, b (N, 3), half-widths at them (N,) each,
    whether widths vary along the strand, and the flat occluder depth (H*W,) or None."""
    _check_settings(settings)
    if not isinstance(verts, torch.Tensor):
        raise InputError(f"rasterize_strands: verts must be a torch.Tensor, got {type(verts).__name__}")
    if verts.ndim != 3 or verts.shape[-1] != 3 or verts.shape[1] < 2:
        raise InputError(
            f"rasterize_strands: verts must have shape (S, P, 3) with P >= 2 (x px, y px, depth), "
            f"got {tuple(verts.shape)}")
    if verts.dtype not in (torch.float32, torch.float64):
        raise InputError(f"rasterize_strands: verts must be float32 or float64, got {verts.dtype}")
    S, P, _ = verts.shape
    N = S * (P - 1)
    if N >= 2**31:
        raise InputError(f"rasterize_strands: {N} segments is more than the 2^31 - 1 supported")
    a = verts[:, :-1].reshape(N, 3)
    b = verts[:, 1:].reshape(N, 3)

    per_point = False
    if isinstance(half_width, torch.Tensor):
        hw = half_width.to(device=verts.device, dtype=verts.dtype)
        if hw.ndim == 0:
            hwa = hwb = hw.expand(N)
        elif hw.shape == (S,):
            hwa = hwb = hw[:, None].expand(S, P - 1).reshape(N)
        elif hw.shape == (S, P):
            hwa = hw[:, :-1].reshape(N)
            hwb = hw[:, 1:].reshape(N)
            per_point = True
        else:
            raise InputError(
                f"rasterize_strands: half_width must be a float, ({S},) or ({S}, {P}) tensor, "
                f"got shape {tuple(hw.shape)}")
        if hw.numel() and not bool((hw.detach() >= 0).all()):
            raise InputError("rasterize_strands: half_width must be >= 0 pixels (and not NaN)")
    else:
        try:
            w = float(half_width)
        except (TypeError, ValueError):
            raise InputError(
                f"rasterize_strands: half_width must be a number or tensor, got {type(half_width).__name__}"
            ) from None
        if not (w >= 0.0):
            raise InputError(f"rasterize_strands: half_width must be >= 0 pixels, got {w}")
        hwa = hwb = torch.full((N,), w, dtype=verts.dtype, device=verts.device)

    occ = None
    if occluder_depth is not None:
        if not isinstance(occluder_depth, torch.Tensor) or occluder_depth.shape != (settings.height, settings.width):
            shape = tuple(occluder_depth.shape) if isinstance(occluder_depth, torch.Tensor) else type(occluder_depth).__name__
            raise InputError(
                f"rasterize_strands: occluder_depth must be a ({settings.height}, {settings.width}) "
                f"tensor, got {shape}")
        occ = occluder_depth.detach().to(device=verts.device, dtype=verts.dtype).reshape(-1)
    return a, b, hwa, hwb, per_point, occ


# --------------------------------------------------------------------------------------------
# selection (no gradients)


def _depth_key(depth: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
    """int64 sort key ordering by float32 depth, then by segment index (depth > 0 so the float
    bits order like the values)."""
    d32 = depth if depth.dtype == torch.float32 else depth.to(torch.float32)
    return (d32.view(torch.int32).to(torch.int64) << 32) | seg


def _default_chunk_pairs(device: torch.device) -> int:
    return 1 << 26 if device.type == "cuda" else 1 << 20


@torch.no_grad()
def _select_binned(a, b, hwa, hwb, per_point, settings, occ, chunk_pairs):
    """Top-K candidate segments per pixel: (H*W, K) int64, -1 = empty (see module doc).

    Segments are binned into tiles; inside a tile they are visited in order of their nearest
    endpoint depth, SLAB_SEGMENTS at a time, merging each slab's candidates into a running
    top-K per pixel. A tile stops as soon as all its pixels hold K faces that are all nearer
    than the next segment can be (exact early termination: dense hair only costs its front
    layers).
    """
    H, W, K, B = settings.height, settings.width, settings.faces_per_pixel, settings.bin_size
    pad = 3.0 * float(settings.sigma)
    dev, dt = a.device, a.dtype
    a, b, hwa, hwb = a.detach(), b.detach(), hwa.detach(), hwb.detach()
    if a.shape[0] == 0:
        return torch.full((H * W, K), -1, dtype=torch.int64, device=dev)

    # Pixel bounding boxes: columns j with |(j + 0.5) - x| <= r for some x of the segment.
    r_max = torch.maximum(hwa, hwb) + pad
    x0 = torch.minimum(a[:, 0], b[:, 0]) - r_max
    x1 = torch.maximum(a[:, 0], b[:, 0]) + r_max
    y0 = torch.minimum(a[:, 1], b[:, 1]) - r_max
    y1 = torch.maximum(a[:, 1], b[:, 1]) + r_max
    j_lo, j_hi = torch.ceil(x0 - 0.5), torch.floor(x1 - 0.5)
    i_lo, i_hi = torch.ceil(y0 - 0.5), torch.floor(y1 - 0.5)
    zmin = torch.minimum(a[:, 2], b[:, 2])
    ok = (torch.isfinite(a).all(1) & torch.isfinite(b).all(1) & torch.isfinite(r_max)
          & (torch.maximum(a[:, 2], b[:, 2]) > NEAR)
          & (j_hi >= 0) & (j_lo <= W - 1) & (i_hi >= 0) & (i_lo <= H - 1) & (j_lo <= j_hi) & (i_lo <= i_hi))
    keep = ok.nonzero().squeeze(1)
    if keep.numel() == 0:
        return torch.full((H * W, K), -1, dtype=torch.int64, device=dev)
    # Visit order: nearest endpoint depth first. The lower bound's key is below the key of any
    # depth the segment can have (1e-6 relative margin against rounding of the interpolation).
    zlow = zmin[keep]
    zlow = zlow - zlow.abs() * 1e-6
    zorder = torch.argsort(zlow)
    keep, zlow = keep[zorder], zlow[zorder]
    zlow_key = _depth_key(zlow.clamp(min=0.0), torch.zeros_like(keep))
    bx0 = j_lo[keep].clamp(0, W - 1).long() // B
    bx1 = j_hi[keep].clamp(0, W - 1).long() // B
    by0 = i_lo[keep].clamp(0, H - 1).long() // B
    by1 = i_hi[keep].clamp(0, H - 1).long() // B
    nbx, nby = -(-W // B), -(-H // B)

    # (segment, bin) pairs sorted by bin; stable, so by increasing depth bound within a bin.
    nx = bx1 - bx0 + 1
    nper = nx * (by1 - by0 + 1)
    total = int(nper.sum())
    rep = lambda v: torch.repeat_interleave(v, nper, output_size=total)  # noqa: E731
    first = torch.cumsum(nper, 0) - nper
    off = torch.arange(total, device=dev) - rep(first)
    nx_r = rep(nx)
    bin_id = (rep(by0) + off // nx_r) * nbx + rep(bx0) + off % nx_r
    del off, nx_r
    bin_sorted, order = torch.sort(bin_id, stable=True)
    del bin_id
    pair_pos = rep(torch.arange(keep.numel(), device=dev))[order]   # position in the z order
    seg_sorted = keep[pair_pos]
    zkey_sorted = torch.cat([zlow_key[pair_pos], zlow_key.new_full((1,), _EMPTY)])  # +sentinel
    del order, pair_pos
    counts = torch.bincount(bin_sorted, minlength=nbx * nby)
    starts = torch.cumsum(counts, 0) - counts

    # Per-segment parameters, one gathered table: ax, ay, dx, dy, len2, az, dz, hw_a, dhw.
    d = b - a
    len2 = torch.clamp(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1], min=_EPS_LEN2)
    table = torch.stack([a[:, 0], a[:, 1], d[:, 0], d[:, 1], len2, a[:, 2], d[:, 2], hwa, hwb - hwa], 0)

    out = torch.full((H * W, K), _EMPTY, dtype=torch.int64, device=dev)
    nonempty = (counts > 0).nonzero().squeeze(1)
    cnt_sorted, o = torch.sort(counts[nonempty], descending=True)
    bins_order = nonempty[o]
    nbins = bins_order.numel()
    lj = torch.arange(B, device=dev).repeat(B)
    li = torch.arange(B, device=dev).repeat_interleave(B)
    slab = max(1, int(SLAB_SEGMENTS))
    per_bin = B * B * (slab + K)
    nb_chunk = max(1, int(chunk_pairs) // per_bin)
    ar = torch.arange(slab, device=dev)
    for c0 in range(0, nbins, nb_chunk):
        bsel = bins_order[c0:c0 + nb_chunk]
        cb = cnt_sorted[c0:c0 + nb_chunk]
        st0 = starts[bsel]
        pj = (bsel % nbx)[:, None] * B + lj                           # (nb, B*B)
        pi = (bsel // nbx)[:, None] * B + li
        inimg = (pj < W) & (pi < H)
        pix = pi * W + pj
        px = (pj.to(dt) + 0.5).unsqueeze(2)                           # (nb, B*B, 1)
        py = (pi.to(dt) + 0.5).unsqueeze(2)
        occ_b = occ[pix.clamp(max=H * W - 1)].unsqueeze(2) if occ is not None else None
        run = torch.full((bsel.numel(), B * B, K), _EMPTY, dtype=torch.int64, device=dev)
        act = torch.arange(bsel.numel(), device=dev)                  # active bins of the chunk
        done_at = 0
        while act.numel():
            k_in = done_at + ar                                       # (slab,) rank in the bin
            valid_m = k_in < cb[act, None]                            # (na, slab)
            idx = torch.where(valid_m, st0[act, None] + k_in, 0)
            sid = seg_sorted[idx]                                     # (na, slab)
            prm = table[:, sid].unsqueeze(2)                          # (9, na, 1, slab)
            ax, ay, dx, dy, l2, az, dz, hw0, dhw = prm.unbind(0)
            pxa, pya = px[act], py[act]
            vx = pxa - ax
            vy = pya - ay
            t = ((vx * dx + vy * dy) / l2).clamp_(0.0, 1.0)
            ex = vx - t * dx
            ey = vy - t * dy
            d2 = ex * ex + ey * ey
            del ex, ey, vx, vy
            r = ((hw0 + t * dhw) + pad) if per_point else (hw0 + pad)
            depth = az + t * dz
            del t
            cand = (d2 < r * r) & (depth > NEAR) & valid_m[:, None, :]
            del d2, r
            if occ_b is not None:
                cand &= depth < occ_b[act]
            key = _depth_key(depth, sid[:, None, :]).masked_fill_(~cand, _EMPTY)
            del depth, cand
            merged = torch.cat([run[act], key], dim=-1)
            best = torch.topk(merged, K, dim=-1, largest=False, sorted=True).values
            run[act] = best
            done_at += slab
            # Finished bins: no segment left, or every in-image pixel's K-th face is nearer
            # than the next segment's depth bound.
            kth = best[:, :, K - 1].masked_fill(~inimg[act], -1).amax(1)  # (na,)
            nxt = torch.where(cb[act] > done_at, st0[act] + done_at, zkey_sorted.numel() - 1)
            live = (cb[act] > done_at) & (kth >= zkey_sorted[nxt])
            act = act[live]
        out[pix[inimg]] = run[inimg]

    empty = out == _EMPTY
    return torch.where(empty, -1, out & _LOW32)


# --------------------------------------------------------------------------------------------
# differentiable recomputation for the selected faces


class _SelectedFaces(torch.autograd.Function):
    """Coverage, depth and t of selected (pixel, segment) pairs with a hand-written backward.

    Saves only the inputs, the pair indices and two floats per pair (t, coverage) instead of
    the ~20 intermediate tensors autograd would keep, and runs the backward as one fused pass.
    """

    @staticmethod
    def forward(ctx, a, b, hwa, hwb, sid, px, py, sigma):
        A, Bp = a[sid], b[sid]
        dx, dy, dz = Bp[:, 0] - A[:, 0], Bp[:, 1] - A[:, 1], Bp[:, 2] - A[:, 2]
        vx = px - A[:, 0]
        vy = py - A[:, 1]
        len2 = torch.clamp(dx * dx + dy * dy, min=_EPS_LEN2)
        t = ((vx * dx + vy * dy) / len2).clamp(0.0, 1.0)
        ex = vx - t * dx
        ey = vy - t * dy
        dist = torch.sqrt(ex * ex + ey * ey + _EPS_DIST2)
        w0 = hwa[sid]
        hw = w0 + t * (hwb[sid] - w0)
        cov = torch.sigmoid((hw - dist) / sigma)
        depth = A[:, 2] + t * dz
        ctx.save_for_backward(a, b, hwa, hwb, sid, px, py, t, cov)
        ctx.sigma = sigma
        return cov, depth, t

    @staticmethod
    def backward(ctx, g_cov, g_depth, g_t):
        a, b, hwa, hwb, sid, px, py, t, cov = ctx.saved_tensors
        sigma = ctx.sigma
        zero = torch.zeros_like(t)
        g_cov = zero if g_cov is None else g_cov
        g_depth = zero if g_depth is None else g_depth
        g_t = zero if g_t is None else g_t
        A, Bp = a[sid], b[sid]
        dx, dy, dz = Bp[:, 0] - A[:, 0], Bp[:, 1] - A[:, 1], Bp[:, 2] - A[:, 2]
        vx = px - A[:, 0]
        vy = py - A[:, 1]
        len2_raw = dx * dx + dy * dy
        len2 = torch.clamp(len2_raw, min=_EPS_LEN2)
        u = vx * dx + vy * dy
        t_raw = u / len2
        ex = vx - t * dx
        ey = vy - t * dy
        dist = torch.sqrt(ex * ex + ey * ey + _EPS_DIST2)
        w0, w1 = hwa[sid], hwb[sid]
        # cov = sigmoid((hw - dist) / sigma)
        g_hw = g_cov * cov * (1.0 - cov) / sigma
        g_ex = -g_hw * ex / dist
        g_ey = -g_hw * ey / dist
        # t enters hw, depth, ex, ey (and is an output itself).
        g_tt = g_t + g_hw * (w1 - w0) + g_depth * dz - g_ex * dx - g_ey * dy
        g_traw = torch.where((t_raw >= 0.0) & (t_raw <= 1.0), g_tt, zero)   # clamp(0, 1)
        g_u = g_traw / len2
        g_len2 = torch.where(len2_raw >= _EPS_LEN2, -g_traw * t_raw / len2, zero)
        g_vx = g_ex + g_u * dx
        g_vy = g_ey + g_u * dy
        g_dx = -t * g_ex + g_u * vx + 2.0 * dx * g_len2
        g_dy = -t * g_ey + g_u * vy + 2.0 * dy * g_len2
        g_A = torch.stack([-g_vx - g_dx, -g_vy - g_dy, g_depth * (1.0 - t)], 1)
        g_B = torch.stack([g_dx, g_dy, g_depth * t], 1)
        ga = gb = gwa = gwb = None
        if ctx.needs_input_grad[0]:
            ga = torch.zeros_like(a).index_add_(0, sid, g_A)
        if ctx.needs_input_grad[1]:
            gb = torch.zeros_like(b).index_add_(0, sid, g_B)
        if ctx.needs_input_grad[2]:
            gwa = torch.zeros_like(hwa).index_add_(0, sid, g_hw * (1.0 - t))
        if ctx.needs_input_grad[3]:
            gwb = torch.zeros_like(hwb).index_add_(0, sid, g_hw * t)
        return ga, gb, gwa, gwb, None, None, None, None


def _fragments_from_selection(a, b, hwa, hwb, seg_flat, settings) -> Fragments:
    H, W, K = settings.height, settings.width, settings.faces_per_pixel
    flat = seg_flat.reshape(-1)
    pos = (flat >= 0).nonzero().squeeze(1)
    sid = flat[pos]
    pix = pos // K
    dt, dev = a.dtype, a.device
    px = (pix % W).to(dt) + 0.5
    py = (pix // W).to(dt) + 0.5
    cov, depth, t = _SelectedFaces.apply(a, b, hwa, hwb, sid, px, py, float(settings.sigma))
    n = H * W * K

    def scatter(v, fill):
        base = torch.full((n,), fill, dtype=dt, device=dev)
        return base.index_put((pos,), v).reshape(H, W, K)

    return Fragments(seg=seg_flat.reshape(H, W, K), coverage=scatter(cov, 0.0),
                     depth=scatter(depth, -1.0), t=scatter(t, 0.0))


# --------------------------------------------------------------------------------------------
# public API


def rasterize_strands(verts: torch.Tensor, half_width, settings: RasterSettings,
                      occluder_depth: torch.Tensor | None = None, *,
                      chunk_pairs: int | None = None) -> Fragments:
    """Soft-rasterise projected strands as camera-facing stripes (Neural Haircut Sec. 3.3, Fig. 3).

    Args:
        verts: (S, P, 3) float32 or float64 projected strand points, root first: x and y in
            pixels (pixel (i, j) has its centre at x = j + 0.5, y = i + 0.5), camera depth z > 0
            (camera z, e.g. metres). Segments are consecutive point pairs; segment p of strand s
            has the flat index s * (P - 1) + p. Points may lie off-screen; non-finite segments
            are skipped.
        half_width: stripe half-width in pixels: a float, or a tensor of shape (), (S,) or
            (S, P) (per point; interpolated along each segment). Gradients flow into a tensor.
        settings: image size, K (faces_per_pixel), sigma (px) and bin size.
        occluder_depth: optional (H, W) camera depth of opaque geometry (head, bust; +inf where
            none); a segment only counts at a pixel where its depth is smaller. Not
            differentiated.
        chunk_pairs: memory bound of the candidate search, in pixel-segment pairs per chunk
            (default 2^20 on CPU, 2^26 on CUDA; roughly 40 bytes per pair).

    Returns:
        :class:`Fragments` with (H, W, K) seg, coverage, depth and t, on the device of ``verts``
        and in its dtype; coverage, depth and t are differentiable w.r.t. ``verts`` (and a
        tensor ``half_width``). Selection of the K faces is not differentiated.

    Raises:
        InputError: wrong shapes or types, negative widths, bad settings.
    """
    a, b, hwa, hwb, per_point, occ = _prepare(verts, half_width, settings, occluder_depth)
    if chunk_pairs is None:
        chunk_pairs = _default_chunk_pairs(verts.device)
    seg = _select_binned(a, b, hwa, hwb, per_point, settings, occ, chunk_pairs)
    return _fragments_from_selection(a, b, hwa, hwb, seg, settings)


def rasterize_strands_reference(verts: torch.Tensor, half_width, settings: RasterSettings,
                                occluder_depth: torch.Tensor | None = None) -> Fragments:
    """Brute-force :func:`rasterize_strands` for tests: every pixel against every segment, a
    Python sort per pixel. Same arguments, result and definitions; O(H W N) memory and time."""
    a, b, hwa, hwb, _, occ = _prepare(verts, half_width, settings, occluder_depth)
    H, W, K = settings.height, settings.width, settings.faces_per_pixel
    sig = float(settings.sigma)
    dt, dev = verts.dtype, verts.device
    N = a.shape[0]
    # All pixel centres (H*W, 1) against all segments (1, N).
    jj, ii = torch.meshgrid(torch.arange(W, device=dev), torch.arange(H, device=dev), indexing="xy")
    qx = (jj.reshape(-1, 1).to(dt) + 0.5)
    qy = (ii.reshape(-1, 1).to(dt) + 0.5)
    dx, dy, dz = b[:, 0] - a[:, 0], b[:, 1] - a[:, 1], b[:, 2] - a[:, 2]
    vx, vy = qx - a[:, 0], qy - a[:, 1]
    len2 = torch.clamp(dx * dx + dy * dy, min=_EPS_LEN2)
    t = ((vx * dx + vy * dy) / len2).clamp(0.0, 1.0)
    cx, cy = a[:, 0] + t * dx, a[:, 1] + t * dy            # closest point (for the coverage)
    ex, ey = vx - t * dx, vy - t * dy
    d2 = ex * ex + ey * ey
    hw = hwa + t * (hwb - hwa)
    depth = a[:, 2] + t * dz
    dist = torch.sqrt((qx - cx) ** 2 + (qy - cy) ** 2 + _EPS_DIST2)
    cov = torch.sigmoid((hw - dist) / sig)

    with torch.no_grad():
        r = hw.detach() + 3.0 * sig
        z = depth.detach()
        cand = (d2.detach() < r * r) & (z > NEAR) & torch.isfinite(z)
        if occ is not None:
            cand &= z < occ[:, None]
        z32 = z.to(torch.float32)
    seg = torch.full((H * W, K), -1, dtype=torch.int64, device=dev)
    for p in range(H * W):
        ids = cand[p].nonzero().squeeze(1).tolist()
        ranked = sorted(ids, key=lambda s, p=p: (float(z32[p, s]), s))[:K]
        seg[p, :len(ranked)] = torch.tensor(ranked, dtype=torch.int64, device=dev)
    valid = seg >= 0
    sidx = seg.clamp(min=0)

    def pick(v, fill):
        g = torch.gather(v, 1, sidx) if N else torch.zeros_like(sidx, dtype=dt)
        return torch.where(valid, g, torch.full_like(g, fill)).reshape(H, W, K)

    return Fragments(seg=seg.reshape(H, W, K), coverage=pick(cov, 0.0), depth=pick(depth, -1.0),
                     t=pick(t, 0.0))


class _WeightedFeatures(torch.autograd.Function):
    """``out[p] = sum_k w[p, k] features[seg[p, k]]`` without materialising the (P, K, C)
    gathered features (one (P, C) slice per k in forward and backward)."""

    @staticmethod
    def forward(ctx, w, seg, features):
        out = features.new_zeros((w.shape[0], features.shape[1]))
        for k in range(w.shape[1]):
            out.addcmul_(w[:, k, None], features[seg[:, k]])
        ctx.save_for_backward(w, seg, features)
        return out

    @staticmethod
    def backward(ctx, g):
        w, seg, features = ctx.saved_tensors
        gw = gf = None
        if ctx.needs_input_grad[0]:
            gw = torch.stack([(g * features[seg[:, k]]).sum(1) for k in range(w.shape[1])], 1)
        if ctx.needs_input_grad[2]:
            gf = torch.zeros_like(features)
            for k in range(w.shape[1]):
                gf.index_add_(0, seg[:, k], w[:, k, None] * g)
        return gw, None, gf


def blend(fragments: Fragments, features: torch.Tensor, background: torch.Tensor | float = 0.0
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Front-to-back alpha compositing of per-segment features (the seed's soft blending of the
    K nearest hair quads; the "over" operator with alpha_k = coverage_k).

    ``w_k = a_k prod_{j<k} (1 - a_j)``, ``image = sum_k w_k f_k + (1 - sum_k w_k) background``,
    ``alpha = 1 - prod_k (1 - a_k)``. Empty slots (``seg == -1``) are no layer (their coverage is
    ignored and gets no gradient).

    Args:
        fragments: from :func:`rasterize_strands`, (H, W, K) fields.
        features: (N_seg, C) per-segment features, N_seg = S * (P - 1) (float, same device).
        background: a float, a (C,) colour or a (C, H, W) image.

    Returns:
        image (C, H, W) and alpha (H, W), differentiable w.r.t. ``features``, ``background`` and
        (through the coverage) the rasterised vertices.

    Raises:
        InputError: features not 2-D, too few rows for the fragments, or a bad background shape.
    """
    seg, a = fragments.seg, fragments.coverage
    if not isinstance(features, torch.Tensor) or features.ndim != 2:
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise InputError(f"blend: features must be a (N_seg, C) tensor, got {shape}")
    if seg.ndim != 3 or a.shape != seg.shape:
        raise InputError(f"blend: fragments must hold (H, W, K) tensors, got seg {tuple(seg.shape)}")
    H, W, K = seg.shape
    C = features.shape[1]
    n_seg = features.shape[0]
    smax = int(seg.max()) if seg.numel() else -1
    if smax >= n_seg:
        raise InputError(f"blend: fragments index segment {smax} but features has only {n_seg} rows")
    valid = seg >= 0
    a = torch.where(valid, a.to(features.dtype), 0.0)                    # empty slots: no layer
    trans = torch.cumprod(1.0 - a, dim=-1)                               # prod_{j<=k}(1 - a_j)
    trans_excl = torch.cat([torch.ones_like(trans[..., :1]), trans[..., :-1]], dim=-1)
    w = a * trans_excl                                                   # (H, W, K)
    if n_seg:
        img = _WeightedFeatures.apply(w.reshape(H * W, K), seg.clamp(min=0).reshape(H * W, K), features)
        img = img.t().reshape(C, H, W)
    else:
        img = features.new_zeros((C, H, W)) + 0.0 * w.sum()
    rest = 1.0 - w.sum(-1)                                               # (H, W)
    if isinstance(background, torch.Tensor):
        bg = background.to(device=features.device, dtype=features.dtype)
        if bg.ndim == 0:
            img = img + rest * bg
        elif bg.shape == (C,):
            img = img + rest * bg[:, None, None]
        elif bg.shape == (C, H, W):
            img = img + rest * bg
        else:
            raise InputError(f"blend: background must be a float, ({C},) or ({C}, {H}, {W}), got {tuple(bg.shape)}")
    else:
        img = img + rest * float(background)
    alpha = 1.0 - trans[..., -1] if K else torch.zeros((H, W), dtype=features.dtype, device=features.device)
    return img, alpha
