"""The :class:`Groom`: a set of hair strands plus optional per-strand attributes and head mesh.

Conventions (DESIGN.md, "Data contracts"): strands are float32 ``(N, L, 3)`` in metres in the head
frame (right-handed, +Y up, +Z out of the face), root first. Every strand has the same number of
points ``L``; grooms read from files whose strands have varying point counts are brought to a
common ``L`` by :func:`resample_polylines`, the single place where that happens.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from engine.errors import InputError

__all__ = ["Groom", "resample_strands", "resample_polyline", "resample_polylines",
           "farthest_root_sample"]


def _readonly(a: np.ndarray) -> np.ndarray:
    """A C-contiguous read-only array; copies unless ``a`` already is one (never changes the
    caller's array)."""
    if not a.flags.writeable and a.flags.c_contiguous:
        return a
    a = np.array(a, order="C", copy=True)
    a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False)
class Groom:
    """A groom: ``N`` strands of ``L`` points each, with optional attributes.

    Fields (arrays are converted to the dtypes below, made C-contiguous and read-only):

    * ``strands``: ``(N, L, 3)`` float32, metres, head frame, root first; ``N >= 1``, ``L >= 2``,
      all finite.
    * ``widths``: ``None``, ``(N,)`` (one width per strand) or ``(N, L)`` (per point) float32,
      metres, ``>= 0``. A width is a strand diameter, as in Alembic, USD and ``.hair``.
    * ``root_uv``: ``None`` or ``(N, 2)`` float32 scalp UV of each root (usually in [0, 1]^2).
    * ``colors``: ``None`` or ``(N, 3)`` float32 linear RGB in [0, 1], one colour per strand.
    * ``guide``: ``None`` or ``(N,)`` bool, True for guide strands (Unreal's ``groom_guide``).
    * ``group_id``: ``None`` or ``(N,)`` int32 group of each strand (Unreal's ``groom_group_id``).
    * ``head_vertices`` / ``head_faces``: ``None`` or ``(V, 3)`` float32 metres, head frame, and
      ``(F, 3)`` int32 vertex indices of a triangle mesh; both or neither.

    Raises :class:`engine.errors.InputError` with a one-line message on invalid data.
    The object is immutable; use :meth:`replace` or :meth:`subset` to derive new grooms.
    """

    strands: np.ndarray
    widths: np.ndarray | None = None
    root_uv: np.ndarray | None = None
    colors: np.ndarray | None = None
    guide: np.ndarray | None = None
    group_id: np.ndarray | None = None
    head_vertices: np.ndarray | None = None
    head_faces: np.ndarray | None = None

    def __post_init__(self) -> None:
        def err(msg: str) -> InputError:
            return InputError(f"invalid groom: {msg}")

        s = np.asarray(self.strands)
        if s.ndim != 3 or s.shape[2] != 3:
            raise err(f"strands must have shape (N, L, 3), got {s.shape}")
        n, l_ = s.shape[:2]
        if n < 1:
            raise err("the groom has no strands")
        if l_ < 2:
            raise err(f"strands need at least 2 points each, got {l_}")
        s = s.astype(np.float32, copy=False)
        if not np.isfinite(s).all():
            raise err("strands contain NaN or infinite coordinates")
        object.__setattr__(self, "strands", _readonly(s))

        if self.widths is not None:
            w = np.asarray(self.widths).astype(np.float32, copy=False)
            if w.shape not in ((n,), (n, l_)):
                raise err(f"widths must have shape ({n},) or ({n}, {l_}), got {w.shape}")
            if not np.isfinite(w).all() or (w < 0).any():
                raise err("widths must be finite and non-negative")
            object.__setattr__(self, "widths", _readonly(w))
        if self.root_uv is not None:
            uv = np.asarray(self.root_uv).astype(np.float32, copy=False)
            if uv.shape != (n, 2):
                raise err(f"root_uv must have shape ({n}, 2), got {uv.shape}")
            if not np.isfinite(uv).all():
                raise err("root_uv contains NaN or infinite values")
            object.__setattr__(self, "root_uv", _readonly(uv))
        if self.colors is not None:
            c = np.asarray(self.colors).astype(np.float32, copy=False)
            if c.shape != (n, 3):
                raise err(f"colors must have shape ({n}, 3), got {c.shape}")
            if not np.isfinite(c).all() or (c < 0).any() or (c > 1).any():
                raise err("colors must lie in [0, 1]")
            object.__setattr__(self, "colors", _readonly(c))
        if self.guide is not None:
            g = np.asarray(self.guide)
            if g.shape != (n,):
                raise err(f"guide must have shape ({n},), got {g.shape}")
            object.__setattr__(self, "guide", _readonly(g.astype(bool)))
        if self.group_id is not None:
            gi = np.asarray(self.group_id)
            if gi.shape != (n,):
                raise err(f"group_id must have shape ({n},), got {gi.shape}")
            if gi.dtype.kind not in "iub":
                raise err(f"group_id must be integers, got dtype {gi.dtype}")
            if (gi < 0).any():
                raise err("group_id must be non-negative")
            object.__setattr__(self, "group_id", _readonly(gi.astype(np.int32)))
        if (self.head_vertices is None) != (self.head_faces is None):
            raise err("head_vertices and head_faces must be given together")
        if self.head_vertices is not None:
            v = np.asarray(self.head_vertices).astype(np.float32, copy=False)
            f = np.asarray(self.head_faces)
            if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
                raise err(f"head_vertices must have shape (V, 3), got {v.shape}")
            if f.ndim != 2 or f.shape[1] != 3:
                raise err(f"head_faces must have shape (F, 3), got {f.shape}")
            if f.dtype.kind not in "iu":
                raise err(f"head_faces must be integers, got dtype {f.dtype}")
            if len(f) and (f.min() < 0 or f.max() >= len(v)):
                raise err("head_faces index vertices out of range")
            if not np.isfinite(v).all():
                raise err("head_vertices contain NaN or infinite coordinates")
            object.__setattr__(self, "head_vertices", _readonly(v))
            object.__setattr__(self, "head_faces", _readonly(f.astype(np.int32)))

    # ---------------------------------------------------------------------------------------
    @property
    def num_strands(self) -> int:
        """``N``, the number of strands."""
        return int(self.strands.shape[0])

    @property
    def points_per_strand(self) -> int:
        """``L``, the number of points of every strand."""
        return int(self.strands.shape[1])

    @property
    def has_head(self) -> bool:
        return self.head_vertices is not None

    def replace(self, **changes) -> "Groom":
        """A copy with some fields replaced (validated again)."""
        return dataclasses.replace(self, **changes)

    def subset(self, index: np.ndarray | Sequence[int]) -> "Groom":
        """The strands selected by ``index`` (integer indices or a boolean mask of length N),
        with their per-strand attributes; the head mesh is kept."""
        idx = np.asarray(index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64)
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        return Groom(
            strands=self.strands[idx],
            widths=pick(self.widths),
            root_uv=pick(self.root_uv),
            colors=pick(self.colors),
            guide=pick(self.guide),
            group_id=pick(self.group_id),
            head_vertices=self.head_vertices,
            head_faces=self.head_faces,
        )

    def groups(self) -> list[tuple[int, np.ndarray]]:
        """``[(group_id, strand indices), ...]`` in increasing group id; one group 0 when
        ``group_id`` is None."""
        if self.group_id is None:
            return [(0, np.arange(self.num_strands))]
        ids = np.unique(self.group_id)
        return [(int(g), np.flatnonzero(self.group_id == g)) for g in ids]

    def vertex_widths(self) -> np.ndarray | None:
        """Widths expanded to ``(N, L)`` float32 metres, or None."""
        if self.widths is None:
            return None
        if self.widths.ndim == 1:
            return np.repeat(self.widths[:, None], self.points_per_strand, axis=1)
        return self.widths

    @classmethod
    def from_polylines(
        cls,
        polylines: Sequence[np.ndarray],
        points_per_strand: int | None = None,
        *,
        widths: Sequence[np.ndarray] | np.ndarray | None = None,
        source: str = "",
        **attrs,
    ) -> "Groom":
        """Build a groom from strands that may have different point counts.

        ``polylines``: sequence of ``(L_i, 3)`` arrays, metres, root first. If every strand has
        the same count and ``points_per_strand`` is None or equal to it, points are kept as given
        (no resampling, so files round-trip exactly). Otherwise every strand is resampled by
        :func:`resample_polylines` to ``points_per_strand`` points (default: the largest
        ``L_i``). ``widths`` is None, ``(N,)`` per strand, or a sequence of ``(L_i,)`` per-point
        widths which are resampled together with the points. Strands with fewer than 2 points
        must be removed by the caller. ``source`` names the file in error messages.
        ``attrs`` are the other :class:`Groom` fields.
        """
        where = f"{source}: " if source else ""
        if len(polylines) == 0:
            raise InputError(f"{where}no strands with at least 2 points")
        counts = np.array([len(p) for p in polylines])
        if counts.min() < 2:
            raise InputError(f"{where}a strand has fewer than 2 points")
        per_point = widths is not None and not (
            isinstance(widths, np.ndarray) and widths.ndim == 1 and len(widths) == len(polylines)
        )
        uniform = bool((counts == counts[0]).all())
        target = int(points_per_strand or counts.max())
        if uniform and target == counts[0]:
            strands = np.stack([np.asarray(p, np.float32) for p in polylines])
            w = None
            if widths is not None:
                w = np.stack([np.asarray(x, np.float32) for x in widths]) if per_point \
                    else np.asarray(widths, np.float32)
        else:
            if per_point:
                both = [np.concatenate([np.asarray(p, np.float64),
                                        np.asarray(x, np.float64)[:, None]], axis=1)
                        for p, x in zip(polylines, widths)]
                res = resample_polylines(both, target, n_coords=3)
                strands, w = res[..., :3], res[..., 3]
            else:
                strands = resample_polylines(polylines, target)
                w = None if widths is None else np.asarray(widths, np.float32)
        return cls(strands=strands, widths=w, **attrs)


def resample_strands(points: np.ndarray, count: int, lengths: np.ndarray | None = None,
                     n_coords: int = 3) -> np.ndarray:
    """Resample polylines of a common point count uniformly by arc length, all at once.

    ``points``: ``(N, K, C)`` with ``K >= 2``; the first ``n_coords`` columns are positions
    (any unit), further columns are attributes (e.g. widths) interpolated linearly alongside.
    ``lengths``: optional ``(N,)`` arc length (same unit) at which each polyline ends, clipped
    to ``[0, its length]``: the part beyond is cut off (trimming a strand's tip); None keeps
    the whole polyline. Returns ``(N, count, C)`` float64 whose first points equal the input's,
    whose last points sit at ``lengths`` along the input (its last point without ``lengths``)
    and whose consecutive positions are equally spaced along the input. Repeated points
    (zero-length segments) are allowed; a polyline of zero length gives ``count`` copies of its
    first point. Raises ValueError for ``count < 2`` or fewer than 2 points.
    """
    p = np.asarray(points, np.float64)
    if count < 2 or p.ndim != 3 or p.shape[1] < 2:
        raise ValueError("resample_strands needs (N, K >= 2, C) points and count >= 2")
    N, K, _ = p.shape
    if N == 0:
        return np.zeros((0, count, p.shape[2]))
    seg = np.linalg.norm(np.diff(p[..., :n_coords], axis=1), axis=-1)
    cum = np.concatenate([np.zeros((N, 1)), np.cumsum(seg, axis=1)], axis=1)  # (N, K)
    total = cum[:, -1:]
    end = total if lengths is None else np.clip(np.asarray(lengths, np.float64).reshape(N, 1),
                                                0.0, total)
    tgt = np.linspace(0.0, 1.0, count)[None, :] * end  # (N, count)
    if lengths is None:
        tgt[:, -1:] = total  # exact end point despite rounding
    big = (total.max() + 1.0) * np.arange(N)[:, None]  # one sorted array for every row
    idx = np.searchsorted((cum + big).ravel(), (tgt + big).ravel(), side="right").reshape(
        N, count) - 1 - (np.arange(N) * K)[:, None]
    idx = np.clip(idx, 0, K - 2)
    c0 = np.take_along_axis(cum, idx, 1)
    c1 = np.take_along_axis(cum, idx + 1, 1)
    t = np.clip((tgt - c0) / np.maximum(c1 - c0, 1e-300), 0.0, 1.0)[..., None]
    p0 = np.take_along_axis(p, idx[..., None].repeat(p.shape[2], -1), 1)
    p1 = np.take_along_axis(p, (idx + 1)[..., None].repeat(p.shape[2], -1), 1)
    return p0 + t * (p1 - p0)


def resample_polyline(points: np.ndarray, count: int, n_coords: int = 3) -> np.ndarray:
    """One polyline ``(M, C)``, ``M >= 2``, resampled uniformly by arc length to ``(count, C)``
    float32 (:func:`resample_strands`)."""
    return resample_strands(np.asarray(points)[None], count, n_coords=n_coords)[0].astype(
        np.float32)


def resample_polylines(
    polylines: Sequence[np.ndarray], count: int, n_coords: int = 3
) -> np.ndarray:
    """Resample each polyline of a ragged list (or an ``(N, K, C)`` array) uniformly by arc
    length; returns ``(N, count, C)`` float32. Shorter polylines are padded with their last
    point (zero-length segments) and all go through :func:`resample_strands`. This is the one
    place where strands of varying point counts are brought to a common count (importers call
    it through :meth:`Groom.from_polylines`)."""
    if count < 2:
        raise ValueError("count must be >= 2")
    if isinstance(polylines, np.ndarray) and polylines.ndim == 3:
        padded = polylines
    else:
        polys = [np.asarray(q, np.float64) for q in polylines]
        K = max(len(q) for q in polys)
        padded = np.stack([np.concatenate([q, np.repeat(q[-1:], K - len(q), 0)]) for q in polys])
    return resample_strands(padded, count, n_coords=n_coords).astype(np.float32)


def farthest_root_sample(roots: np.ndarray, k: int) -> np.ndarray:
    """Pick ``k`` strands whose roots cover the scalp evenly (farthest-point sampling).

    ``roots``: ``(N, 3)`` root positions. Deterministic: starts at the root nearest the roots'
    centroid, then repeatedly takes the root farthest from those already taken (ties: lowest
    index). Returns ``(min(k, N),)`` int64 indices in increasing order.
    """
    r = np.asarray(roots, np.float64)
    n = len(r)
    if k >= n:
        return np.arange(n)
    if k < 1:
        raise ValueError("k must be >= 1")
    chosen = np.empty(k, np.int64)
    chosen[0] = int(np.argmin(((r - r.mean(0)) ** 2).sum(1)))
    d = ((r - r[chosen[0]]) ** 2).sum(1)
    for i in range(1, k):
        j = int(np.argmax(d))
        chosen[i] = j
        np.minimum(d, ((r - r[j]) ** 2).sum(1), out=d)
    return np.sort(chosen)
