"""Keyframe selection: sharp frames that cover the capture's viewing directions.

Sharpness is the variance of the Laplacian of the grey image (Pech-Pacheco et al. 2000), on
frames resized to a common size so that values are comparable across a clip.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Candidate:
    """A decoded frame considered for selection: source ``index``, ``sharpness`` (variance of
    the Laplacian), ``yaw`` in degrees or None when no face was found."""

    index: int
    sharpness: float
    yaw: float | None


def sharpness(rgb: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image (higher is sharper); (H, W, 3) uint8 in."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def resize_long_side(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale (INTER_AREA) so that the long side is at most ``max_side``; never upscales."""
    h, w = rgb.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return rgb
    return cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)


def select_keyframes(candidates: list[Candidate], max_keyframes: int,
                     min_sharpness_ratio: float = 0.5,
                     faceless_share: float = 1.0) -> list[Candidate]:
    """Pick keyframes that cover the viewing directions of the capture.

    ``max_keyframes`` frames as follows: the yaw range of the frames with a face is cut into
    that many equal bins and the sharpest frame of each bin is taken; remaining slots go to
    sharp frames far in time from those already taken (talking-head clips barely turn), frames
    with a face first. Frames blurrier than ``min_sharpness_ratio`` times the median sharpness
    are used only if nothing else is left.

    Then the views no yaw measures: when at least ``faceless_share`` of the candidates show no
    face (the back of the head on an orbit or a full turn, not a face lost in a few frames; 1,
    the default, never adds: measured mixed on the Blender orbits, docs/views.md), that share
    of ``max_keyframes`` is added on top, from the frames without a face: the sharpest of each
    of as many equal runs of them in source order (an orbit's or a turn's views follow its
    angle). They are added rather than traded for face views, which the head fit and the front
    of the groom need.

    Returns: the chosen candidates in source order (at most ``2 * max_keyframes``).
    """
    if not candidates or max_keyframes <= 0:
        return []
    med = float(np.median([c.sharpness for c in candidates]))
    sharp = [c for c in candidates if c.sharpness >= min_sharpness_ratio * med]
    pool = sharp if len(sharp) >= min(max_keyframes, len(candidates)) else list(candidates)
    faced = [c for c in pool if c.yaw is not None]
    chosen: dict[int, Candidate] = {}
    if faced:
        yaws = np.array([c.yaw for c in faced])
        lo, hi = float(yaws.min()), float(yaws.max())
        bins = np.minimum(((yaws - lo) / max(hi - lo, 1e-6) * max_keyframes).astype(int),
                          max_keyframes - 1)
        for b in range(max_keyframes):
            members = [c for c, k in zip(faced, bins) if k == b]
            if members:
                best = max(members, key=lambda c: c.sharpness)
                chosen[best.index] = best
    # fill the remaining slots with the frames farthest in time from those taken, from the
    # sharp frames with a face first, then sharp frames without one, then the blurry rest
    tiers = [[c for c in pool if c.yaw is not None], [c for c in pool if c.yaw is None],
             [c for c in candidates if c not in pool]]
    for tier in tiers:
        rest = [c for c in tier if c.index not in chosen]
        while len(chosen) < max_keyframes and rest:
            taken = np.array(sorted(chosen)) if chosen else None
            best = max(rest, key=lambda c: (
                np.inf if taken is None else float(np.min(np.abs(taken - c.index))), c.sharpness))
            chosen[best.index] = best
            rest.remove(best)
    share = sum(c.yaw is None for c in candidates) / len(candidates)
    faceless = [c for c in pool if c.yaw is None and c.index not in chosen]
    if faced and faceless and share >= faceless_share:
        n_back = min(len(faceless), max(1, round(max_keyframes * share)))
        for run in np.array_split(np.arange(len(faceless)), n_back):
            best = max((faceless[i] for i in run), key=lambda c: c.sharpness)
            chosen[best.index] = best
    return [chosen[i] for i in sorted(chosen)]
