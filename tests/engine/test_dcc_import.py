"""Grooms as the DCC tools read them.

* Blender 4.5 (the ``bpy`` wheel) imports our .abc, .usd, .obj and .ply headless in a separate
  process (``_blender_import.py``; bpy is heavy and must not share a process with Qt): curve
  counts, finite per-point radii equal to the written widths, root UV and colour attributes where
  the format carries them, and the size and orientation of groom and head in Blender units for
  each setting the README documents. Skipped when bpy is not installed.
* Unreal's Alembic groom importer rules, checked by reading the file back with alembic3d: curves
  only (no polygon mesh), attribute names, types and scopes, groom-level version properties,
  guides written in addition to the render strands.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.io.export import export_groom
from engine.io.groom import Groom

HERE = Path(__file__).parent
N, L, K = 40, 8, 6  # render strands, points per strand, guides

# ----------------------------------------------------------------------------------------------
# A small head and groom with a known size and orientation (head frame: metres, +Y up, +Z out of
# the face): a box head 0.16 m wide (x), 0.24 m tall (y), 0.20 m deep (z) with a nose vertex at
# +Z; strands rooted on the top of the head, hanging down the back (-Y, -Z).
# ----------------------------------------------------------------------------------------------

HEAD_TOP = 0.24
NOSE = (0.0, 0.10, 0.13)


def head_mesh() -> tuple[np.ndarray, np.ndarray]:
    x, y, z = 0.08, HEAD_TOP, 0.10
    v = np.array([[-x, 0, -z], [x, 0, -z], [x, y, -z], [-x, y, -z],
                  [-x, 0, z], [x, 0, z], [x, y, z], [-x, y, z], NOSE], np.float32)
    quads = [[0, 3, 2, 1], [4, 5, 6, 7], [0, 1, 5, 4], [3, 7, 6, 2], [0, 4, 7, 3]]
    f = [[a, b, c] for a, b, c, d in quads] + [[a, c, d] for a, b, c, d in quads]
    f += [[5, 1, 8], [1, 2, 8], [2, 6, 8], [6, 5, 8]]  # the right side is a pyramid: the nose
    return v, np.array(f, np.int32)


def make_head_groom(per_point: bool) -> Groom:
    rng = np.random.default_rng(7)
    roots = np.stack([rng.uniform(-0.07, 0.07, N), np.full(N, HEAD_TOP),
                      rng.uniform(-0.09, 0.05, N)], 1)
    t = np.linspace(0, 1, L)[None, :, None]
    tips = roots + np.array([0.0, -0.20, -0.08])
    strands = roots[:, None] * (1 - t) + tips[:, None] * t
    widths = (rng.uniform(4e-5, 1.2e-4, (N, L)) if per_point
              else rng.uniform(4e-5, 1.2e-4, N))
    v, f = head_mesh()
    return Groom(strands=strands.astype(np.float32), widths=widths.astype(np.float32),
                 root_uv=rng.uniform(size=(N, 2)), colors=rng.uniform(0.1, 0.9, (N, 3)),
                 head_vertices=v, head_faces=f)


def to_blender(p_m: np.ndarray) -> np.ndarray:
    """Head frame (metres, +Y up, +Z face) -> Blender world (metres, +Z up, character facing
    -Y): (x, y, z) -> (x, -z, y)."""
    p = np.asarray(p_m, np.float64)
    return np.stack([p[..., 0], -p[..., 2], p[..., 1]], -1)


# ----------------------------------------------------------------------------------------------
# Blender
# ----------------------------------------------------------------------------------------------

_HAS_BPY = importlib.util.find_spec("bpy") is not None


def blender_import(jobs: list[tuple[Path, dict]], tmp_path: Path) -> list[dict]:
    """Import each ``(file, importer kwargs)`` in a fresh Blender scene, in one subprocess."""
    spec = tmp_path / "jobs.json"
    spec.write_text(json.dumps([[str(p), kw] for p, kw in jobs]))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(HERE / "_blender_import.py"), str(spec)],
                          capture_output=True, text=True, timeout=600, env=env)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("@@JSON ")), None)
    assert proc.returncode == 0 and line, (proc.stdout[-3000:], proc.stderr[-3000:])
    out = json.loads(line[len("@@JSON "):])
    assert out["blender"].startswith("4.5")
    return out["imports"]


def objects(imp: dict, kind: str) -> list[dict]:
    return [o for o in imp["objects"] if o["type"] == kind]


@pytest.fixture(scope="module")
def blender_results(tmp_path_factory):
    """Write every documented setting, import all in Blender once; {case: (import, groom)}."""
    if not _HAS_BPY:
        pytest.skip("bpy (Blender as a Python module) is not installed")
    tmp = tmp_path_factory.mktemp("dcc")
    g_strand = make_head_groom(per_point=False)
    g_point = make_head_groom(per_point=True)
    cases = {
        # name: (groom, file, export kwargs, Blender importer kwargs, Blender units per metre)
        "abc_m": (g_strand, "m.abc", dict(units="m", guides=K, head_file=True), {}, 1.0),
        "abc_m_head": (g_strand, "m_head.abc", None, {}, 1.0),
        "abc_cm_scaled": (g_point, "cm.abc", dict(units="cm"), {"scale": 0.01}, 100.0),
        "abc_cm_unscaled": (g_point, "cm.abc", None, {}, 100.0),
        "abc_z_up": (g_strand, "z.abc", dict(units="m", up="z"), {}, 1.0),
        "usd_cm": (g_strand, "cm.usd", dict(units="cm", guides=K), {}, 1.0),
        "usd_m_pp": (g_point, "m.usda", dict(units="m", basis="catmull_rom"), {}, 1.0),
        "obj_m": (g_strand, "m.obj", dict(units="m"), {}, 1.0),
        "ply_m_z": (g_point, "m.ply", dict(units="m", up="z"), {}, 1.0),
        "ply_m_y": (g_point, "my.ply", dict(units="m"),
                    {"up_axis": "Y", "forward_axis": "NEGATIVE_Z"}, 1.0),
    }
    for groom, name, kw, _, _ in cases.values():
        if kw is not None:
            export_groom(groom, tmp / name, **kw)
    results = blender_import([(tmp / name, bkw) for _, name, _, bkw, _ in cases.values()], tmp)
    out = {k: (r, c[0], c[4]) for (k, c), r in zip(cases.items(), results)}
    # What Blender showed, for the record (pytest -s prints it).
    for k, (r, _, _) in out.items():
        for o in r["objects"]:
            if o["type"] in ("CURVES", "MESH"):
                rad = o["attributes"].get("radius", {}).get("values")
                print(f"[blender] {k}: {o['name']} {o['type']} curves={o.get('num_curves')} "
                      f"points={o.get('num_points', o.get('num_vertices'))} "
                      f"bbox={np.round(o['bbox_min'], 4).tolist()}.."
                      f"{np.round(o['bbox_max'], 4).tolist()} "
                      f"radius[min,max]={None if rad is None else [min(rad), max(rad)]} "
                      f"attrs={sorted(o['attributes'])}")
    return out


def curve_objects(imp):
    return {o["name"]: o for o in objects(imp, "CURVES")}


def check_groom_in_blender(o: dict, g: Groom, idx: np.ndarray, per_metre: float):
    """Points at the right place (Blender world, metres times ``per_metre``) and radii equal to
    half the written widths at every point."""
    assert o["num_curves"] == len(idx) and o["num_points"] == len(idx) * L
    pts = np.array(o["world_points"])
    np.testing.assert_allclose(pts, to_blender(g.strands[idx].reshape(-1, 3)) * per_metre,
                               rtol=1e-5, atol=1e-6 * per_metre)
    r = np.array(o["attributes"]["radius"]["values"])
    assert o["attributes"]["radius"]["domain"] == "POINT"
    assert np.isfinite(r).all() and len(r) == len(idx) * L
    # The radius is in object space: USD's unit conversion is an object scale.
    obj_scale = abs(np.linalg.det(np.array(o["matrix_world"])[:3, :3])) ** (1 / 3)
    np.testing.assert_allclose(r * obj_scale, g.vertex_widths()[idx].reshape(-1) / 2 * per_metre,
                               rtol=1e-5)


def check_orientation(pts_blender: np.ndarray, per_metre: float = 1.0):
    """Roots above tips (Blender +Z up) and strands falling down the back (+Y, the character
    faces -Y)."""
    p = pts_blender.reshape(-1, L, 3)
    assert (p[:, 0, 2] - p[:, -1, 2] > 0.19 * per_metre).all()
    assert (p[:, -1, 1] - p[:, 0, 1] > 0.07 * per_metre).all()


@pytest.mark.skipif(not _HAS_BPY, reason="bpy (Blender as a Python module) is not installed")
def test_blender_alembic_metres_y_up_with_guides_and_head_file(blender_results):
    imp, g, per_m = blender_results["abc_m"]
    assert imp["result"] == ["FINISHED"]
    assert objects(imp, "MESH") == []  # no head inside the groom archive
    cs = curve_objects(imp)
    assert set(cs) == {"hair_group_0", "hair_group_0_guides"}
    check_groom_in_blender(cs["hair_group_0"], g, np.arange(N), per_m)
    assert cs["hair_group_0_guides"]["num_curves"] == K
    check_orientation(np.array(cs["hair_group_0"]["world_points"]))
    # The head, from its own file, lines up: nose towards -Y, top at 0.24 m.
    head_imp, _, _ = blender_results["abc_m_head"]
    (head,) = objects(head_imp, "MESH")
    assert head["num_vertices"] == 9 and head["num_polygons"] == len(head_mesh()[1])
    np.testing.assert_allclose(head["bbox_max"][2], HEAD_TOP, atol=1e-6)
    np.testing.assert_allclose(head["bbox_min"][1], -NOSE[2], atol=1e-6)
    np.testing.assert_allclose(np.array(head["bbox_max"]) - head["bbox_min"],
                               [0.16, 0.23, 0.24], atol=1e-6)


@pytest.mark.skipif(not _HAS_BPY, reason="bpy (Blender as a Python module) is not installed")
def test_blender_alembic_centimetres_are_100x_too_large(blender_results):
    """Blender imports Alembic at 1 unit = 1 m: a centimetre file is 100x too large, and the
    importer's Scale (0.01) does not help, because Blender applies it only through transform
    nodes and a groom archive holds curves only. The README says: --units m for Blender."""
    for case in ("abc_cm_unscaled", "abc_cm_scaled"):
        imp, g, per_m = blender_results[case]
        (o,) = objects(imp, "CURVES")
        assert per_m == 100.0
        check_groom_in_blender(o, g, np.arange(N), per_m)
        check_orientation(np.array(o["world_points"]), per_m)


@pytest.mark.skipif(not _HAS_BPY, reason="bpy (Blender as a Python module) is not installed")
def test_blender_alembic_z_up_lies_face_down(blender_results):
    """Blender converts Alembic from Y-up itself, so a Z-up file ends up rotated: head +Y ->
    Blender -Y (the groom lies on its face). The README says: keep --up y for Blender."""
    imp, g, _ = blender_results["abc_z_up"]
    (o,) = objects(imp, "CURVES")
    p = np.array(o["world_points"])
    q = g.strands.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(p, np.stack([q[:, 0], -q[:, 1], -q[:, 2]], 1), atol=1e-6)


@pytest.mark.skipif(not _HAS_BPY, reason="bpy (Blender as a Python module) is not installed")
def test_blender_usd_centimetres_y_up_and_attributes(blender_results):
    """USD carries metersPerUnit and upAxis, which Blender applies (as an object transform)."""
    imp, g, per_m = blender_results["usd_cm"]
    cs = curve_objects(imp)
    assert set(cs) == {"hair_group_0", "hair_group_0_guides"}
    o = cs["hair_group_0"]
    check_groom_in_blender(o, g, np.arange(N), per_m)  # metersPerUnit and upAxis honoured
    check_orientation(np.array(o["world_points"]))
    a = o["attributes"]
    assert a["groom_root_uv"]["domain"] == "CURVE" and a["groom_root_uv"]["type"] == "FLOAT2"
    np.testing.assert_allclose(a["groom_root_uv"]["values"], g.root_uv, atol=1e-6)
    assert a["displayColor"]["domain"] == "CURVE"
    np.testing.assert_allclose(np.array(a["displayColor"]["values"])[:, :3], g.colors, atol=1e-6)
    assert a["groom_guide"]["values"] == [0] * N
    assert cs["hair_group_0_guides"]["attributes"]["groom_guide"]["values"] == [1] * K
    (head,) = objects(imp, "MESH")
    np.testing.assert_allclose(head["bbox_max"][2], HEAD_TOP, atol=1e-6)
    np.testing.assert_allclose(head["bbox_min"][1], -NOSE[2], atol=1e-6)


@pytest.mark.skipif(not _HAS_BPY, reason="bpy (Blender as a Python module) is not installed")
def test_blender_usd_per_point_widths_catmull_rom_pinned(blender_results):
    imp, g, per_m = blender_results["usd_m_pp"]
    (o,) = objects(imp, "CURVES")
    check_groom_in_blender(o, g, np.arange(N), per_m)
    check_orientation(np.array(o["world_points"]))


@pytest.mark.skipif(not _HAS_BPY, reason="bpy (Blender as a Python module) is not installed")
def test_blender_obj_metres_y_up(blender_results):
    imp, g, _ = blender_results["obj_m"]
    meshes = {o["name"]: o for o in objects(imp, "MESH")}
    hair = meshes["hair_group_0"]
    assert hair["num_vertices"] == N * L and hair["num_edges"] == N * (L - 1)
    assert hair["num_polygons"] == 0
    pts = np.array(hair["world_points"])
    np.testing.assert_allclose(pts, to_blender(g.strands.reshape(-1, 3)), atol=1e-6)
    check_orientation(pts)
    # Colour per point; Blender's OBJ importer reads vertex colours as sRGB and linearises them.
    col = np.array(hair["attributes"]["Color"]["values"])[:, :3]
    c = np.repeat(g.colors, L, 0).astype(np.float64)
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    np.testing.assert_allclose(col, lin, atol=1e-4)
    head = meshes["head"]
    np.testing.assert_allclose(head["bbox_max"][2], HEAD_TOP, atol=1e-6)
    np.testing.assert_allclose(head["bbox_min"][1], -NOSE[2], atol=1e-6)


@pytest.mark.skipif(not _HAS_BPY, reason="bpy (Blender as a Python module) is not installed")
@pytest.mark.parametrize("case", ["ply_m_z", "ply_m_y"])
def test_blender_ply(blender_results, case):
    """Blender's PLY importer assumes Z-up: --up z, or Up Axis Y in the importer for a Y-up file.
    The per-point width, root UV and colour come in as point attributes."""
    imp, g, _ = blender_results[case]
    (o,) = objects(imp, "MESH")
    assert o["num_vertices"] == N * L and o["num_edges"] == N * (L - 1)
    pts = np.array(o["world_points"])
    np.testing.assert_allclose(pts, to_blender(g.strands.reshape(-1, 3)), atol=1e-6)
    check_orientation(pts)
    a = o["attributes"]
    w = np.array(a["width"]["values"])
    assert a["width"]["domain"] == "POINT" and np.isfinite(w).all()
    np.testing.assert_allclose(w, g.widths.reshape(-1), rtol=1e-6)
    np.testing.assert_allclose(a["root_u"]["values"], np.repeat(g.root_uv[:, 0], L), atol=1e-6)
    np.testing.assert_allclose(a["root_v"]["values"], np.repeat(g.root_uv[:, 1], L), atol=1e-6)


# ----------------------------------------------------------------------------------------------
# Unreal's Alembic groom rules, read back with alembic3d
# ----------------------------------------------------------------------------------------------


def test_alembic_follows_unreal_groom_rules(tmp_path):
    from alembic3d import Abc
    from alembic3d import AbcGeom as G

    from tests.engine.test_groom_io import read_abc_raw

    g = make_head_groom(per_point=False).replace(group_id=np.arange(N) % 2)
    path = export_groom(g, tmp_path / "groom.abc", guides=K, head_file=True)
    arch = Abc.IArchive(str(path))
    top = arch.getTop()
    kinds = [top.getChild(i).getHeader() for i in range(top.getNumChildren())]
    assert kinds and all(G.ICurves.matches(h) for h in kinds)  # curves only, no poly mesh
    del top, arch, kinds
    raw = read_abc_raw(path)
    n_render = n_guides = 0
    for name, c in raw.items():
        assert c["kind"] == "curves"
        n = len(c["counts"])
        npts = int(c["counts"].sum())
        assert c["width_scope"] in ("kVertexScope", "kConstantScope")
        assert len(c["widths"]) == (npts if c["width_scope"] == "kVertexScope" else 1)
        expected = {"groom_root_uv": ("kUniformScope", "IV2fGeomParam", n * 2),
                    "groom_guide": ("kUniformScope", "IInt32GeomParam", n),
                    "groom_group_id": ("kUniformScope", "IInt32GeomParam", n),
                    "groom_color": ("kVertexScope", "IC3fGeomParam", npts * 3)}
        assert set(c["params"]) == set(expected)
        for key, (scope, cls, size) in expected.items():
            vals, got_scope, got_cls = c["params"][key]
            assert (got_scope, got_cls, vals.size) == (scope, cls, size), key
        guide = c["params"]["groom_guide"][0]
        if name.endswith("_guides"):
            assert (guide == 1).all()
            n_guides += n
        else:
            assert (guide == 0).all()
            n_render += n
        assert c["user"]["groom_version_major"] == ("int16", 1)
        assert c["user"]["groom_version_minor"] == ("int16", 5)
        gid = int(c["params"]["groom_group_id"][0][0])
        assert name in (f"hair_group_{gid}", f"hair_group_{gid}_guides")
    assert (n_render, n_guides) == (N, K)
    assert {n for n in raw if n.endswith("_guides")} == {"hair_group_0_guides",
                                                         "hair_group_1_guides"}
    # The head is in its own archive.
    head = read_abc_raw(tmp_path / "groom_head.abc")
    assert [o["kind"] for o in head.values()] == ["polymesh"]
