"""Options, unit/axis conversion and errors shared by the groom exporters and importers.

Unit conversion: the groom is in metres; a file in ``units`` stores ``coordinate * scale`` with
scale 1 (m), 100 (cm) or 1000 (mm); widths (diameters) and head-mesh vertices are scaled alike.

Axis remap (applied after scaling, to points and head vertices):

* ``up="y"``: identity; the file is in the head frame (+Y up, +Z out of the face), as Maya,
  Houdini, Unreal's Alembic importer (Y-up preset) and USD's default expect.
* ``up="z"``: ``(x, y, z) -> (x, -z, y)``, the right-handed rotation of +90 degrees about +X
  (matrix ``[[1, 0, 0], [0, 0, -1], [0, 1, 0]]``, determinant +1). Head +Y (up) becomes file +Z
  (Blender's up) and the face direction +Z becomes file -Y (Blender's front view looks along
  +Y at a character facing -Y). Importing inverts it: ``(x, y, z) -> (x, z, -y)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

from engine.errors import ConfigError, InputError, StrandcapError

UNIT_SCALE = {"m": 1.0, "cm": 100.0, "mm": 1000.0}
UP_AXES = ("y", "z")
BASES = ("linear", "catmull_rom")
GROOM_VERSION = (1, 5)  # groom_version_major / minor written to Alembic, as Unreal expects.

_TAG_RE = re.compile(r"strandcap\s+units[=:](m|cm|mm)\s+up[=:](y|z)")


class ExportError(StrandcapError):
    """A groom could not be written: missing folder, destination not writable, disk full."""


@dataclass(frozen=True)
class ExportOptions:
    """Options of every exporter.

    * ``units``: "m", "cm" (default, what Maya, Houdini and Unreal expect) or "mm". Blender
      imports Alembic, OBJ and PLY at scale 1 (one file unit = one metre): use "m" there, or
      set the importer's scale. Strandcap's own ``.npz`` always holds metres (the data
      contract): :func:`engine.io.export.export_groom` ignores ``units`` / ``up`` for it.
    * ``up``: "y" (default) or "z"; see the module docstring for the exact remap. Blender's
      Alembic, USD and OBJ importers convert from Y-up themselves (keep "y"); only its PLY
      importer assumes Z-up.
    * ``guides``: None (the strands as they are) or K >= 1: K strands picked by farthest-point
      sampling of the roots (:func:`engine.io.groom.farthest_root_sample`, deterministic) are
      written as guides (``groom_guide`` = 1) *in addition to* all render strands
      (``groom_guide`` = 0), as Unreal's groom importer expects; formats without a guide flag
      (OBJ, ``.hair``) get the K guides alone.
    * ``basis``: "linear" (polyline) or "catmull_rom" (cubic curve through the points); only
      Alembic and USD record it, the other formats are always polylines.
    * ``colors``: write per-strand colour when the groom has it.
    * ``head``: write the head mesh when the groom has it, inside the file (USD, OBJ, npz).
      Alembic grooms never hold a mesh (Unreal refuses such a groom): see ``head_file``.
    * ``head_file``: also write the head mesh (when the groom has it) to its own Alembic file
      ``<stem>_head.abc`` next to an Alembic groom, in the same units and axes
      (:func:`engine.io.export.head_path`); default False.
    """

    units: Literal["m", "cm", "mm"] = "cm"
    up: Literal["y", "z"] = "y"
    guides: int | None = None
    basis: Literal["linear", "catmull_rom"] = "linear"
    colors: bool = True
    head: bool = True
    head_file: bool = False

    def __post_init__(self) -> None:
        if self.units not in UNIT_SCALE:
            raise ConfigError(f"export units must be one of m, cm, mm, got {self.units!r}")
        if self.up not in UP_AXES:
            raise ConfigError(f"export up axis must be 'y' or 'z', got {self.up!r}")
        if self.basis not in BASES:
            raise ConfigError(f"export basis must be 'linear' or 'catmull_rom', got {self.basis!r}")
        if self.guides is not None and (not isinstance(self.guides, (int, np.integer))
                                        or self.guides < 1):
            raise ConfigError(f"export guides must be a positive integer, got {self.guides!r}")

    @property
    def scale(self) -> float:
        return UNIT_SCALE[self.units]

    @property
    def tag(self) -> str:
        """The self-description written into files that have a comment or info field."""
        return f"strandcap units={self.units} up={self.up}"


def parse_tag(text: str) -> tuple[str, str] | None:
    """``(units, up)`` from a :attr:`ExportOptions.tag` found in ``text``, or None."""
    m = _TAG_RE.search(text)
    return (m.group(1), m.group(2)) if m else None


def to_file_frame(points: np.ndarray, units: str, up: str) -> np.ndarray:
    """Head-frame metres ``(..., 3)`` -> file coordinates ``(..., 3)`` float32 (scale, then
    remap; see the module docstring)."""
    p = np.asarray(points, np.float64) * UNIT_SCALE[units]
    if up == "z":
        p = np.stack([p[..., 0], -p[..., 2], p[..., 1]], axis=-1)
    return p.astype(np.float32)


def from_file_frame(points: np.ndarray, units: str, up: str) -> np.ndarray:
    """Inverse of :func:`to_file_frame`: file coordinates -> head-frame metres, float32."""
    p = np.asarray(points, np.float64)
    if up == "z":
        p = np.stack([p[..., 0], p[..., 2], -p[..., 1]], axis=-1)
    return (p / UNIT_SCALE[units]).astype(np.float32)


def check_units_up(units: str, up: str, path) -> None:
    if units not in UNIT_SCALE:
        raise InputError(f"{path}: unknown units {units!r} (use m, cm or mm)")
    if up not in UP_AXES:
        raise InputError(f"{path}: unknown up axis {up!r} (use y or z)")


@dataclass(frozen=True)
class ReadResult:
    """What a format's ``read`` returns: the groom *in file coordinates* (file units and axes,
    widths in file units) and the units / up axis the file declares about itself (None where it
    does not say). :func:`engine.io.export.load_groom` converts it to head-frame metres."""

    groom: "object"  # engine.io.groom.Groom, in file coordinates
    units: str | None = None
    up: str | None = None


def combine_strand_attrs(uvs, guides, groups, colors, sizes) -> dict:
    """Concatenate per-object optional per-strand attributes (lists aligned with ``sizes``, an
    entry None where that object lacks the attribute; filled with zeros / False then); an
    attribute missing from every object stays None."""

    def cat(parts, shape, dtype):
        if all(p is None for p in parts):
            return None
        return np.concatenate([
            np.asarray(p, dtype).reshape((s,) + shape) if p is not None
            else np.zeros((s,) + shape, dtype)
            for p, s in zip(parts, sizes)])

    return {
        "root_uv": cat(uvs, (2,), np.float32),
        "guide": cat(guides, (), bool),
        "group_id": cat(groups, (), np.int32),
        "colors": cat(colors, (3,), np.float32),
    }


def read_widths(w: np.ndarray | None, starts, counts, n_points: int) -> tuple[list, str]:
    """The widths read from one curves object, as per-strand entries and their scope.

    ``w``: the file's width array (metres or file units, float), or None; ``starts`` /
    ``counts``: first point and point count of each of the object's ``n = len(counts)``
    strands; ``n_points``: its total point count. Returns (entries, scope): one float per strand
    with scope "uniform" for one width per strand, one constant width, or per-point widths that
    do not vary along any strand; (L_i,) float32 arrays with scope "vertex" for widths that vary
    along strands; ``[None] * n`` with scope "none" when there are none or their count fits
    no scope."""
    n = len(counts)
    if w is not None:
        w = np.asarray(w, np.float32).reshape(-1)
        if len(w) == n:
            return list(w), "uniform"
        if len(w) == n_points:
            per = [w[s:s + c] for s, c in zip(starts, counts)]
            if all((x == x[0]).all() for x in per if len(x)):  # constant along strands
                return [x[0] if len(x) else np.float32(0) for x in per], "uniform"
            return per, "vertex"
        if len(w) == 1:
            return [w[0]] * n, "uniform"
    return [None] * n, "none"


def triangulate(indices: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Fan-triangulate polygons given as flat vertex ``indices`` and per-face ``counts``;
    returns ``(T, 3)`` int64. Faces with fewer than 3 vertices are dropped."""
    indices = np.asarray(indices, np.int64)
    counts = np.asarray(counts, np.int64)
    if len(counts) and (counts == 3).all():
        return indices.reshape(-1, 3)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    tris = []
    for k in range(1, int(counts.max(initial=0)) - 1):
        sel = counts > k + 1
        s = starts[sel]
        tris.append(np.stack([indices[s], indices[s + k], indices[s + k + 1]], axis=1))
    return np.concatenate(tris) if tris else np.zeros((0, 3), np.int64)
