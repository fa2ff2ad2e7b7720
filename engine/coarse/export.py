"""Outputs of the coarse stage: meshes, saved fields and their loader, preview renders.

Files written into a stage folder by :func:`save_fields` / :func:`save_meshes`:

* ``fields.safetensors``: the weights of :class:`~engine.coarse.fields.CoarseFields`;
* ``fields.json``: ``{"schema_version": 1, "spec": FieldSpec, "centre": [x, y, z] metres,
  "scale": metres}``: the normalisation ``u = (x - centre) / scale`` and the architecture;
* ``hair_mesh.ply``, ``bust_mesh.ply``: marching-cubes surfaces (scikit-image), head frame, metres.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from engine.coarse.fields import CoarseFields, FieldSpec
from engine.coarse.losses import project_direction_angle
from engine.coarse.render import CameraSet, pixel_rays, ray_box, render_rays
from engine.errors import InputError

FIELDS_JSON = "fields.json"
FIELDS_WEIGHTS = "fields.safetensors"
SCHEMA_VERSION = 1


# -- meshes ------------------------------------------------------------------------------------
@torch.no_grad()
def sdf_grid(fields: CoarseFields, resolution: int, chunk: int = 65536) -> np.ndarray:
    """Both SDFs on a ``resolution^3`` grid over ``[-1, 1]^3`` (normalised units).

    Returns (R, R, R, 2) float32 indexed [i_x, i_y, i_z, (hair, bust)].
    """
    dev = next(fields.parameters()).device
    g = torch.linspace(-1, 1, resolution, device=dev)
    pts = torch.stack(torch.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    out = torch.cat([fields.sdf(pts[i:i + chunk]) for i in range(0, pts.shape[0], chunk)])
    return out.reshape(resolution, resolution, resolution, 2).cpu().numpy()


def marching_cubes(volume: np.ndarray, centre: np.ndarray, scale: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Zero level set of a (R, R, R) SDF grid over [-1, 1]^3 (scikit-image's marching cubes).

    Returns vertices (V, 3) float32 in the head frame (metres) and faces (F, 3) int32,
    counter-clockwise seen from outside (the SDF's positive side, scikit-image's winding for
    an SDF that grows outwards). Empty arrays when the grid has
    no zero crossing.
    """
    from skimage.measure import marching_cubes as mc

    if not (volume.min() < 0 < volume.max()):
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32)
    r = volume.shape[0]
    verts, faces, _, _ = mc(volume, level=0.0, spacing=(2.0 / (r - 1),) * 3)
    verts = (verts - 1.0) * scale + np.asarray(centre)
    return verts.astype(np.float32), faces.astype(np.int32)


def extract_meshes(fields: CoarseFields, centre: np.ndarray, scale: float, resolution: int
                   ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"hair": (vertices, faces), "bust": (vertices, faces)} in the head frame, metres."""
    vol = sdf_grid(fields, resolution)
    return {"hair": marching_cubes(vol[..., 0], centre, scale),
            "bust": marching_cubes(vol[..., 1], centre, scale)}


def save_meshes(meshes: dict[str, tuple[np.ndarray, np.ndarray]], out_dir: Path) -> None:
    """Write ``<name>_mesh.ply`` for each mesh (trimesh, binary PLY, metres, head frame)."""
    import trimesh

    for name, (v, f) in meshes.items():
        trimesh.Trimesh(v, f, process=False).export(Path(out_dir) / f"{name}_mesh.ply")


# -- fields ------------------------------------------------------------------------------------
def save_fields(fields: CoarseFields, centre, scale: float, out_dir: Path) -> None:
    """Write ``fields.safetensors`` and ``fields.json`` (see the module docstring)."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    state = {k: v.detach().cpu().contiguous() for k, v in fields.state_dict().items()}
    save_file(state, str(out_dir / FIELDS_WEIGHTS))
    meta = {"schema_version": SCHEMA_VERSION, "spec": fields.spec.to_dict(),
            "centre": [float(c) for c in np.asarray(centre, np.float64).reshape(3)],
            "scale": float(scale)}
    (out_dir / FIELDS_JSON).write_text(json.dumps(meta, indent=2), encoding="utf-8")


class CoarseFieldQuery:
    """Queryable coarse result in the head frame (metres); the fine stage's view of stage 1.

    Attributes:
        fields: the :class:`CoarseFields` (eval mode). centre: (3,) tensor, metres.
        scale: box half-size, metres. device: torch device.
    """

    def __init__(self, fields: CoarseFields, centre: torch.Tensor, scale: float) -> None:
        self.fields = fields.eval()
        self.centre = centre
        self.scale = float(scale)
        self.device = centre.device

    def _u(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x, dtype=torch.float32, device=self.device)
        return (x - self.centre) / self.scale

    def sdf_hair(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 3) float32 metres, head frame -> (N,) signed distance to the hair, metres
        (negative inside). Differentiable in the field weights and x."""
        return self.fields.sdf(self._u(x))[:, 0] * self.scale

    def sdf_bust(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 3) metres -> (N,) signed distance to the bust, metres (negative inside)."""
        return self.fields.sdf(self._u(x))[:, 1] * self.scale

    def orientation(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 3) metres -> (N, 3) unit 3D hair direction (unsigned: beta and -beta are the same
        orientation), head frame."""
        return self.fields.orientation(self._u(x))

    def inside_box(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3) metres -> (N,) bool, whether the fields were fitted there."""
        return (self._u(x).abs() <= 1).all(-1)


def load_coarse_fields(stage_dir: Path | str, device: str | torch.device = "cpu"
                       ) -> CoarseFieldQuery:
    """Load a coarse stage's fields for querying ``sdf_hair``, ``sdf_bust``, ``orientation``.

    Args:
        stage_dir: the coarse stage folder (``cache/coarse/<key>/``) or any folder holding
            ``fields.json`` and ``fields.safetensors``.
        device: torch device for the fields.
    Raises:
        InputError: a file is missing, unreadable or of a newer schema.
    """
    from safetensors.torch import load_file

    stage_dir = Path(stage_dir)
    meta_path, w_path = stage_dir / FIELDS_JSON, stage_dir / FIELDS_WEIGHTS
    for p in (meta_path, w_path):
        if not p.is_file():
            raise InputError(f"{p}: missing; run the coarse stage first")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        spec = FieldSpec.from_dict(meta["spec"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{meta_path}: unreadable coarse-field description ({exc})") from exc
    if int(meta.get("schema_version", 0)) > SCHEMA_VERSION:
        raise InputError(f"{meta_path}: schema_version {meta.get('schema_version')} is newer "
                         "than this Strandcap understands")
    fields = CoarseFields(spec)
    try:
        fields.load_state_dict(load_file(str(w_path)))
    except Exception as exc:  # safetensors raises its own error types
        raise InputError(f"{w_path}: unreadable or mismatched weights ({exc})") from exc
    fields.to(device)
    centre = torch.tensor(meta["centre"], dtype=torch.float32, device=device)
    return CoarseFieldQuery(fields, centre, meta["scale"])


# -- preview renders ---------------------------------------------------------------------------
def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    import cv2

    hsv = np.stack([h * 179.0, s * 255.0, v * 255.0], -1).clip(0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def orientation_to_rgb(angle: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """2D orientation map to colour: hue = 2 * angle (so 0 and pi match), value = weight.
    angle (H, W) radians, weight (H, W) in [0, 1] -> (H, W, 3) uint8."""
    return _hsv_to_rgb((np.mod(angle, math.pi) / math.pi), np.ones_like(angle),
                       np.clip(weight, 0, 1))


@torch.no_grad()
def render_maps(fields: CoarseFields, cams: CameraSet, view: int, centre: torch.Tensor,
                scale: float, n_samples: int = 48, n_importance: int = 32, chunk: int = 2048
                ) -> dict[str, np.ndarray]:
    """Render one view of the fitted fields.

    Returns dict of numpy arrays: ``color`` (H, W, 3) float32, ``mask_hair`` / ``mask_bust``
    (H, W), ``normal`` (H, W, 3) unit normals in the camera frame (OpenCV axes), ``angle``
    (H, W) projected beta at the expected hair surface (radians [0, pi), CCW from image +x),
    ``depth_hair`` (H, W) camera-ray depth to the hair surface in metres (0 where none).
    """
    H, W = cams.height, cams.width
    dev = centre.device
    ys, xs = torch.meshgrid(torch.arange(H, device=dev), torch.arange(W, device=dev),
                            indexing="ij")
    px, py = xs.reshape(-1).float(), ys.reshape(-1).float()
    vv = torch.full_like(px, view, dtype=torch.long)
    o, d = pixel_rays(cams, vv, px, py, centre, scale)
    near, far, hit, _ = ray_box(o, d)
    n = px.shape[0]
    out = {"color": torch.zeros(n, 3, device=dev), "mask_hair": torch.zeros(n, device=dev),
           "mask_bust": torch.zeros(n, device=dev), "normal": torch.zeros(n, 3, device=dev),
           "angle": torch.zeros(n, device=dev), "depth_hair": torch.zeros(n, device=dev)}
    idx = torch.nonzero(hit)[:, 0]
    for s in range(0, idx.numel(), chunk):
        i = idx[s:s + chunk]
        r = render_rays(fields, o[i], d[i], near[i], far[i], n_samples, n_importance,
                        jitter=False)
        out["color"][i] = r["color"]
        out["mask_hair"][i] = r["mask_hair"]
        out["mask_bust"][i] = r["mask_bust"]
        out["normal"][i] = r["normal"] @ cams.R[view].T
        xs_u = o[i] + d[i] * r["depth_hair"][:, None]
        beta = fields.orientation(xs_u)
        m = i.numel()
        out["angle"][i] = project_direction_angle(
            xs_u * scale + centre, beta, cams.K[view].expand(m, 3, 3),
            cams.R[view].expand(m, 3, 3), cams.t[view].expand(m, 3))
        out["depth_hair"][i] = r["depth_hair"] * scale * (r["mask_hair"] > 0.5)
    return {k: v.reshape(H, W, -1).squeeze(-1).cpu().numpy() for k, v in out.items()}


def preview_image(maps: dict[str, np.ndarray], image: np.ndarray | None = None) -> np.ndarray:
    """A side-by-side preview (H, k*W, 3) uint8: [input image,] rendered colour, normals,
    orientation on the hair."""
    col = (np.clip(maps["color"], 0, 1) * 255).astype(np.uint8)
    occ = np.clip(maps["mask_hair"] + maps["mask_bust"], 0, 1)[..., None]
    nrm = maps["normal"] * np.array([1.0, -1.0, -1.0])  # camera frame -> OpenGL-style colours
    nrm = (((nrm + 1) * 0.5) * occ * 255).clip(0, 255).astype(np.uint8)
    ori = orientation_to_rgb(maps["angle"], maps["mask_hair"])
    parts = ([np.asarray(image, np.uint8)] if image is not None else []) + [col, nrm, ori]
    return np.concatenate(parts, 1)


def normalise_mesh_for_preview(v: np.ndarray, f: np.ndarray) -> dict:
    """Mesh payload for ``ctx.preview("mesh", ...)``: vertices float32 (V, 3), faces int32."""
    return {"vertices": np.ascontiguousarray(v, np.float32),
            "faces": np.ascontiguousarray(f, np.int32)}

