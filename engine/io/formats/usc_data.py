"""USC-HairSalon ``.data`` strands (Hu et al. 2015, "Single-view hair modeling using a hairstyle
database"), read only.

Layout (little-endian): int32 strand count; then per strand an int32 point count followed by
that many float32 (x, y, z). The database's strands are in metres, Y-up, in its own head frame
(the head sits about 1.7 m above the origin), so :func:`engine.io.export.load_groom` assumes
metres and Y-up. Strands with fewer than 2 points (the database stores empty scalp samples as
1-point strands) are dropped; strands of different lengths are resampled by arc length to the
largest point count (:meth:`engine.io.groom.Groom.from_polylines`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.errors import InputError
from engine.io.formats._common import ReadResult
from engine.io.groom import Groom

SUFFIXES = (".data",)


def read(path: Path) -> ReadResult:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read the file ({e.strerror})") from None
    if len(data) < 4:
        raise InputError(f"{path}: too short for a USC-HairSalon .data file")
    n = int(np.frombuffer(data, "<i4", 1, 0)[0])
    if n < 0 or n > len(data) // 4:
        raise InputError(f"{path}: implausible strand count {n} (not a USC-HairSalon .data file?)")
    pos = 4
    polylines = []
    for i in range(n):
        if pos + 4 > len(data):
            raise InputError(f"{path}: the file ends at strand {i} of {n}")
        m = int(np.frombuffer(data, "<i4", 1, pos)[0])
        pos += 4
        if m < 0 or pos + 12 * m > len(data):
            raise InputError(f"{path}: strand {i} claims {m} points, beyond the end of the file")
        if m >= 2:
            polylines.append(np.frombuffer(data, "<f4", 3 * m, pos).reshape(m, 3))
        pos += 12 * m
    if pos != len(data):
        raise InputError(f"{path}: {len(data) - pos} unexpected bytes after the last strand")
    return ReadResult(Groom.from_polylines(polylines, source=str(path)), None, None)
