"""Contact sheets of grooms (matplotlib, Agg backend; no Qt): front and side views over the head.

Painter's algorithm: strand segments behind the head's mid-plane (along the view axis) are drawn
first, then the shaded head mesh, then the segments in front of it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _view(points: np.ndarray, view: str):
    """Project (M, 3) head-frame points: returns screen (M, 2) and depth (M,) (larger = nearer)."""
    if view == "front":
        return points[:, [0, 1]], points[:, 2]
    if view == "side":  # looking at the head's +X side, face to the right
        return np.stack([points[:, 2], points[:, 1]], 1), points[:, 0]
    if view == "back":
        return np.stack([-points[:, 0], points[:, 1]], 1), -points[:, 2]
    raise ValueError(view)


def draw_groom(ax, strands: np.ndarray, mesh=None, view: str = "front", max_strands: int = 1500,
               color=None, seed: int = 0, lw: float = 0.35):
    """Draw strands (N, L, 3) metres (head frame) and the head mesh (V, F) into a matplotlib axis."""
    from matplotlib.collections import LineCollection, PolyCollection

    rng = np.random.default_rng(seed)
    if len(strands) > max_strands:
        strands = strands[rng.choice(len(strands), max_strands, replace=False)]
    N, L, _ = strands.shape
    seg = np.stack([strands[:, :-1], strands[:, 1:]], 2).reshape(-1, 2, 3)
    xy0, d0 = _view(seg[:, 0], view)
    xy1, d1 = _view(seg[:, 1], view)
    segs2 = np.stack([xy0, xy1], 1)
    depth = 0.5 * (d0 + d1)
    if color is None:
        t = np.repeat(np.linspace(0, 1, L - 1)[None], N, 0).ravel()
        base = np.array([0.35, 0.2, 0.08])
        tip = np.array([0.85, 0.6, 0.3])
        cols = base[None] * (1 - t[:, None]) + tip[None] * t[:, None]
    else:
        cols = np.tile(np.asarray(color, float)[None], (len(segs2), 1))
    if mesh is not None:
        # visibility against a coarse depth map of the head (max depth of mesh vertices per 4 mm
        # pixel, dilated): a segment is in front if it is nearer than the head at its pixel
        from scipy.ndimage import maximum_filter

        vxy, vd = _view(np.asarray(mesh[0], float), view)
        px = 0.004
        lo = np.array([-0.4, -0.6])
        shape = (int(0.8 / px), int(1.0 / px))
        ij = np.clip(((vxy - lo) / px).astype(int), 0, np.array(shape) - 1)
        dmap = np.full(shape, -np.inf)
        np.maximum.at(dmap, (ij[:, 0], ij[:, 1]), vd)
        dmap = maximum_filter(dmap, size=3)
        mxy = 0.5 * (xy0 + xy1)
        sij = np.clip(((mxy - lo) / px).astype(int), 0, np.array(shape) - 1)
        back = depth < dmap[sij[:, 0], sij[:, 1]]
    else:
        back = np.zeros(len(depth), bool)
    ax.add_collection(LineCollection(segs2[back], colors=cols[back] * 0.7, linewidths=lw, zorder=1))
    if mesh is not None:
        v, f = mesh
        tri = v[f]
        xy, dz = _view(tri.reshape(-1, 3), view)
        xy = xy.reshape(-1, 3, 2)
        dz = dz.reshape(-1, 3).mean(1)
        n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        _, nd = _view(n, view)
        keep = nd > 0
        order = np.argsort(dz[keep])
        shade = np.clip(0.25 + 0.7 * nd[keep][order], 0, 1)
        fc = np.stack([shade * 0.93, shade * 0.82, shade * 0.75], 1)
        ax.add_collection(PolyCollection(xy[keep][order], facecolors=fc, edgecolors="none", zorder=2))
    ax.add_collection(LineCollection(segs2[~back], colors=cols[~back], linewidths=lw, zorder=3))
    ax.set_xlim(-0.3, 0.3)
    ax.set_ylim(-0.45, 0.25)
    ax.set_aspect("equal")
    ax.axis("off")


def contact_sheet(grooms, titles, path: Path, mesh=None, views=("front", "side"), cols: int = 4,
                  max_strands: int = 1500, dpi: int = 90) -> Path:
    """Write a PNG contact sheet: each groom (N, L, 3) in each view, with a title per groom."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(grooms)
    per_row = max(1, cols)
    rows = int(np.ceil(n / per_row))
    nv = len(views)
    fig, axes = plt.subplots(rows, per_row * nv, figsize=(2.4 * per_row * nv, 2.6 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, (g, title) in enumerate(zip(grooms, titles)):
        r, c = divmod(i, per_row)
        for j, view in enumerate(views):
            ax = axes[r, c * nv + j]
            draw_groom(ax, g, mesh=mesh, view=view, max_strands=max_strands, seed=i)
            if j == 0:
                ax.set_title(title, fontsize=7, loc="left")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
