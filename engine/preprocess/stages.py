"""Preprocessing stages of the graph (keyframes, landmarks, masks, orientation maps)."""

from __future__ import annotations

STAGES: list = []
