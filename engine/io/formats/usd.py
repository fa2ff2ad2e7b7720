"""USD grooms (``.usd``, ``.usda``, ``.usdc``) through ``usd-core``.

Layout written: default prim ``/groom`` (Xform); per strand group one ``UsdGeom.BasisCurves``
``/groom/hair_group_<id>`` with the render strands and, when the groom has guide strands, one
``/groom/hair_group_<id>_guides`` with the guides; each with ``curveVertexCounts``, ``points``,
``widths`` (strand diameters; interpolation ``vertex``, one per point, or ``constant``, one value,
when every width of the prim is equal; never ``uniform``, which Blender 4.5 reads as per point),
type ``linear`` or ``cubic`` with basis ``catmullRom`` and wrap ``pinned`` (the cubic reaches the
first and last points, so roots stay on the scalp; linear curves are ``nonperiodic``), the primvars
``groom_root_uv`` (texCoord2f[], uniform), ``groom_guide`` (int[], uniform, 1 = guide; when the
groom has guide flags), ``groom_group_id`` (int[], uniform) and ``displayColor`` (color3f[],
uniform; when colours are written); the head mesh, when given, as ``UsdGeom.Mesh``
``/groom/head`` (right-handed orientation, counter-clockwise triangles).

Units and axes: points, widths and head vertices are written in the export units after the
up-axis remap of :mod:`engine.io.formats._common` (``up="z"``: ``(x, y, z) -> (x, -z, y)``); the
stage's ``metersPerUnit`` (1, 0.01 or 0.001) and ``upAxis`` (Y or Z) say so, and reading uses them.

Reading takes every BasisCurves prim (with its local-to-world transform applied) and the first
Mesh as the head; the root UV comes from ``groom_root_uv``, else ``st``, else ``uv``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.errors import InputError
from engine.io.formats._common import (
    ExportOptions,
    ReadResult,
    combine_strand_attrs,
    read_widths,
    triangulate,
)
from engine.io.groom import Groom

SUFFIXES = (".usd", ".usda", ".usdc")


def _write_curves(stage, prim_path: str, groom: Groom, idx: np.ndarray, gid: int,
                  vw: np.ndarray | None, options: ExportOptions, L: int) -> None:
    """One BasisCurves prim with the strands ``idx`` of ``groom`` (see the module docstring)."""
    from pxr import Sdf, UsdGeom, Vt

    n = len(idx)
    c = UsdGeom.BasisCurves.Define(stage, prim_path)
    if options.basis == "catmull_rom":
        c.CreateTypeAttr(UsdGeom.Tokens.cubic)
        c.CreateBasisAttr(UsdGeom.Tokens.catmullRom)
        c.CreateWrapAttr(UsdGeom.Tokens.pinned)
    else:
        c.CreateTypeAttr(UsdGeom.Tokens.linear)
        c.CreateWrapAttr(UsdGeom.Tokens.nonperiodic)
    c.CreateCurveVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(n, L, np.int32)))
    pts = np.ascontiguousarray(groom.strands[idx].reshape(-1, 3), np.float32)
    c.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(pts))
    pad = 0.0 if vw is None else float(vw[idx].max()) / 2
    lo, hi = pts.min(0) - pad, pts.max(0) + pad
    c.CreateExtentAttr(Vt.Vec3fArray.FromNumpy(np.stack([lo, hi]).astype(np.float32)))
    if vw is not None:
        w = np.ascontiguousarray(vw[idx].reshape(-1), np.float32)
        if (w == w[0]).all():
            c.CreateWidthsAttr(Vt.FloatArray.FromNumpy(w[:1].copy()))
            c.SetWidthsInterpolation(UsdGeom.Tokens.constant)
        else:
            c.CreateWidthsAttr(Vt.FloatArray.FromNumpy(w))
            c.SetWidthsInterpolation(UsdGeom.Tokens.vertex)
    pv = UsdGeom.PrimvarsAPI(c)
    if groom.root_uv is not None:
        p = pv.CreatePrimvar("groom_root_uv", Sdf.ValueTypeNames.TexCoord2fArray,
                             UsdGeom.Tokens.uniform)
        p.Set(Vt.Vec2fArray.FromNumpy(np.ascontiguousarray(groom.root_uv[idx])))
    if groom.guide is not None:
        p = pv.CreatePrimvar("groom_guide", Sdf.ValueTypeNames.IntArray, UsdGeom.Tokens.uniform)
        p.Set(Vt.IntArray.FromNumpy(groom.guide[idx].astype(np.int32)))
    p = pv.CreatePrimvar("groom_group_id", Sdf.ValueTypeNames.IntArray, UsdGeom.Tokens.uniform)
    p.Set(Vt.IntArray.FromNumpy(np.full(n, gid, np.int32)))
    if groom.colors is not None:
        p = c.CreateDisplayColorPrimvar(UsdGeom.Tokens.uniform)
        p.Set(Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(groom.colors[idx])))


def write(groom: Groom, path: Path, options: ExportOptions) -> None:
    """Write ``groom`` (already in file units and axes) to ``path`` as a USD stage; the
    suffix picks the encoding (``.usda`` text, ``.usd`` / ``.usdc`` binary crate)."""
    from pxr import Usd, UsdGeom, Vt

    stage = Usd.Stage.CreateNew(str(path))
    try:
        UsdGeom.SetStageMetersPerUnit(stage, 1.0 / options.scale)
        UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z if options.up == "z" else UsdGeom.Tokens.y)
        root = UsdGeom.Xform.Define(stage, "/groom")
        stage.SetDefaultPrim(root.GetPrim())
        stage.GetRootLayer().documentation = options.tag
        L = groom.points_per_strand
        vw = groom.vertex_widths()
        for gid, gidx in groom.groups():
            parts = [("", gidx)]
            if groom.guide is not None:
                parts = [(sfx, gidx[sel]) for sfx, sel in
                         (("", ~groom.guide[gidx]), ("_guides", groom.guide[gidx]))
                         if sel.any()]
            for suffix, idx in parts:
                _write_curves(stage, f"/groom/hair_group_{gid}{suffix}", groom, idx, gid, vw,
                              options, L)
        if groom.has_head:
            m = UsdGeom.Mesh.Define(stage, "/groom/head")
            m.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(groom.head_vertices)))
            m.CreateFaceVertexCountsAttr(
                Vt.IntArray.FromNumpy(np.full(len(groom.head_faces), 3, np.int32)))
            m.CreateFaceVertexIndicesAttr(
                Vt.IntArray.FromNumpy(np.ascontiguousarray(groom.head_faces.reshape(-1))))
            m.CreateOrientationAttr(UsdGeom.Tokens.rightHanded)
            m.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
        stage.GetRootLayer().Save()
    finally:
        del stage


def _get(attr):
    v = attr.Get() if attr and attr.HasValue() else None
    return None if v is None else np.asarray(v)


def _strand_primvar(pv, n: int, counts: np.ndarray, width: int | None):
    """A primvar's values as one row per strand (uniform: as is; constant: repeated; vertex or
    varying: the root's value), or None."""
    if not pv or not pv.HasValue():
        return None
    v = np.asarray(pv.ComputeFlattened())
    if v.size == 0:
        return None
    v = v.reshape(len(v), -1) if width else v.reshape(-1)
    interp = pv.GetInterpolation()
    if interp == "constant" or len(v) == 1:
        return np.repeat(v[:1], n, axis=0)
    if len(v) == n:
        return v
    if len(v) == counts.sum():
        return v[np.concatenate([[0], np.cumsum(counts)[:-1]])]
    return None


def read(path: Path) -> ReadResult:
    """Read every BasisCurves prim of a USD stage into one groom in file coordinates; the units
    and up axis come from the stage's ``metersPerUnit`` and ``upAxis``."""
    from pxr import Usd, UsdGeom

    try:
        stage = Usd.Stage.Open(str(path))
    except Exception as e:  # noqa: BLE001 - pxr raises Tf.ErrorException
        raise InputError(f"{path}: not a readable USD file ({str(e).strip().splitlines()[-1]})") \
            from None
    if stage is None:
        raise InputError(f"{path}: not a readable USD file")
    mpu = UsdGeom.GetStageMetersPerUnit(stage)
    units = {1.0: "m", 0.01: "cm", 0.001: "mm"}.get(round(mpu, 6)) if mpu else None
    up = str(UsdGeom.GetStageUpAxis(stage)).lower()
    polylines, widths_list, wscope, uvs, guides, groups, colors, sizes = ([] for _ in range(8))
    head_v = head_f = None
    tc = Usd.TimeCode.Default()
    for k, prim in enumerate(p for p in stage.Traverse() if p.IsA(UsdGeom.BasisCurves)):
        c = UsdGeom.BasisCurves(prim)
        pts = _get(c.GetPointsAttr())
        counts = _get(c.GetCurveVertexCountsAttr())
        if pts is None or counts is None:
            continue
        pts = _transform(pts.astype(np.float64), c.ComputeLocalToWorldTransform(tc))
        counts = counts.astype(np.int64)
        if counts.sum() != len(pts):
            raise InputError(f"{path}: {prim.GetPath()} has {len(pts)} points but its "
                             f"curveVertexCounts add up to {counts.sum()}")
        n = len(counts)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        polylines += [pts[s:s + m] for s, m in zip(starts, counts)]
        vals, scope = read_widths(_get(c.GetWidthsAttr()), starts, counts, len(pts))
        widths_list += vals
        wscope.append(scope)
        api = UsdGeom.PrimvarsAPI(c)
        uv = None
        for name in ("groom_root_uv", "st", "uv"):
            uv = _strand_primvar(api.GetPrimvar(name), n, counts, 2)
            if uv is not None:
                break
        uvs.append(uv)
        gd = _strand_primvar(api.GetPrimvar("groom_guide"), n, counts, None)
        guides.append(None if gd is None else gd.astype(bool))
        gi = _strand_primvar(api.GetPrimvar("groom_group_id"), n, counts, None)
        groups.append(np.full(n, k, np.int32) if gi is None else gi.astype(np.int32))
        colors.append(_strand_primvar(api.GetPrimvar("displayColor"), n, counts, 3))
        sizes.append(n)
    for prim in stage.Traverse():
        if prim.IsA(UsdGeom.Mesh):
            m = UsdGeom.Mesh(prim)
            v = _get(m.GetPointsAttr())
            idx = _get(m.GetFaceVertexIndicesAttr())
            cnt = _get(m.GetFaceVertexCountsAttr())
            if v is None or idx is None or cnt is None:
                continue
            head_v = _transform(v.astype(np.float64), m.ComputeLocalToWorldTransform(tc))
            head_f = triangulate(idx, cnt)
            if m.GetOrientationAttr().Get() == UsdGeom.Tokens.leftHanded:
                head_f = head_f[:, ::-1]
            break
    del stage
    if not polylines:
        raise InputError(f"{path}: the USD file has no BasisCurves")
    keep = np.array([len(p) >= 2 for p in polylines])
    attrs = combine_strand_attrs(uvs, guides, groups, colors, sizes)
    attrs = {k: (None if v is None else v[keep]) for k, v in attrs.items()}
    kept = [p for p, k in zip(polylines, keep) if k]
    widths = None
    if "none" not in wscope:
        ws = [widths_list[i] for i in np.flatnonzero(keep)]
        if "vertex" in wscope:
            widths = [np.broadcast_to(np.asarray(w, np.float32), (len(p),))
                      for w, p in zip(ws, kept)]
        else:
            widths = np.asarray(ws, np.float32)
    groom = Groom.from_polylines(kept, widths=widths, source=str(path),
                                 head_vertices=head_v, head_faces=head_f, **attrs)
    return ReadResult(groom, units, up if up in ("y", "z") else None)


def _transform(points: np.ndarray, matrix) -> np.ndarray:
    """Apply a Gf.Matrix4d (row-vector convention, as USD uses) to ``(P, 3)`` points."""
    m = np.array(matrix, np.float64).reshape(4, 4)
    if np.allclose(m, np.eye(4)):
        return points
    return points @ m[:3, :3] + m[3, :3]
