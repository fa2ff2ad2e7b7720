"""Previews of a finished groom for people to look at: strands drawn over the input keyframes,
a turntable of the groom (and fitted head) rotating about +Y, a PNG contact sheet and an MP4."""

from engine.preview.turntable import (overlay_frames, render_view, turntable_camera,
                                      turntable_frames, write_preview, write_project_preview)

__all__ = ["overlay_frames", "render_view", "turntable_camera", "turntable_frames",
           "write_preview", "write_project_preview"]
