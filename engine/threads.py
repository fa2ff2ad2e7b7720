"""The CPU thread count of the torch stages: half the usable cores (at least 1, at most 4),
fixed by the machine, never by its load.

Two facts decide it. (1) On a machine that also runs other work, a torch stage with as many
threads as cores waits at every parallel region for a thread the OS has descheduled: on 2
shared cores the coarse stage ran 2.5x slower with 2 threads than with 1 beside two other
CPU-bound jobs, and 26x slower end to end in a 2-core run beside other jobs (issue 25). Half the
cores leaves room for the app, the OS and one other job. (2) The results depend on the thread
count: the GEMM reductions of the coarse fields' MLPs differ by ~1e-9 per step between 1 and 2
threads on an Intel Xeon (not on the AMD EPYC where a load-dependent count was first measured
bit-identical), ~2e-6 after 20 steps, and the strand stage's Adam amplifies such differences
into different grooms. A count taken from the free cores would make the groom depend on what
else the machine was doing; this one does not (tests/engine/test_determinism.py).
"""

from __future__ import annotations

import os

__all__ = ["usable_cores", "stage_threads"]


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS has one), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def stage_threads(max_threads: int = 4) -> int:
    """Torch threads for a CPU stage: ``usable_cores() // 2``, at least 1 and at most
    ``max_threads`` (module docstring)."""
    return max(1, min(int(max_threads), usable_cores() // 2))
