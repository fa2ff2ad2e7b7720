"""2D hair orientation maps from a bank of oriented Gabor filters.

Source: Neural Haircut (Sklyarova et al. 2023, Sec. 3.1 and supplementary), following Paris et
al. 2004 "Capture of hair geometry from multiple images": the image is prefiltered by a
difference of Gaussians, filtered with ``K`` Gabor kernels at orientations spread over
[0, pi) (Neural Haircut: K = 180, sigma_x = 1.8, sigma_y = 2.4, frequency 0.23 cycles/pixel);
the orientation of the strongest response is the local strand direction, and the confidence
measures how peaked the response is over orientations (Paris et al. 2004, Eq. 1, with the
responses normalised by their maximum so that the value is contrast independent).

Angles are radians in [0, pi), measured counter-clockwise *on screen* from the image +x axis
(image rows grow downwards, so an angle ``a`` is the direction ``(cos a, -sin a)`` in
(column, row) coordinates). A hair direction is unsigned.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class GaborParams:
    """Filter-bank parameters (pixels; frequency in cycles per pixel)."""

    orientations: int = 180
    sigma_x: float = 1.8
    sigma_y: float = 2.4
    frequency: float = 0.23
    dog_sigma_low: float = 0.4
    dog_sigma_high: float = 10.0


def gabor_bank(params: GaborParams) -> tuple[np.ndarray, list[np.ndarray]]:
    """The kernels and the strand angle each one detects.

    Returns:
        angles: (K,) float64 radians in [0, pi), the strand direction detected by kernel k.
        kernels: K float32 kernels, zero mean (flat regions give no response).
    """
    half = int(np.ceil(3 * max(params.sigma_x, params.sigma_y)))
    size = 2 * half + 1
    angles, kernels = [], []
    for k in range(params.orientations):
        strand = np.pi * k / params.orientations
        # cv2's theta is the direction across the stripes in (col, row) coordinates, i.e. the
        # normal of the strand; a strand at on-screen angle a runs along (cos a, -sin a), its
        # normal is (sin a, cos a) = (cos theta, sin theta) with theta = pi/2 - a.
        theta = np.pi / 2 - strand
        kern = cv2.getGaborKernel((size, size), params.sigma_x, theta, 1.0 / params.frequency,
                                  params.sigma_x / params.sigma_y, 0.0, ktype=cv2.CV_32F)
        kern -= kern.mean()
        kern /= np.abs(kern).sum()
        angles.append(strand)
        kernels.append(kern)
    return np.asarray(angles), kernels


def orientation_map(rgb: np.ndarray, mask: np.ndarray | None = None,
                    params: GaborParams = GaborParams()) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel strand angle and confidence.

    Args:
        rgb: (H, W, 3) uint8 RGB image (or (H, W) grey).
        mask: optional (H, W) float32 hair mask in [0, 1]; outside ``mask > 0.5`` the
            confidence is 0 (the angle is still filled in).
        params: the filter bank.

    Returns:
        angle: (H, W) float32 radians in [0, pi), CCW on screen from image +x.
        confidence: (H, W) float32 >= 0; larger is a sharper single orientation.

    Source: Paris et al. 2004, Eq. 1; Neural Haircut supplementary (filter parameters).
    """
    grey = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    img = grey.astype(np.float32) / 255.0
    dog = (cv2.GaussianBlur(img, (0, 0), params.dog_sigma_low)
           - cv2.GaussianBlur(img, (0, 0), params.dog_sigma_high))
    angles, kernels = gabor_bank(params)
    h, w = img.shape
    responses = np.empty((len(kernels), h, w), np.float32)
    for k, kern in enumerate(kernels):
        cv2.filter2D(dog, cv2.CV_32F, kern, dst=responses[k], borderType=cv2.BORDER_REFLECT)
    np.abs(responses, out=responses)
    arg = responses.argmax(axis=0)
    best = np.take_along_axis(responses, arg[None], axis=0)[0]
    angle = angles[arg].astype(np.float32)
    # Confidence (Paris et al. 2004 Eq. 1): spread of responses around the best orientation,
    # normalised by the best response: sqrt(sum_k d(a_k, a*)^2 (F* - F_k)^2) / F*.
    # Accumulated one orientation at a time (no (K, H, W) temporaries: memory-bound otherwise).
    acc = np.zeros((h, w), np.float32)
    for k in range(len(kernels)):
        d = np.abs(np.float32(angles[k]) - angle)
        d = np.minimum(d, np.float32(np.pi) - d)
        d *= best - responses[k]
        acc += d * d
    spread = np.sqrt(acc / len(kernels))
    confidence = spread / np.maximum(best, 1e-6)
    if mask is not None:
        confidence = np.where(mask > 0.5, confidence, 0.0).astype(np.float32)
    return angle, confidence.astype(np.float32)


def angle_to_rgb(angle: np.ndarray, confidence: np.ndarray | None = None) -> np.ndarray:
    """Colour an orientation map: hue = angle (a full hue turn over [0, pi)), value =
    normalised confidence. Returns (H, W, 3) uint8 RGB."""
    hue = (angle / np.pi * 360.0).astype(np.float32) % 360.0  # float HSV: hue in [0, 360)
    val = np.ones_like(hue) if confidence is None else np.clip(
        confidence / max(float(np.percentile(confidence[confidence > 0], 95))
                         if np.any(confidence > 0) else 1.0, 1e-6), 0, 1)
    hsv = np.stack([hue, np.ones_like(hue), val], -1).astype(np.float32)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def angular_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Unsigned difference of undirected angles (radians), in [0, pi/2]."""
    d = np.abs(a - b) % np.pi
    return np.minimum(d, np.pi - d)
