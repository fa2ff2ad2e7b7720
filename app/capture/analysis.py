"""Per-frame analysis for live capture: person mask, face landmarks, head yaw, quality warnings.

Uses mediapipe's bundled legacy solutions (face mesh with 478 landmarks, selfie segmentation;
DESIGN.md platform facts). Face landmarks and the head yaw come from the engine's helpers
(:class:`engine.preprocess.landmarks.FaceLandmarker` in tracking mode and
:func:`engine.preprocess.landmarks.head_pose`) when they exist, so the coverage guide and the
keyframes stage agree on yaw; otherwise mediapipe is called directly. This is live-preview
feedback, not a pipeline stage, so it runs on a downscaled frame and favours speed. Warnings:

* blur: variance of the Laplacian of the grey face region (whole frame when no face) below
  ``blur_min`` (the standard "variance of Laplacian" focus measure, Pech-Pacheco et al. 2000);
* dark: mean luma (0..255) of the frame below ``dark_max``;
* face lost: no face found;
* turning too fast: |d yaw / d t| above ``turn_max_deg_s`` (fast turns blur and starve the
  reconstruction of views).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from app.capture.sources import SourceFrame

try:  # the preprocessing helpers, when this build has them
    from engine.preprocess.landmarks import FaceLandmarker as _EngineLandmarker
    from engine.preprocess.landmarks import head_pose as _head_pose
except ImportError:  # pragma: no cover - depends on the build
    _EngineLandmarker = _head_pose = None

WARN_BLUR = "blurry"
WARN_DARK = "too dark"
WARN_FACE = "face lost"
WARN_FAST = "turning too fast"


@dataclass
class FrameAnalysis:
    """Result of :meth:`FrameAnalyzer.analyze`.

    Attributes:
        landmarks: (478, 2) float32 pixel coordinates in the full frame, or None (no face).
        person_mask: (H, W) float32 in [0, 1] at full frame size, or None (segmentation off).
        yaw_deg: head yaw in degrees (0 = facing the camera, positive = face turned towards
            image +x), None when no face and the source gave none.
        sharpness: variance of the Laplacian (grey levels squared).
        brightness: mean luma, 0..255.
        yaw_rate_deg_s: |yaw change| per second since the previous face, None if unknown.
        warnings: the active warnings (WARN_* strings).
    """

    landmarks: np.ndarray | None
    person_mask: np.ndarray | None
    yaw_deg: float | None
    sharpness: float
    brightness: float
    yaw_rate_deg_s: float | None
    warnings: list[str] = field(default_factory=list)

    PERSON_MIN_SHARE = 0.03  # of the frame's pixels: a head seen from behind at arm's length

    @property
    def person_in_view(self) -> bool | None:
        """Whether the person mask covers at least :attr:`PERSON_MIN_SHARE` of the frame
        (None without segmentation). The coverage guide counts faceless frames with a person
        as views of the back of the head."""
        if self.person_mask is None:
            return None
        return bool((self.person_mask > 0.5).mean() >= self.PERSON_MIN_SHARE)


def estimate_yaw(points: np.ndarray) -> float:
    """Head yaw in degrees from mediapipe face-mesh points.

    Args:
        points: (478, 3) or (468, 3) landmarks, x and y in pixels, z = mediapipe's relative
            depth times the image width (same scale as x; larger = farther from the camera).

    Returns:
        Yaw in degrees, 0 when frontal, positive when the face turns towards image +x. With the
        engine's :func:`engine.preprocess.landmarks.head_pose` it is the yaw of the face's
        forward axis (cheek-to-cheek x cross forehead-to-chin down); without it,
        ``atan2(z_454 - z_234, x_454 - x_234)``: the angle of the line between the two cheek
        contour points (234 image-left, 454 image-right) out of the image plane.
    """
    if _head_pose is not None:
        return float(_head_pose(points)[0])
    v = np.asarray(points[454], np.float64) - np.asarray(points[234], np.float64)
    return float(np.degrees(np.arctan2(v[2], v[0])))


class FrameAnalyzer:
    """Stateful analyser (tracks the face between frames); create and use in one thread.

    Args:
        segment: run selfie segmentation for the person mask.
        max_side: frames are downscaled so their longer side is at most this many pixels.
        blur_min, dark_max, turn_max_deg_s: warning thresholds (see module docstring).
    """

    def __init__(self, segment: bool = True, max_side: int = 640, blur_min: float = 40.0,
                 dark_max: float = 55.0, turn_max_deg_s: float = 90.0) -> None:
        import mediapipe as mp

        self.max_side = max_side
        self.blur_min, self.dark_max, self.turn_max = blur_min, dark_max, turn_max_deg_s
        if _EngineLandmarker is not None:
            self._landmarker = _EngineLandmarker(static=False)
            self._mesh = None
        else:
            self._landmarker = None
            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=False, max_num_faces=1, refine_landmarks=True,
                min_detection_confidence=0.5, min_tracking_confidence=0.5)
        self._seg = (mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
                     if segment else None)
        self._last: tuple[float, float] | None = None  # (time_s, yaw) of the last face

    def close(self) -> None:
        (self._landmarker or self._mesh).close()
        if self._seg is not None:
            self._seg.close()

    def _detect(self, rgb: np.ndarray) -> np.ndarray | None:
        """(478, 3) landmarks (x, y px, z relative depth times width) or None."""
        if self._landmarker is not None:
            return self._landmarker.detect(rgb)
        h, w = rgb.shape[:2]
        result = self._mesh.process(rgb)
        if not result.multi_face_landmarks:
            return None
        return np.array([(p.x * w, p.y * h, p.z * w)
                         for p in result.multi_face_landmarks[0].landmark], np.float32)

    def analyze(self, frame: SourceFrame) -> FrameAnalysis:
        """Analyse one RGB frame (see :class:`FrameAnalysis`)."""
        img = frame.image
        h, w = img.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        small = (cv2.resize(img, (round(w * scale), round(h * scale)),
                            interpolation=cv2.INTER_AREA) if scale < 1 else img)
        small = np.ascontiguousarray(small)
        sh, sw = small.shape[:2]
        pts = self._detect(small)
        landmarks = None
        yaw = frame.yaw_deg
        if pts is not None:
            landmarks = pts[:, :2] / scale
            if yaw is None:
                yaw = estimate_yaw(pts)
        mask = None
        if self._seg is not None:
            seg = self._seg.process(small).segmentation_mask
            mask = cv2.resize(seg.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        brightness = float(grey.mean())
        region = grey
        if landmarks is not None:
            x0, y0 = (landmarks.min(axis=0) * scale).astype(int)
            x1, y1 = (landmarks.max(axis=0) * scale).astype(int)
            x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, sw), min(y1, sh)
            if x1 - x0 > 8 and y1 - y0 > 8:
                region = grey[y0:y1, x0:x1]
        sharpness = float(cv2.Laplacian(region, cv2.CV_64F).var())
        rate = None
        if yaw is not None:
            if self._last is not None and frame.time_s > self._last[0]:
                rate = abs(yaw - self._last[1]) / (frame.time_s - self._last[0])
            self._last = (frame.time_s, yaw)
        warnings = []
        if landmarks is None and frame.yaw_deg is None:
            warnings.append(WARN_FACE)
        if sharpness < self.blur_min:
            warnings.append(WARN_BLUR)
        if brightness < self.dark_max:
            warnings.append(WARN_DARK)
        if rate is not None and rate > self.turn_max:
            warnings.append(WARN_FAST)
        return FrameAnalysis(landmarks, mask, yaw, sharpness, brightness, rate, warnings)


def draw_overlay(image: np.ndarray, analysis: FrameAnalysis) -> np.ndarray:
    """A copy of ``image`` (RGB uint8) with the person mask tinted and the landmarks dotted."""
    out = image.copy()
    if analysis.person_mask is not None:
        m = (analysis.person_mask > 0.5)
        tint = np.array([40, 160, 255], np.float32)
        out[m] = (0.8 * out[m] + 0.2 * tint).astype(np.uint8)
        edges = cv2.Canny((m * 255).astype(np.uint8), 50, 150) > 0
        out[edges] = (40, 160, 255)
    if analysis.landmarks is not None:
        r = max(1, round(max(image.shape[:2]) / 400))
        for x, y in analysis.landmarks[::2]:
            cv2.circle(out, (int(x), int(y)), r, (255, 230, 60), -1, lineType=cv2.LINE_AA)
    return out
