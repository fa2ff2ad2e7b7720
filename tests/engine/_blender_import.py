"""Run by tests/engine/test_dcc_import.py in a separate process with the ``bpy`` wheel
(Blender 4.5 as a Python module): import one file headless with Blender's own importer and print
what Blender made of it as one JSON line prefixed with ``@@JSON``.

Usage: python _blender_import.py JOBS.json, where JOBS.json holds a list of
``[file, {importer keyword arguments}]``; each file is imported into an empty scene and the
output is one ``@@JSON`` line with a list of ``{"file", "result", "objects": [...]}``.
"""

import json
import sys

import bpy
import numpy as np


def attr_values(attrs, a):
    n = len(a.data)
    t = a.data_type
    if t in ("FLOAT_COLOR", "BYTE_COLOR"):
        v = np.zeros(n * 4, np.float32)
        a.data.foreach_get("color", v)
        return v.reshape(n, 4)
    if t in ("FLOAT_VECTOR",):
        v = np.zeros(n * 3, np.float32)
        a.data.foreach_get("vector", v)
        return v.reshape(n, 3)
    if t in ("FLOAT2",):
        v = np.zeros(n * 2, np.float32)
        a.data.foreach_get("vector", v)
        return v.reshape(n, 2)
    if t in ("FLOAT",):
        v = np.zeros(n, np.float32)
        a.data.foreach_get("value", v)
        return v
    if t in ("INT", "INT8", "BOOLEAN"):
        v = np.zeros(n, np.int64 if t != "BOOLEAN" else bool)
        a.data.foreach_get("value", v)
        return v.astype(np.int64)
    return None


def describe(ob):
    d = {"name": ob.name, "type": ob.type}
    m = np.array(ob.matrix_world, np.float64)
    d["matrix_world"] = m.tolist()
    data = ob.data
    attrs = {}
    pts = None
    if ob.type == "CURVES":
        d["num_curves"] = len(data.curves)
        d["num_points"] = len(data.points)
        offs = np.zeros(len(data.curves) + 1, np.int64)
        data.curve_offset_data.foreach_get("value", offs) if hasattr(data, "curve_offset_data") \
            else None
        d["curve_offsets"] = offs.tolist()
        pts = np.zeros(len(data.points) * 3, np.float32)
        data.points.foreach_get("position", pts)
        pts = pts.reshape(-1, 3)
    elif ob.type == "MESH":
        d["num_vertices"] = len(data.vertices)
        d["num_edges"] = len(data.edges)
        d["num_polygons"] = len(data.polygons)
        pts = np.zeros(len(data.vertices) * 3, np.float32)
        data.vertices.foreach_get("co", pts)
        pts = pts.reshape(-1, 3)
        e = np.zeros(len(data.edges) * 2, np.int64)
        data.edges.foreach_get("vertices", e)
        d["edges"] = e.reshape(-1, 2).tolist()
    elif ob.type == "CURVE":
        d["num_splines"] = len(data.splines)
        d["num_points"] = sum(len(s.points) + len(s.bezier_points) for s in data.splines)
    if pts is not None:
        w = pts.astype(np.float64) @ m[:3, :3].T + m[:3, 3]
        d["world_points"] = w.tolist()
        d["bbox_min"] = w.min(0).tolist() if len(w) else None
        d["bbox_max"] = w.max(0).tolist() if len(w) else None
    if hasattr(data, "attributes"):
        for a in data.attributes:
            if a.name.startswith(".") or a.name in ("position",):
                continue
            v = attr_values(data.attributes, a)
            attrs[a.name] = {"domain": a.domain, "type": a.data_type,
                             "values": None if v is None else np.asarray(v).tolist()}
    d["attributes"] = attrs
    d["custom_props"] = {k: (v if isinstance(v, (int, float, str)) else str(v))
                         for k, v in ob.items()}
    return d


def import_file(path, kwargs):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    low = path.lower()
    if low.endswith(".abc"):
        res = bpy.ops.wm.alembic_import(filepath=path, as_background_job=False, **kwargs)
    elif low.endswith((".usd", ".usda", ".usdc")):
        res = bpy.ops.wm.usd_import(filepath=path, **kwargs)
    elif low.endswith(".obj"):
        res = bpy.ops.wm.obj_import(filepath=path, **kwargs)
    elif low.endswith(".ply"):
        res = bpy.ops.wm.ply_import(filepath=path, **kwargs)
    else:
        raise SystemExit(f"unknown suffix: {path}")
    bpy.context.view_layer.update()
    return {"file": path, "kwargs": kwargs, "result": sorted(res),
            "objects": [describe(o) for o in bpy.context.scene.objects]}


def main():
    with open(sys.argv[1]) as f:
        jobs = json.load(f)
    out = {"blender": bpy.app.version_string,
           "imports": [import_file(path, kwargs) for path, kwargs in jobs]}
    print("@@JSON " + json.dumps(out))


main()
