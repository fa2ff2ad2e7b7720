"""The coverage guide's model: which head-yaw ranges have been seen, all the way round.

Yaw is in degrees, 0 = the face towards the camera, +-180 = the back of the head towards it; the
sign follows :func:`app.capture.analysis.estimate_yaw` (positive: the face turns towards image
+x). The front half (|yaw| <= 90) is measured from the face landmarks of every frame. The back
has no face to measure, so it is counted from the frames in which a person but no face is seen,
and only once the face comes back, which says where the head went:

* the face was lost turned to one side (|yaw| >= ``turn_deg``) and comes back on the other side:
  the head went round the back; the faceless frames are spread evenly over the yaw it swept
  (from where the face was lost, through 180, to where it came back);
* it comes back on the same side: the head turned into the back and returned; it went as far as
  the last turn rate carried it in half the faceless time (at most to 180), and the faceless
  frames are spread over that arc;
* the face was lost while facing the camera (an occlusion, a blur): the frames count nowhere.

While the face is away after a turn, :attr:`YawCoverage.behind` is True (the guide draws the
needle at the back). Until the face returns the back frames are pending: a recording that stops
with the head turned away counts no back frames, which errs on the side of asking for more.
"""

from __future__ import annotations

import numpy as np


class YawCoverage:
    """Counts frames per head-yaw bin over the whole turn, [-180, 180) degrees.

    Args:
        bin_deg: bin width, degrees (divides 360).
        min_frames: frames a bin needs to count as covered.
        turn_deg: |yaw| at which a lost face counts as turned away (module docstring).
        default_rate_deg_s: turn rate assumed when the yaw rate before the face was lost is
            unknown (frames without times).
    """

    def __init__(self, bin_deg: float = 15.0, min_frames: int = 3, turn_deg: float = 45.0,
                 default_rate_deg_s: float = 45.0):
        if 360.0 % bin_deg:
            raise ValueError("bin_deg must divide 360")
        self.bin_deg, self.min_frames = float(bin_deg), int(min_frames)
        self.turn_deg, self.default_rate = float(turn_deg), float(default_rate_deg_s)
        self.edges = np.arange(-180.0, 180.0 + 1e-6, bin_deg)
        self.counts = np.zeros(len(self.edges) - 1, dtype=np.int64)
        self.reset()

    @property
    def bins(self) -> int:
        return len(self.counts)

    def bin_of(self, yaw_deg: float) -> int:
        """The bin of a yaw in degrees (any value: wrapped to [-180, 180))."""
        y = (float(yaw_deg) + 180.0) % 360.0
        return min(int(y // self.bin_deg), self.bins - 1)

    def add(self, yaw_deg: float | None, time_s: float | None = None,
            person: bool | None = None) -> None:
        """One frame: its face yaw (None: no face), its time in seconds (None: unknown) and
        whether a person is in view (None: unknown, counted as present)."""
        face = yaw_deg is not None and np.isfinite(yaw_deg)
        if not face:
            if self.current is not None:  # the face was just lost
                self._lose_face()
            self.current = None
            if self._lost_at is not None and person is not False:
                self._pending += 1
                self._pending_until = time_s
            return
        yaw = float(yaw_deg)
        if self._lost_at is not None:
            self._resolve(yaw, time_s)
        self.counts[self.bin_of(yaw)] += 1
        if self._last is not None and time_s is not None and self._last[0] is not None:
            dt = time_s - self._last[0]
            if dt > 0:
                self._rate = abs(yaw - self._last[1]) / dt
        self._last = (time_s, yaw)
        self.current = yaw

    @property
    def behind(self) -> bool:
        """The face is away after a turn: the camera sees the back (module docstring)."""
        return self._lost_at is not None and self.current is None

    def _lose_face(self) -> None:
        turned = self._last is not None and abs(self._last[1]) >= self.turn_deg
        self._lost_at = self._last if turned else None
        self._pending, self._pending_until = 0, None

    def _resolve(self, yaw: float, time_s: float | None) -> None:
        (t0, a), n = self._lost_at, self._pending
        self._lost_at, self._pending = None, 0
        if n == 0:
            return
        side = np.sign(a)
        if np.sign(yaw) != side and abs(yaw) >= self.turn_deg:
            sweep = (180.0 - abs(a)) + (180.0 - abs(yaw))  # a -> 180 -> yaw, the long way
        else:
            t1 = time_s if time_s is not None else self._pending_until
            # frames without times: assume the capture page's 10 analysed frames per second
            duration = (t1 - t0) if (t0 is not None and t1 is not None) else n / 10.0
            rate = self._rate if self._rate else self.default_rate
            sweep = min(180.0 - abs(a), 0.5 * rate * max(duration, 0.0))
        arc = a + side * np.linspace(0.0, sweep, n + 2)[1:-1]
        np.add.at(self.counts, [self.bin_of(y) for y in arc], 1)

    def covered(self) -> np.ndarray:
        """(bins,) bool: bins with at least ``min_frames`` frames."""
        return self.counts >= self.min_frames

    def fraction(self, part: str = "all") -> float:
        """Share of the bins covered: ``"all"``, ``"front"`` (|yaw| <= 90) or ``"back"``."""
        centres = 0.5 * (self.edges[:-1] + self.edges[1:])
        sel = {"all": np.ones(self.bins, bool), "front": np.abs(centres) <= 90,
               "back": np.abs(centres) > 90}[part]
        return float(self.covered()[sel].mean())

    def missing_ranges(self) -> list[tuple[float, float]]:
        """Uncovered yaw ranges (lo, hi) in degrees, adjacent bins merged, the range through the
        back wrapped: lo in [-180, 180), hi > lo, and hi above 180 for a range that runs on
        through the back (e.g. (90, 270) is +90 over the back to -90)."""
        out: list[tuple[float, float]] = []
        for i, ok in enumerate(self.covered()):
            if ok:
                continue
            lo, hi = float(self.edges[i]), float(self.edges[i + 1])
            if out and out[-1][1] == lo:
                out[-1] = (out[-1][0], hi)
            else:
                out.append((lo, hi))
        if len(out) > 1 and out[0][0] == -180.0 and out[-1][1] == 180.0:
            first = out.pop(0)
            out[-1] = (out[-1][0], 360.0 + first[1])
        return out

    def describe_missing(self) -> str:
        """The missing ranges in words for the guide, e.g. "+90° to -90° over the back"; ""
        when everything is covered."""
        parts = []
        for lo, hi in self.missing_ranges():
            wrap = hi > 180.0
            h = hi - 360.0 if wrap else hi
            text = f"{lo:+.0f}° to {h:+.0f}°"
            if wrap or lo >= 90.0 or hi <= -90.0:
                text += " over the back" if wrap else " (the back)"
            parts.append(text)
        return ", ".join(parts)

    def reset(self) -> None:
        self.counts[:] = 0
        self.current: float | None = None
        self._last: tuple[float | None, float] | None = None  # (time, yaw) of the last face
        self._rate = 0.0  # |deg / s| between the last two faces
        self._lost_at: tuple[float | None, float] | None = None  # the last face before a turn
        self._pending, self._pending_until = 0, None
