"""CPU thread counts chosen from the cores that are free, not from the core count.

On a machine that also runs other work, a torch stage with as many threads as cores waits at
every parallel region for a thread the OS has descheduled: on 2 shared cores the coarse stage
ran 2.5x slower with 2 threads than with 1 (measured with ``iterations_per_second`` beside two
other CPU-bound jobs). :func:`free_cores` measures how many cores were idle over a short window
(Linux ``/proc/stat``; the 1-minute load average elsewhere) and :func:`cpu_threads` turns it
into a thread count.

Only stages whose results do not depend on the thread count may use it (the coarse stage: its
fields are bit for bit the same with 1 or 2 threads, see tests/engine/test_determinism.py); the
strand stage's do, so it keeps a count fixed by the core count.
"""

from __future__ import annotations

import os
import time

__all__ = ["usable_cores", "free_cores", "cpu_threads"]


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS has one), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _cpu_times() -> tuple[int, int] | None:
    """(idle + iowait, total) jiffies of all cores from /proc/stat, or None."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
    return values[3] + values[4], sum(values)


def free_cores(window_s: float = 0.25) -> float:
    """How many of the machine's cores were idle over the last ``window_s`` seconds (this
    process sleeps meanwhile, so its own work does not count), clipped to
    ``[0, usable_cores()]``. Without /proc/stat: cores minus the 1-minute load average; without
    either: every usable core."""
    cores = usable_cores()
    first = _cpu_times()
    if first is not None:
        time.sleep(window_s)
        second = _cpu_times()
        if second is not None and second[1] > first[1]:
            idle = (second[0] - first[0]) / (second[1] - first[1])
            return min(float(cores), max(0.0, idle * (os.cpu_count() or cores)))
    try:
        return min(float(cores), max(0.0, cores - os.getloadavg()[0]))
    except (AttributeError, OSError):
        return float(cores)


def cpu_threads(max_threads: int = 4, window_s: float = 0.25) -> int:
    """Threads for a CPU stage: the free cores (rounded, :func:`free_cores`), at least 1 and at
    most ``max_threads``."""
    return max(1, min(int(max_threads), int(free_cores(window_s) + 0.5)))
