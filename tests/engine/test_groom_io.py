"""Groom export / import: round trips read back with each format's own library (alembic3d,
usd-core) or an independent reader written here (OBJ, PLY, .hair), unit and axis options,
atomic writes, clear errors, and the read-only formats (.data, .tfx)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest

from engine.errors import ConfigError, InputError, StrandcapError
from engine.io import export as export_mod
from engine.io.export import ExportError, export_groom, load_groom
from engine.io.groom import (Groom, farthest_root_sample, resample_polyline, resample_polylines,
                              resample_strands)

SHARED = Path(__file__).parents[2].parent / "shared" / "data"

SCALE = {"m": 1.0, "cm": 100.0, "mm": 1000.0}


def remap(points_m: np.ndarray, units: str, up: str) -> np.ndarray:
    """The documented conversion, written out independently: scale, then for Z-up
    (x, y, z) -> (x, -z, y)."""
    p = np.asarray(points_m, np.float64) * SCALE[units]
    if up == "z":
        p = np.stack([p[..., 0], -p[..., 2], p[..., 1]], axis=-1)
    return p


def make_groom(n=12, L=6, per_point_widths=True, groups=True, head=True, seed=0) -> Groom:
    rng = np.random.default_rng(seed)
    roots = rng.normal(size=(n, 3)) * 0.05
    steps = rng.normal(size=(n, L - 1, 3)) * 0.004 + np.array([0, -0.01, 0.002])
    strands = np.concatenate([roots[:, None], roots[:, None] + np.cumsum(steps, 1)], 1)
    widths = rng.uniform(2e-5, 1e-4, (n, L) if per_point_widths else (n,))
    return Groom(
        strands=strands.astype(np.float32),
        widths=widths,
        root_uv=rng.uniform(size=(n, 2)),
        colors=rng.uniform(size=(n, 3)),
        guide=rng.uniform(size=n) < 0.5,
        group_id=rng.integers(0, 3, n) if groups else None,
        head_vertices=(rng.normal(size=(9, 3)) * 0.08) if head else None,
        head_faces=rng.integers(0, 9, (7, 3)) if head else None,
    )


def group_order(g: Groom, split_guides: bool = True) -> np.ndarray:
    """Strand order in files written one object per group (increasing group id), render
    strands before guides within a group (Alembic and USD write them as separate objects)."""
    if not split_guides or g.guide is None:
        return np.concatenate([idx for _, idx in g.groups()])
    return np.concatenate([np.concatenate([idx[~g.guide[idx]], idx[g.guide[idx]]])
                           for _, idx in g.groups()])


# ----------------------------------------------------------------------------------------------
# Independent readers
# ----------------------------------------------------------------------------------------------


def _abc_param(arb, name):
    """``(values, scope name, POD/extent text)`` of an arbitrary geometry parameter read with
    whichever typed class fits, or None when absent."""
    from alembic3d import AbcGeom as G

    names = {arb.getPropertyHeader(i).getName() for i in range(arb.getNumProperties())}
    if name not in names:
        return None
    for cls in (G.IV2fGeomParam, G.IInt32GeomParam, G.IC3fGeomParam, G.IV3fGeomParam,
                G.IInt16GeomParam, G.IFloatGeomParam):
        try:
            prm = cls(arb, name)
        except Exception:  # noqa: BLE001 - wrong type: try the next class
            continue
        if prm.valid():
            vals = prm.getExpandedValue().getVals()
            try:
                arr = np.array(memoryview(vals))
            except TypeError:  # imath.C3fArray has no buffer interface
                arr = np.array([[v[0], v[1], v[2]] for v in vals], np.float32)
            return arr, str(prm.getScope()), cls.__name__
    raise AssertionError(f"cannot read geometry parameter {name}")


def read_abc_raw(path):
    """Read every object of an archive with alembic3d directly: {name: dict}; curves with
    their width param, arbitrary geometry params (values, scope, class) and user properties."""
    import imath  # noqa: F401
    from alembic3d import Abc
    from alembic3d import AbcGeom as G

    arch = Abc.IArchive(str(path))
    top = arch.getTop()
    out = {}
    for i in range(top.getNumChildren()):
        obj = top.getChild(i)
        if G.ICurves.matches(obj.getHeader()):
            sch = G.ICurves(top, obj.getName()).getSchema()
            smp = sch.getValue()
            arb = sch.getArbGeomParams()
            wp = sch.getWidthsParam()
            params = {arb.getPropertyHeader(k).getName(): _abc_param(
                arb, arb.getPropertyHeader(k).getName()) for k in range(arb.getNumProperties())}
            user = sch.getUserProperties()
            uprops = {}
            if user.valid():
                for k in range(user.getNumProperties()):
                    hdr = user.getPropertyHeader(k)
                    name = hdr.getName()
                    if "int16" in str(hdr.getDataType()):
                        uprops[name] = ("int16", Abc.IInt16Property(user, name).getValue())
                    else:
                        uprops[name] = (str(hdr.getDataType()),
                                        Abc.IStringProperty(user, name).getValue())
            out[obj.getName()] = {
                "kind": "curves",
                "points": np.array(memoryview(smp.getPositions())),
                "counts": np.array(memoryview(smp.getCurvesNumVertices())),
                "type": str(smp.getType()),
                "basis": str(smp.getBasis()),
                "wrap": str(smp.getWrap()),
                "widths": np.array(memoryview(wp.getExpandedValue().getVals())),
                "width_scope": str(wp.getScope()),
                "params": params,
                "user": uprops,
            }
        elif G.IPolyMesh.matches(obj.getHeader()):
            smp = G.IPolyMesh(top, obj.getName()).getSchema().getValue()
            out[obj.getName()] = {
                "kind": "polymesh",
                "points": np.array(memoryview(smp.getPositions())),
                "indices": np.array(memoryview(smp.getFaceIndices())),
            }
        else:
            out[obj.getName()] = {"kind": str(obj.getHeader().getMetaData().get("schema"))}
    return out


def read_obj_raw(path):
    verts, texs, lines = [], [], []
    for ln in Path(path).read_text().splitlines():
        t = ln.split()
        if not t:
            continue
        if t[0] == "v":
            verts.append([float(x) for x in t[1:]])
        elif t[0] == "vt":
            texs.append([float(x) for x in t[1:]])
        elif t[0] == "l":
            lines.append([tuple(int(x) for x in tok.split("/")) for tok in t[1:]])
    return verts, texs, lines


def read_ply_raw(path):
    data = Path(path).read_bytes()
    head, body = data.split(b"end_header\n", 1)
    elements = []
    for ln in head.decode().splitlines():
        t = ln.split()
        if t[0] == "element":
            elements.append((t[1], int(t[2]), []))
        elif t[0] == "property":
            elements[-1][2].append((t[2], {"float": "<f4", "int": "<i4", "uchar": "u1"}[t[1]]))
    assert b"format binary_little_endian 1.0" in head
    out, pos = {}, 0
    for name, count, props in elements:
        dt = np.dtype(props)
        out[name] = np.frombuffer(body, dt, count, pos)
        pos += dt.itemsize * count
    assert pos == len(body)
    return out


def read_hair_raw(path):
    data = Path(path).read_bytes()
    sig, n, npts, flags, dseg, dthick, dtrans, r, g, b = struct.unpack_from("<4sIIIIff3f", data)
    assert sig == b"HAIR"
    pos = 128
    seg = None
    if flags & 1:
        seg = np.frombuffer(data, "<u2", n, pos)
        pos += 2 * n
    pts = np.frombuffer(data, "<f4", 3 * npts, pos).reshape(-1, 3)
    pos += 12 * npts
    thick = None
    if flags & 4:
        thick = np.frombuffer(data, "<f4", npts, pos)
        pos += 4 * npts
    if flags & 8:
        pos += 4 * npts
    col = None
    if flags & 16:
        col = np.frombuffer(data, "<f4", 3 * npts, pos).reshape(-1, 3)
        pos += 12 * npts
    assert pos == len(data)
    return {"n": n, "npts": npts, "seg": seg, "dseg": dseg, "points": pts, "thickness": thick,
            "colors": col, "info": data[40:128].split(b"\0")[0].decode()}


# ----------------------------------------------------------------------------------------------
# Round trips, read with the format's own library or an independent reader
# ----------------------------------------------------------------------------------------------

TOL = dict(rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("units,up", [("cm", "y"), ("mm", "z")])
def test_alembic_round_trip_with_alembic3d(tmp_path, units, up):
    g = make_groom()
    path = export_groom(g, tmp_path / "g.abc", units=units, up=up, head_file=True)
    raw = read_abc_raw(path)
    L = g.points_per_strand
    # Curves only: render strands and guides as separate objects per group, no mesh.
    names = set()
    for gid, gidx in g.groups():
        for suffix, idx in (("", gidx[~g.guide[gidx]]), ("_guides", gidx[g.guide[gidx]])):
            if not len(idx):
                continue
            names.add(f"hair_group_{gid}{suffix}")
            c = raw[f"hair_group_{gid}{suffix}"]
            assert c["kind"] == "curves"
            assert (c["counts"] == L).all() and len(c["counts"]) == len(idx)
            np.testing.assert_allclose(c["points"],
                                       remap(g.strands[idx], units, up).reshape(-1, 3), **TOL)
            np.testing.assert_allclose(c["widths"], g.widths[idx].reshape(-1) * SCALE[units],
                                       **TOL)
            assert c["width_scope"] == "kVertexScope"
            uv, scope, cls = c["params"]["groom_root_uv"]
            np.testing.assert_array_equal(uv, g.root_uv[idx])
            assert scope == "kUniformScope" and cls == "IV2fGeomParam"
            guide, scope, cls = c["params"]["groom_guide"]
            np.testing.assert_array_equal(guide, g.guide[idx].astype(int))
            assert scope == "kUniformScope" and cls == "IInt32GeomParam"
            assert (guide == (1 if suffix else 0)).all()
            group, scope, _ = c["params"]["groom_group_id"]
            assert (group == gid).all() and scope == "kUniformScope"
            col, scope, cls = c["params"]["groom_color"]
            assert scope == "kVertexScope" and cls == "IC3fGeomParam"
            np.testing.assert_array_equal(col, np.repeat(g.colors[idx], L, 0))
            # Groom-level version: int16 user properties, not per-strand geometry params.
            assert c["user"]["groom_version_major"] == ("int16", 1)
            assert c["user"]["groom_version_minor"] == ("int16", 5)
            assert not any(k.startswith("groom_version") for k in c["params"])
            assert c["type"] == "kLinear"
    assert set(raw) == names  # nothing else in the groom file: no head mesh
    # The head went to its own file, same units and axes.
    head = read_abc_raw(tmp_path / "g_head.abc")
    assert set(head) == {"head"} and head["head"]["kind"] == "polymesh"
    np.testing.assert_allclose(head["head"]["points"], remap(g.head_vertices, units, up), **TOL)
    # Alembic winding is clockwise: each triangle's vertex order reversed.
    np.testing.assert_array_equal(head["head"]["indices"].reshape(-1, 3), g.head_faces[:, ::-1])
    back = load_groom(path)
    order = group_order(g)
    np.testing.assert_allclose(back.strands, g.strands[order], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(back.widths, g.widths[order], rtol=1e-6, atol=1e-12)
    np.testing.assert_array_equal(back.root_uv, g.root_uv[order])
    np.testing.assert_array_equal(back.colors, g.colors[order])
    np.testing.assert_array_equal(back.guide, g.guide[order])
    np.testing.assert_array_equal(back.group_id, g.group_id[order])
    np.testing.assert_allclose(back.head_vertices, g.head_vertices, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(back.head_faces, g.head_faces)


def test_alembic_head_is_never_in_the_groom_file_by_default(tmp_path):
    g = make_groom()
    path = export_groom(g, tmp_path / "g.abc")
    assert all(o["kind"] == "curves" for o in read_abc_raw(path).values())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.abc"]
    assert not load_groom(path).has_head


def test_alembic_per_strand_and_constant_widths_and_catmull_rom(tmp_path):
    g = make_groom(per_point_widths=False, groups=False, head=False).replace(guide=None)
    path = export_groom(g, tmp_path / "g.abc", basis="catmull_rom")
    raw = read_abc_raw(path)
    assert set(raw) == {"hair_group_0"} and "groom_guide" not in raw["hair_group_0"]["params"]
    c = raw["hair_group_0"]
    assert c["type"] == "kCubic" and c["basis"] == "kCatmullromBasis"
    assert c["wrap"] == "kNonPeriodic"
    # Per-strand widths are written per point (Blender reads width arrays as per point).
    assert c["width_scope"] == "kVertexScope"
    np.testing.assert_allclose(c["widths"], np.repeat(g.widths, g.points_per_strand) * 100,
                               **TOL)
    back = load_groom(path)
    assert back.widths.shape == (g.num_strands,)  # constant along each strand: per strand again
    np.testing.assert_allclose(back.widths, g.widths, rtol=1e-6)
    np.testing.assert_allclose(back.strands, g.strands, rtol=1e-6, atol=1e-7)
    # All widths equal: one constant value.
    same = g.replace(widths=np.full(g.num_strands, 8e-5, np.float32))
    c = read_abc_raw(export_groom(same, tmp_path / "c.abc"))["hair_group_0"]
    assert c["width_scope"] == "kConstantScope"
    np.testing.assert_allclose(c["widths"], [8e-3], rtol=1e-6)
    np.testing.assert_allclose(load_groom(tmp_path / "c.abc").widths, same.widths, rtol=1e-6)


@pytest.mark.parametrize("suffix,units,up", [(".usd", "cm", "y"), (".usda", "mm", "z")])
def test_usd_round_trip_with_usd_core(tmp_path, suffix, units, up):
    from pxr import Usd, UsdGeom

    g = make_groom().replace(guide=None)
    path = export_groom(g, tmp_path / f"g{suffix}", units=units, up=up, basis="catmull_rom")
    stage = Usd.Stage.Open(str(path))
    assert UsdGeom.GetStageMetersPerUnit(stage) == pytest.approx(1 / SCALE[units])
    assert UsdGeom.GetStageUpAxis(stage) == up.upper()
    for gid, idx in g.groups():
        c = UsdGeom.BasisCurves(stage.GetPrimAtPath(f"/groom/hair_group_{gid}"))
        assert c.GetTypeAttr().Get() == "cubic" and c.GetBasisAttr().Get() == "catmullRom"
        assert c.GetWrapAttr().Get() == "pinned"  # the cubic reaches the root and the tip
        assert list(c.GetCurveVertexCountsAttr().Get()) == [g.points_per_strand] * len(idx)
        np.testing.assert_allclose(np.asarray(c.GetPointsAttr().Get()),
                                   remap(g.strands[idx], units, up).reshape(-1, 3), **TOL)
        assert c.GetWidthsInterpolation() == "vertex"
        np.testing.assert_allclose(np.asarray(c.GetWidthsAttr().Get()),
                                   g.widths[idx].reshape(-1) * SCALE[units], **TOL)
        pv = UsdGeom.PrimvarsAPI(c).GetPrimvar("groom_root_uv")
        assert pv.GetInterpolation() == "uniform"
        np.testing.assert_array_equal(np.asarray(pv.Get()), g.root_uv[idx])
        np.testing.assert_array_equal(np.asarray(c.GetDisplayColorPrimvar().Get()), g.colors[idx])
    mesh = UsdGeom.Mesh(stage.GetPrimAtPath("/groom/head"))
    np.testing.assert_allclose(np.asarray(mesh.GetPointsAttr().Get()),
                               remap(g.head_vertices, units, up), **TOL)
    np.testing.assert_array_equal(np.asarray(mesh.GetFaceVertexIndicesAttr().Get()),
                                  g.head_faces.reshape(-1))
    del stage, mesh, c, pv
    back = load_groom(path)
    order = group_order(g)
    np.testing.assert_allclose(back.strands, g.strands[order], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(back.widths, g.widths[order], rtol=1e-6, atol=1e-12)
    np.testing.assert_array_equal(back.root_uv, g.root_uv[order])
    assert back.guide is None
    np.testing.assert_allclose(back.head_vertices, g.head_vertices, rtol=1e-6, atol=1e-7)


def test_usd_widths_guides_and_linear_wrap(tmp_path):
    from pxr import Usd, UsdGeom

    g = make_groom(n=30, per_point_widths=False, groups=False, head=False).replace(guide=None)
    path = export_groom(g, tmp_path / "g.usda", guides=4)
    stage = Usd.Stage.Open(str(path))
    c = UsdGeom.BasisCurves(stage.GetPrimAtPath("/groom/hair_group_0"))
    gd = UsdGeom.BasisCurves(stage.GetPrimAtPath("/groom/hair_group_0_guides"))
    assert c.GetTypeAttr().Get() == "linear" and c.GetWrapAttr().Get() == "nonperiodic"
    assert c.GetWidthsInterpolation() == "vertex"  # never "uniform"
    np.testing.assert_allclose(np.asarray(c.GetWidthsAttr().Get()),
                               np.repeat(g.widths, g.points_per_strand) * 100, rtol=1e-6)
    assert len(c.GetCurveVertexCountsAttr().Get()) == 30
    assert len(gd.GetCurveVertexCountsAttr().Get()) == 4
    assert list(UsdGeom.PrimvarsAPI(c).GetPrimvar("groom_guide").Get()) == [0] * 30
    assert list(UsdGeom.PrimvarsAPI(gd).GetPrimvar("groom_guide").Get()) == [1] * 4
    del stage, c, gd
    same = g.replace(widths=np.full(g.num_strands, 8e-5, np.float32))
    stage = Usd.Stage.Open(str(export_groom(same, tmp_path / "c.usda")))
    c = UsdGeom.BasisCurves(stage.GetPrimAtPath("/groom/hair_group_0"))
    assert c.GetWidthsInterpolation() == "constant"
    np.testing.assert_allclose(np.asarray(c.GetWidthsAttr().Get()), [8e-3], rtol=1e-6)
    del stage, c
    np.testing.assert_allclose(load_groom(tmp_path / "c.usda").widths, same.widths, rtol=1e-6)


@pytest.mark.parametrize("units,up", [("cm", "y"), ("m", "z")])
def test_obj_round_trip_independent_reader(tmp_path, units, up):
    g = make_groom()
    path = export_groom(g, tmp_path / "g.obj", units=units, up=up)
    verts, texs, lines = read_obj_raw(path)
    order = group_order(g)
    L = g.points_per_strand
    assert len(lines) == g.num_strands
    V = np.array(verts[: g.num_strands * L])
    np.testing.assert_allclose(V[:, :3], remap(g.strands[order], units, up).reshape(-1, 3), **TOL)
    np.testing.assert_allclose(V[:, 3:6], np.repeat(g.colors[order], L, 0), **TOL)
    for k, rec in enumerate(lines):
        assert [v for v, _ in rec] == list(range(k * L + 1, k * L + L + 1))  # root first
        assert {t for _, t in rec} == {k + 1}
        np.testing.assert_allclose(texs[k], g.root_uv[order[k]], **TOL)
    head = np.array(verts[g.num_strands * L:])
    np.testing.assert_allclose(head, remap(g.head_vertices, units, up), **TOL)
    back = load_groom(path)
    np.testing.assert_allclose(back.strands, g.strands[order], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(back.root_uv, g.root_uv[order])
    np.testing.assert_array_equal(back.group_id, g.group_id[order])
    np.testing.assert_array_equal(back.head_faces, g.head_faces)


@pytest.mark.parametrize("units,up", [("cm", "y"), ("mm", "z")])
def test_ply_round_trip_independent_reader(tmp_path, units, up):
    g = make_groom()
    path = export_groom(g, tmp_path / "g.ply", units=units, up=up)
    raw = read_ply_raw(path)
    v, e = raw["vertex"], raw["edge"]
    n, L = g.num_strands, g.points_per_strand
    P = np.stack([v["x"], v["y"], v["z"]], 1)
    np.testing.assert_allclose(P, remap(g.strands, units, up).reshape(-1, 3), **TOL)
    np.testing.assert_array_equal(v["strand"], np.repeat(np.arange(n), L))
    np.testing.assert_allclose(v["width"], g.widths.reshape(-1) * SCALE[units], **TOL)
    np.testing.assert_array_equal(np.stack([v["root_u"], v["root_v"]], 1)[::L], g.root_uv)
    assert len(e) == n * (L - 1)
    assert (e["vertex2"] - e["vertex1"] == 1).all() and (v["strand"][e["vertex1"]]
                                                         == v["strand"][e["vertex2"]]).all()
    back = load_groom(path)
    np.testing.assert_allclose(back.strands, g.strands, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(back.widths, g.widths, rtol=1e-6, atol=1e-12)
    np.testing.assert_array_equal(back.root_uv, g.root_uv)
    np.testing.assert_allclose(back.colors, g.colors, atol=0.5 / 255 + 1e-7)  # 8-bit colour
    np.testing.assert_array_equal(back.guide, g.guide)
    np.testing.assert_array_equal(back.group_id, g.group_id)


@pytest.mark.parametrize("units,up", [("cm", "y"), ("m", "z")])
def test_hair_round_trip_independent_reader(tmp_path, units, up):
    g = make_groom()
    path = export_groom(g, tmp_path / "g.hair", units=units, up=up)
    raw = read_hair_raw(path)
    n, L = g.num_strands, g.points_per_strand
    assert raw["n"] == n and raw["npts"] == n * L and raw["dseg"] == L - 1
    np.testing.assert_allclose(raw["points"], remap(g.strands, units, up).reshape(-1, 3), **TOL)
    np.testing.assert_allclose(raw["thickness"], g.widths.reshape(-1) * SCALE[units], **TOL)
    np.testing.assert_array_equal(raw["colors"], np.repeat(g.colors, L, 0))
    assert raw["info"] == f"strandcap units={units} up={up}"
    back = load_groom(path)
    np.testing.assert_allclose(back.strands, g.strands, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(back.widths, g.widths, rtol=1e-6, atol=1e-12)
    np.testing.assert_array_equal(back.colors, g.colors)


def test_units_and_up_axis_change_coordinates_as_documented(tmp_path):
    """One point at (1, 2, 3) cm; every unit/axis choice in every format."""
    s = np.array([[[0.01, 0.02, 0.03], [0.01, 0.02, 0.05]]], np.float32)
    g = Groom(strands=s)
    expected = {
        ("m", "y"): [0.01, 0.02, 0.03], ("cm", "y"): [1, 2, 3], ("mm", "y"): [10, 20, 30],
        ("m", "z"): [0.01, -0.03, 0.02], ("cm", "z"): [1, -3, 2], ("mm", "z"): [10, -30, 20],
    }
    for (units, up), root in expected.items():
        p = export_groom(g, tmp_path / "u.ply", units=units, up=up)
        v = read_ply_raw(p)["vertex"]
        np.testing.assert_allclose([v["x"][0], v["y"][0], v["z"][0]], root, rtol=1e-6)
        p = export_groom(g, tmp_path / "u.hair", units=units, up=up)
        np.testing.assert_allclose(read_hair_raw(p)["points"][0], root, rtol=1e-6)
        # Explicit units/up on import override the file's own tag.
        np.testing.assert_allclose(load_groom(p, units=units, up=up).strands, s, rtol=1e-6)
    # Z-up is a proper rotation: the strand's length is unchanged and +Y (head up) -> +Z.
    up_strand = Groom(strands=np.array([[[0, 0, 0], [0, 0.1, 0]]], np.float32))
    p = export_groom(up_strand, tmp_path / "z.hair", units="m", up="z")
    np.testing.assert_allclose(read_hair_raw(p)["points"][1], [0, 0, 0.1], atol=1e-7)


def test_guides_are_written_with_the_render_strands(tmp_path):
    g = make_groom(n=200, L=4, head=False).replace(guide=None)
    a = read_ply_raw(export_groom(g, tmp_path / "a.ply", guides=20))["vertex"]
    b = read_ply_raw(export_groom(g, tmp_path / "b.ply", guides=20))["vertex"]
    assert len(a) == (200 + 20) * 4  # every render strand, then the guides
    np.testing.assert_array_equal(a, b)
    assert (a["guide"][: 200 * 4] == 0).all() and (a["guide"][200 * 4:] == 1).all()
    np.testing.assert_allclose(a["x"][: 200 * 4: 4], g.strands[:, 0, 0] * 100, rtol=1e-6)
    idx = farthest_root_sample(g.strands[:, 0], 20)
    np.testing.assert_allclose(a["x"][200 * 4:: 4], g.strands[idx, 0, 0] * 100, rtol=1e-6)
    np.testing.assert_array_equal(a["group"][200 * 4:: 4], g.group_id[idx])
    # Farthest-point sampling spreads roots: min pairwise distance beats a random pick's.
    r = g.strands[idx, 0]
    dmin = min(np.linalg.norm(r[i] - r[j]) for i in range(20) for j in range(i))
    rnd = g.strands[np.random.default_rng(0).choice(200, 20, replace=False), 0]
    rmin = min(np.linalg.norm(rnd[i] - rnd[j]) for i in range(20) for j in range(i))
    assert dmin > rmin
    # Alembic: per group one object of render strands (groom_guide 0) and one of guides (1).
    raw = read_abc_raw(export_groom(g, tmp_path / "a.abc", guides=20))
    n_render = sum(len(o["counts"]) for k, o in raw.items() if not k.endswith("_guides"))
    n_guides = sum(len(o["counts"]) for k, o in raw.items() if k.endswith("_guides"))
    assert (n_render, n_guides) == (200, 20)
    for k, o in raw.items():
        assert (o["params"]["groom_guide"][0] == (1 if k.endswith("_guides") else 0)).all()
    back = load_groom(tmp_path / "a.abc")
    assert back.num_strands == 220 and back.guide.sum() == 20
    # OBJ and .hair have no guide flag: the guides alone.
    assert read_hair_raw(export_groom(g, tmp_path / "a.hair", guides=20))["n"] == 20
    with pytest.raises(ConfigError):
        export_groom(g, tmp_path / "c.ply", guides=0)


# ----------------------------------------------------------------------------------------------
# Atomic writes and errors
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["abc", "usd", "obj", "ply", "hair", "npz"])
def test_failure_mid_write_leaves_existing_file_untouched(tmp_path, monkeypatch, fmt):
    dest = tmp_path / f"groom.{fmt}"
    dest.write_bytes(b"the user's old groom")
    mod = export_mod._MODULES[fmt]
    real_write = mod.write

    def failing_write(groom, path, options):
        real_write(groom, path, options)  # a complete temp file exists...
        with open(path, "ab") as f:
            f.write(b"partial")
        raise RuntimeError("simulated crash mid-write")  # ...and then the writer dies

    monkeypatch.setattr(mod, "write", failing_write)
    with pytest.raises(RuntimeError, match="simulated"):
        export_groom(make_groom(), dest)
    assert dest.read_bytes() == b"the user's old groom"
    assert sorted(p.name for p in tmp_path.iterdir()) == [dest.name]


def test_missing_folder_gives_clear_error(tmp_path):
    with pytest.raises(ExportError, match="does not exist") as e:
        export_groom(make_groom(), tmp_path / "nope" / "g.abc")
    assert isinstance(e.value, StrandcapError) and "nope" in str(e.value)


def test_destination_that_is_a_folder_gives_clear_error(tmp_path):
    (tmp_path / "g.ply").mkdir()
    with pytest.raises(ExportError, match="is a folder"):
        export_groom(make_groom(), tmp_path / "g.ply")


def test_read_only_destination_gives_clear_error(tmp_path, monkeypatch):
    dest = tmp_path / "g.hair"
    dest.write_bytes(b"old")

    def denied(src, dst):
        raise PermissionError(13, "Permission denied", str(dst))

    monkeypatch.setattr(os, "replace", denied)
    with pytest.raises(ExportError, match="permission denied") as e:
        export_groom(make_groom(), dest)
    assert str(dest) in str(e.value) and "\n" not in str(e.value)
    assert dest.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.hair"]


def test_bad_format_and_missing_input_errors(tmp_path):
    with pytest.raises(InputError, match="suffix"):
        export_groom(make_groom(), tmp_path / "g.xyz")
    with pytest.raises(InputError, match="read but not written"):
        export_groom(make_groom(), tmp_path / "g.tfx")
    with pytest.raises(InputError, match="no such file"):
        load_groom(tmp_path / "missing.abc")
    (tmp_path / "bad.hair").write_bytes(b"NOPE" + bytes(200))
    with pytest.raises(InputError, match="bad.hair"):
        load_groom(tmp_path / "bad.hair")
    (tmp_path / "bad.abc").write_bytes(b"not alembic")
    with pytest.raises(InputError, match="bad.abc"):
        load_groom(tmp_path / "bad.abc")


def test_groom_validation():
    s = np.zeros((3, 4, 3), np.float32)
    with pytest.raises(InputError, match=r"\(N, L, 3\)"):
        Groom(strands=np.zeros((3, 4)))
    with pytest.raises(InputError, match="NaN"):
        Groom(strands=np.full((3, 4, 3), np.nan))
    with pytest.raises(InputError, match="widths"):
        Groom(strands=s, widths=np.ones(4))
    with pytest.raises(InputError, match="colors"):
        Groom(strands=s, colors=np.full((3, 3), 2.0))
    with pytest.raises(InputError, match="out of range"):
        Groom(strands=s, head_vertices=np.zeros((2, 3)), head_faces=[[0, 1, 2]])
    user = np.zeros((3, 4, 3), np.float32)
    g = Groom(strands=user)
    assert user.flags.writeable and not g.strands.flags.writeable  # caller's array untouched


# ----------------------------------------------------------------------------------------------
# Read-only formats and ragged strands
# ----------------------------------------------------------------------------------------------


def test_usc_hairsalon_data_import_resamples_ragged_strands(tmp_path):
    rng = np.random.default_rng(3)
    # Straight strands with irregular point spacing: resampled chords must come out equal.
    strands = []
    for m in (5, 9, 1, 12):
        t = np.concatenate([[0], np.sort(rng.uniform(0, 0.2, m - 1))])
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        strands.append(rng.normal(size=3) * 0.1 + t[:, None] * direction)
    buf = struct.pack("<i", len(strands))
    for s in strands:
        buf += struct.pack("<i", len(s)) + s.astype("<f4").tobytes()
    (tmp_path / "strands.data").write_bytes(buf)
    g = load_groom(tmp_path / "strands.data")
    assert g.strands.shape == (3, 12, 3)  # the 1-point strand is dropped; L = longest
    for got, src in zip(g.strands, [strands[0], strands[1], strands[3]]):
        src = src.astype(np.float32)
        np.testing.assert_allclose(got[0], src[0], atol=1e-7)  # metres, Y-up: unchanged
        np.testing.assert_allclose(got[-1], src[-1], atol=1e-6)
        seg = np.linalg.norm(np.diff(got, axis=0), axis=1)
        np.testing.assert_allclose(seg, seg.mean(), rtol=1e-3)  # uniform by arc length
        np.testing.assert_allclose(seg.sum(), np.linalg.norm(src[-1] - src[0]), rtol=1e-5)
    (tmp_path / "short.data").write_bytes(struct.pack("<ii", 2, 3) + bytes(12))
    with pytest.raises(InputError, match="short.data"):
        load_groom(tmp_path / "short.data")


def test_tressfx_tfx_import(tmp_path):
    rng = np.random.default_rng(4)
    n, L = 5, 8
    pos = rng.normal(size=(n, L, 4)).astype("<f4")
    suv = rng.uniform(size=(n, 2)).astype("<f4")
    col = rng.uniform(size=(n, L, 4)).astype("<f4")
    o_pos = 160
    o_suv = o_pos + pos.nbytes
    o_col = o_suv + suv.nbytes
    header = struct.pack("<fIIIIIII32I", 4.0, n, L, o_pos, o_suv, 0, 0, o_col, *([0] * 32))
    (tmp_path / "h.tfx").write_bytes(header + pos.tobytes() + suv.tobytes() + col.tobytes())
    g = load_groom(tmp_path / "h.tfx")  # TressFX assumed centimetres, Y-up
    np.testing.assert_allclose(g.strands, pos[..., :3] / 100, rtol=1e-6)
    np.testing.assert_array_equal(g.root_uv, suv)
    np.testing.assert_array_equal(g.colors, col[:, 0, :3])
    g_m = load_groom(tmp_path / "h.tfx", units="m")
    np.testing.assert_array_equal(g_m.strands, pos[..., :3])


def test_resample_polyline_keeps_ends_and_spacing():
    p = np.array([[0, 0, 0], [1, 0, 0], [1, 0, 0], [1, 3, 0]], np.float64)  # repeated point
    r = resample_polyline(p, 5)
    np.testing.assert_allclose(r, [[0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 2, 0], [1, 3, 0]],
                               atol=1e-6)


def test_npz_round_trip_is_exact_in_metres(tmp_path):
    g = make_groom()
    # .npz always holds the data contract (metres, Y-up), whatever units / up are asked for.
    for kw in ({}, {"units": "m"}, {"units": "cm", "up": "z"}):
        back = load_groom(export_groom(g, tmp_path / "g.npz", **kw))
        for f in ("strands", "widths", "root_uv", "colors", "guide", "group_id",
                  "head_vertices", "head_faces"):
            np.testing.assert_array_equal(getattr(back, f), getattr(g, f), err_msg=f)
        with np.load(tmp_path / "g.npz", allow_pickle=False) as z:
            assert str(z["units"]) == "m" and str(z["up"]) == "y"
            np.testing.assert_array_equal(z["strands"], g.strands)


def test_old_centimetre_npz_is_converted_on_load(tmp_path):
    g = make_groom()
    # A groom.npz as older versions wrote it into projects: centimetres, units="cm".
    np.savez(tmp_path / "old.npz", units=np.array("cm"), up=np.array("y"),
             strands=g.strands * 100, widths=g.widths * 100, root_uv=g.root_uv,
             head_vertices=g.head_vertices * 100, head_faces=g.head_faces)
    back = load_groom(tmp_path / "old.npz")
    np.testing.assert_allclose(back.strands, g.strands, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(back.widths, g.widths, rtol=1e-6)
    np.testing.assert_allclose(back.head_vertices, g.head_vertices, rtol=1e-6, atol=1e-8)


def test_ply_point_cloud_and_edge_chains(tmp_path):
    """A bare point cloud (Neural Haircut's raw output) needs points_per_strand; a PLY with
    only edges gives its strands from the edge chains."""
    pts = np.arange(2 * 4 * 3, dtype="<f4").reshape(8, 3)
    head = f"ply\nformat binary_little_endian 1.0\nelement vertex 8\nproperty float x\n" \
           f"property float y\nproperty float z\n"
    (tmp_path / "cloud.ply").write_bytes((head + "end_header\n").encode() + pts.tobytes())
    with pytest.raises(InputError, match="cannot be told apart"):
        load_groom(tmp_path / "cloud.ply")
    g = load_groom(tmp_path / "cloud.ply", units="m", points_per_strand=4)
    np.testing.assert_array_equal(g.strands, pts.reshape(2, 4, 3))
    edges = np.array([[4, 5], [0, 1], [5, 6], [1, 2], [2, 3], [6, 7]], "<i4")
    body = head + "element edge 6\nproperty int vertex1\nproperty int vertex2\nend_header\n"
    (tmp_path / "edges.ply").write_bytes(body.encode() + pts.tobytes() + edges.tobytes())
    g = load_groom(tmp_path / "edges.ply", units="m")
    np.testing.assert_array_equal(g.strands, pts.reshape(2, 4, 3))


def test_obj_with_varying_point_counts_is_resampled(tmp_path):
    (tmp_path / "r.obj").write_text(
        "v 0 0 0\nv 0 -1 0\nv 0 -2 0\nv 1 0 0\nv 1 -4 0\nl 1 2 3\nl 4 5\n")
    g = load_groom(tmp_path / "r.obj", units="m")
    assert g.strands.shape == (2, 3, 3)
    np.testing.assert_allclose(g.strands[1], [[1, 0, 0], [1, -2, 0], [1, -4, 0]], atol=1e-6)


# ----------------------------------------------------------------------------------------------
# Real groom from ../shared
# ----------------------------------------------------------------------------------------------


def test_sintel_guides_round_trip_all_formats(tmp_path):
    src = SHARED / "grooms" / "sintel_lite_guides.npz"
    if not src.exists():
        pytest.skip(f"{src} not present")
    d = np.load(src)
    # Source units: the character is ~40 units across the shoulders (~0.4 m): 1 unit = 1 cm.
    g = Groom(strands=d["strands"] * 0.01, widths=np.full(len(d["strands"]), 8e-5, np.float32),
              head_vertices=d["head_vertices"] * 0.01, head_faces=d["head_faces"])
    extent = np.ptp(g.strands.reshape(-1, 3), axis=0).max()
    assert 0.05 < extent < 1.0  # a human head's hair, in metres
    # The shared file itself reads as a groom (its keys match Groom's fields; no units stored).
    direct = load_groom(src, units="cm")
    np.testing.assert_allclose(direct.strands, g.strands, rtol=1e-6)
    assert direct.head_faces.shape == g.head_faces.shape
    for name in ("g.abc", "g.usd", "g.obj", "g.ply", "g.hair", "g.npz"):
        for up in ("y", "z"):
            back = load_groom(export_groom(g, tmp_path / name, up=up, head_file=True))
            np.testing.assert_allclose(back.strands, g.strands, rtol=1e-5, atol=1e-7,
                                       err_msg=name)
            if name in ("g.abc", "g.usd", "g.ply", "g.hair", "g.npz"):
                np.testing.assert_allclose(back.widths, g.widths, rtol=1e-6, err_msg=name)
            if name in ("g.abc", "g.usd", "g.obj", "g.npz"):
                np.testing.assert_allclose(back.head_vertices, g.head_vertices, rtol=1e-5,
                                           atol=1e-7)
                np.testing.assert_array_equal(back.head_faces, g.head_faces)


def test_resample_strands_uniform_and_trimmed():
    t = np.linspace(0, 1, 50) ** 2  # unevenly spaced points on the unit segment
    line = np.stack([t, 0 * t, 0 * t], -1)
    two = np.stack([line, 2 * line])
    r = resample_strands(two, 11)
    np.testing.assert_allclose(r[0, :, 0], np.linspace(0, 1, 11), atol=1e-9)
    np.testing.assert_allclose(r[1, :, 0], np.linspace(0, 2, 11), atol=1e-9)
    cut = resample_strands(two, 5, lengths=np.array([0.5, 5.0]))  # 5.0: beyond the end
    np.testing.assert_allclose(cut[0, :, 0], np.linspace(0, 0.5, 5), atol=1e-9)
    np.testing.assert_allclose(cut[1, :, 0], np.linspace(0, 2, 5), atol=1e-9)


def test_resample_polylines_ragged_matches_one_by_one():
    rng = np.random.default_rng(0)
    polys = [np.cumsum(rng.normal(size=(k, 3)), 0) for k in (2, 7, 30)]
    both = resample_polylines(polys, 9)
    for p, r in zip(polys, both):
        np.testing.assert_allclose(r, resample_polyline(p, 9), atol=1e-6)
        np.testing.assert_allclose(r[[0, -1]], p[[0, -1]], atol=1e-6)
