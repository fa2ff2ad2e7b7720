"""Alembic (``.abc``) grooms through ``alembic3d`` (PyAlembic), as Unreal Engine's groom importer
and Maya/XGen and Houdini groom workflows read them.

Layout written (Ogawa archive):

* one ``ICurves`` per strand group, ``/hair_group_<id>``, non-periodic, ``kLinear`` (no basis)
  or ``kCubic`` with ``kCatmullromBasis`` (a cubic through the points);
* widths (strand diameters) on the curves' width param, ``kUniformScope`` (one per curve) or
  ``kVertexScope`` (one per point);
* arbitrary geometry params, as Unreal's groom schema names them: ``groom_root_uv`` (float2,
  uniform), ``groom_guide`` (int32, uniform, 1 = guide; written when the groom has guide flags),
  ``groom_group_id`` (int32, uniform), ``groom_color`` (color3f, uniform; when colours are
  written), ``groom_version_major`` / ``groom_version_minor`` (int16, constant);
* the head mesh, when given, as ``OPolyMesh`` ``/head`` with Alembic's clockwise winding (the
  triangles' vertex order is reversed on write and restored on read).

Units and axes: points, widths and head vertices are written in the export units after the
up-axis remap of :mod:`engine.io.formats._common` (``up="z"``: ``(x, y, z) -> (x, -z, y)``);
Alembic has no unit field, so the archive's user description holds ``strandcap units:.. up:..``
which :func:`engine.io.export.load_groom` uses to invert the conversion.

Reading takes every ``ICurves`` in the archive (transforms of parent Xforms are not applied) and
the first ``IPolyMesh`` as the head; control points of B-spline or Bezier curves from other tools
are taken as the strand points.
"""

from __future__ import annotations

from pathlib import Path

import imath
import numpy as np
from alembic3d import Abc
from alembic3d import AbcGeom as G

from engine.errors import InputError
from engine.io.formats._common import (
    GROOM_VERSION,
    ExportOptions,
    ReadResult,
    combine_strand_attrs,
    parse_tag,
    triangulate,
)
from engine.io.groom import Groom

SUFFIXES = (".abc",)

_UNI = G.GeometryScope.kUniformScope
_VTX = G.GeometryScope.kVertexScope
_CON = G.GeometryScope.kConstantScope


def write(groom: Groom, path: Path, options: ExportOptions) -> None:
    """Write ``groom`` (already in file units and axes) to ``path`` as an Alembic archive."""
    h: dict = {}  # every Alembic object lives here so that clearing it closes the archive
    try:
        h["archive"] = Abc.CreateArchiveWithInfo(
            str(path), "strandcap", options.tag.replace("=", ":"))  # Alembic forbids '=' here
        top = h["archive"].getTop()
        h["top"] = top
        cubic = options.basis == "catmull_rom"
        ctype = G.CurveType.kCubic if cubic else G.CurveType.kLinear
        basis = G.BasisType.kCatmullromBasis if cubic else G.BasisType.kNoBasis
        L = groom.points_per_strand
        for gid, idx in groom.groups():
            n = len(idx)
            pts = np.ascontiguousarray(groom.strands[idx].reshape(-1, 3), np.float32)
            counts = np.full(n, L, np.int32)
            if groom.widths is None:
                wsamp = G.OFloatGeomParamSample()
            else:
                w = np.ascontiguousarray(groom.widths[idx].reshape(-1), np.float32)
                scope = _UNI if groom.widths.ndim == 1 else _VTX
                wsamp = G.OFloatGeomParamSample(imath.FloatArrayFromBuffer(w), scope)
            sample = G.OCurvesSchemaSample(
                imath.V3fArrayFromBuffer(pts), imath.IntArrayFromBuffer(counts), ctype,
                G.CurvePeriodicity.kNonPeriodic, wsamp, G.OV2fGeomParamSample(),
                G.ON3fGeomParamSample(), basis)
            curves = G.OCurves(top, f"hair_group_{gid}")
            schema = curves.getSchema()
            schema.set(sample)
            arb = schema.getArbGeomParams()
            h[f"curves{gid}"] = (curves, schema, arb)
            if groom.root_uv is not None:
                p = G.OV2fGeomParam(arb, "groom_root_uv", False, _UNI, 1)
                uv = np.ascontiguousarray(groom.root_uv[idx], np.float32)
                p.set(G.OV2fGeomParamSample(imath.V2fArrayFromBuffer(uv), _UNI))
                h[f"uv{gid}"] = p
            if groom.guide is not None:
                p = G.OInt32GeomParam(arb, "groom_guide", False, _UNI, 1)
                gv = np.ascontiguousarray(groom.guide[idx], np.int32)
                p.set(G.OInt32GeomParamSample(imath.IntArrayFromBuffer(gv), _UNI))
                h[f"guide{gid}"] = p
            p = G.OInt32GeomParam(arb, "groom_group_id", False, _UNI, 1)
            p.set(G.OInt32GeomParamSample(imath.IntArrayFromBuffer(np.full(n, gid, np.int32)),
                                          _UNI))
            h[f"group{gid}"] = p
            if groom.colors is not None:
                p = G.OC3fGeomParam(arb, "groom_color", False, _UNI, 1)
                c = np.ascontiguousarray(groom.colors[idx], np.float32)
                arr = imath.C3fArray(imath.V3fArrayFromBuffer(c))
                p.set(G.OC3fGeomParamSample(arr, _UNI))
                h[f"color{gid}"] = p
            for name, value in (("groom_version_major", GROOM_VERSION[0]),
                                ("groom_version_minor", GROOM_VERSION[1])):
                p = G.OInt16GeomParam(arb, name, False, _CON, 1)
                a = imath.ShortArray(1)
                a[0] = value
                p.set(G.OInt16GeomParamSample(a, _CON))
                h[f"{name}{gid}"] = p
        if groom.has_head:
            mesh = G.OPolyMesh(top, "head")
            v = np.ascontiguousarray(groom.head_vertices, np.float32)
            f = np.ascontiguousarray(groom.head_faces[:, ::-1].reshape(-1), np.int32)
            cnt = np.full(len(groom.head_faces), 3, np.int32)
            mesh.getSchema().set(G.OPolyMeshSchemaSample(
                imath.V3fArrayFromBuffer(v), imath.IntArrayFromBuffer(f),
                imath.IntArrayFromBuffer(cnt)))
            h["mesh"] = mesh
    finally:
        h.clear()  # drops the last references: the archive is written and closed here


def _np(a) -> np.ndarray:
    return np.array(memoryview(a), copy=True)


def _arb_names(arb) -> set[str]:
    return {arb.getPropertyHeader(i).getName() for i in range(arb.getNumProperties())}


def _read_param(arb, names: set[str], name: str, classes) -> np.ndarray | None:
    if name not in names:
        return None
    for cls in classes:
        try:
            p = cls(arb, name)
            if p.valid():
                return _np(p.getExpandedValue().getVals())
        except Exception:  # noqa: BLE001 - wrong POD type: try the next class
            continue
    return None


def _walk(obj, out: list) -> None:
    for i in range(obj.getNumChildren()):
        c = obj.getChild(i)
        out.append(c)
        _walk(c, out)


def read(path: Path) -> ReadResult:
    """Read every curves object of an Alembic archive (first sample) into one groom in file
    coordinates; group ids from ``groom_group_id`` (else the curves object's order)."""
    try:
        archive = Abc.IArchive(str(path))
    except Exception as e:  # noqa: BLE001 - alembic raises RuntimeError/IOError variants
        raise InputError(f"{path}: not a readable Alembic archive ({e})") from None
    try:
        info = Abc.GetArchiveInfo(archive)
        tag = parse_tag(str(info.get("userDescription", ""))) if isinstance(info, dict) else None
    except Exception:  # noqa: BLE001
        tag = None
    objects: list = []
    _walk(archive.getTop(), objects)
    polylines, widths_list, wscope, uvs, guides, groups, colors, sizes = ([] for _ in range(8))
    head_v = head_f = None
    group_counter = 0
    for obj in objects:
        hdr = obj.getHeader()
        if G.ICurves.matches(hdr):
            schema = G.ICurves(obj.getParent(), obj.getName()).getSchema()
            smp = schema.getValue()
            pts = _np(smp.getPositions()).reshape(-1, 3)
            counts = _np(smp.getCurvesNumVertices()).astype(np.int64)
            if counts.sum() != len(pts):
                raise InputError(f"{path}: curves {obj.getName()} have {len(pts)} points but "
                                 f"their vertex counts add up to {counts.sum()}")
            n = len(counts)
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
            polylines += [pts[s:s + c] for s, c in zip(starts, counts)]
            wp = schema.getWidthsParam()
            w = None
            if wp.valid():
                w = _np(wp.getExpandedValue().getVals()).astype(np.float32)
                if len(w) == n:
                    widths_list += list(w)
                    wscope.append("uniform")
                elif len(w) == len(pts):
                    widths_list += [w[s:s + c] for s, c in zip(starts, counts)]
                    wscope.append("vertex")
                elif len(w) == 1:
                    widths_list += [w[0]] * n
                    wscope.append("uniform")
                else:
                    w = None
            if w is None:
                widths_list += [None] * n
                wscope.append("none")
            arb = schema.getArbGeomParams()
            names = _arb_names(arb) if arb.valid() else set()
            uv = _read_param(arb, names, "groom_root_uv", (G.IV2fGeomParam, G.IP2fGeomParam))
            uvs.append(uv.reshape(-1, 2)[:n] if uv is not None and uv.size >= 2 * n else None)
            gd = _read_param(arb, names, "groom_guide",
                             (G.IInt32GeomParam, G.IInt16GeomParam, G.IInt64GeomParam))
            guides.append(None if gd is None else np.broadcast_to(gd.reshape(-1)[:n], (n,)))
            gi = _read_param(arb, names, "groom_group_id",
                             (G.IInt32GeomParam, G.IInt16GeomParam, G.IInt64GeomParam))
            groups.append(np.broadcast_to(gi.reshape(-1)[:n], (n,)).astype(np.int32)
                          if gi is not None else np.full(n, group_counter, np.int32))
            col = _read_param(arb, names, "groom_color", (G.IC3fGeomParam, G.IV3fGeomParam))
            colors.append(col.reshape(-1, 3)[:n] if col is not None and col.size >= 3 * n
                          else None)
            sizes.append(n)
            group_counter += 1
        elif G.IPolyMesh.matches(hdr) and head_v is None:
            smp = G.IPolyMesh(obj.getParent(), obj.getName()).getSchema().getValue()
            head_v = _np(smp.getPositions()).reshape(-1, 3)
            idx = _np(smp.getFaceIndices()).astype(np.int64)
            cnt = _np(smp.getFaceCounts()).astype(np.int64)
            head_f = triangulate(idx, cnt)[:, ::-1]
    if not polylines:
        raise InputError(f"{path}: the Alembic archive has no curves")
    keep = np.array([len(p) >= 2 for p in polylines])
    attrs = combine_strand_attrs(uvs, guides, groups, colors, sizes)
    widths = None
    if "none" not in wscope:
        widths = ([widths_list[i] for i in np.flatnonzero(keep)] if "vertex" in wscope
                  else np.asarray(widths_list, np.float32)[keep])
        if "vertex" in wscope:
            widths = [np.broadcast_to(np.asarray(w, np.float32), (len(p),))
                      for w, p in zip(widths, [polylines[i] for i in np.flatnonzero(keep)])]
    attrs = {k: (None if v is None else v[keep]) for k, v in attrs.items()}
    groom = Groom.from_polylines(
        [p for p, k in zip(polylines, keep) if k], widths=widths, source=str(path),
        head_vertices=head_v, head_faces=head_f, **attrs)
    return ReadResult(groom, *(tag or (None, None)))
