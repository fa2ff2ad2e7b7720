"""The embedded sample capture (``resources/sample``) scored against its ground truth, for
``strandcap demo``."""

from __future__ import annotations

from pathlib import Path

from engine.cameras.camera import camera_accuracy, load_cameras
from engine.io.export import load_groom
from engine.metrics import format_scores, strand_scores
from engine.preprocess.artifacts import load_keyframes
from engine.resources import resource

__all__ = ["evaluate_sample"]


def evaluate_sample(outputs: dict[str, Path]) -> list[str]:
    """Lines comparing a run on the embedded sample with its ground truth: cameras (rotation
    and centre errors, metric scale) when a cameras stage ran, strand precision / recall /
    F-score (engine.metrics) when a strands stage wrote groom.npz."""
    lines = []
    if "cameras" in outputs and "keyframes" in outputs:
        meta, _ = load_keyframes(outputs["keyframes"])
        true_all = load_cameras(resource("sample", "cameras.json"))  # keyed by video frame
        truth = {f["name"]: true_all[f"{f['source_index']:03d}"] for f in meta["frames"]
                 if f"{f['source_index']:03d}" in true_all}
        acc = camera_accuracy(load_cameras(outputs["cameras"] / "cameras.json"), truth)
        lines.append(f"cameras vs truth ({acc['camera_frames']} keyframes): rotation "
                     f"{acc['camera_rot_deg']:.2f} deg, centre {acc['camera_centre_mm']:.1f} mm; "
                     f"after similarity alignment {acc.get('camera_rot_deg_aligned', 'n/a')} deg, "
                     f"{acc.get('camera_centre_mm_aligned', 'n/a')} mm, "
                     f"scale {acc.get('camera_scale', 'n/a')}")
    groom_file = outputs.get("strands", Path("/nonexistent")) / "groom.npz"
    if groom_file.is_file():
        scores = strand_scores(load_groom(groom_file), load_groom(resource("sample", "groom.npz")))
        lines += ["strands vs the true groom:", format_scores(scores)]
    else:
        lines.append("strands vs the true groom: the strands stage did not run, nothing to score")
    return lines
