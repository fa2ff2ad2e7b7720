"""Cem Yuksel's HAIR format (``.hair``, www.cemyuksel.com/research/hairmodels), binary,
little-endian.

Header (128 bytes): ``"HAIR"``; uint32 strand count; uint32 point count; uint32 bit field of the
arrays present (bit 0 segments, 1 points, 2 thickness, 3 transparency, 4 colour); uint32 default
segment count; float32 default thickness; float32 default transparency; float32[3] default
colour; char[88] file information. Then, in this order and only when flagged: segments (uint16
per strand, points - 1), points (float32 xyz per point, root first), thickness (float32 per
point), transparency (float32 per point), colour (float32 rgb per point).

Written: every strand has ``L - 1`` segments, so the segments array is left out and the default
segment count is ``L - 1``; points; thickness (the strand widths, per point) when widths are
present; colour (the strand's colour at each of its points) when colours are written; the
information field holds ``strandcap units=.. up=..``. Root UVs, guide flags and groups have no
place in the format and are not written.

Units and axes: points and thickness are in the export units after the up-axis remap of
:mod:`engine.io.formats._common` (``up="z"``: ``(x, y, z) -> (x, -z, y)``).
Reading takes a per-strand colour and, when uniform along each strand, a per-strand width.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from engine.errors import InputError
from engine.io.formats._common import ExportOptions, ReadResult, parse_tag
from engine.io.groom import Groom

SUFFIXES = (".hair",)
_HEADER = struct.Struct("<4sIIIIff3f88s")
assert _HEADER.size == 128

SEGMENTS, POINTS, THICKNESS, TRANSPARENCY, COLORS = 1, 2, 4, 8, 16


def write(groom: Groom, path: Path, options: ExportOptions) -> None:
    """Write ``groom`` (already in file units and axes) to ``path`` as a HAIR file."""
    n, L = groom.num_strands, groom.points_per_strand
    if L - 1 > 65535:
        raise InputError(f"{path}: the HAIR format allows at most 65535 segments per strand")
    flags = POINTS
    default_thickness = 1.0
    if groom.widths is not None:
        flags |= THICKNESS
    if groom.colors is not None:
        flags |= COLORS
    info = options.tag.encode("ascii")[:87]
    header = _HEADER.pack(b"HAIR", n, n * L, flags, L - 1, default_thickness, 0.0,
                          1.0, 1.0, 1.0, info)
    with open(path, "wb") as f:
        f.write(header)
        f.write(np.ascontiguousarray(groom.strands, "<f4").tobytes())
        if groom.widths is not None:
            f.write(np.ascontiguousarray(groom.vertex_widths(), "<f4").tobytes())
        if groom.colors is not None:
            f.write(np.repeat(groom.colors, L, axis=0).astype("<f4").tobytes())


def read(path: Path) -> ReadResult:
    """Read a HAIR file into a groom in file coordinates."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read the file ({e.strerror})") from None
    if len(data) < 128 or data[:4] != b"HAIR":
        raise InputError(f"{path}: not a HAIR file (no 'HAIR' signature)")
    (_, n, n_pts, flags, d_seg, d_thick, _, r, g, b, info) = _HEADER.unpack_from(data)
    pos = 128

    def take(count: int, dtype: str, what: str) -> np.ndarray:
        nonlocal pos
        size = np.dtype(dtype).itemsize * count
        if pos + size > len(data):
            raise InputError(f"{path}: the file ends inside the {what} array")
        a = np.frombuffer(data, dtype, count, pos)
        pos += size
        return a

    if flags & SEGMENTS:
        seg = take(n, "<u2", "segments").astype(np.int64)
    else:
        seg = np.full(n, d_seg, np.int64)
    counts = seg + 1
    if counts.sum() != n_pts:
        raise InputError(f"{path}: the header says {n_pts} points but the segments add up to "
                         f"{int(counts.sum())}")
    if not flags & POINTS:
        raise InputError(f"{path}: the HAIR file has no points array")
    P = take(3 * n_pts, "<f4", "points").reshape(-1, 3)
    thick = take(n_pts, "<f4", "thickness") if flags & THICKNESS else None
    if flags & TRANSPARENCY:
        take(n_pts, "<f4", "transparency")
    col = take(3 * n_pts, "<f4", "colour").reshape(-1, 3) if flags & COLORS else None
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    keep = counts >= 2
    starts, counts = starts[keep], counts[keep]
    if len(starts) == 0:
        raise InputError(f"{path}: no strand has 2 or more points")
    polylines = [P[s:s + c] for s, c in zip(starts, counts)]
    widths = None
    if thick is not None:
        per = [thick[s:s + c] for s, c in zip(starts, counts)]
        widths = (np.array([x[0] for x in per], np.float32)
                  if all((x == x[0]).all() for x in per) else per)
    colors = np.clip(col[starts], 0, 1) if col is not None else None
    tag = parse_tag(info.split(b"\0")[0].decode("ascii", errors="replace"))
    groom = Groom.from_polylines(polylines, widths=widths, colors=colors, source=str(path))
    return ReadResult(groom, *(tag or (None, None)))
