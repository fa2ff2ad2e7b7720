"""Cameras in the metric head frame: the camera model and its JSON file, COLMAP and
transforms.json import and export, similarity alignment and accuracy against known cameras.
The ``cameras`` stage itself is :mod:`engine.cameras.stages` (through :mod:`engine.registry`)."""

from engine.cameras.camera import (Camera, align_cameras, camera_accuracy, export_transforms_json,
                                   import_colmap, import_transforms_json, load_cameras,
                                   save_cameras, transform_cameras, umeyama)

__all__ = ["Camera", "align_cameras", "camera_accuracy", "export_transforms_json",
           "import_colmap", "import_transforms_json", "load_cameras", "save_cameras",
           "transform_cameras", "umeyama"]
