"""Fields of the coarse stage: a multi-resolution tri-plane with small MLP heads.

Everything here works in *normalised box coordinates* ``u = (x - centre) / scale`` where ``x`` is a
point in the head frame (metres) and the reconstruction box is ``[-1, 1]^3`` in ``u``. Signed
distances returned by :class:`CoarseFields` are in the same normalised units (multiply by
``scale`` for metres); the scale is isotropic, so directions are identical in both frames.

Representation (PanoHead's tri-grid / EG3D's tri-plane, Chan et al. 2022; An et al. 2023): three
axis-aligned feature planes (xy, xz, yz) per resolution, sampled bilinearly with ``grid_sample``
and concatenated, followed by tiny MLP heads:

* ``f_hair(u)``, ``f_bust(u)``: signed distances, each a fixed sphere prior plus a learned
  residual whose last layer starts at zero (the geometric initialisation of NeuS / SAL, Atzmon and
  Lipman 2020, in its simplest form: both surfaces start as spheres);
* ``c(u, v, n)``: view-dependent radiance (NeuS's rendering network, Wang et al. 2021, eq. 13);
* ``beta(u)``: the unsigned 3D hair-growth direction (Neural Haircut, Sklyarova et al. 2023,
  Sec. 3.1), a unit vector whose sign carries no meaning.

Spatial gradients of the SDFs (normals, the eikonal term) are *numerical*: a four-point
tetrahedral stencil (Neuralangelo, Li et al. 2023, eq. 8 uses central differences; the
tetrahedron is the 4-evaluation variant used by instant-nsr-pl), which is exact for linear
functions, needs no double backward through ``grid_sample`` (not implemented on every backend)
and spreads gradients over neighbouring grid cells.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

# Tetrahedron vertices: sum_k v_k = 0 and sum_k v_k v_k^T = 4 I.
TETRA = torch.tensor([[1.0, -1.0, -1.0], [-1.0, -1.0, 1.0], [-1.0, 1.0, -1.0], [1.0, 1.0, 1.0]])


@dataclass(frozen=True)
class FieldSpec:
    """Architecture of :class:`CoarseFields` (saved beside the weights as JSON).

    Attributes:
        resolutions: tri-plane resolutions (cells per side), e.g. (32, 128).
        channels: feature channels per plane and resolution.
        hidden: width of the MLP heads.
        bust_centre, bust_radius: sphere prior of f_bust, normalised units.
        hair_centre, hair_radius: sphere prior of f_hair, normalised units.
        grad_step: step of the numerical gradient, normalised units (0: half the finest cell).
    """

    resolutions: tuple[int, ...] = (32, 128)
    channels: int = 8
    hidden: int = 64
    bust_centre: tuple[float, float, float] = (0.0, 0.0, 0.0)
    bust_radius: float = 0.5
    hair_centre: tuple[float, float, float] = (0.0, 0.0, 0.0)
    hair_radius: float = 0.6
    grad_step: float = 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "FieldSpec":
        kw = dict(d)
        for k in ("resolutions", "bust_centre", "hair_centre"):
            kw[k] = tuple(kw[k])
        return cls(**kw)

    @property
    def step(self) -> float:
        return self.grad_step if self.grad_step > 0 else 1.0 / max(self.resolutions)


class TriPlane(nn.Module):
    """Multi-resolution tri-plane features.

    ``forward(u)``: u (N, 3) float32 normalised coordinates in [-1, 1]^3 (points outside are
    clamped to the border) -> (N, 3 * channels * len(resolutions)) float32 features.
    """

    def __init__(self, resolutions: tuple[int, ...], channels: int, init_std: float = 1e-3) -> None:
        super().__init__()
        self.planes = nn.ParameterList(
            [nn.Parameter(torch.randn(3, channels, r, r) * init_std) for r in resolutions])
        self.out_dim = 3 * channels * len(resolutions)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        # (3, 1, N, 2): xy, xz, yz projections (grid_sample's last dim is (x=width, y=height))
        g = torch.stack([u[:, [0, 1]], u[:, [0, 2]], u[:, [1, 2]]], 0)[:, None]
        feats = []
        for p in self.planes:
            s = F.grid_sample(p, g, mode="bilinear", padding_mode="border", align_corners=True)
            feats.append(s[:, :, 0, :].permute(2, 0, 1).reshape(u.shape[0], -1))  # (N, 3C)
        return torch.cat(feats, -1)

    def tv_loss(self) -> torch.Tensor:
        """Total-variation (squared differences of neighbouring cells) of all planes, a scalar."""
        out = 0.0
        for p in self.planes:
            out = out + (p[..., 1:, :] - p[..., :-1, :]).pow(2).mean() + (
                p[..., :, 1:] - p[..., :, :-1]).pow(2).mean()
        return out


def _mlp(inp: int, hidden: int, out: int, layers: int = 2, zero_last: bool = False) -> nn.Sequential:
    mods: list[nn.Module] = []
    d = inp
    for _ in range(layers):
        mods += [nn.Linear(d, hidden), nn.Softplus(beta=100)]
        d = hidden
    last = nn.Linear(d, out)
    if zero_last:
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
    mods.append(last)
    return nn.Sequential(*mods)


class CoarseFields(nn.Module):
    """Hair SDF, bust SDF, radiance and orientation on one tri-plane (see module docstring).

    All inputs/outputs are float32 tensors in normalised box coordinates.
    """

    def __init__(self, spec: FieldSpec = FieldSpec()) -> None:
        super().__init__()
        self.spec = spec
        self.encoder = TriPlane(spec.resolutions, spec.channels)
        f = self.encoder.out_dim + 3
        self.sdf_head = _mlp(f, spec.hidden, 2, layers=1, zero_last=True)  # (hair, bust) residuals
        self.color_head = _mlp(f + 6, spec.hidden, 3, layers=2)
        self.dir_head = _mlp(f, spec.hidden, 3, layers=1)
        # NeuS's single learnable variance, inv_s = exp(10 * variance)
        self.variance = nn.Parameter(torch.tensor(0.3))
        self.register_buffer("bust_c", torch.tensor(spec.bust_centre, dtype=torch.float32))
        self.register_buffer("hair_c", torch.tensor(spec.hair_centre, dtype=torch.float32))

    # -- pieces ---------------------------------------------------------------------------------
    def inv_s(self) -> torch.Tensor:
        """NeuS's sharpness s (scalar tensor), clamped to [1, 1e5] for numerical safety."""
        return torch.exp(self.variance * 10.0).clamp(1.0, 1e5)

    def features(self, u: torch.Tensor) -> torch.Tensor:
        """(N, 3) -> (N, F) tri-plane features concatenated with u itself."""
        return torch.cat([self.encoder(u), u], -1)

    def _sdf_from_feat(self, u: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
        res = self.sdf_head(feat)
        base_h = (u - self.hair_c).norm(dim=-1) - self.spec.hair_radius
        base_b = (u - self.bust_c).norm(dim=-1) - self.spec.bust_radius
        return torch.stack([base_h + res[:, 0], base_b + res[:, 1]], -1)

    def sdf(self, u: torch.Tensor) -> torch.Tensor:
        """Signed distances: u (N, 3) -> (N, 2) float32, columns (f_hair, f_bust), normalised units,
        negative inside."""
        return self._sdf_from_feat(u, self.features(u))

    def orientation_from_feat(self, feat: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.dir_head(feat), dim=-1, eps=1e-8)

    def orientation(self, u: torch.Tensor) -> torch.Tensor:
        """Unsigned hair direction beta: u (N, 3) -> (N, 3) unit vectors (sign meaningless)."""
        return self.orientation_from_feat(self.features(u))

    def color_from_feat(self, feat: torch.Tensor, view: torch.Tensor, normal: torch.Tensor
                        ) -> torch.Tensor:
        """Radiance c(x, v, n) in [0, 1]: feat (N, F), view (N, 3) unit ray direction, normal (N, 3)
        unit -> (N, 3) linear RGB."""
        return torch.sigmoid(self.color_head(torch.cat([feat, view, normal], -1)))

    # -- the combined query used by the renderer ------------------------------------------------
    def query(self, u: torch.Tensor, step: float | None = None) -> dict[str, torch.Tensor]:
        """SDF values, numerical gradients and features at u (N, 3).

        Evaluates the tri-plane at the four tetrahedron points ``u + h v_k``; the SDF value is
        their mean (second-order accurate) and the gradient ``sum_k v_k f_k / (4 h)`` (exact for
        linear f). Features for the colour and orientation heads are the mean of the four.

        Returns dict with ``sdf`` (N, 2) (hair, bust), ``grad`` (N, 2, 3) unnormalised gradients,
        ``feat`` (N, F).
        """
        h = self.spec.step if step is None else step
        n = u.shape[0]
        tet = TETRA.to(u) * h
        pts = (u[None] + tet[:, None]).reshape(-1, 3)  # (4N, 3)
        feat4 = self.features(pts)
        sdf4 = self._sdf_from_feat(pts, feat4).reshape(4, n, 2)
        grad = torch.einsum("kc,knj->njc", TETRA.to(u), sdf4) / (4.0 * h)  # (N, 2, 3)
        return {"sdf": sdf4.mean(0), "grad": grad,
                "feat": feat4.reshape(4, n, -1).mean(0)}

    def sdf_grad(self, u: torch.Tensor, step: float | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """(sdf (N, 2), grad (N, 2, 3)) via the tetrahedral stencil, for eikonal/normal losses."""
        q = self.query(u, step)
        return q["sdf"], q["grad"]


def sphere_prior_from_points(points_u: torch.Tensor, hair_margin: float) -> dict:
    """Sphere priors from head-mesh points in normalised coordinates.

    Args:
        points_u: (N, 3) head surface points, normalised units.
        hair_margin: how much larger the initial hair sphere is, normalised units.
    Returns:
        dict with bust_centre, bust_radius, hair_centre, hair_radius for :class:`FieldSpec`.
    """
    c = points_u.mean(0)
    r = float((points_u - c).norm(dim=-1).median())
    cc = tuple(float(v) for v in c)
    return {"bust_centre": cc, "bust_radius": r, "hair_centre": cc,
            "hair_radius": r + hair_margin}


def count_parameters(module: nn.Module) -> int:
    return int(sum(math.prod(p.shape) for p in module.parameters()))
