"""The head of a synthetic scene: the ICT Face Model mesh with a procedural skin texture.

The mesh is the neutral ICT Face Model Light (USC ICT "ICT-FaceKit", MIT licence): the shipped
``resources/head/head_model.npz`` (metres) or the shared ``ict_face_model_light.npz``
(centimetres, converted), in the head frame (+Y up, +Z out of the face, x symmetric). Quads
are split into two triangles each, counter-clockwise seen from outside. A superellipsoid stands
in for the shoulders (region 3, clothing).

The albedo is evaluated *per pixel* from the head-frame position of the visible surface point
(:meth:`HeadModel.albedo`), so features stay crisp at any resolution: skin with two octaves of
smooth 3D noise (texture for feature matching), dark eyebrows along the 68-point brow landmarks,
eyelid lines, red lips inside the lip outline, and eyeballs with white sclera, iris and pupil.
That is what lets mediapipe's face mesh find the face on renders.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engine.errors import InputError

REPO_ROOT = Path(__file__).resolve().parents[2]
ICT_SHARED = REPO_ROOT.parent / "shared" / "data" / "heads" / "ict_face_model_light.npz"
SHIPPED_HEAD = REPO_ROOT / "resources" / "head" / "head_model.npz"

SKIN = np.array([0.80, 0.58, 0.47])
BROW = np.array([0.20, 0.13, 0.08])
LIPS = np.array([0.70, 0.33, 0.32])
SCLERA = np.array([0.92, 0.91, 0.88])
IRIS = np.array([0.32, 0.22, 0.13])
LID = np.array([0.16, 0.10, 0.08])
CLOTH = np.array([0.18, 0.30, 0.42])
SCALP = np.array([0.22, 0.15, 0.10])
# hairline of the scalp tint: elevation (deg) above the head centre at azimuths (deg, 0 = front)
_SCALP_CENTRE = np.array([0.0, 0.045, 0.005])
_HAIRLINE_AZ = np.array([0.0, 35.0, 65.0, 90.0, 115.0, 140.0, 180.0])
_HAIRLINE_EL = np.array([42.0, 35.0, 26.0, 20.0, 10.0, -22.0, -42.0])
REGION_TORSO = 3


def smooth_noise(points: np.ndarray, wavelength: float, seed: int = 0, octaves: int = 2,
                 waves: int = 6) -> np.ndarray:
    """Smooth pseudo-random field in about [-1, 1] at points (N, 3) (any unit; ``wavelength``
    in the same unit): a sum of ``waves`` random plane sinusoids per octave, halving the
    wavelength and amplitude each octave. Deterministic in ``seed``. Returns (N,) float32."""
    rng = np.random.default_rng(seed)
    p = np.asarray(points, np.float32)
    out = np.zeros(len(p), np.float32)
    norm = 0.0
    for o in range(octaves):
        d = rng.normal(size=(3, waves)).astype(np.float32)
        d /= np.linalg.norm(d, axis=0, keepdims=True)
        ph = rng.uniform(0, 2 * np.pi, waves).astype(np.float32)
        amp = 0.5 ** o
        out += amp * np.sin(p @ (d * (2 * np.pi * 2 ** o / wavelength)) + ph).sum(1)
        norm += amp * np.sqrt(waves / 2.0)
    return out / (norm * 1.5)


def _smoothstep(x, a, b):
    t = np.clip((x - a) / (b - a), 0.0, 1.0)
    return t * t * (3 - 2 * t)


@dataclass
class HeadModel:
    """A triangle-mesh head with per-vertex regions and landmarks.

    Attributes:
        vertices: (V, 3) float32 metres, head frame.
        faces: (F, 3) int32, counter-clockwise seen from outside.
        region: (V,) int8, ICT regions (0 face, 1 head and neck, 2 eyeballs).
        landmarks68: (68,) int32 vertex indices of the Multi-PIE 68-point markup.
        seed: seed of the skin texture noise.
        scalp_tint: 0..1, how much the scalp above the hairline is painted hair-brown.
    """

    vertices: np.ndarray
    faces: np.ndarray
    region: np.ndarray
    landmarks68: np.ndarray
    seed: int = 0
    scalp_tint: float = 0.8

    def __post_init__(self) -> None:
        v = self.vertices
        lm = v[self.landmarks68].astype(np.float64)
        self._brows = [lm[17:22], lm[22:27]]
        self._lids = [lm[36:40], lm[42:46]]
        self._lower_lids = [lm[[39, 40, 41, 36]], lm[[45, 46, 47, 42]]]
        # lip lookup in the frontal (x, y) plane: 0.25 mm cells, blurred for soft edges
        outer, inner = lm[48:60, :2], lm[60:68, :2]
        self._lip_lo = outer.min(0) - 0.004
        self._lip_cell = 0.00025
        size = np.ceil((outer.max(0) + 0.004 - self._lip_lo) / self._lip_cell).astype(int) + 1
        img = np.zeros((size[1], size[0]), np.float32)
        to_px = lambda pts: np.round((pts - self._lip_lo) / self._lip_cell).astype(np.int32)  # noqa
        cv2.fillPoly(img, [to_px(outer)], 1.0)
        cv2.fillPoly(img, [to_px(inner)], 0.35)
        self._lip_img = cv2.GaussianBlur(img, (0, 0), 2.0)
        self._lip_z = float(lm[48:60, 2].min()) - 0.006
        eye = self.region == 2
        self._eye_tips = []
        for sgn in (-1, 1):
            side = eye & (np.sign(v[:, 0]) == sgn)
            self._eye_tips.append(v[side][np.argmax(v[side, 2])].astype(np.float64)
                                  if side.any() else None)

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, seed: int = 0,
             torso: bool = True) -> "HeadModel":
        """Load the neutral ICT Face Model head.

        ``path``: an ``.npz`` with ``vertices`` (V, 3), ``region`` (V,), ``landmarks68`` (68,) and
        either ``faces`` (F, 3) triangles or ``quads`` (Q, 4) plus optional ``tris`` (T, 3).
        Vertices in centimetres (the ICT Face Model Light file) are converted to metres; a file
        whose vertices span less than 2 units is taken to be in metres already (the shipped
        ``resources/head/head_model.npz``). Default: the shipped head when present, else
        ``../shared/data/heads/ict_face_model_light.npz``. With ``torso`` a simple shoulders
        mesh (:func:`torso_mesh`, region 3, clothing) is added under the open neck.

        Raises InputError naming the file when it is missing or lacks an array.
        """
        if path is None:
            candidates = [SHIPPED_HEAD, ICT_SHARED]
            p = next((c for c in candidates if c.is_file()), ICT_SHARED)
        else:
            p = Path(path)
        if not p.is_file():
            raise InputError(f"{p}: no such head model file")
        try:
            with np.load(p, allow_pickle=False) as d:
                v = d["vertices"].astype(np.float32)
                if "faces" in d.files:
                    faces = d["faces"].astype(np.int64)
                else:
                    quads = d["quads"].astype(np.int64)
                    tris = d["tris"].astype(np.int64) if "tris" in d.files else \
                        np.zeros((0, 3), np.int64)
                    faces = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]], tris])
                region = d["region"].astype(np.int8)
                lm = d["landmarks68"].astype(np.int32)
        except (OSError, ValueError, KeyError) as exc:
            if path is None and p != ICT_SHARED and ICT_SHARED.is_file():
                return cls.load(ICT_SHARED, seed, torso)
            raise InputError(f"{p}: not an ICT Face Model file ({exc})") from exc
        if float(np.ptp(v, axis=0).max()) > 2.0:  # centimetres
            v = v / 100.0
        faces = faces.astype(np.int32)
        if torso:
            tv, tf = torso_mesh()
            faces = np.concatenate([faces, tf + len(v)]).astype(np.int32)
            v = np.concatenate([v, tv]).astype(np.float32)
            region = np.concatenate([region, np.full(len(tv), REGION_TORSO, np.int8)])
        return cls(v, faces, region, lm, seed)

    # ------------------------------------------------------------------------------------------
    def albedo(self, points: np.ndarray, eye_weight: np.ndarray,
               cloth_weight: np.ndarray | None = None) -> np.ndarray:
        """Procedural albedo at surface points.

        Args:
            points: (M, 3) head-frame positions on the surface, metres.
            eye_weight: (M,) interpolated indicator of the eyeball region (region 2) in [0, 1].
            cloth_weight: (M,) interpolated indicator of the torso region (region 3) in [0, 1].
        Returns:
            (M, 3) float32 linear-ish RGB albedo in [0, 1].
        """
        p = np.asarray(points, np.float64)
        n1 = smooth_noise(p, 0.03, self.seed, octaves=2)
        n2 = smooth_noise(p, 0.008, self.seed + 1, octaves=2)
        col = SKIN[None] * (1.0 + 0.10 * n1 + 0.05 * n2)[:, None]
        # warmer cheeks and nose, slightly darker neck
        col[:, 0] *= 1.0 + 0.05 * _smoothstep(p[:, 2], 0.06, 0.11)
        col *= (0.85 + 0.15 * _smoothstep(p[:, 1], -0.12, -0.06))[:, None]
        if self.scalp_tint > 0:
            # darker, hair-coloured scalp above the hairline (roots seen between strands)
            d = p - _SCALP_CENTRE
            el = np.arcsin(np.clip(d[:, 1] / np.maximum(np.linalg.norm(d, axis=1), 1e-9), -1, 1))
            psi = np.degrees(np.abs(np.arctan2(d[:, 0], d[:, 2])))
            hl = np.radians(np.interp(psi, _HAIRLINE_AZ, _HAIRLINE_EL))
            w = self.scalp_tint * _smoothstep(el - hl, 0.0, 0.08) * (p[:, 1] > -0.08)
            col = col * (1 - w[:, None]) + (SCALP * (1 + 0.2 * n2[:, None])) * w[:, None]
        front = _smoothstep(p[:, 2], 0.04, 0.06)
        brow = np.zeros(len(p))
        for pts in self._brows:
            d = _polyline_distance(p, pts)
            brow = np.maximum(brow, 1.0 - _smoothstep(d, 0.0035, 0.0055))
        brow *= front
        lid = np.zeros(len(p))
        for pts in self._lids:
            lid = np.maximum(lid, 1.0 - _smoothstep(_polyline_distance(p, pts), 0.0008, 0.0016))
        for pts in self._lower_lids:
            lid = np.maximum(lid, 0.5 * (1.0 - _smoothstep(_polyline_distance(p, pts), 0.0005,
                                                                0.0011)))
        lid *= front
        ij = np.round((p[:, :2] - self._lip_lo) / self._lip_cell).astype(np.int64)
        h, w = self._lip_img.shape
        ok = ((ij[:, 0] >= 0) & (ij[:, 0] < w) & (ij[:, 1] >= 0) & (ij[:, 1] < h)
              & (p[:, 2] > self._lip_z))
        lips = np.zeros(len(p))
        lips[ok] = self._lip_img[ij[ok, 1], ij[ok, 0]]
        col = col * (1 - lips[:, None]) + (LIPS[None] * (1 + 0.1 * n2[:, None])) * lips[:, None]
        col = col * (1 - brow[:, None]) + (BROW[None] * (1 + 0.3 * n2[:, None])) * brow[:, None]
        col = col * (1 - lid[:, None]) + LID[None] * lid[:, None]
        # eyeballs: sclera, iris, pupil around the front-most point of each eyeball
        ew = np.clip(np.asarray(eye_weight, np.float64), 0, 1)
        if (ew > 0).any():
            eye_col = np.tile(SCLERA, (len(p), 1))
            for tip in self._eye_tips:
                if tip is None:
                    continue
                d = np.linalg.norm(p - tip, axis=1)
                iris = 1.0 - _smoothstep(d, 0.0052, 0.006)
                pupil = 1.0 - _smoothstep(d, 0.0022, 0.0027)
                eye_col = eye_col * (1 - iris[:, None]) + IRIS[None] * iris[:, None]
                eye_col = eye_col * (1 - pupil[:, None]) + 0.02 * pupil[:, None]
            col = col * (1 - ew[:, None]) + eye_col * ew[:, None]
        if cloth_weight is not None:
            cw = np.clip(np.asarray(cloth_weight, np.float64), 0, 1)[:, None]
            cn = smooth_noise(p, 0.02, self.seed + 5, octaves=1)
            cloth = CLOTH[None] * (1.0 + 0.12 * cn)[:, None]
            col = col * (1 - cw) + cloth * cw
        return np.clip(col, 0, 1).astype(np.float32)


def torso_mesh(centre=(0.0, -0.265, -0.025), radii=(0.21, 0.13, 0.12), power: float = 3.0,
               n_lat: int = 48, n_lon: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """A superellipsoid ``|x/a|^p + |y/b|^p + |z/c|^p = 1`` standing in for shoulders and chest.

    Defaults put its top just under the ICT neck's open end (y = -0.19 m) so the neck enters it.
    Returns vertices (V, 3) float32 metres (head frame) and faces (F, 3) int32 (CCW outward).
    """
    th = np.linspace(0, np.pi, n_lat)  # polar angle from +Y
    ph = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    T, Pp = np.meshgrid(th, ph, indexing="ij")
    e = 2.0 / power
    sgn_pow = lambda x: np.sign(x) * np.abs(x) ** e  # noqa: E731
    x = radii[0] * sgn_pow(np.sin(T)) * sgn_pow(np.sin(Pp))
    y = radii[1] * sgn_pow(np.cos(T))
    z = radii[2] * sgn_pow(np.sin(T)) * sgn_pow(np.cos(Pp))
    v = np.stack([x, y, z], -1).reshape(-1, 3) + np.asarray(centre)
    idx = np.arange(n_lat * n_lon).reshape(n_lat, n_lon)
    a, b = idx[:-1], np.roll(idx, -1, axis=1)[:-1]
    c, d = idx[1:], np.roll(idx, -1, axis=1)[1:]
    faces = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3),
                            np.stack([b, c, d], -1).reshape(-1, 3)])
    # orient outward
    fv = v[faces]
    n = np.cross(fv[:, 1] - fv[:, 0], fv[:, 2] - fv[:, 0])
    flip = (n * (fv.mean(1) - np.asarray(centre))).sum(1) < 0
    faces[flip] = faces[flip][:, [0, 2, 1]]
    area = np.linalg.norm(n, axis=1)
    return v.astype(np.float32), faces[area > 1e-12].astype(np.int32)


def _polyline_distance(p: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Distance (M,) from points p (M, 3) to the polyline through pts (K, 3)."""
    d = np.full(len(p), np.inf)
    for a, b in zip(pts[:-1], pts[1:]):
        ab = b - a
        s = np.clip(((p - a) @ ab) / max(float(ab @ ab), 1e-12), 0, 1)
        d = np.minimum(d, np.linalg.norm(p - (a + s[:, None] * ab), axis=1))
    return d
