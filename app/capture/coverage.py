"""The coverage guide's model: which head-yaw ranges have been seen."""

from __future__ import annotations

import numpy as np


class YawCoverage:
    """Counts frames per head-yaw bin over ``[-limit_deg, +limit_deg]``.

    Yaw is in degrees, 0 = facing the camera; the sign follows :func:`app.capture.analysis.
    estimate_yaw` (positive: the face turns towards image +x). A bin counts as covered once it
    holds ``min_frames`` frames. Yaws beyond the limit fall into the outermost bins.
    """

    def __init__(self, bin_deg: float = 15.0, limit_deg: float = 90.0, min_frames: int = 3):
        self.bin_deg, self.limit_deg, self.min_frames = float(bin_deg), float(limit_deg), min_frames
        self.edges = np.arange(-limit_deg, limit_deg + 1e-6, bin_deg)
        self.counts = np.zeros(len(self.edges) - 1, dtype=np.int64)
        self.current: float | None = None

    @property
    def bins(self) -> int:
        return len(self.counts)

    def bin_of(self, yaw_deg: float) -> int:
        i = int(np.floor((yaw_deg + self.limit_deg) / self.bin_deg))
        return min(max(i, 0), self.bins - 1)

    def add(self, yaw_deg: float | None) -> None:
        self.current = yaw_deg
        if yaw_deg is None or not np.isfinite(yaw_deg):
            return
        self.counts[self.bin_of(float(yaw_deg))] += 1

    def covered(self) -> np.ndarray:
        """(bins,) bool: bins with at least ``min_frames`` frames."""
        return self.counts >= self.min_frames

    def fraction(self) -> float:
        return float(self.covered().mean())

    def missing_ranges(self) -> list[tuple[float, float]]:
        """Uncovered yaw ranges in degrees, adjacent bins merged, e.g. [(-90, -45), (60, 90)]."""
        out: list[tuple[float, float]] = []
        for i, ok in enumerate(self.covered()):
            if ok:
                continue
            lo, hi = float(self.edges[i]), float(self.edges[i + 1])
            if out and out[-1][1] == lo:
                out[-1] = (out[-1][0], hi)
            else:
                out.append((lo, hi))
        return out

    def reset(self) -> None:
        self.counts[:] = 0
        self.current = None
