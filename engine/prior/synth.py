"""Procedural hairstyles on the scalp: the training data of the hair prior.

A groom is grown strand by strand, vectorised over all strands (numpy), in the head frame
(metres, +Y up, +Z out of the face):

1. Roots: rejection-sampled over scalp UV with a smoothly varying density (random Fourier
   features of UV), thinning towards the hairline.
2. Centre lines: each strand starts along a blend of the scalp normal (``lift``) and a combing
   direction given by the parting (centre, side, none = swept back) or the fringe (forward and
   down over the forehead), then bends towards gravity with a per-style bending length
   (``stiffness_m``). After every step the point is pushed out of the head along the SDF gradient
   to a per-strand offset (``volume_m`` times a random layer in [0.15, 1] plus 2 mm), and the step
   direction is recomputed: the hair drapes over the head instead of passing through it.
3. Clumping: strands are pulled towards the centre line of their nearest guide (clump) with a
   weight growing from root to tip.
4. Curl: wavy hair adds a planar sine wave in the hair surface, curly and coily hair a helix
   around the centre line (parallel-transported frame, per-clump phase), ramping in over the
   first centimetres; the number of turns is capped so that a 100-point strand keeps at least
   ~8 points per turn.
5. Final push-out of every point (>= 1 mm outside), uniform arc-length resampling to L points.

Lengths vary smoothly over the scalp (random Fourier features plus a nape-to-crown profile).
Everything is driven by a :class:`HairStyle` and a seed, so the output is reproducible.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from engine.errors import InputError
from engine.head.scalp import Scalp, default_scalp
from engine.io.groom import resample_strands

CURL_CLASSES = ("straight", "wavy", "curly", "coily")
LENGTH_CLASSES = ("short", "medium", "long")
PARTINGS = ("centre", "side", "none")
_LENGTH_RANGE = {"short": (0.04, 0.10), "medium": (0.12, 0.25), "long": (0.28, 0.50)}


@dataclass(frozen=True)
class HairStyle:
    """Parameters of a procedural hairstyle (lengths in metres).

    curl: one of CURL_CLASSES; length_class: one of LENGTH_CLASSES; parting: one of PARTINGS.
    length_m: strand centre-line length at the crown; length_variation: relative amplitude of the
    smooth length field (0..0.4); nape_ratio: length at the nape relative to the crown (0.3..1.2).
    curl_radius_m: wave amplitude or helix radius; curl_period_m: centre-line length per wave/turn.
    volume_m: maximum extra distance of the hair from the head; lift: 0 = roots comb flat, 1 =
    roots stand along the scalp normal; stiffness_m: bending length under gravity.
    clump_count / clump_strength (0..1): clumps and how strongly tips converge to their guide.
    density_variation (0..0.8): relative amplitude of the root density field.
    part_x_m: x of the parting line (centre = 0). fringe: forward-combed strands over the
    forehead of length fringe_length_m. seed: seed of every random choice of the groom.
    """

    curl: str = "straight"
    length_class: str = "medium"
    parting: str = "centre"
    fringe: bool = False
    length_m: float = 0.18
    length_variation: float = 0.15
    nape_ratio: float = 0.9
    curl_radius_m: float = 0.0
    curl_period_m: float = 0.05
    volume_m: float = 0.01
    lift: float = 0.3
    stiffness_m: float = 0.05
    clump_count: int = 60
    clump_strength: float = 0.3
    density_variation: float = 0.3
    part_x_m: float = 0.0
    fringe_length_m: float = 0.08
    seed: int = 0

    def to_dict(self) -> dict:
        """JSON-serialisable dict of the fields."""
        return dataclasses.asdict(self)


def sample_style(rng: np.random.Generator | int, curl: str | None = None, length: str | None = None,
                 parting: str | None = None, fringe: bool | None = None) -> HairStyle:
    """Draw a random :class:`HairStyle`; any of curl / length / parting / fringe can be fixed.

    Raises InputError for an unknown class name.
    """
    rng = np.random.default_rng(rng)
    curl = curl or CURL_CLASSES[rng.integers(4)]
    if curl not in CURL_CLASSES:
        raise InputError(f"unknown curl class {curl!r} (expected one of {CURL_CLASSES})")
    if length is None:
        # coily hair is short-to-medium, curly rarely very long
        probs = {"straight": [0.3, 0.35, 0.35], "wavy": [0.25, 0.4, 0.35],
                 "curly": [0.35, 0.45, 0.2], "coily": [0.6, 0.4, 0.0]}[curl]
        length = LENGTH_CLASSES[rng.choice(3, p=probs)]
    if length not in LENGTH_CLASSES:
        raise InputError(f"unknown length class {length!r} (expected one of {LENGTH_CLASSES})")
    parting = parting or PARTINGS[rng.choice(3, p=[0.35, 0.35, 0.3])]
    if parting not in PARTINGS:
        raise InputError(f"unknown parting {parting!r} (expected one of {PARTINGS})")
    if fringe is None:
        fringe = bool(rng.random() < 0.3)
    lo, hi = _LENGTH_RANGE[length]
    length_m = float(rng.uniform(lo, hi))
    if curl == "straight":
        radius, period = rng.uniform(0.0, 0.002), rng.uniform(0.06, 0.15)
        volume, lift, stiff = rng.uniform(0.004, 0.015), rng.uniform(0.05, 0.3), rng.uniform(0.02, 0.06)
    elif curl == "wavy":
        radius, period = rng.uniform(0.004, 0.012), rng.uniform(0.035, 0.08)
        volume, lift, stiff = rng.uniform(0.008, 0.025), rng.uniform(0.1, 0.4), rng.uniform(0.03, 0.07)
    elif curl == "curly":
        radius, period = rng.uniform(0.004, 0.010), rng.uniform(0.015, 0.035)
        volume, lift, stiff = rng.uniform(0.015, 0.04), rng.uniform(0.35, 0.7), rng.uniform(0.05, 0.12)
    else:  # coily
        radius, period = rng.uniform(0.002, 0.005), rng.uniform(0.008, 0.015)
        volume, lift, stiff = rng.uniform(0.02, 0.05), rng.uniform(0.6, 0.95), rng.uniform(0.1, 0.3)
    part_x = 0.0 if parting != "side" else float(rng.choice([-1, 1]) * rng.uniform(0.02, 0.04))
    return HairStyle(
        curl=curl, length_class=length, parting=parting, fringe=bool(fringe), length_m=length_m,
        length_variation=float(rng.uniform(0.05, 0.3)),
        nape_ratio=float(rng.uniform(0.35, 0.8) if length == "short" else rng.uniform(0.7, 1.1)),
        curl_radius_m=float(radius), curl_period_m=float(period), volume_m=float(volume),
        lift=float(lift), stiffness_m=float(stiff), clump_count=int(rng.integers(20, 150)),
        clump_strength=float(rng.uniform(0.1, 0.6) if curl in ("straight", "wavy") else rng.uniform(0.3, 0.8)),
        density_variation=float(rng.uniform(0.0, 0.6)), part_x_m=part_x,
        fringe_length_m=float(rng.uniform(0.05, 0.11)), seed=int(rng.integers(2**31)),
    )


@dataclass
class Groom:
    """A synthetic groom. strands (N, L, 3) float32 metres head frame, root first, uniform arc
    length; uv (N, 2) float32 root scalp UV in [0, 1]^2; style: the :class:`HairStyle`."""

    strands: np.ndarray
    uv: np.ndarray
    style: HairStyle


def _fourier_field(rng: np.random.Generator, n_feat: int = 6, freq: float = 3.0):
    """A smooth random scalar field over UV with zero mean and unit-ish amplitude."""
    w = rng.normal(0.0, freq, (n_feat, 2))
    ph = rng.uniform(0, 2 * np.pi, n_feat)

    def f(uv):
        return np.sqrt(2.0 / n_feat) * np.cos(uv @ w.T * 2 * np.pi / 2 + ph).sum(1)

    return f


def _normalize(v):
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _smoothstep(x, a, b):
    t = np.clip((x - a) / (b - a), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def push_out(points: np.ndarray, sdf, offset) -> np.ndarray:
    """Move points (M, 3) with SDF < ``offset`` (m, scalar or (M,)) out along the SDF gradient."""
    d, g = sdf.query(points)
    deficit = np.maximum(np.asarray(offset) - d, 0.0)
    return points + deficit[:, None] * g


def synth_groom(style: HairStyle, n_strands: int = 10_000, n_points: int = 100,
                scalp: Scalp | None = None, n_steps: int = 128) -> Groom:
    """Grow a procedural groom of ``n_strands`` strands of ``n_points`` points for ``style``.

    Returns a :class:`Groom` (strands (N, L, 3) float32 metres, head frame, root first, uniform
    arc length; root UVs (N, 2) float32). Deterministic for a given style (its ``seed``) and
    arguments. ~2 s for 10k strands on one (shared) CPU core. Raises InputError for n_strands < 1 or
    n_points < 2.
    """
    if n_strands < 1 or n_points < 2:
        raise InputError(f"synth_groom: need n_strands >= 1 and n_points >= 2, got {n_strands}, {n_points}")
    scalp = scalp or default_scalp()
    sdf = scalp.sdf
    rng = np.random.default_rng(style.seed)
    dens_f = _fourier_field(rng, freq=2.0)
    len_f = _fourier_field(rng, freq=2.5)
    dir_f = _fourier_field(rng, freq=3.0)

    def density(uv):
        r = np.hypot(2 * uv[:, 0] - 1, 2 * uv[:, 1] - 1)
        edge = 0.35 + 0.65 * _smoothstep(1.0 - r, 0.0, 0.12)
        return edge * (1 - style.density_variation * 0.5 * (1 + np.tanh(dens_f(uv))))

    n_guides = max(1, min(style.clump_count, n_strands))
    uv_all = scalp.sample_uv(n_strands + n_guides, rng, density)
    uv = uv_all[:n_strands]
    fr = scalp.frames(uv_all)
    P0, Nrm = fr.positions, fr.normals
    M = len(uv_all)

    # ---- length field -----------------------------------------------------------------------
    y_rel = _smoothstep(P0[:, 1], -0.02, 0.10)  # 0 at the nape, 1 at the crown
    prof = style.nape_ratio + (1.0 - style.nape_ratio) * y_rel
    length = style.length_m * prof * (1.0 + style.length_variation * np.tanh(len_f(uv_all)))
    length *= rng.uniform(0.93, 1.0, M)  # per-strand jitter (split ends)

    # ---- combing direction --------------------------------------------------------------------
    up = np.array([0.0, 1.0, 0.0])
    back = np.array([0.0, -0.3, -1.0])
    crown = np.array([0.0, 0.14, -0.01])
    radial = P0 - crown
    radial[:, 1] = np.minimum(radial[:, 1], 0.0) - 0.01
    if style.parting == "none":
        comb = np.tile(back, (M, 1)) + 0.6 * _normalize(radial)
    else:
        sgn = np.sign(P0[:, 0] - style.part_x_m + 1e-9)[:, None]
        # away from the parting, and backwards near the face so that the hair frames the face
        side = np.concatenate([sgn, np.full_like(sgn, -0.3), -0.8 * _smoothstep(P0[:, 2:3], 0.0, 0.07)], 1)
        w_part = _smoothstep(P0[:, 2], -0.03, 0.03)[:, None]
        comb = w_part * _normalize(side) + (1 - w_part) * _normalize(radial)
    is_fringe = np.zeros(M)
    if style.fringe:
        u2, v2 = 2 * uv_all[:, 0] - 1, 2 * uv_all[:, 1] - 1
        r2 = np.hypot(u2, v2)
        front = _smoothstep(np.arctan2(np.abs(u2), v2), np.radians(55), np.radians(35))
        is_fringe = front * _smoothstep(r2, 0.45, 0.65)
        comb = (1 - is_fringe[:, None]) * comb + is_fringe[:, None] * np.array([0.0, -0.5, 1.0])
        length = (1 - is_fringe) * length + is_fringe * np.minimum(length, style.fringe_length_m
                                                                   * rng.uniform(0.9, 1.1, M))
    # random rotation of the combing direction about the normal (smooth field + jitter)
    ang = 0.25 * np.tanh(dir_f(uv_all)) + rng.normal(0, 0.06, M)
    comb = comb - (comb * Nrm).sum(1, keepdims=True) * Nrm
    comb = _normalize(comb)
    bc = np.cross(Nrm, comb)
    comb = np.cos(ang)[:, None] * comb + np.sin(ang)[:, None] * bc
    lift = np.clip(style.lift * (1 - 0.6 * is_fringe) + rng.normal(0, 0.05, M), 0.0, 0.98)
    d = _normalize(lift[:, None] * Nrm + (1 - lift[:, None]) * comb)

    # ---- grow centre lines with gravity and collision --------------------------------------------
    K = n_steps
    ds = length / (K - 1)
    layer = rng.uniform(0.15, 1.0, M)
    offset = 0.002 + style.volume_m * layer
    stiff = style.stiffness_m * rng.uniform(0.8, 1.2, M)
    C = np.empty((M, K, 3))
    C[:, 0] = P0
    p = P0.copy()
    s = 0.0 * ds
    for k in range(1, K):
        s = s + ds
        d = _normalize(d + (ds / stiff)[:, None] * (-up))
        q = p + ds[:, None] * d
        ramp = _smoothstep(s, 0.0, 0.03)
        for _ in range(2):
            q = push_out(q, sdf, offset * ramp)
            d = _normalize(q - p)
            q = p + ds[:, None] * d
        C[:, k] = q
        p = q

    # ---- clumping --------------------------------------------------------------------------------
    from scipy.spatial import cKDTree

    G = C[n_strands:]
    Cs = C[:n_strands]
    gid = cKDTree(P0[n_strands:]).query(P0[:n_strands])[1]
    t = np.linspace(0.0, 1.0, K)[None, :, None]
    w = style.clump_strength * rng.uniform(0.6, 1.0, n_strands)[:, None, None] * t ** 0.8
    target = G[gid] + (P0[:n_strands] - P0[n_strands:][gid])[:, None, :] * (1 - t)
    Cs = (1 - w) * Cs + w * target
    length = length[:n_strands]
    Nrm = Nrm[:n_strands]

    # ---- curl ------------------------------------------------------------------------------------
    if style.curl_radius_m > 0:
        tan = np.gradient(Cs, axis=1)
        tan = _normalize(tan)
        e1 = _normalize(np.cross(tan[:, 0], Nrm))  # in the hair surface, across the strand
        E1 = np.empty_like(Cs)
        e = e1
        for k in range(K):  # parallel transport
            e = _normalize(e - (e * tan[:, k]).sum(1, keepdims=True) * tan[:, k])
            E1[:, k] = e
        E2 = np.cross(tan, E1)
        arc = np.linspace(0.0, 1.0, K)[None, :] * length[:, None]
        period = np.maximum(style.curl_period_m, length / 12.0)  # <= 12 turns per strand
        period = period * rng.uniform(0.9, 1.1, n_strands)
        g_phase = rng.uniform(0, 2 * np.pi, n_guides)
        phase = g_phase[gid] + rng.normal(0, 0.5, n_strands)
        theta = 2 * np.pi * arc / period[:, None] + phase[:, None]
        rad = style.curl_radius_m * rng.uniform(0.8, 1.2, n_strands)[:, None]
        rad = rad * _smoothstep(arc, 0.0, 0.02 if style.curl != "wavy" else 0.04)
        if style.curl == "straight" or style.curl == "wavy":
            off = (rad * np.sin(theta))[..., None] * E1
        else:
            off = (rad * np.cos(theta))[..., None] * E1 + (rad * np.sin(theta))[..., None] * E2
        Cs = Cs + off

    # ---- final collision and resampling -----------------------------------------------------------
    strands = resample_strands(Cs, n_points)
    flat = strands.reshape(-1, 3)
    for _ in range(2):
        flat = push_out(flat, sdf, 0.001)
    strands = flat.reshape(n_strands, n_points, 3)
    strands[:, 0] = P0[:n_strands]
    return Groom(strands.astype(np.float32), uv.astype(np.float32), style)


def curl_class_index(style: HairStyle) -> int:
    """Index of ``style.curl`` in CURL_CLASSES."""
    return CURL_CLASSES.index(style.curl)
