"""Synthetic captures with known truth: cameras and rigs, a z-buffered CPU renderer of a head
mesh, hair strands and hair shells, and the ground truth of every frame (masks, depth, 2D
orientation, 3D tangents).

Entry points: :class:`Camera`, :func:`orbit_rig`, :func:`turning_head_rig`,
:class:`HeadModel`, :func:`render` with :class:`RenderSettings`, :func:`make_hair_shell`,
:func:`render_capture` (a capture folder in the preprocessing artifact formats; also
``python -m engine.synthetic --out DIR [--rig orbit|turning] [--shell] [--groom curly]``).
"""

from engine.synthetic.camera import (Camera, HeadPose, frame_key, load_camera_records,
                                     load_cameras, look_at, orbit_rig, save_cameras,
                                     turning_head_rig)
from engine.synthetic.head import HeadModel
from engine.synthetic.render import RenderResult, RenderSettings, projected_angle, render
from engine.synthetic.shell import HairShell, make_hair_shell
from engine.synthetic.capture import render_capture

__all__ = ["Camera", "HeadPose", "frame_key", "load_camera_records", "load_cameras", "look_at", "orbit_rig", "save_cameras",
           "turning_head_rig", "HeadModel", "RenderResult", "RenderSettings", "projected_angle",
           "render", "HairShell", "make_hair_shell",
           "render_capture"]
