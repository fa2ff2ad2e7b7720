"""The scalp: where hair grows on the head, its UV map, root frames and head collision.

One scalp serves the whole pipeline (Neural Haircut, Sklyarova et al., ICCV 2023, Sec. 3.2: strand
latents live in a scalp texture indexed by root UV). :func:`default_scalp` is the scalp of the
neutral ICT head (the one the hair prior is trained on); the cameras stage moves it onto the fitted
head (:func:`fitted_scalp`) and writes it as ``scalp.npz`` (:func:`save_scalp`), which the strands
stage reads (:func:`load_scalp`). :func:`select_scalp_faces` picks the scalp triangles of the head
model (``scripts/make_head_resources.py``).

The prior needs two things from the head: a *scalp* (root positions, outward normals, a tangent
frame and a UV parametrisation over [0, 1]^2) and a *signed distance* to the head for collision.
Both sit behind the small :class:`Scalp` / :class:`HeadSDF` interface below.

The ICT scalp (``head_ict.npz`` in ``resources/prior``, built by :func:`build_head_asset`
from ``../shared/data/heads/ict_face_model_light.npz``; ICT-FaceKit, MIT licence):

* Head frame: ICT Face Model frame scaled centimetres -> metres (+Y up, +Z out of the face).
* Signed distance: a 4 mm voxel grid of the signed distance to the neutral ICT mesh (face, head,
  neck and eyeballs). Distances come from a KD-tree over 400k area-uniform surface samples; the
  sign is the side of the nearest samples' face normals (majority of 8; triangles re-oriented
  outward first) within 3.6 mm of the surface, and a flood fill from the grid boundary further away (inside = not reachable from
  outside). Below y = -0.12 m the open neck is continued as an infinite column (a crude stand-in
  for the body). Trilinear interpolation; outside the grid the distance to the grid box is added.
* Scalp UV: an azimuthal map around the head centre ``c``. For a UV (u, v), with
  ``(x, y) = 2 (u, v) - 1``, ``r = |(x, y)|`` and azimuth ``psi = atan2(x, y)`` (psi = 0 towards
  the face, +x towards the head's +X side), the ray from ``c`` has elevation
  ``90 deg - r (90 deg - e_min(psi))`` where ``e_min`` is the hairline elevation (front hairline,
  temples, above the ears, nape). The disc r <= 1 is the scalp; v = 1 is the front hairline,
  v = 0 the nape, u = 1 the +X side. Root positions are the ray's hit on the head surface
  (marched on the SDF), normals are the SDF gradient, tangent T follows +u, bitangent
  B = N x T (towards -v, i.e. backwards at the crown), all tabulated on a 128 x 128 grid and bilinearly interpolated.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from engine.errors import InputError
from engine.io.files import atomic_path

REPO_ROOT = Path(__file__).resolve().parents[2]
RESOURCE_DIR = REPO_ROOT / "resources" / "prior"
HEAD_ASSET = RESOURCE_DIR / "head_ict.npz"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
ICT_PATH = SHARED_DATA / "heads" / "ict_face_model_light.npz"

# Head centre (m) from which scalp rays are cast, and hairline elevations (deg) at azimuths (deg).
_CENTRE = np.array([0.0, 0.045, 0.005])
_HAIRLINE_AZ = np.array([0.0, 35.0, 65.0, 90.0, 115.0, 140.0, 180.0])
_HAIRLINE_EL = np.array([40.0, 33.0, 24.0, 18.0, 8.0, -25.0, -45.0])
_TABLE_RES = 128
_NECK_CUT_Y = -0.12


def select_scalp_faces(vertices: np.ndarray, faces: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Triangles of the neutral ICT head where hair grows (geometric rule, documented).

    Keeps non-eyeball triangles whose centroid lies above a tilted hairline plane that passes
    y = 9.5 cm at the forehead (z = 9 cm) and y = -3 cm at the nape (z = -8 cm), removes the ears and
    a margin around them (|x| > 6.8 cm, -4 < z < 1 cm, y < 7 cm), and keeps the largest
    connected component.

    Args:
        vertices: (V, 3) metres, neutral shape. faces: (F, 3) int. region: (V,) int ICT regions.
    Returns:
        (S,) int64 indices into ``faces``.
    """
    v = np.asarray(vertices, np.float64) * 100.0
    f = np.asarray(faces, np.int64)
    c = v[f].mean(axis=1)
    slope = (9.5 - -3.0) / (9.0 - -8.0)
    above = c[:, 1] > 9.5 + (c[:, 2] - 9.0) * slope
    ear = (np.abs(c[:, 0]) > 6.8) & (c[:, 2] > -4) & (c[:, 2] < 1.0) & (c[:, 1] < 7.0)
    sel = np.nonzero(above & ~ear & np.all(region[f] != 2, axis=1))[0]
    # largest connected component over shared vertices
    sub = f[sel]
    n = len(sel)
    rows = np.repeat(np.arange(n), 3)
    a = coo_matrix((np.ones(3 * n), (rows, sub.ravel())), shape=(n, len(v))).tocsr()
    adj = a @ a.T
    _, lab = connected_components(adj, directed=False)
    big = np.argmax(np.bincount(lab))
    return sel[lab == big]


def hairline_elevation(psi: np.ndarray) -> np.ndarray:
    """Hairline elevation in radians for azimuth ``psi`` (radians, 0 = front), symmetric in x."""
    a = np.degrees(np.abs(np.asarray(psi, dtype=np.float64)))
    return np.radians(np.interp(a, _HAIRLINE_AZ, _HAIRLINE_EL))


def uv_to_direction(uv: np.ndarray) -> np.ndarray:
    """Scalp UV (N, 2) -> unit ray directions (N, 3) from the head centre (head frame)."""
    uv = np.asarray(uv, dtype=np.float64)
    x = 2.0 * uv[:, 0] - 1.0
    y = 2.0 * uv[:, 1] - 1.0
    r = np.hypot(x, y)
    psi = np.arctan2(x, y)
    el = np.pi / 2 - r * (np.pi / 2 - hairline_elevation(psi))
    ce = np.cos(el)
    return np.stack([ce * np.sin(psi), np.sin(el), ce * np.cos(psi)], axis=1)


# --------------------------------------------------------------------------------------------
# Signed distance
# --------------------------------------------------------------------------------------------


class HeadSDF:
    """Signed distance to the head (metres, positive outside) from a voxel grid.

    ``grid``: (X, Y, Z) float32 samples at ``origin + spacing * (i, j, k)``.
    """

    def __init__(self, grid: np.ndarray, origin: np.ndarray, spacing: float):
        self.grid = np.ascontiguousarray(grid, dtype=np.float32)
        self.origin = np.asarray(origin, dtype=np.float64)
        self.spacing = float(spacing)
        gx, gy, gz = np.gradient(self.grid, self.spacing)
        # value + gradient interleaved so one gather serves both
        self._vg = np.ascontiguousarray(np.stack([self.grid, gx, gy, gz], axis=-1), dtype=np.float32)
        self.shape = np.array(self.grid.shape)
        self._torch_cache: dict = {}

    def query(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Signed distance (N,) and its gradient (N, 3) at ``points`` (N, 3) metres, head frame."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        f = (p - self.origin) / self.spacing
        hi = self.shape - 1.000001
        fc = np.clip(f, 0.0, hi)
        i0 = np.floor(fc).astype(np.int64)
        i0 = np.minimum(i0, self.shape - 2)
        t = (fc - i0).astype(np.float32)
        out = np.zeros((p.shape[0], 4), np.float32)
        vg = self._vg
        for dx in (0, 1):
            wx = t[:, 0] if dx else 1 - t[:, 0]
            for dy in (0, 1):
                wy = t[:, 1] if dy else 1 - t[:, 1]
                for dz in (0, 1):
                    wz = t[:, 2] if dz else 1 - t[:, 2]
                    out += (wx * wy * wz)[:, None] * vg[i0[:, 0] + dx, i0[:, 1] + dy, i0[:, 2] + dz]
        d = out[:, 0].astype(np.float64)
        g = out[:, 1:].astype(np.float64)
        outside = np.linalg.norm((f - fc) * self.spacing, axis=1)
        d = d + outside
        gn = np.linalg.norm(g, axis=1, keepdims=True)
        g = np.where(gn > 1e-9, g / np.maximum(gn, 1e-9), np.array([0.0, 1.0, 0.0]))
        return d, g

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Signed distance (N,) float64 metres at ``points`` (N, 3) metres; positive outside."""
        return self.query(points)[0]

    def torch(self, points):
        """Differentiable trilinear SDF for a torch tensor ``points`` (..., 3) metres -> (...)."""
        import torch
        import torch.nn.functional as F

        key = (points.device, points.dtype)
        if key not in self._torch_cache:
            self._torch_cache[key] = torch.as_tensor(self.grid, dtype=points.dtype, device=points.device)
        grid = self._torch_cache[key]
        ext = torch.as_tensor(self.origin + self.spacing * (self.shape - 1), dtype=points.dtype,
                              device=points.device)
        org = torch.as_tensor(self.origin, dtype=points.dtype, device=points.device)
        n = 2 * (points - org) / (ext - org) - 1  # (..., 3) in [-1, 1], order x, y, z
        shp = points.shape[:-1]
        # grid_sample wants (N, C, D, H, W) with coords (x->W, y->H, z->D); our grid is (X, Y, Z)
        g = grid.permute(2, 1, 0)[None, None]
        val = F.grid_sample(g, n.reshape(1, -1, 1, 1, 3), align_corners=True, padding_mode="border")
        return val.reshape(shp)


# --------------------------------------------------------------------------------------------
# Scalp
# --------------------------------------------------------------------------------------------


@dataclass
class ScalpFrames:
    """Root frames: positions (N, 3) m, normals N, tangents T, bitangents B (N, 3) unit, head frame."""

    positions: np.ndarray
    normals: np.ndarray
    tangents: np.ndarray
    bitangents: np.ndarray

    def matrix(self) -> np.ndarray:
        """(N, 3, 3) rotation whose rows are T, B, N: local = R @ (p - root)."""
        return np.stack([self.tangents, self.bitangents, self.normals], axis=1)


class Scalp:
    """Scalp interface: UV mask, root sampling and root frames from tabulated maps.

    Any scalp can be wrapped by providing
    ``(R, R, 3)`` tables of positions, normals and tangents over UV [0, 1]^2 and a ``(R, R)``
    validity mask; texel (i, j) is at ``u = j / (R - 1)``, ``v = i / (R - 1)``.
    """

    def __init__(self, positions: np.ndarray, normals: np.ndarray, tangents: np.ndarray,
                 mask: np.ndarray, sdf: HeadSDF, mesh: tuple[np.ndarray, np.ndarray] | None = None):
        self.table = np.concatenate([positions, normals, tangents], axis=-1).astype(np.float64)
        self.mask_table = mask.astype(bool)
        self.res = positions.shape[0]
        self.sdf = sdf
        self.mesh = mesh

    # -- UV domain --------------------------------------------------------------------------
    def mask(self, uv: np.ndarray) -> np.ndarray:
        """(N,) bool: True where ``uv`` (N, 2) lies on the scalp (the unit disc of the UV map)."""
        uv = np.asarray(uv, dtype=np.float64)
        return np.hypot(2 * uv[:, 0] - 1, 2 * uv[:, 1] - 1) <= 1.0

    def sample_uv(self, n: int, rng: np.random.Generator, density=None) -> np.ndarray:
        """``n`` root UVs (n, 2) float64 on the scalp; ``density(uv) -> (M,)`` in (0, 1] optional
        (rejection sampling, so relative density varies smoothly as the function does)."""
        out = []
        have = 0
        while have < n:
            m = max(2 * (n - have), 256)
            uv = rng.random((m, 2))
            keep = self.mask(uv)
            if density is not None:
                keep &= rng.random(m) < np.clip(density(uv), 1e-3, 1.0)
            uv = uv[keep]
            out.append(uv)
            have += len(uv)
        return np.concatenate(out)[:n]

    def grid_uv(self, res: int) -> tuple[np.ndarray, np.ndarray]:
        """Texel-centre UVs of a ``res x res`` texture, (res*res, 2) row-major (row = v), and the
        (res, res) scalp mask. Row i has v = (i + 0.5) / res, column j has u = (j + 0.5) / res."""
        c = (np.arange(res) + 0.5) / res
        uu, vv = np.meshgrid(c, c)
        uv = np.stack([uu.ravel(), vv.ravel()], axis=1)
        return uv, self.mask(uv).reshape(res, res)

    # -- frames ------------------------------------------------------------------------------
    def frames(self, uv: np.ndarray) -> ScalpFrames:
        """Root frames at ``uv`` (N, 2): positions on the head surface (m), outward normals, and
        an orthonormal tangent (+u) and bitangent (N x T) per root, float64, head frame."""
        uv = np.clip(np.asarray(uv, dtype=np.float64), 0.0, 1.0)
        f = uv[:, ::-1] * (self.res - 1)  # (row, col)
        i0 = np.minimum(np.floor(f).astype(np.int64), self.res - 2)
        t = f - i0
        tab = self.table
        val = ((1 - t[:, 0]) * (1 - t[:, 1]))[:, None] * tab[i0[:, 0], i0[:, 1]] \
            + ((1 - t[:, 0]) * t[:, 1])[:, None] * tab[i0[:, 0], i0[:, 1] + 1] \
            + (t[:, 0] * (1 - t[:, 1]))[:, None] * tab[i0[:, 0] + 1, i0[:, 1]] \
            + (t[:, 0] * t[:, 1])[:, None] * tab[i0[:, 0] + 1, i0[:, 1] + 1]
        pos, nrm, tan = val[:, :3], val[:, 3:6], val[:, 6:9]
        nrm = nrm / np.linalg.norm(nrm, axis=1, keepdims=True)
        tan = tan - (tan * nrm).sum(1, keepdims=True) * nrm
        tan = tan / np.linalg.norm(tan, axis=1, keepdims=True)
        bit = np.cross(nrm, tan)
        return ScalpFrames(pos, nrm, tan, bit)


# --------------------------------------------------------------------------------------------
# Building and loading the ICT scalp asset
# --------------------------------------------------------------------------------------------


def _ict_mesh(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.exists():
        raise InputError(f"{path}: ICT Face Model file not found (needed to build the head asset)")
    d = np.load(path)
    v = d["vertices"].astype(np.float64) / 100.0  # cm -> m
    q = d["quads"].astype(np.int64)
    tris = np.concatenate([q[:, [0, 1, 2]], q[:, [0, 2, 3]], d["tris"].astype(np.int64)])
    return v, tris


def build_head_asset(ict_path: Path = ICT_PATH, out_path: Path = HEAD_ASSET, spacing: float = 0.004,
                     n_samples: int = 400_000, seed: int = 0) -> Path:
    """Build ``head_ict.npz`` (SDF grid, scalp tables, render mesh) from the ICT Face Model.

    Raises InputError when the ICT file is missing. Takes ~20 s on 2 CPU cores.
    """
    import trimesh

    v, tris = _ict_mesh(ict_path)
    mesh = trimesh.Trimesh(v, tris, process=False)
    pts, fid = trimesh.sample.sample_surface(mesh, n_samples, seed=seed)
    tree = cKDTree(pts)
    lo = v.min(0) - 0.04
    hi = v.max(0) + 0.04
    shape = np.ceil((hi - lo) / spacing).astype(int) + 1
    axes = [lo[i] + spacing * np.arange(shape[i]) for i in range(3)]
    gp = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    dist, idx = tree.query(gp, k=8, workers=-1)
    dist0 = dist[:, 0].reshape(tuple(shape))
    # Inside/outside away from the surface by flood fill from the grid boundary. Below y_cut the
    # open neck is continued as an infinite column (inside = inside of the cut slice).
    from scipy import ndimage
    band = dist0 < 0.9 * spacing
    j_cut = int(np.searchsorted(axes[1], _NECK_CUT_Y))
    free = ~band
    free[:, :j_cut, :] = False
    lab, _ = ndimage.label(free)
    b = np.unique(np.concatenate([lab[0].ravel(), lab[-1].ravel(), lab[:, -1].ravel(),
                                  lab[:, :, 0].ravel(), lab[:, :, -1].ravel()]))
    outside = np.isin(lab, b[b > 0])
    outside[:, :j_cut, :] = outside[:, j_cut:j_cut + 1, :]
    # Orient every triangle outward (the ICT face and head regions differ in winding): its normal
    # must point from the flood-filled inside towards the outside.
    occ = np.where(outside, 1.0, np.where(band, 0.5, 0.0))
    occ[:, :j_cut, :] = occ[:, j_cut:j_cut + 1, :]
    fn = mesh.face_normals
    fc = mesh.triangles_center

    def occ_at(p):
        ij = np.clip(np.round((p - lo) / spacing).astype(int), 0, shape - 1)
        return occ[ij[:, 0], ij[:, 1], ij[:, 2]]

    flipf = np.zeros(len(fn), bool)
    for step in (0.006, 0.010):
        score = occ_at(fc + step * fn) - occ_at(fc - step * fn)
        flipf |= (score < 0) & ~flipf
    tris = np.where(flipf[:, None], tris[:, ::-1], tris)
    mesh = trimesh.Trimesh(v, tris, process=False)
    nrm = mesh.face_normals[fid]
    side = ((gp[:, None, :] - pts[idx]) * nrm[idx]).sum(-1)
    near_sign = np.where((side > 0).sum(1) >= 4, 1.0, -1.0).reshape(tuple(shape))
    sign = np.where(outside, 1.0, -1.0)
    sign[band] = near_sign[band]
    sign[:, :j_cut, :] = sign[:, j_cut:j_cut + 1, :]
    grid = (sign * dist0).astype(np.float32)
    sdf = HeadSDF(grid, lo, spacing)

    # scalp tables: march rays from the centre on the SDF, bisect the crossing
    res = _TABLE_RES
    c = np.arange(res) / (res - 1)
    uu, vv = np.meshgrid(c, c)
    uv = np.stack([uu.ravel(), vv.ravel()], 1)
    d = uv_to_direction(uv)
    t_lo = np.full(len(d), 0.02)
    t_hi = np.full(len(d), np.nan)
    t = 0.02
    prev = t_lo.copy()
    while t < 0.3:
        t += 0.002
        s = sdf(_CENTRE + t * d)
        hit = np.isnan(t_hi) & (s > 0)
        t_hi[hit] = t
        prev[np.isnan(t_hi)] = t
        if not np.isnan(t_hi).any():
            break
    valid = ~np.isnan(t_hi)
    a, b = prev.copy(), np.where(valid, t_hi, prev)
    for _ in range(30):
        m = 0.5 * (a + b)
        s = sdf(_CENTRE + m[:, None] * d)
        a = np.where(s <= 0, m, a)
        b = np.where(s > 0, m, b)
    pos = _CENTRE + (0.5 * (a + b))[:, None] * d
    # fill invalid texels (rays leaving through the neck opening) by nearest valid texel
    if not valid.all():
        nn = cKDTree(uv[valid]).query(uv[~valid])[1]
        pos[~valid] = pos[valid][nn]
    _, nrm_s = sdf.query(pos)
    pos = pos.reshape(res, res, 3)
    nrm_s = nrm_s.reshape(res, res, 3)
    tan = np.gradient(pos, axis=1)  # d pos / d u (columns)
    tan = tan - (tan * nrm_s).sum(-1, keepdims=True) * nrm_s
    tan /= np.maximum(np.linalg.norm(tan, axis=-1, keepdims=True), 1e-12)
    # render mesh: region 0/1 only (no eyeballs), for contact sheets
    reg = np.load(ict_path)["region"]
    keep_f = (reg[tris] != 2).all(1)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out_path, sdf_grid=grid.astype(np.float16), sdf_origin=lo, sdf_spacing=np.float64(spacing),
        scalp_positions=pos.astype(np.float32), scalp_normals=nrm_s.astype(np.float32),
        scalp_tangents=tan.astype(np.float32), scalp_valid=valid.reshape(res, res),
        mesh_vertices=v.astype(np.float32), mesh_faces=tris[keep_f].astype(np.int32),
        centre=_CENTRE, hairline_az=_HAIRLINE_AZ, hairline_el=_HAIRLINE_EL,
    )
    return out_path


@functools.lru_cache(maxsize=4)
def _load_asset(path: str) -> Scalp:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: head asset of the hair prior not found (build it with "
                         "python -m engine.head.scalp)")
    d = np.load(p)
    sdf = HeadSDF(d["sdf_grid"].astype(np.float32), d["sdf_origin"], float(d["sdf_spacing"]))
    return Scalp(d["scalp_positions"], d["scalp_normals"], d["scalp_tangents"], d["scalp_valid"],
                 sdf, mesh=(d["mesh_vertices"], d["mesh_faces"]))


def default_scalp(path: Path | None = None) -> Scalp:
    """The scalp of the neutral ICT head (``resources/prior/head_ict.npz``), on which the prior
    is trained; :func:`fitted_scalp` moves it onto a fitted head.
    Raises InputError when the asset file is missing.
    """
    return _load_asset(str(path or HEAD_ASSET))


# --------------------------------------------------------------------------------------------
# The scalp of a fitted head (written by the cameras stage, read by the strands stage)
# --------------------------------------------------------------------------------------------


def fitted_scalp_positions(table_positions: np.ndarray, neutral_vertices: np.ndarray,
                           fitted_vertices: np.ndarray, k: int = 4) -> np.ndarray:
    """Move scalp positions of the neutral head onto a fitted head of the same topology.

    The displacement of the k nearest neutral vertices (inverse-distance weighted) is added to
    each position.

    Args:
        table_positions: (..., 3) metres on (or near) the neutral head. neutral_vertices,
        fitted_vertices: (V, 3) metres, same vertex order.
    Returns:
        (..., 3) float64 metres.
    """
    p = np.asarray(table_positions, np.float64)
    flat = p.reshape(-1, 3)
    d, idx = cKDTree(neutral_vertices).query(flat, k=k)
    w = 1.0 / np.maximum(d, 1e-6)
    w /= w.sum(1, keepdims=True)
    disp = np.asarray(fitted_vertices, np.float64) - np.asarray(neutral_vertices, np.float64)
    return (flat + (w[..., None] * disp[idx]).sum(1)).reshape(p.shape)


def fitted_scalp(head_vertices: np.ndarray, neutral_vertices: np.ndarray) -> Scalp:
    """:func:`default_scalp` moved onto a fitted head: root positions follow the fit
    (:func:`fitted_scalp_positions`); UV map, normals, tangents, validity mask and the collision
    SDF stay those of the neutral head.

    Args:
        head_vertices: (V, 3) metres, the fitted head (head frame). neutral_vertices: (V, 3)
            metres, the head model's neutral shape (same topology).
    Raises:
        InputError: the vertex counts differ (a head from another model).
    """
    if len(neutral_vertices) != len(head_vertices):
        raise InputError(f"fitted head has {len(head_vertices)} vertices, the head model "
                         f"{len(neutral_vertices)}; re-run the cameras stage")
    base = default_scalp()
    tab = base.table
    pos = fitted_scalp_positions(tab[..., :3], neutral_vertices, head_vertices)
    return Scalp(pos, tab[..., 3:6], tab[..., 6:9], base.mask_table, base.sdf, base.mesh)


def save_scalp(path: Path | str, scalp: Scalp) -> None:
    """Write the tables of ``scalp`` (positions, normals, tangents (R, R, 3) float64 metres,
    head frame; validity mask (R, R) bool) to ``path`` (npz, atomically). The collision SDF and
    mesh are not written: :func:`load_scalp` takes them from :func:`default_scalp`."""
    tab = scalp.table
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, positions=tab[..., :3], normals=tab[..., 3:6], tangents=tab[..., 6:9],
                     valid=scalp.mask_table)


def load_scalp(path: Path | str) -> Scalp:
    """The scalp written by :func:`save_scalp` (with :func:`default_scalp`'s collision SDF).

    Raises:
        InputError: the file is missing or not a scalp (naming it).
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: scalp missing; re-run the cameras stage")
    try:
        with np.load(p) as d:
            pos, nrm, tan, valid = d["positions"], d["normals"], d["tangents"], d["valid"]
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{p}: not a scalp file ({exc}); re-run the cameras stage") from exc
    if pos.ndim != 3 or pos.shape[-1] != 3 or not (pos.shape == nrm.shape == tan.shape) \
            or valid.shape != pos.shape[:2]:
        raise InputError(f"{p}: scalp tables of shapes {pos.shape}, {nrm.shape}, {tan.shape}, "
                         f"{valid.shape}; re-run the cameras stage")
    base = default_scalp()
    return Scalp(pos, nrm, tan, valid, base.sdf, base.mesh)


if __name__ == "__main__":  # pragma: no cover - build step
    print(build_head_asset())
