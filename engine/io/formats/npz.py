"""Strandcap's own groom file (``.npz``): the :class:`engine.io.groom.Groom` fields as NumPy
arrays, written with :func:`numpy.savez` and read with ``allow_pickle=False`` (no pickle).

Arrays: ``strands`` (N, L, 3) float32 and, when present, ``widths``, ``root_uv``, ``colors``,
``guide``, ``group_id``, ``head_vertices``, ``head_faces``; plus ``units`` and ``up`` (0-d
strings) saying how the coordinates are stored. Pipeline stages can keep a groom in this form
(metres, Y-up, i.e. ``units="m"`` on export); files without ``units`` / ``up`` keys (such as
``../shared/data/grooms/sintel_lite_guides.npz``) are read with the units the caller gives.

Units and axes: like every exporter, points, widths and head vertices are stored in the export
units after the up-axis remap of :mod:`engine.io.formats._common`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.errors import InputError
from engine.io.formats._common import ExportOptions, ReadResult
from engine.io.groom import Groom

SUFFIXES = (".npz",)
FIELDS = ("strands", "widths", "root_uv", "colors", "guide", "group_id", "head_vertices",
          "head_faces")


def write(groom: Groom, path: Path, options: ExportOptions) -> None:
    arrays = {k: getattr(groom, k) for k in FIELDS if getattr(groom, k) is not None}
    with open(path, "wb") as f:  # a file object: numpy must not append ".npz" to the temp name
        np.savez(f, units=np.array(options.units), up=np.array(options.up), **arrays)


def read(path: Path) -> ReadResult:
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: not a readable .npz groom ({e})") from None
    if "strands" not in data:
        raise InputError(f"{path}: the .npz file has no 'strands' array")
    groom = Groom(**{k: data[k] for k in FIELDS if k in data})
    units = str(data["units"]) if "units" in data else None
    up = str(data["up"]) if "up" in data else None
    return ReadResult(groom, units, up)
