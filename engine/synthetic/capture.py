"""Write a synthetic capture to disk: frames plus ground truth in the preprocessing formats.

Layout of the folder written by :func:`render_capture` (names are zero-padded frame indices,
"000", "001", ...; the formats are those of the preprocessing stages, notes/common.md):

* ``frames/<name>.png``: RGB frames (8-bit PNG); ``capture.mp4`` too with ``video=True``;
* ``keyframes.json``: ``{"width", "height", "fps", "source_kind": "images", "frames": [{"name",
  "source_index", "time_s", "sharpness": null, "yaw_deg"}]}``;
* ``hair/<name>.png``, ``bust/<name>.png``: 16-bit single-channel masks (value / 65535);
* ``orientation/<name>.npz``: ``angle`` (H, W) float32 radians in [0, pi) counter-clockwise from
  image +x on screen, ``confidence`` (H, W) float32 (the hair mask; 0 outside hair);
* ``truth/<name>.npz``: ``depth`` (H, W) float32 metres (0 = empty), ``tangent`` (H, W, 3)
  float32 head-frame unit tangents (0 outside hair), ``strand_index`` (H, W) int32 (-1 = none);
* ``cameras.json``: :func:`engine.synthetic.camera.save_cameras` (head frame; keys = frame
  names);
* ``groom.npz``: the rendered strands (:func:`engine.io.export.export_groom`, units "m"), when
  strands were given.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from engine.cameras.camera import Camera
from engine.errors import InputError
from engine.io.media import write_image
from engine.synthetic.camera import HeadPose, frame_key, save_cameras
from engine.synthetic.head import HeadModel
from engine.synthetic.render import RenderSettings, ShellLike, render


def write_mask16(path: Path, mask: np.ndarray) -> None:
    """Write a float mask in [0, 1] as a 16-bit single-channel PNG (value / 65535)."""
    write_image(path, (np.clip(mask, 0, 1) * 65535 + 0.5).astype(np.uint16))


def render_capture(out_dir: str | os.PathLike, cameras: Sequence[Camera],
                   head: HeadModel | None = None, strands: np.ndarray | None = None,
                   shell: ShellLike | None = None, settings: RenderSettings = RenderSettings(),
                   poses: Sequence[HeadPose] | None = None,
                   fps: float | None = None, video: bool = False, truth: bool = True,
                   progress: Callable[[int, int], None] | None = None) -> Path:
    """Render every camera's frame and write the capture folder described in the module docstring.

    Args:
        out_dir: the folder (created; existing files of the same names are overwritten).
        cameras: views in the head frame (all the same size).
        head, strands, shell, settings: as in :func:`engine.synthetic.render.render`.
        poses: the turning-head rig's head poses (yaw goes into keyframes.json and cameras.json).
        fps: frame rate written to keyframes.json / cameras.json and used for ``capture.mp4``.
        video: also write ``capture.mp4`` (mp4v).
        truth: write ``truth/<name>.npz`` (depth, tangents, strand index).
        progress: called with (done, total) after each frame.
    Returns:
        the folder path. Raises InputError when cameras is empty or sizes differ.
    """
    from engine.io.files import write_json_atomic

    out = Path(out_dir)
    if not cameras:
        raise InputError(f"{out}: render_capture needs at least one camera")
    W, H = cameras[0].width, cameras[0].height
    if any((c.width, c.height) != (W, H) for c in cameras):
        raise InputError(f"{out}: all cameras must have the same image size")
    for sub in ("frames", "hair", "bust", "orientation") + (("truth",) if truth else ()):
        (out / sub).mkdir(parents=True, exist_ok=True)
    writer = None
    if video:
        writer = cv2.VideoWriter(str(out / "capture.mp4"), cv2.VideoWriter_fourcc(*"mp4v"),
                                 float(fps or 30.0), (W, H))
    frames = []
    for k, cam in enumerate(cameras):
        name = frame_key(k, len(cameras))
        r = render(cam, head, strands, shell, settings)
        bgr = cv2.cvtColor(r.rgb, cv2.COLOR_RGB2BGR)
        write_image(out / "frames" / f"{name}.png", bgr)
        if writer is not None:
            writer.write(bgr)
        write_mask16(out / "hair" / f"{name}.png", r.hair_mask)
        write_mask16(out / "bust" / f"{name}.png", r.bust_mask)
        np.savez_compressed(out / "orientation" / f"{name}.npz", angle=r.orientation,
                            confidence=(r.hair_mask * (r.hair_mask > 0)).astype(np.float32))
        if truth:
            np.savez_compressed(out / "truth" / f"{name}.npz", depth=r.depth, tangent=r.tangent,
                                strand_index=r.strand_index)
        frames.append({"name": name, "source_index": k, "time_s": (k / fps) if fps else None,
                       "sharpness": None, "yaw_deg": poses[k].yaw_deg if poses else None})
        if progress:
            progress(k + 1, len(cameras))
    if writer is not None:
        writer.release()
    write_json_atomic(out / "keyframes.json", {"width": W, "height": H, "fps": fps,
                                               "source_kind": "images", "frames": frames})
    save_cameras(out / "cameras.json", cameras, fps=fps, poses=poses)
    if strands is not None:
        from engine.io.export import export_groom
        from engine.io.groom import Groom

        export_groom(Groom(np.asarray(strands, np.float32)), out / "groom.npz", units="m")
    return out
