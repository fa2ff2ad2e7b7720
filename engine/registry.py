"""The stage registry: the reconstruction's stage graph, in run order.

The one module that imports every stage package, so that :mod:`engine.pipeline` (the runner,
configs, cache and events the stages are written against) imports none of them.
"""

from __future__ import annotations

from engine.cameras.stages import STAGES as _CAMERAS
from engine.coarse.stage import STAGES as _COARSE
from engine.errors import ConfigError
from engine.pipeline import Stage
from engine.preprocess.stages import STAGES as _PREPROCESS
from engine.strands.stage import STAGES as _STRANDS

__all__ = ["default_stages"]


def default_stages(until: str | None = None) -> list[Stage]:
    """The stage graph of a reconstruction, in run order, optionally cut after ``until``.

    Raises:
        ConfigError: ``until`` names no stage.
    """
    stages = [*_PREPROCESS, *_CAMERAS, *_COARSE, *_STRANDS]
    if until is None:
        return stages
    names = [s.name for s in stages]
    if until not in names:
        raise ConfigError(f"no stage named {until!r}; stages: {', '.join(names)}")
    return stages[: names.index(until) + 1]
