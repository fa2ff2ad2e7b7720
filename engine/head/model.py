"""The ICT Face Model (USC ICT FaceKit, MIT) as a differentiable linear morphable head model.

v(beta, psi) = v_0 + sum_k beta_k * I_k + sum_j psi_j * E_j      (Li et al., "Learning formation of
physically-based face attributes", CVPR 2020; the ICT FaceKit light model)

with ``beta`` identity coefficients (PCA modes, unit-variance Gaussian prior) and ``psi`` ARKit-style
expression blendshape weights in [0, 1]. The shipped resource (``resources/head/head_model.npz``,
built by ``scripts/make_head_resources.py``) holds the first 40 identity modes and all 53
expressions in float16 metres, the triangulated mesh, the mediapipe-478 -> vertex correspondence
and the scalp triangle list.

Frame and units: head frame of the project = ICT frame in metres (+Y up, +Z out of the face,
x symmetric about 0).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import trimesh

from engine.errors import InputError
from engine.io.files import atomic_path

RESOURCE = Path(__file__).resolve().parents[2] / "resources" / "head" / "head_model.npz"


class HeadModel:
    """Loaded head model.

    Attributes:
        vertices: (V, 3) float32 numpy, metres, neutral shape.
        faces: (F, 3) int64 numpy triangles (CCW outward). quads: (Q, 4) int64.
        region: (V,) int8 (0 face, 1 head and neck, 2 eyeballs).
        identity: (NI, V, 3) float32 numpy identity modes (metres per unit coefficient).
        expression: (NE, V, 3) float32 numpy blendshapes (metres at weight 1).
        expression_names: (NE,) str. landmarks68: (68,) int64 vertex ids (Multi-PIE markup).
        mp_index: (M,) int64 mediapipe face-mesh landmark ids with a model correspondence.
        mp_vertex: (M,) int64 model vertex of each of them.
        scalp_faces: (S,) int64 indices into ``faces``.
    """

    def __init__(self, path: Path | str = RESOURCE) -> None:
        path = Path(path)
        try:
            d = np.load(path)
            self.vertices = d["vertices"].astype(np.float32)
            self.faces = d["faces"].astype(np.int64)
            self.quads = d["quads"].astype(np.int64)
            self.region = d["region"].astype(np.int8)
            self.identity = d["identity_deltas"].astype(np.float32)
            self.expression = d["expression_deltas"].astype(np.float32)
            self.expression_names = [str(s) for s in d["expression_names"]]
            self.landmarks68 = d["landmarks68"].astype(np.int64)
            self.mp_index = d["mp_index"].astype(np.int64)
            self.mp_vertex = d["mp_vertex"].astype(np.int64)
            self.scalp_faces = d["scalp_faces"].astype(np.int64)
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(f"{path}: unreadable head model ({exc}); rebuild it with "
                             "`python scripts/make_head_resources.py`") from exc
        self._t: dict = {}

    @property
    def n_identity(self) -> int:
        return self.identity.shape[0]

    @property
    def n_expression(self) -> int:
        return self.expression.shape[0]

    def _tensors(self, vertex_ids: np.ndarray | None, device, dtype):
        key = (None if vertex_ids is None else vertex_ids.tobytes(), str(device), dtype)
        if key not in self._t:
            sl = slice(None) if vertex_ids is None else vertex_ids
            self._t[key] = tuple(torch.as_tensor(a[..., sl, :] if a.ndim == 3 else a[sl],
                                                 dtype=dtype, device=device)
                                 for a in (self.vertices, self.identity, self.expression))
        return self._t[key]

    def evaluate(self, identity: torch.Tensor | None = None,
                 expression: torch.Tensor | None = None,
                 vertex_ids: np.ndarray | None = None) -> torch.Tensor:
        """Vertices for coefficients (differentiable in both).

        Args:
            identity: (NI,) or (B, NI) identity coefficients (unit-variance PCA units), or None.
            expression: (NE,) or (B, NE) blendshape weights (nominally in [0, 1]), or None.
            vertex_ids: optional (K,) int array: evaluate only these vertices.
        Returns:
            (V, 3) or (B, V, 3) tensor (K instead of V with ``vertex_ids``), metres, head frame;
            dtype/device of the coefficients (float32 CPU when both are None).
        """
        ref = identity if identity is not None else expression
        dtype = ref.dtype if ref is not None else torch.float32
        device = ref.device if ref is not None else "cpu"
        v0, I, E = self._tensors(vertex_ids, device, dtype)
        out = v0
        if identity is not None:
            n = identity.shape[-1]
            out = out + (identity @ I[:n].reshape(n, -1)).reshape(*identity.shape[:-1], *v0.shape)
        if expression is not None:
            n = expression.shape[-1]
            out = out + (expression @ E[:n].reshape(n, -1)).reshape(*expression.shape[:-1],
                                                                     *v0.shape)
        return out

    def vertices_np(self, identity=None, expression=None) -> np.ndarray:
        """Numpy convenience wrapper of :meth:`evaluate` returning (V, 3) float64 metres."""
        idt = None if identity is None else torch.as_tensor(np.asarray(identity), dtype=torch.float64)
        ex = None if expression is None else torch.as_tensor(np.asarray(expression),
                                                             dtype=torch.float64)
        if idt is None and ex is None:
            return self.vertices.astype(np.float64)
        with torch.no_grad():
            return self.evaluate(idt, ex).cpu().numpy()


@lru_cache(maxsize=2)
def load_head_model(path: str | None = None) -> HeadModel:
    """The shipped head model (cached). Raises InputError when the resource is missing."""
    return HeadModel(Path(path) if path else RESOURCE)


def save_obj(path: Path | str, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Write a triangle mesh as Wavefront OBJ with trimesh (vertices in metres, head frame, six
    decimals, 1-based faces), atomically."""
    mesh = trimesh.Trimesh(np.asarray(vertices, np.float64), np.asarray(faces, np.int64),
                           process=False)
    text = trimesh.exchange.obj.export_obj(
        mesh, digits=6, include_normals=False, include_color=False, include_texture=False,
        header="Strandcap fitted head (ICT Face Model, MIT), metres, head frame (+Y up, +Z front)")
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def sample_mesh(vertices: np.ndarray, faces: np.ndarray, n: int,
                seed: int | np.random.Generator = 0, face_weight: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Area-uniform points (n, 3) float32 and unit face normals (n, 3) on a triangle mesh
    (``vertices`` (V, 3), any unit; ``faces`` (F, 3) int), by ``trimesh.sample.sample_surface``
    (``seed``: an int or a ``numpy.random.Generator``, which it advances).

    face_weight: (F,) non-negative weights that replace the face areas (e.g. the areas with some
    faces zeroed); None: the areas. Raises InputError when the mesh (or the weighting) has no
    area."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    mesh = trimesh.Trimesh(v, f, process=False)
    weight = mesh.area_faces if face_weight is None else np.asarray(face_weight, np.float64)
    if len(f) == 0 or not np.isfinite(weight).all() or weight.sum() <= 0 or mesh.area <= 0:
        raise InputError("the mesh to sample has no area")
    p, tri = trimesh.sample.sample_surface(mesh, n, face_weight=weight, seed=seed)
    return p.astype(np.float32), mesh.face_normals[tri].astype(np.float32)


def load_head_mesh(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) float32 metres and faces (F, 3) int32 of an OBJ/PLY triangle mesh.

    Raises InputError naming the file when it is missing or not a triangle mesh."""
    if not Path(path).is_file():
        raise InputError(f"{path}: fitted head mesh missing; run the cameras stage first")
    try:
        m = trimesh.load(path, force="mesh", process=False)
    except Exception as exc:  # trimesh raises many kinds
        raise InputError(f"{path}: unreadable head mesh ({exc})") from exc
    if len(m.faces) == 0:
        raise InputError(f"{path}: head mesh has no faces")
    return np.asarray(m.vertices, np.float32), np.asarray(m.faces, np.int32)
