"""Alembic (``.abc``) grooms through ``alembic3d`` (PyAlembic), as Unreal Engine's groom importer
(``AlembicHairTranslator``, "Alembic for Grooms" schema 1.5) and Maya/XGen, Houdini and Blender
read them.

Layout written (Ogawa archive), nothing but curves (a polygon mesh in the archive makes Unreal
refuse it as a groom; the head goes to its own file, :func:`write_head`):

* per strand group one ``ICurves`` ``/hair_group_<id>`` with the render strands and, when the
  groom has guide strands, one ``ICurves`` ``/hair_group_<id>_guides`` with the guides (both in
  the same file, told apart by ``groom_guide``); non-periodic, ``kLinear`` (no basis) or
  ``kCubic`` with ``kCatmullromBasis`` (a cubic through the points);
* widths (strand diameters) on the curves' width param: ``kVertexScope`` (one per point), or
  ``kConstantScope`` with one value when every width of the object is equal. Never one per
  curve: Blender 4.5 reads any width array longer than one as per point;
* arbitrary geometry params, as Unreal's groom schema names them: ``groom_root_uv`` (float2,
  uniform), ``groom_guide`` (int32, uniform, 1 = guide, 0 = render strand; written when the
  groom has guide flags), ``groom_group_id`` (int32, uniform), ``groom_color`` (color3f,
  vertex: the strand's colour repeated on each of its points; when colours are written);
* groom-level properties ``groom_version_major`` / ``groom_version_minor`` (int16 scalars, 1 / 5)
  and ``groom_tool`` (string) in each curves object's user properties (the schema's "topmost
  node: IXform or ICurves"), not among the per-strand geometry parameters.

Units and axes: points and widths are written in the export units after the up-axis remap of
:mod:`engine.io.formats._common` (``up="z"``: ``(x, y, z) -> (x, -z, y)``); Alembic has no unit
field, so the archive's user description holds ``strandcap units:.. up:..`` which
:func:`engine.io.export.load_groom` uses to invert the conversion. Blender's importer converts
Alembic from Y-up to its Z-up itself and imports at scale 1 (file unit = metre).

:func:`write_head` writes the head mesh alone as ``OPolyMesh`` ``/head`` with Alembic's clockwise
winding (the triangles' vertex order is reversed on write and restored on read).

Reading takes every ``ICurves`` in the archive (transforms of parent Xforms are not applied;
guides and render strands alike, ``groom_guide`` kept) and the first ``IPolyMesh`` as the head;
control points of B-spline or Bezier curves from other tools are taken as the strand points.
Per-point widths that are constant along every strand of an object are read as per-strand
widths; a vertex-scope ``groom_color`` gives each strand its root's colour.
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
    read_widths,
    triangulate,
)
from engine.io.groom import Groom

SUFFIXES = (".abc",)

_UNI = G.GeometryScope.kUniformScope
_VTX = G.GeometryScope.kVertexScope
_CON = G.GeometryScope.kConstantScope


def _widths_sample(widths: np.ndarray | None, n_points: int):
    """The width param sample: None -> empty; all equal -> one constant; else per point."""
    if widths is None:
        return G.OFloatGeomParamSample()
    w = np.ascontiguousarray(np.broadcast_to(widths, (n_points,)) if widths.size == 1
                             else widths.reshape(-1), np.float32)
    if len(w) == 0 or (w == w[0]).all():
        return G.OFloatGeomParamSample(imath.FloatArrayFromBuffer(w[:1].copy()), _CON)
    return G.OFloatGeomParamSample(imath.FloatArrayFromBuffer(w), _VTX)


def write(groom: Groom, path: Path, options: ExportOptions) -> None:
    """Write ``groom`` (already in file units and axes) to ``path`` as an Alembic groom archive:
    curves only (see the module docstring); the head mesh, if any, is not written here."""
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
        vw = groom.vertex_widths()
        for gid, gidx in groom.groups():
            parts = [("", gidx)]
            if groom.guide is not None:
                parts = [(sfx, gidx[sel]) for sfx, sel in
                         (("", ~groom.guide[gidx]), ("_guides", groom.guide[gidx]))
                         if sel.any()]
            for suffix, idx in parts:
                key = f"{gid}{suffix}"
                n = len(idx)
                pts = np.ascontiguousarray(groom.strands[idx].reshape(-1, 3), np.float32)
                counts = np.full(n, L, np.int32)
                wsamp = _widths_sample(None if vw is None else vw[idx], n * L)
                sample = G.OCurvesSchemaSample(
                    imath.V3fArrayFromBuffer(pts), imath.IntArrayFromBuffer(counts), ctype,
                    G.CurvePeriodicity.kNonPeriodic, wsamp, G.OV2fGeomParamSample(),
                    G.ON3fGeomParamSample(), basis)
                curves = G.OCurves(top, f"hair_group_{key}")
                schema = curves.getSchema()
                schema.set(sample)
                arb = schema.getArbGeomParams()
                user = schema.getUserProperties()
                h[f"curves{key}"] = (curves, schema, arb, user)
                if groom.root_uv is not None:
                    p = G.OV2fGeomParam(arb, "groom_root_uv", False, _UNI, 1)
                    uv = np.ascontiguousarray(groom.root_uv[idx], np.float32)
                    p.set(G.OV2fGeomParamSample(imath.V2fArrayFromBuffer(uv), _UNI))
                    h[f"uv{key}"] = p
                if groom.guide is not None:
                    p = G.OInt32GeomParam(arb, "groom_guide", False, _UNI, 1)
                    gv = np.ascontiguousarray(groom.guide[idx], np.int32)
                    p.set(G.OInt32GeomParamSample(imath.IntArrayFromBuffer(gv), _UNI))
                    h[f"guide{key}"] = p
                p = G.OInt32GeomParam(arb, "groom_group_id", False, _UNI, 1)
                p.set(G.OInt32GeomParamSample(
                    imath.IntArrayFromBuffer(np.full(n, gid, np.int32)), _UNI))
                h[f"group{key}"] = p
                if groom.colors is not None:
                    p = G.OC3fGeomParam(arb, "groom_color", False, _VTX, 1)
                    c = np.ascontiguousarray(np.repeat(groom.colors[idx], L, axis=0), np.float32)
                    arr = imath.C3fArray(imath.V3fArrayFromBuffer(c))
                    p.set(G.OC3fGeomParamSample(arr, _VTX))
                    h[f"color{key}"] = p
                for name, value in (("groom_version_major", GROOM_VERSION[0]),
                                    ("groom_version_minor", GROOM_VERSION[1])):
                    prop = Abc.OInt16Property(user, name)
                    prop.setValue(int(value))
                    h[f"{name}{key}"] = prop
                prop = Abc.OStringProperty(user, "groom_tool")
                prop.setValue("strandcap")
                h[f"tool{key}"] = prop
    finally:
        h.clear()  # drops the last references: the archive is written and closed here


def write_head(groom: Groom, path: Path, options: ExportOptions) -> None:
    """Write the head mesh of ``groom`` (already in file units and axes) alone to ``path`` as
    an Alembic archive with one ``OPolyMesh`` ``/head`` (clockwise winding: each triangle's
    vertex order reversed). Raises ValueError when the groom has no head."""
    if not groom.has_head:
        raise ValueError("the groom has no head mesh")
    h: dict = {}
    try:
        h["archive"] = Abc.CreateArchiveWithInfo(
            str(path), "strandcap", options.tag.replace("=", ":"))
        top = h["archive"].getTop()
        h["top"] = top
        mesh = G.OPolyMesh(top, "head")
        v = np.ascontiguousarray(groom.head_vertices, np.float32)
        f = np.ascontiguousarray(groom.head_faces[:, ::-1].reshape(-1), np.int32)
        cnt = np.full(len(groom.head_faces), 3, np.int32)
        mesh.getSchema().set(G.OPolyMeshSchemaSample(
            imath.V3fArrayFromBuffer(v), imath.IntArrayFromBuffer(f),
            imath.IntArrayFromBuffer(cnt)))
        h["mesh"] = mesh
    finally:
        h.clear()


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
            w = _np(wp.getExpandedValue().getVals()) if wp.valid() else None
            vals, scope = read_widths(w, starts, counts, len(pts))
            widths_list += vals
            wscope.append(scope)
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
            if col is not None and col.size == 3 * len(pts) and len(pts) != n:
                col = col.reshape(-1, 3)[starts]  # vertex scope: the root's colour
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


def read_head(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The first polygon mesh of an Alembic archive (e.g. a head written by :func:`write_head`)
    as ``(vertices (V, 3) float32, triangles (F, 3) int64)`` in file coordinates, or None when
    the archive has none. Raises InputError for an unreadable file."""
    try:
        archive = Abc.IArchive(str(path))
    except Exception as e:  # noqa: BLE001
        raise InputError(f"{path}: not a readable Alembic archive ({e})") from None
    objects: list = []
    _walk(archive.getTop(), objects)
    for obj in objects:
        if G.IPolyMesh.matches(obj.getHeader()):
            smp = G.IPolyMesh(obj.getParent(), obj.getName()).getSchema().getValue()
            v = _np(smp.getPositions()).reshape(-1, 3).astype(np.float32)
            idx = _np(smp.getFaceIndices()).astype(np.int64)
            cnt = _np(smp.getFaceCounts()).astype(np.int64)
            return v, triangulate(idx, cnt)[:, ::-1]
    return None
