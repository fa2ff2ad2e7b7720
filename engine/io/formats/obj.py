"""Wavefront OBJ grooms: one ``l`` (polyline) record per strand (trimesh cannot write curves).

Written layout: a comment line ``# strandcap units=.. up=..``; per strand group an object
``o hair_group_<id>`` with the group's points as ``v x y z`` records (``v x y z r g b`` with the
strand's colour when colours are written, the vertex-colour extension that Blender, MeshLab and
ZBrush read), one ``vt u v`` record per strand holding its root UV (when present) and one
``l`` record per strand, root first, referencing its points (``l i/t j/t ...`` with the
strand's root-UV texture vertex when present); then, when the head mesh is written, an object
``o head`` with its vertices and ``f`` triangles (counter-clockwise). Coordinates use ``%.9g``,
enough to restore float32 values exactly. OBJ has no field for widths or guide flags: they are
not written.

Units and axes: coordinates are in the export units after the up-axis remap of
:mod:`engine.io.formats._common` (``up="z"``: ``(x, y, z) -> (x, -z, y)``); the comment line
records both for :func:`engine.io.export.load_groom`.

Reading accepts any OBJ whose curves are ``l`` records (faces of objects are taken as the head
mesh; negative, relative indices are supported).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from engine.errors import InputError
from engine.io.formats._common import ExportOptions, ReadResult, parse_tag, triangulate
from engine.io.groom import Groom

SUFFIXES = (".obj",)
_CHUNK = 20000  # rows formatted per write call


def _write_rows(f, fmt: str, rows: np.ndarray) -> None:
    for s in range(0, len(rows), _CHUNK):
        block = rows[s:s + _CHUNK]
        f.write((fmt * len(block)) % tuple(block.ravel().tolist()))


def write(groom: Groom, path: Path, options: ExportOptions) -> None:
    """Write ``groom`` (already in file units and axes) to ``path`` as OBJ text."""
    L = groom.points_per_strand
    with open(path, "w", encoding="ascii", newline="\n") as f:
        f.write(f"# {options.tag}\n# {groom.num_strands} strands of {L} points, "
                f"one 'l' record per strand, root first\n")
        v_base = 0
        t_base = 0
        for gid, idx in groom.groups():
            n = len(idx)
            f.write(f"o hair_group_{gid}\n")
            pts = groom.strands[idx].reshape(-1, 3).astype(np.float64)
            if groom.colors is not None:
                col = np.repeat(groom.colors[idx].astype(np.float64), L, axis=0)
                _write_rows(f, "v %.9g %.9g %.9g %.9g %.9g %.9g\n", np.hstack([pts, col]))
            else:
                _write_rows(f, "v %.9g %.9g %.9g\n", pts)
            vi = v_base + 1 + np.arange(n * L, dtype=np.int64).reshape(n, L)
            if groom.root_uv is not None:
                _write_rows(f, "vt %.9g %.9g\n", groom.root_uv[idx].astype(np.float64))
                ti = t_base + 1 + np.arange(n, dtype=np.int64)
                rows = np.empty((n, 2 * L), np.int64)
                rows[:, 0::2] = vi
                rows[:, 1::2] = ti[:, None]
                _write_rows(f, "l" + " %d/%d" * L + "\n", rows)
                t_base += n
            else:
                _write_rows(f, "l" + " %d" * L + "\n", vi)
            v_base += n * L
        if groom.has_head:
            f.write("o head\n")
            _write_rows(f, "v %.9g %.9g %.9g\n", groom.head_vertices.astype(np.float64))
            _write_rows(f, "f %d %d %d\n", groom.head_faces.astype(np.int64) + v_base + 1)


def _parse_rows(rows: list[str]) -> np.ndarray:
    """Parse ``v`` records into ``(n, k)`` float64; k is the smallest column count (3 or 6)."""
    if not rows:
        return np.zeros((0, 3))
    ncols = {len(r.split()) - 1 for r in (rows[0], rows[-1])}
    if len(ncols) == 1:
        k = ncols.pop()
        flat = np.array(" ".join(r[2:] for r in rows).split(), np.float64)
        if flat.size == k * len(rows):
            return flat.reshape(-1, k)
    vals = [r.split()[1:] for r in rows]
    k = min(len(v) for v in vals)
    return np.array([v[:k] for v in vals], np.float64)


def _parse_l_records(
    recs: list[tuple[str, int, int, int]],
) -> list[tuple[np.ndarray, int | None, int]]:
    """``l`` records -> [(0-based vertex ids, 0-based root texture id or None, group)]. Parses
    all records at once when they share one token form (``v``, ``v/t``, ``v/t/n``, ``v//n``),
    else record by record. Negative (relative) indices are resolved."""
    body = " ".join(r[0][2:] for r in recs)
    counts = np.array([r[0].count(" ") for r in recs])
    first = body.split(None, 1)[0] if body.strip() else ""
    comps = first.count("/") + 1
    nums = None
    if all(r[0][-1:] != " " and "  " not in r[0] for r in recs):
        flat = body.replace("//", "/0/").replace("/", " ").split()
        if len(flat) == counts.sum() * comps:
            nums = np.array(flat, np.int64).reshape(-1, comps)
    if nums is None:  # mixed forms or odd spacing: one record at a time
        rows, counts = [], []
        for r in recs:
            toks = [t.split("/") for t in r[0].split()[1:]]
            counts.append(len(toks))
            rows += [[int(t[0]), int(t[1]) if len(t) > 1 and t[1] else 0] for t in toks]
        nums, counts = np.array(rows, np.int64).reshape(-1, 2), np.array(counts)
    nv = np.repeat([r[1] for r in recs], counts)
    ids = nums[:, 0]
    ids = np.where(ids > 0, ids - 1, nv + ids)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out = []
    for k, (r, s, c) in enumerate(zip(recs, starts, counts)):
        tid = None
        if nums.shape[1] > 1 and c > 0 and nums[s, 1] != 0:
            t = int(nums[s, 1])
            tid = t - 1 if t > 0 else r[2] + t
        out.append((ids[s:s + c], tid, r[3]))
    return out


_GROUP_RE = re.compile(r"hair_group_(\d+)")


def read(path: Path) -> ReadResult:
    """Read the ``l`` records of an OBJ file as strands (file coordinates)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise InputError(f"{path}: cannot read the file ({e.strerror})") from None
    verts: list[str] = []
    texs: list[str] = []
    lrecs: list[tuple[str, int, int, int]] = []  # (record, #v before, #vt before, group)
    faces: list[list[int]] = []
    group = 0
    obj_index = -1
    tag = None
    head_first_vertex = None
    for raw in text.splitlines():
        if not raw:
            continue
        c = raw[0]
        if c == "v":
            if raw.startswith("v "):
                verts.append(raw)
            elif raw.startswith("vt "):
                texs.append(raw)
            continue
        if c == "l" and raw.startswith("l "):
            lrecs.append((raw, len(verts), len(texs), group))
        elif c == "f" and raw.startswith("f "):
            nv = len(verts)
            ids = [int(t.split("/")[0]) for t in raw.split()[1:]]
            faces.append([i - 1 if i > 0 else nv + i for i in ids])
        elif c in "og" and raw[1:2] == " ":
            obj_index += 1
            m = _GROUP_RE.search(raw)
            group = int(m.group(1)) if m else obj_index
            if raw[2:].strip() == "head":
                head_first_vertex = len(verts)
        elif c == "#" and tag is None:
            tag = parse_tag(raw)
    if not lrecs:
        raise InputError(f"{path}: the OBJ file has no 'l' (polyline) records")
    try:
        lines = _parse_l_records(lrecs)
    except ValueError:
        raise InputError(f"{path}: malformed 'l' record") from None
    try:
        V = _parse_rows(verts)
        ncol = V.shape[1]
        T = np.array([t.split()[1:3] for t in texs], np.float64).reshape(-1, 2)
    except ValueError:
        raise InputError(f"{path}: malformed 'v' or 'vt' record") from None
    if ncol < 3:
        raise InputError(f"{path}: a 'v' record has fewer than 3 coordinates")
    P = V[:, :3]
    try:
        lines = [ln for ln in lines if len(ln[0]) >= 2]
        polylines = [P[ids] for ids, _, _ in lines]
    except IndexError:
        raise InputError(f"{path}: an 'l' record refers to a vertex that does not exist") from None
    if not polylines:
        raise InputError(f"{path}: no 'l' record has 2 or more points")
    roots = np.array([ids[0] for ids, _, _ in lines])
    colors = np.clip(V[roots, 3:6], 0, 1) if ncol >= 6 else None
    root_uv = None
    if all(t is not None for _, t, _ in lines) and len(T):
        tids = np.array([t for _, t, _ in lines])
        if tids.max() >= len(T):
            raise InputError(
                f"{path}: an 'l' record refers to a texture vertex that does not exist")
        root_uv = T[tids]
    group_id = np.array([g for _, _, g in lines], np.int32)
    head_v = head_f = None
    if faces:
        F = triangulate(np.concatenate(faces), np.array([len(x) for x in faces]))
        lo = int(F.min()) if head_first_vertex is None else head_first_vertex
        head_v = P[lo:int(F.max()) + 1]
        head_f = F - lo
        if head_f.min() < 0:
            raise InputError(f"{path}: the mesh faces share vertices with the strands")
    groom = Groom.from_polylines(polylines, source=str(path), colors=colors, root_uv=root_uv,
                                 group_id=group_id, head_vertices=head_v, head_faces=head_f)
    return ReadResult(groom, *(tag or (None, None)))
