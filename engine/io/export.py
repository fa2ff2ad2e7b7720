"""Public entry points for groom files: :func:`export_groom` and :func:`load_groom`.

Formats (by suffix): Alembic ``.abc``, USD ``.usd/.usda/.usdc``, OBJ ``.obj``, PLY ``.ply``,
Cem Yuksel ``.hair``, Strandcap's own ``.npz`` (all read and written), USC-HairSalon ``.data``
and TressFX ``.tfx`` (read only).

Exporters are pure functions of (groom, options): the groom (head-frame metres) is converted to
the file's units and up axis by :func:`engine.io.formats._common.to_file_frame` (scale by 1, 100 or
1000 for m, cm, mm; for ``up="z"`` the rotation ``(x, y, z) -> (x, -z, y)``), optionally given K
guide strands, then written *atomically*: into a temporary file in the destination folder
which is renamed over the destination with :func:`os.replace` only once complete. On any error
the temporary file is removed and an existing destination is left untouched.

``.npz`` is Strandcap's own groom file and always holds the data contract: metres, head frame
(Y-up); the ``units`` / ``up`` options do not apply to it. Old ``.npz`` files that store
``units="cm"`` (or another unit / up axis) are converted on load from their stored fields.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable

import numpy as np

from engine.errors import InputError, StrandcapError
from engine.io.files import atomic_path
from engine.io.formats import abc as _abc
from engine.io.formats import hair as _hair
from engine.io.formats import npz as _npz
from engine.io.formats import obj as _obj
from engine.io.formats import ply as _ply
from engine.io.formats import tfx as _tfx
from engine.io.formats import usc_data as _usc
from engine.io.formats import usd as _usd
from engine.io.formats._common import (
    UNIT_SCALE,
    ExportError,
    ExportOptions,
    ReadResult,
    check_units_up,
    from_file_frame,
    to_file_frame,
)
from engine.io.groom import Groom, farthest_root_sample

__all__ = [
    "export_groom",
    "load_groom",
    "prepare_for_export",
    "atomic_write",
    "ExportOptions",
    "ExportError",
    "WRITE_FORMATS",
    "READ_FORMATS",
    "format_from_path",
    "head_path",
]

# Formats with a per-strand guide flag: ``guides=K`` writes the render strands plus K guides.
_GUIDE_FLAG_FORMATS = ("abc", "usd", "ply", "npz")

_MODULES = {"abc": _abc, "usd": _usd, "obj": _obj, "ply": _ply, "hair": _hair,
            "npz": _npz, "data": _usc, "tfx": _tfx}
WRITE_FORMATS = ("abc", "usd", "obj", "ply", "hair", "npz")
READ_FORMATS = tuple(_MODULES)

# Units and up axis assumed when a file does not say (and the caller does not either).
_DEFAULT_READ = {"abc": ("cm", "y"), "usd": ("cm", "y"), "obj": ("cm", "y"), "ply": ("cm", "y"),
                 "hair": ("cm", "y"), "npz": ("m", "y"), "data": ("m", "y"), "tfx": ("cm", "y")}


def format_from_path(path: str | os.PathLike, fmt: str | None = None) -> str:
    """The format name for ``path``: ``fmt`` if given (checked), else from the suffix.
    Raises InputError for an unknown format."""
    if fmt is not None:
        f = fmt.lower().lstrip(".")
        f = {"alembic": "abc", "usda": "usd", "usdc": "usd"}.get(f, f)
        if f not in _MODULES:
            raise InputError(f"{path}: unknown groom format {fmt!r} "
                             f"(use one of {', '.join(READ_FORMATS)})")
        return f
    suffix = Path(path).suffix.lower()
    for name, mod in _MODULES.items():
        if suffix in mod.SUFFIXES:
            return name
    raise InputError(f"{path}: cannot tell the groom format from the suffix {suffix!r} "
                     f"(use .abc, .usd, .obj, .ply, .hair, .npz, .data or .tfx)")


def prepare_for_export(groom: Groom, options: ExportOptions, fmt: str | None = None) -> Groom:
    """The groom as the file will hold it: guides (if ``options.guides``), colours dropped
    unless ``options.colors``, head dropped unless ``options.head``, then points, widths and
    head vertices converted to file units and axes. Pure; the input is not changed.

    Guides: K strands picked by :func:`engine.io.groom.farthest_root_sample` from the render
    strands (those not already flagged as guides) are appended as copies flagged
    ``guide=True`` after all render strands (``guide=False``), with their group ids, widths,
    UVs and colours; for ``fmt`` "obj" or "hair" (no guide flag in the file) the K guides
    alone are kept. ``fmt`` None counts as a format with a guide flag."""
    g = groom
    if options.guides is not None:
        render = (np.arange(g.num_strands) if g.guide is None or g.guide.all()
                  else np.flatnonzero(~g.guide))
        pick = render[farthest_root_sample(g.strands[render, 0], int(options.guides))]
        guides = g.subset(pick).replace(guide=np.ones(len(pick), bool))
        if fmt is not None and fmt not in _GUIDE_FLAG_FORMATS:
            g = guides
        else:
            dense = g.subset(render).replace(guide=np.zeros(len(render), bool))
            g = _concat(dense, guides)
    s = options.scale
    return g.replace(
        strands=to_file_frame(g.strands, options.units, options.up),
        widths=None if g.widths is None else (g.widths.astype(np.float64) * s).astype(np.float32),
        colors=g.colors if options.colors else None,
        head_vertices=(to_file_frame(g.head_vertices, options.units, options.up)
                       if (g.has_head and options.head) else None),
        head_faces=g.head_faces if (g.has_head and options.head) else None,
    )


def _concat(a: Groom, b: Groom) -> Groom:
    """The strands of ``a`` then those of ``b`` (same point count; attributes that one side
    lacks are dropped, per-strand widths expanded to per point when the other has per point);
    the head of ``a``."""
    def cat(x, y):
        return None if x is None or y is None else np.concatenate([x, y])

    if a.widths is not None and b.widths is not None and a.widths.ndim != b.widths.ndim:
        widths = np.concatenate([a.vertex_widths(), b.vertex_widths()])
    else:
        widths = cat(a.widths, b.widths)
    return Groom(strands=np.concatenate([a.strands, b.strands]), widths=widths,
                 root_uv=cat(a.root_uv, b.root_uv), colors=cat(a.colors, b.colors),
                 guide=cat(a.guide, b.guide), group_id=cat(a.group_id, b.group_id),
                 head_vertices=a.head_vertices, head_faces=a.head_faces)


def head_path(path: str | os.PathLike) -> Path:
    """Where :func:`export_groom` writes the head of an Alembic groom ``path`` with
    ``head_file=True``: ``<stem>_head.abc`` in the same folder."""
    p = Path(path)
    return p.with_name(f"{p.stem}_head.abc")


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a fresh temporary path in ``path``'s folder (same suffix) and
    rename it over ``path``, through the engine's one atomic writer
    (:func:`engine.io.files.atomic_path`). On any error the temporary file is removed, an
    existing ``path`` is untouched, and OS errors become :class:`ExportError` naming the file.
    Returns the destination path.

    Raises:
        ExportError: the folder is missing or read-only, ``path`` is a folder, the disk is full.
    """
    dest = Path(path)
    folder = dest.parent
    if not folder.exists():
        raise ExportError(f"{dest}: the folder {folder} does not exist")
    if not folder.is_dir():
        raise ExportError(f"{dest}: {folder} is not a folder")
    if dest.is_dir():
        raise ExportError(f"{dest}: is a folder, not a file name")
    try:
        with atomic_path(dest) as tmp:
            write(tmp)
    except StrandcapError:
        raise
    except PermissionError as e:
        raise ExportError(f"{dest}: permission denied, cannot write here ({e.strerror or e})") \
            from None
    except OSError as e:
        raise ExportError(f"{dest}: cannot write the file ({e.strerror or e})") from None
    return dest


def export_groom(
    groom: Groom,
    path: str | os.PathLike,
    fmt: str | None = None,
    *,
    units: str = "cm",
    up: str = "y",
    guides: int | None = None,
    basis: str = "linear",
    colors: bool = True,
    head: bool = True,
    head_file: bool = False,
    options: ExportOptions | None = None,
) -> Path:
    """Write ``groom`` to ``path`` atomically.

    ``groom``: :class:`Groom` in head-frame metres. ``fmt``: "abc", "usd", "obj", "ply",
    "hair", "npz" or None (from the suffix). ``units``: "m", "cm" (default) or "mm". ``up``:
    "y" (default) or "z" (``(x, y, z) -> (x, -z, y)``). For ``.npz`` both are ignored: it always
    holds metres, Y-up. ``guides``: also write K evenly spread strands (farthest-point sampling
    of the roots, deterministic) flagged as guides, after the render strands (OBJ and .hair,
    which have no guide flag: the K guides alone). ``basis``: "linear" or "catmull_rom"
    (Alembic, USD). ``colors`` / ``head``: write per-strand colours / the head mesh inside the
    file when present (USD, OBJ, npz; an Alembic groom never holds a mesh). ``head_file``: for
    Alembic, also write the head to :func:`head_path` (``<stem>_head.abc``, same units and axes,
    atomically, before the groom). ``options`` overrides the keyword options.

    Returns the written groom path. Raises :class:`ExportError` (missing folder, not writable,
    disk full), :class:`engine.errors.InputError` (unknown or read-only format),
    :class:`engine.errors.ConfigError` (bad option values).
    """
    if not isinstance(groom, Groom):
        raise InputError(f"{path}: export_groom needs a Groom, got {type(groom).__name__}")
    name = format_from_path(path, fmt)
    if name not in WRITE_FORMATS:
        raise InputError(f"{path}: the {name!r} format can be read but not written "
                         f"(write one of {', '.join(WRITE_FORMATS)})")
    opts = options or ExportOptions(units=units, up=up, guides=guides, basis=basis,
                                    colors=colors, head=head, head_file=head_file)
    if name == "npz":
        opts = dataclasses.replace(opts, units="m", up="y")  # the data contract, always
    file_groom = prepare_for_export(groom, opts, name)
    mod = _MODULES[name]
    if name == "abc" and opts.head_file and groom.has_head:
        head_groom = file_groom if file_groom.has_head else prepare_for_export(
            groom, dataclasses.replace(opts, head=True, guides=None), name)
        atomic_write(head_path(path), lambda tmp: _abc.write_head(head_groom, tmp, opts))
    return atomic_write(path, lambda tmp: mod.write(file_groom, tmp, opts))


def load_groom(
    path: str | os.PathLike,
    fmt: str | None = None,
    *,
    units: str | None = None,
    up: str | None = None,
    points_per_strand: int | None = None,
) -> Groom:
    """Read a groom file into head-frame metres.

    ``fmt``: format name or None (from the suffix). For an Alembic groom without a mesh, the
    head is read from :func:`head_path` (``<stem>_head.abc``) when that file exists.
    ``units`` / ``up``: the file's units and up
    axis; None means: what the file declares (USD stage metadata, or the ``strandcap units=..
    up=..`` tag our exporters write into Alembic archive info, OBJ/PLY comments and the ``.hair``
    info field, the ``units``/``up`` arrays of ``.npz``), else the format's default (cm and
    Y-up; metres for ``.npz`` and USC-HairSalon ``.data``). ``points_per_strand``: only for a
    PLY point cloud without strand ids or edges (Neural Haircut's raw output): the number of
    consecutive points that make one strand.
    The inverse of the export conversion is applied. Strands with varying point counts are
    resampled uniformly by arc length to the largest count (:meth:`Groom.from_polylines`).

    Raises :class:`engine.errors.InputError` naming the file for a missing, unreadable or
    malformed file.
    """
    p = Path(path)
    name = format_from_path(p, fmt)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    if name == "ply":
        res: ReadResult = _ply.read(p, points_per_strand=points_per_strand)
    else:
        res = _MODULES[name].read(p)
    if name == "abc" and not res.groom.has_head and head_path(p).is_file() \
            and head_path(p) != p:
        try:
            side = _abc.read_head(head_path(p))
        except InputError:
            side = None
        if side is not None:
            res = dataclasses.replace(res, groom=res.groom.replace(
                head_vertices=side[0], head_faces=side[1]))
    du, dup = _DEFAULT_READ[name]
    u = units or res.units or du
    a = up or res.up or dup
    check_units_up(u, a, p)
    g: Groom = res.groom
    s = UNIT_SCALE[u]
    return g.replace(
        strands=from_file_frame(g.strands, u, a),
        widths=None if g.widths is None else (g.widths.astype(np.float64) / s).astype(np.float32),
        head_vertices=None if g.head_vertices is None else from_file_frame(g.head_vertices, u, a),
    )
