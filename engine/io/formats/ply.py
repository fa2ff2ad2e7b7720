"""PLY grooms (binary little-endian): strand points as vertices, segments as edges.

Written layout::

    ply
    format binary_little_endian 1.0
    comment strandcap units=.. up=..
    element vertex N*L
    property float x / y / z          point, root first within each strand
    property int strand               strand index 0..N-1
    property int group                (when the groom has group ids)
    property uchar guide              (when the groom has guide flags)
    property float width              (when widths are present; per point, a per-strand width
                                       is repeated)
    property float root_u / root_v    (when root UVs are present; repeated along the strand)
    property uchar red / green / blue (when colours are written; 8-bit, so colours come back
                                       within 1/255)
    element edge N*(L-1)
    property int vertex1 / vertex2    consecutive points of a strand
    end_header

No head mesh is written (a PLY with faces and edges confuses strand readers).

Units and axes: coordinates and widths are in the export units after the up-axis remap of
:mod:`engine.io.formats._common` (``up="z"``: ``(x, y, z) -> (x, -z, y)``); the comment records
both for :func:`engine.io.export.load_groom`.

Reading accepts ASCII and binary PLY: strands come from the ``strand`` vertex property when
present, else from chains of edges; a bare point cloud (Neural Haircut's output) is read when
``points_per_strand`` is given. Per-strand attributes are taken at the root.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.errors import InputError
from engine.io.formats._common import ExportOptions, ReadResult, parse_tag
from engine.io.groom import Groom

SUFFIXES = (".ply",)

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}


def write(groom: Groom, path: Path, options: ExportOptions) -> None:
    """Write ``groom`` (already in file units and axes) to ``path`` as binary PLY."""
    n, L = groom.num_strands, groom.points_per_strand
    fields: list[tuple[str, str, str]] = [("x", "<f4", "float"), ("y", "<f4", "float"),
                                          ("z", "<f4", "float"), ("strand", "<i4", "int")]
    if groom.group_id is not None:
        fields.append(("group", "<i4", "int"))
    if groom.guide is not None:
        fields.append(("guide", "u1", "uchar"))
    if groom.widths is not None:
        fields.append(("width", "<f4", "float"))
    if groom.root_uv is not None:
        fields += [("root_u", "<f4", "float"), ("root_v", "<f4", "float")]
    if groom.colors is not None:
        fields += [("red", "u1", "uchar"), ("green", "u1", "uchar"), ("blue", "u1", "uchar")]
    vert = np.empty(n * L, dtype=[(a, b) for a, b, _ in fields])
    pts = groom.strands.reshape(-1, 3)
    vert["x"], vert["y"], vert["z"] = pts[:, 0], pts[:, 1], pts[:, 2]
    vert["strand"] = np.repeat(np.arange(n, dtype=np.int32), L)
    if groom.group_id is not None:
        vert["group"] = np.repeat(groom.group_id, L)
    if groom.guide is not None:
        vert["guide"] = np.repeat(groom.guide.astype(np.uint8), L)
    if groom.widths is not None:
        vert["width"] = groom.vertex_widths().reshape(-1)
    if groom.root_uv is not None:
        vert["root_u"] = np.repeat(groom.root_uv[:, 0], L)
        vert["root_v"] = np.repeat(groom.root_uv[:, 1], L)
    if groom.colors is not None:
        c8 = np.repeat(np.round(groom.colors * 255).astype(np.uint8), L, axis=0)
        vert["red"], vert["green"], vert["blue"] = c8[:, 0], c8[:, 1], c8[:, 2]
    base = (np.arange(n, dtype=np.int32) * L)[:, None]
    a = (base + np.arange(L - 1, dtype=np.int32)[None, :]).reshape(-1)
    edges = np.empty(len(a), dtype=[("vertex1", "<i4"), ("vertex2", "<i4")])
    edges["vertex1"], edges["vertex2"] = a, a + 1
    header = ["ply", "format binary_little_endian 1.0", f"comment {options.tag}",
              f"element vertex {len(vert)}"]
    header += [f"property {t} {name}" for name, _, t in fields]
    header += [f"element edge {len(edges)}", "property int vertex1", "property int vertex2",
               "end_header"]
    with open(path, "wb") as f:
        f.write(("\n".join(header) + "\n").encode("ascii"))
        f.write(vert.tobytes())
        f.write(edges.tobytes())


def _parse_header(data: bytes, path: Path):
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise InputError(f"{path}: not a PLY file")
    nl = data.find(b"\n", end)
    body_start = nl + 1 if nl >= 0 else len(data)
    lines = data[:end].decode("ascii", errors="replace").splitlines()
    fmt, comments, elements = None, [], []
    for ln in lines[1:]:
        t = ln.split()
        if not t:
            continue
        if t[0] == "format":
            fmt = t[1]
        elif t[0] in ("comment", "obj_info"):
            comments.append(ln)
        elif t[0] == "element":
            elements.append({"name": t[1], "count": int(t[2]), "props": []})
        elif t[0] == "property" and elements:
            if t[1] == "list":
                elements[-1]["props"].append((t[4], "list", t[2], t[3]))
            else:
                if t[1] not in _PLY_TYPES:
                    raise InputError(f"{path}: unknown PLY property type {t[1]!r}")
                elements[-1]["props"].append((t[2], t[1]))
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise InputError(f"{path}: unknown PLY format {fmt!r}")
    return fmt, comments, elements, body_start


def read(path: Path, points_per_strand: int | None = None) -> ReadResult:
    """Read a PLY groom (file coordinates). ``points_per_strand`` lets a bare point cloud of
    ``N * L`` points, strand after strand, be read."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read the file ({e.strerror})") from None
    fmt, comments, elements, pos = _parse_header(data, path)
    tag = None
    for c in comments:
        tag = tag or parse_tag(c)
    endian = ">" if fmt == "binary_big_endian" else "<"
    arrays: dict[str, np.ndarray] = {}
    text_rows = data[pos:].decode("ascii", errors="replace").split("\n") if fmt == "ascii" else None
    row = 0
    for el in elements:
        if any(p[1] == "list" for p in el["props"]):
            break  # faces and other list elements are not needed; they come after what we read
        dt = np.dtype([(p[0], endian + _PLY_TYPES[p[1]]) for p in el["props"]])
        if fmt == "ascii":
            rows = text_rows[row:row + el["count"]]
            row += el["count"]
            try:
                vals = np.array(" ".join(rows).split(), np.float64).reshape(el["count"], -1)
            except ValueError:
                raise InputError(f"{path}: malformed ASCII PLY element {el['name']!r}") from None
            arr = np.empty(el["count"], dt)
            for k, p in enumerate(el["props"]):
                arr[p[0]] = vals[:, k]
        else:
            size = dt.itemsize * el["count"]
            if pos + size > len(data):
                raise InputError(f"{path}: the file ends inside the {el['name']!r} element")
            arr = np.frombuffer(data, dt, el["count"], pos)
            pos += size
        arrays[el["name"]] = arr
    vert = arrays.get("vertex")
    if vert is None or not {"x", "y", "z"} <= set(vert.dtype.names):
        raise InputError(f"{path}: the PLY file has no vertex x, y, z")
    P = np.stack([vert["x"], vert["y"], vert["z"]], 1).astype(np.float64)
    names = set(vert.dtype.names)
    if "strand" in names:
        sid = vert["strand"].astype(np.int64)
        order = np.argsort(sid, kind="stable")
        _, starts, counts = np.unique(sid[order], return_index=True, return_counts=True)
        chains = [order[s:s + c] for s, c in zip(starts, counts)]
    elif "edge" in arrays and len(arrays["edge"]):
        e = arrays["edge"]
        chains = _chains(np.asarray(e[e.dtype.names[0]], np.int64),
                         np.asarray(e[e.dtype.names[1]], np.int64), len(P))
    elif points_per_strand:
        if len(P) % points_per_strand:
            raise InputError(f"{path}: {len(P)} points are not a multiple of "
                             f"{points_per_strand} points per strand")
        chains = list(np.arange(len(P)).reshape(-1, points_per_strand))
    else:
        raise InputError(f"{path}: the PLY file has neither a 'strand' vertex property nor "
                         f"edges, so its strands cannot be told apart")
    chains = [c for c in chains if len(c) >= 2]
    if not chains:
        raise InputError(f"{path}: no strand has 2 or more points")
    roots = np.array([c[0] for c in chains])
    attrs: dict = {}
    if "group" in names:
        attrs["group_id"] = vert["group"][roots].astype(np.int32)
    if "guide" in names:
        attrs["guide"] = vert["guide"][roots] != 0
    if {"root_u", "root_v"} <= names:
        attrs["root_uv"] = np.stack([vert["root_u"][roots], vert["root_v"][roots]], 1)
    if {"red", "green", "blue"} <= names:
        c = np.stack([vert["red"][roots], vert["green"][roots], vert["blue"][roots]], 1)
        attrs["colors"] = c / 255.0 if vert["red"].dtype.kind in "iu" else np.clip(c, 0, 1)
    widths = None
    if "width" in names:
        w = np.asarray(vert["width"], np.float32)
        per = [w[c] for c in chains]
        widths = (np.array([x[0] for x in per], np.float32)
                  if all((x == x[0]).all() for x in per) else per)
    groom = Groom.from_polylines([P[c] for c in chains], widths=widths, source=str(path), **attrs)
    return ReadResult(groom, *(tag or (None, None)))


def _chains(a: np.ndarray, b: np.ndarray, n_points: int) -> list[np.ndarray]:
    """Vertex chains (polylines) from directed edges ``a[i] -> b[i]``; a chain starts at a
    vertex with no incoming edge. Branching vertices end a chain."""
    nxt = np.full(n_points, -1, np.int64)
    nxt[a] = b
    has_in = np.zeros(n_points, bool)
    has_in[b] = True
    out = []
    for s in np.flatnonzero(~has_in & (nxt >= 0)):
        chain = [s]
        v = s
        while nxt[v] >= 0 and len(chain) <= n_points:
            v = nxt[v]
            chain.append(v)
        out.append(np.asarray(chain))
    return out
