"""Strandcap's reconstruction engine: numpy, torch and OpenCV only (never Qt, vispy, pyqtgraph)."""

__version__ = "0.1.0"
