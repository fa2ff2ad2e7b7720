"""AMD TressFX binary ``.tfx`` grooms (TressFX 3 / 4), read only.

Header (``TressFXTFXFileHeader``, little-endian, 160 bytes): float32 version; uint32
numHairStrands; uint32 numVerticesPerStrand; uint32 byte offsets (from the file start) of
vertex positions (float32x4 per vertex: xyz and an inverse mass, ignored), strand UVs (float32x2
per strand, 0 = absent), vertex UVs (float32x2 per vertex, ignored), strand thickness (float32
per strand, a relative scale, not a width: ignored) and vertex colours (float32x4 per vertex,
0 = absent); 32 reserved uint32. Strands are root first with a fixed vertex count.

The strand UV becomes the root UV and the root vertex's RGB the strand colour. TressFX assets
have no unit field; :func:`engine.io.export.load_groom` assumes centimetres, Y-up, unless told
otherwise. Old text ``.tfx`` files (TressFX 1 / 2) are refused with a clear error.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from engine.errors import InputError
from engine.io.formats._common import ReadResult
from engine.io.groom import Groom

SUFFIXES = (".tfx",)
HEADER = struct.Struct("<fIIIIIII32I")
assert HEADER.size == 160


def read(path: Path) -> ReadResult:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read the file ({e.strerror})") from None
    if data[:7].lower() in (b"version", b"numstra"):
        raise InputError(f"{path}: a text TressFX file (version 1/2); only binary .tfx is read")
    if len(data) < HEADER.size:
        raise InputError(f"{path}: too short for a TressFX .tfx file")
    version, n, L, o_pos, o_suv, _o_vuv, _o_thick, o_col, *_ = HEADER.unpack_from(data)
    if n < 1 or L < 2 or not np.isfinite(version):
        raise InputError(f"{path}: not a TressFX .tfx file ({n} strands of {L} vertices)")

    def arr(offset: int, count: int, what: str) -> np.ndarray:
        if offset + 4 * count > len(data) or offset < HEADER.size:
            raise InputError(f"{path}: the {what} array lies outside the file")
        return np.frombuffer(data, "<f4", count, offset)

    pos = arr(o_pos, 4 * n * L, "vertex position").reshape(n, L, 4)
    root_uv = arr(o_suv, 2 * n, "strand UV").reshape(n, 2) if o_suv else None
    colors = None
    if o_col:
        colors = np.clip(arr(o_col, 4 * n * L, "vertex colour").reshape(n, L, 4)[:, 0, :3], 0, 1)
    groom = Groom(strands=pos[..., :3], root_uv=root_uv, colors=colors)
    return ReadResult(groom, None, None)
