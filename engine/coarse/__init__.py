"""Stage 1, the coarse volume: NeuS hair and bust SDFs with a 3D orientation field, fitted to
masks and orientation maps. The stage is :mod:`engine.coarse.stage`; its result is read with
:func:`load_coarse_fields`."""

from engine.coarse.data import load_capture_data
from engine.coarse.export import CoarseFieldQuery, load_coarse_fields
from engine.coarse.train import CoarseConfig, CoarseData, CoarseTrainer

__all__ = ["load_capture_data", "CoarseFieldQuery", "load_coarse_fields", "CoarseConfig",
           "CoarseData", "CoarseTrainer"]
