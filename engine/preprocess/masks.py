"""Hair and bust masks from a person silhouette, the face region, colour models and GrabCut.

mediapipe gives the person silhouette (selfie segmentation) but has no hair model. The hair
mask is built per keyframe as follows (all masks float32 in [0, 1], (H, W)):

1. person probability ``P`` from mediapipe selfie segmentation;
2. the face oval from the 478 landmarks, and a skin colour model (a Gaussian in YCrCb fitted on
   cheek and forehead pixels inside the oval);
3. seeds for OpenCV GrabCut (Rother et al. 2004): sure background outside the person and on
   skin inside the face; sure hair above the brows, outside the face, where the colour is far
   from skin; then, from the clip's *shared* hair and other colour models
   (:func:`refine_with_colour`), probable hair above the brows, beside and below the head where
   the hair model beats the other model, never on the neck under the jaw (:func:`neck_zone`)
   or on skin-like pixels, and sure background on the clothes; probable background for the
   rest of the person;
4. GrabCut on a downscaled frame, upsampled, feathered, multiplied by ``P``;
5. temporal consistency: the hair colour model is shared by all keyframes (fitted on the sure
   hair of every frame), and each mask is blended with its neighbours' masks aligned to it by a
   similarity transform between the face landmarks.

A keyframe where no face was found (the back of the head, a profile) has no face geometry:
its seeds come from the shared colour models alone (:func:`faceless_seeds`).

bust = P * (1 - hair). A user-corrected mask (uint8: 255 hair, 0 not hair, other values keep
the computed value) overrides the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engine.preprocess.landmarks import BROWS, FACE_OVAL

# Landmarks around the eyes, brows and lips: excluded from the skin sample.
_FEATURES = np.array([33, 133, 159, 145, 263, 362, 386, 374, 70, 105, 107, 336, 334, 300,
                      61, 291, 0, 17, 13, 14, 468, 473])


class PersonSegmenter:
    """mediapipe selfie segmentation (the general 256x256 model). Use as a context manager."""

    def __init__(self) -> None:
        import mediapipe as mp

        self._seg = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)

    def __enter__(self) -> "PersonSegmenter":
        return self

    def __exit__(self, *exc) -> None:
        self._seg.close()

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (H, W) float32 person probability in [0, 1]."""
        res = self._seg.process(np.ascontiguousarray(rgb))
        return np.clip(res.segmentation_mask.astype(np.float32), 0.0, 1.0)


@dataclass(frozen=True)
class FaceGeometry:
    """Face regions of one frame, from its landmarks (pixels)."""

    oval: np.ndarray        # (H, W) bool, inside the face oval
    skin_sample: np.ndarray  # (H, W) bool, cheeks and forehead without eyes/brows/lips
    brow_y: float           # row of the highest brow point
    chin_y: float           # row of the chin
    face_height: float      # chin to the top of the oval, pixels
    centre_x: float


def face_geometry(points: np.ndarray, shape: tuple[int, int]) -> FaceGeometry:
    """Face oval, skin sample region and reference rows from (478, 2+) landmark pixels."""
    h, w = shape
    oval = np.zeros((h, w), np.uint8)
    cv2.fillPoly(oval, [np.round(points[FACE_OVAL, :2]).astype(np.int32)], 1)
    top = float(points[FACE_OVAL, 1].min())
    chin = float(points[152, 1])
    face_h = max(chin - top, 1.0)
    sample = cv2.erode(oval, np.ones((3, 3), np.uint8), iterations=max(int(face_h * 0.06), 1))
    holes = np.zeros_like(sample)
    radius = max(int(face_h * 0.07), 2)
    for p in points[_FEATURES, :2]:
        cv2.circle(holes, (int(p[0]), int(p[1])), radius, 1, -1)
    # brows and lips as filled bands
    cv2.fillPoly(holes, [np.round(points[[61, 39, 0, 269, 291, 405, 17, 181], :2]).astype(np.int32)], 1)
    sample = (sample > 0) & (holes == 0)
    return FaceGeometry(oval > 0, sample, float(points[BROWS, 1].min()), chin, face_h,
                        float(points[1, 0]))


class GaussianColourModel:
    """A single Gaussian over YCrCb colour; ``distance`` is the Mahalanobis distance."""

    def __init__(self, pixels_ycrcb: np.ndarray) -> None:
        x = pixels_ycrcb.reshape(-1, 3).astype(np.float64)
        self.mean = x.mean(0)
        cov = np.cov(x.T) + np.diag([40.0, 4.0, 4.0])  # luminance varies with shading
        self.inv = np.linalg.inv(cov)

    def distance(self, ycrcb: np.ndarray) -> np.ndarray:
        d = ycrcb.reshape(-1, 3).astype(np.float64) - self.mean
        m = np.einsum("ij,jk,ik->i", d, self.inv, d)
        return np.sqrt(m).reshape(ycrcb.shape[:2]).astype(np.float32)


class HistogramColourModel:
    """A smoothed 3D colour histogram in Lab (16 bins per axis); ``likelihood`` in [0, 1]."""

    BINS = 16

    def __init__(self) -> None:
        self.hist = np.zeros((self.BINS,) * 3, np.float64)

    def add(self, lab: np.ndarray, where: np.ndarray) -> None:
        idx = (lab[where].astype(np.int32) * self.BINS) // 256
        np.add.at(self.hist, (idx[:, 0], idx[:, 1], idx[:, 2]), 1.0)

    @property
    def count(self) -> float:
        return float(self.hist.sum())

    def likelihood(self, lab: np.ndarray) -> np.ndarray:
        total = self.hist.sum()
        if total <= 0:
            return np.zeros(lab.shape[:2], np.float32)
        from scipy.ndimage import gaussian_filter

        p = gaussian_filter(self.hist / total, 0.7)
        idx = (lab.astype(np.int32) * self.BINS) // 256
        return p[idx[..., 0], idx[..., 1], idx[..., 2]].astype(np.float32)


@dataclass(frozen=True)
class Seeds:
    """GrabCut seed labels (cv2.GC_BGD, GC_FGD, GC_PR_BGD, GC_PR_FGD) per pixel, (H, W) uint8."""

    labels: np.ndarray


def initial_seeds(rgb: np.ndarray, person: np.ndarray, face: FaceGeometry,
                  skin_max_distance: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """First-pass seeds from geometry and skin colour only.

    Returns:
        labels: (H, W) uint8 GrabCut labels.
        skin_like: (H, W) bool, pixels that look like skin, lit or in shadow: colour within
            1.6 ``skin_max_distance`` of the skin model and local texture energy (blurred
            |Laplacian|) below 1.5x the face sample's median; the shaded neck of a profile
            view, whose colour can pass for dark hair, is smooth where hair is not.
    """
    h, w = person.shape
    ycrcb = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
    skin_model = GaussianColourModel(ycrcb[face.skin_sample] if face.skin_sample.sum() > 50
                                     else ycrcb[face.oval])
    # skin is smooth, hair is made of thin strands: a pixel is skin only if its colour fits the
    # skin model *and* its local texture energy is skin-like
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    texture = cv2.GaussianBlur(np.abs(cv2.Laplacian(grey, cv2.CV_32F, ksize=3)), (0, 0), 2.0)
    sample = face.skin_sample if face.skin_sample.sum() > 50 else face.oval
    smooth = texture < 2.5 * float(np.percentile(texture[sample], 75)) + 1.0
    dist = skin_model.distance(ycrcb)
    skin = (dist < skin_max_distance) & smooth
    near_skin = (dist < 1.6 * skin_max_distance) & smooth  # shaded skin at the face border
    rows = np.arange(h, dtype=np.float32)[:, None].repeat(w, 1)
    inside = person > 0.5
    labels = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
    labels[person < 0.1] = cv2.GC_BGD
    face_core = cv2.erode(face.oval.astype(np.uint8), np.ones((5, 5), np.uint8),
                          iterations=max(int(face.face_height * 0.03), 1)) > 0
    above = rows < face.brow_y - 0.05 * face.face_height
    # the face below the brows (eyes, nostrils, mouth) is never hair; the forehead is hair only
    # where it does not look like skin (a fringe)
    labels[face_core & (skin | ~above)] = cv2.GC_BGD
    labels[face_core & ~skin & above] = cv2.GC_PR_FGD
    # above the brows and outside the face: hair unless it looks like skin (a bald forehead)
    oval_grown = cv2.dilate(face.oval.astype(np.uint8), np.ones((5, 5), np.uint8),
                            iterations=max(int(face.face_height * 0.02), 1)) > 0
    labels[inside & above & ~oval_grown & ~near_skin] = cv2.GC_FGD
    labels[inside & above & oval_grown & ~face_core & ~near_skin] = cv2.GC_PR_FGD
    # beside the face down to the chin: probably hair if not skin
    side = (rows >= face.brow_y - 0.05 * face.face_height) & (rows < face.chin_y)
    labels[inside & side & ~oval_grown & ~skin] = cv2.GC_PR_FGD
    # well below the chin: neck, shoulders and clothes
    low = rows > face.chin_y + 0.1 * face.face_height
    labels[inside & low] = cv2.GC_PR_BGD
    strict_smooth = texture < 1.5 * float(np.median(texture[sample])) + 1.0
    return labels, (dist < 1.6 * skin_max_distance) & strict_smooth


def neck_zone(face: FaceGeometry, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: the neck below the jaw, where the skin is in shadow and its colour can pass
    for dark hair: columns within the face oval's width at the mouth-to-chin rows (shrunk by
    10 % each side), rows from the chin to 0.8 face heights below it."""
    h, w = shape
    top = int(max(face.chin_y - 0.3 * face.face_height, 0))
    band = face.oval[top:int(min(max(face.chin_y, top + 1), h))]
    cols = np.flatnonzero(band.any(0)) if band.size else np.array([], int)
    out = np.zeros((h, w), bool)
    if cols.size == 0:
        return out
    x0, x1 = cols[0], cols[-1]
    pad = 0.1 * (x1 - x0)
    out[int(max(face.chin_y, 0)):int(min(face.chin_y + 0.8 * face.face_height, h)),
        int(x0 + pad):int(x1 - pad) + 1] = True
    return out


def refine_with_colour(labels: np.ndarray, lab: np.ndarray, person: np.ndarray,
                       face: FaceGeometry, hair_model: HistogramColourModel,
                       other_model: HistogramColourModel,
                       skin_like: np.ndarray | None = None) -> np.ndarray:
    """Second-pass seeds from the clip's shared colour models (likelihood ratio
    ``r = p_hair / p_other``, histograms in Lab). Probable background on the person becomes
    probable hair

    * above the brows and outside the face oval where ``r > 3``: the first pass leaves hair
      whose colour is near the skin's (brown hair on tanned skin, hair in shadow) as
      background, and the shared model, fitted on every view's sure hair, knows better;
    * from the brows down, outside the face oval, where ``r > 4``: hair beside the face,
      behind it in a profile view, over the shoulders;
    * anywhere else on the person where ``r > 20``;

    and probable background more than 0.3 face heights below the chin where ``r < 2.5`` (the
    clothes; a dark blue shirt measured 1.2-2 on a Blender orbit, hair over the chest of a
    real clip above 100) becomes sure background. No pixel of the neck (:func:`neck_zone`) or
    ``skin_like`` ((H, W) bool from :func:`initial_seeds`: a bald scalp, ears) becomes hair.
    Sure-hair seeds that the hair model rejects (``r < 0.05``) become probable background
    (hats, walls seen through the hair). Sure labels (face below the brows, background) never
    change. Returns (H, W) uint8."""
    out = labels.copy()
    ph = hair_model.likelihood(lab)
    po = other_model.likelihood(lab)
    ratio = (ph + 1e-7) / (po + 1e-7)
    h, w = labels.shape
    rows = np.arange(h, dtype=np.float32)[:, None].repeat(w, 1)
    free = (person > 0.5) & (labels == cv2.GC_PR_BGD)
    if skin_like is not None:
        free &= ~skin_like
    free &= ~neck_zone(face, (h, w))
    above = rows < face.brow_y - 0.05 * face.face_height
    oval_grown = cv2.dilate(face.oval.astype(np.uint8), np.ones((5, 5), np.uint8),
                            iterations=max(int(face.face_height * 0.02), 1)) > 0
    out[free & above & ~oval_grown & (ratio > 3.0)] = cv2.GC_PR_FGD
    out[free & ~above & ~oval_grown & (ratio > 4.0)] = cv2.GC_PR_FGD
    out[free & (ratio > 20.0)] = cv2.GC_PR_FGD
    # clothes: well below the chin, what the hair model does not explain is sure background
    # (GrabCut otherwise grows the hair into a dark shirt)
    low = rows > face.chin_y + 0.3 * face.face_height
    out[(person > 0.5) & (labels == cv2.GC_PR_BGD) & low & (ratio < 2.5)] = cv2.GC_BGD
    out[(labels == cv2.GC_FGD) & (ratio < 0.05)] = cv2.GC_PR_BGD
    return out


def faceless_seeds(lab: np.ndarray, person: np.ndarray, hair_model: HistogramColourModel,
                   other_model: HistogramColourModel) -> np.ndarray | None:
    """GrabCut seeds (H, W) uint8 for a keyframe without a face (the back of the head), from
    the clip's shared colour models learned on the face views: on the person, probable hair
    where the hair model explains the colour 4x better than the clothing/background model,
    sure hair where 8x better in the upper half of the person's bounding box (the head;
    rendered brown hair on a Blender orbit measured 10-17x), sure background in the lower half
    where under 2.5x (the clothes: a dark shirt measured 0.6-2), probable background elsewhere
    on the person; sure background off it. None when the colour models are empty (no view had
    a face) or no pixel looks like hair."""
    if hair_model.count <= 0 or other_model.count <= 0:
        return None
    ratio = (hair_model.likelihood(lab) + 1e-7) / (other_model.likelihood(lab) + 1e-7)
    inside = person > 0.5
    if not inside.any():
        return None
    rows = np.flatnonzero(inside.any(1))
    upper = np.arange(person.shape[0])[:, None] < 0.5 * (rows[0] + rows[-1])
    labels = np.full(person.shape, cv2.GC_PR_BGD, np.uint8)
    labels[person < 0.1] = cv2.GC_BGD
    labels[inside & (ratio > 4.0)] = cv2.GC_PR_FGD
    labels[inside & upper & (ratio > 8.0)] = cv2.GC_FGD
    labels[inside & ~upper & (ratio < 2.5)] = cv2.GC_BGD  # clothes, as in refine_with_colour
    if not (labels == cv2.GC_FGD).any():
        return None
    return labels


def grabcut_hair(rgb: np.ndarray, labels: np.ndarray, iterations: int = 3,
                 work_side: int = 320) -> np.ndarray:
    """Run GrabCut from seed ``labels`` on a frame downscaled to ``work_side`` pixels on the
    long side; returns the (H, W) float32 hair probability (1 = hair), upsampled bilinearly.
    A frame with no hair seed at all gives zeros."""
    h, w = labels.shape
    if not np.any((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)):
        return np.zeros((h, w), np.float32)
    scale = min(1.0, work_side / max(h, w))
    size = (max(round(w * scale), 8), max(round(h * scale), 8))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    small_labels = cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)
    bgd = np.zeros((1, 65), np.float64)
    fgd = np.zeros((1, 65), np.float64)
    has_fg = np.any((small_labels == cv2.GC_FGD) | (small_labels == cv2.GC_PR_FGD))
    has_bg = np.any((small_labels == cv2.GC_BGD) | (small_labels == cv2.GC_PR_BGD))
    if not (has_fg and has_bg):
        hair = ((small_labels == cv2.GC_FGD) | (small_labels == cv2.GC_PR_FGD)).astype(np.float32)
    else:
        cv2.grabCut(cv2.cvtColor(small, cv2.COLOR_RGB2BGR), small_labels, None, bgd, fgd,
                    max(iterations, 1), cv2.GC_INIT_WITH_MASK)
        hair = ((small_labels == cv2.GC_FGD) | (small_labels == cv2.GC_PR_FGD)).astype(np.float32)
    return cv2.resize(hair, (w, h), interpolation=cv2.INTER_LINEAR)


def clean_mask(hair: np.ndarray, person: np.ndarray, feather_px: float) -> np.ndarray:
    """Keep the largest hair components (drop specks under 1% of the largest), fill small
    holes, feather the border by a Gaussian of ``feather_px`` and multiply by the person
    probability. (H, W) float32 in and out."""
    binary = (hair > 0.5).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if n > 1:
        areas = stats[1:, cv2.CC_STAT_AREA]
        keep = np.zeros(n, bool)
        keep[1:] = areas >= 0.01 * areas.max()
        binary = keep[lab].astype(np.uint8)
    binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    soft = binary.astype(np.float32)
    if feather_px > 0:
        soft = cv2.GaussianBlur(soft, (0, 0), feather_px)
    return np.clip(soft * np.clip(person * 1.25, 0, 1), 0.0, 1.0).astype(np.float32)


def align_to(points_src: np.ndarray, points_dst: np.ndarray) -> np.ndarray:
    """2x3 similarity transform taking landmarks ``points_src`` onto ``points_dst``
    (RANSAC-free least squares, cv2.estimateAffinePartial2D)."""
    idx = np.r_[FACE_OVAL, 1, 33, 263, 61, 291]
    m, _ = cv2.estimateAffinePartial2D(points_src[idx, :2].astype(np.float32),
                                       points_dst[idx, :2].astype(np.float32), method=cv2.LMEDS)
    return m if m is not None else np.array([[1, 0, 0], [0, 1, 0]], np.float64)


def temporal_blend(masks: list[np.ndarray], points: list[np.ndarray | None],
                   weight: float) -> list[np.ndarray]:
    """Blend each mask with its neighbours in the keyframe list (previous and next), warped
    onto it by the face similarity transform: m_i' = (1 - w) m_i + w * mean(warped
    neighbours). Frames without landmarks are left as they are. ``weight`` in [0, 1)."""
    if weight <= 0 or len(masks) < 2:
        return masks
    out = []
    for i, m in enumerate(masks):
        if points[i] is None:
            out.append(m)
            continue
        h, w = m.shape
        warped = []
        for j in (i - 1, i + 1):
            if 0 <= j < len(masks) and points[j] is not None and masks[j].shape == m.shape:
                a = align_to(points[j], points[i])
                warped.append(cv2.warpAffine(masks[j], a, (w, h), flags=cv2.INTER_LINEAR,
                                             borderValue=0))
        if warped:
            m = (1 - weight) * m + weight * np.mean(warped, axis=0)
        out.append(m.astype(np.float32))
    return out


def apply_user_edit(hair: np.ndarray, person: np.ndarray, edit: np.ndarray | None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Apply a user-corrected hair mask and derive the bust mask.

    Args:
        hair, person: (H, W) float32 in [0, 1].
        edit: None or (h, w) uint8: 255 = hair, 0 = not hair, other values keep the computed
            value; resized (nearest) to the frame when its size differs.
    Returns:
        (hair, bust) float32 (H, W); bust = person * (1 - hair), 0 where the user painted hair.
    """
    if edit is not None:
        if edit.shape != hair.shape:
            edit = cv2.resize(edit, hair.shape[::-1], interpolation=cv2.INTER_NEAREST)
        hair = np.where(edit == 255, 1.0, np.where(edit == 0, 0.0, hair)).astype(np.float32)
        person = np.where(edit == 255, np.maximum(person, 1.0), person)
    bust = np.clip(person * (1.0 - hair), 0.0, 1.0).astype(np.float32)
    return hair.astype(np.float32), bust
