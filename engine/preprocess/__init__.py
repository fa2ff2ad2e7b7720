"""Preprocessing: keyframes, face landmarks, hair and bust masks, 2D orientation maps (the
stages are :mod:`engine.preprocess.stages`), and the readers and writers of their artifacts."""

from engine.preprocess.artifacts import (load_frame, load_keyframes, load_landmarks, load_mask,
                                         load_orientation, save_frame, save_mask,
                                         save_orientation)

__all__ = ["load_frame", "load_keyframes", "load_landmarks", "load_mask", "load_orientation",
           "save_frame", "save_mask", "save_orientation"]
