"""Capture-quality and coverage warnings of a project, read from what the engine's stages left
on disk (no stage runs here): the keyframes' head yaw range and frames without a face
(``keyframes``), frames where the face landmarks were not found (``landmarks``), keyframes that
are too dark (their pixels), and a structure-from-motion failure of the ``cameras`` stage
(its ``fit.json``: an automatic choice of SfM that fell back to landmark poses, or too few
registered views). Warnings that a run logged (``Log`` events of level ``warning``) are added
by the pages that receive them.

The Review page shows these before the recording is used for the reconstruction (after the
preprocessing, before the cameras and the coarse stage), the Reconstruct page counts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

MIN_SIDE_YAW_DEG = 25.0   # a turn should reach this far to each side (left and right)
DARK_LUMA = 55.0          # mean luma (0..255) of a keyframe below which it is "too dark"
DARK_SHARE = 0.25         # warn when more than this share of the keyframes is too dark


@dataclass(frozen=True)
class Warning_:
    """One warning: ``kind`` ("coverage", "face", "dark", "cameras", "log"), the stage it comes
    from, and the sentence shown to the user."""

    kind: str
    stage: str
    text: str


def _done(project, stage: str, key: str | None) -> dict | None:
    if key is None:
        return None
    a = project.artifact(stage, key)
    return None if a is None else a.done


def _finished(project, stages, config) -> dict[str, object]:
    """Finished artifacts of the current config by stage name (missing ones left out)."""
    from engine.pipeline import stage_status

    out = {}
    for st in stage_status(project, stages, config):
        if st.finished:
            a = project.artifact(st.name, st.key)
            if a is not None:
                out[st.name] = a
    return out


def _luma(rgb: np.ndarray) -> float:
    return float((0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]).mean())


_KEYFRAME_CACHE: dict[str, list[Warning_]] = {}   # finished artifacts never change


def keyframe_warnings(folder: Path, summary: dict) -> list[Warning_]:
    """Coverage, face-lost and darkness warnings of a finished ``keyframes`` artifact."""
    key = str(Path(folder).resolve())
    if key not in _KEYFRAME_CACHE:
        if len(_KEYFRAME_CACHE) > 64:
            _KEYFRAME_CACHE.clear()
        _KEYFRAME_CACHE[key] = _keyframe_warnings(Path(folder), summary)
    return list(_KEYFRAME_CACHE[key])


def _keyframe_warnings(folder: Path, summary: dict) -> list[Warning_]:
    from engine.preprocess.artifacts import load_frame, load_keyframes

    out: list[Warning_] = []
    try:
        meta, names = load_keyframes(folder)
    except Exception:  # noqa: BLE001 - unreadable: the stage itself will complain
        return out
    frames = meta.get("frames", [])
    yaws = [f.get("yaw_deg") for f in frames if f.get("yaw_deg") is not None]
    lo = summary.get("yaw_min", min(yaws) if yaws else None)
    hi = summary.get("yaw_max", max(yaws) if yaws else None)
    if lo is not None and hi is not None:
        missing = []
        if lo > -MIN_SIDE_YAW_DEG:
            missing.append(f"{-MIN_SIDE_YAW_DEG:+.0f}° to {lo:+.0f}°")
        if hi < MIN_SIDE_YAW_DEG:
            missing.append(f"{hi:+.0f}° to {MIN_SIDE_YAW_DEG:+.0f}°")
        if missing:
            out.append(Warning_("coverage", "keyframes",
                                f"Missing turn range: the keyframes cover head yaw {lo:+.0f}° to "
                                f"{hi:+.0f}°, nothing from {' and '.join(missing)}. Turn the "
                                "head further to that side (or walk further around)."))
    no_face = [f for f in frames if f.get("yaw_deg") is None]
    if no_face and frames:
        which = ", ".join(f"#{f.get('source_index')}" for f in no_face[:6])
        more = "…" if len(no_face) > 6 else ""
        out.append(Warning_("face", "keyframes",
                            f"Face lost in {len(no_face)} of {len(frames)} keyframes ({which}{more})"
                            ": keep the face in view, or exclude those frames."))
    dark = []
    for f in frames:
        try:
            rgb = load_frame(folder, str(f["name"]))
        except Exception:  # noqa: BLE001
            continue
        luma = _luma(rgb)
        if luma < DARK_LUMA:
            dark.append((f.get("source_index"), luma))
    if frames and len(dark) > DARK_SHARE * len(frames):
        which = ", ".join(f"#{i}" for i, _ in dark[:6]) + ("…" if len(dark) > 6 else "")
        mean = float(np.mean([v for _, v in dark]))
        out.append(Warning_("dark", "keyframes",
                            f"Too dark: {len(dark)} of {len(frames)} keyframes ({which}) have a "
                            f"mean brightness of {mean:.0f}/255. Add light in front of the "
                            "person and record again."))
    return out


def landmark_warnings(summary: dict) -> list[Warning_]:
    found, total = summary.get("found"), summary.get("keyframes")
    if isinstance(found, int) and isinstance(total, int) and 0 < total and found < total:
        return [Warning_("face", "landmarks",
                         f"Face landmarks not found in {total - found} of {total} keyframes: "
                         "those views do not help the head fit.")]
    return []


def camera_warnings(folder: Path, done: dict) -> list[Warning_]:
    """Structure-from-motion problems recorded in a finished ``cameras`` artifact."""
    from engine.pipeline import read_json

    try:
        info = read_json(folder / "fit.json")
    except Exception:  # noqa: BLE001
        return []
    cfg = done.get("config") or {}
    out = []
    mode = info.get("mode")
    ev = info.get("auto")
    if isinstance(ev, dict) and mode == "landmarks":
        motion = ev.get("background_motion")
        yaw = ev.get("yaw_range_deg")
        wanted_sfm = ((isinstance(motion, (int, float)) and np.isfinite(motion)
                       and motion > float(cfg.get("orbit_motion", 0.01)))
                      or (isinstance(yaw, (int, float))
                          and yaw > float(cfg.get("min_turn_deg", 30.0))))
        if wanted_sfm:
            sfm = info.get("sfm") or {}
            got = (f" (it registered {sfm['registered']} of {sfm.get('total', '?')} keyframes)"
                   if "registered" in sfm else "")
            out.append(Warning_("cameras", "cameras",
                                f"Structure from motion failed{got}; the cameras come from "
                                "face-landmark head poses, which are less accurate. Record more "
                                "slowly with more overlap and texture, or import known cameras "
                                "(Cameras: colmap or transforms)."))
    sfm = info.get("sfm")
    if isinstance(sfm, dict) and "registered" in sfm and mode in ("orbit", "turn"):
        total = sfm.get("total")
        if isinstance(total, int) and sfm["registered"] < total:
            out.append(Warning_("cameras", "cameras",
                                f"Structure from motion registered {sfm['registered']} of {total} "
                                "keyframes; the others are left out."))
    return out


def project_warnings(project, stages, config) -> list[Warning_]:
    """Every warning the finished stages of ``config`` support, in stage order; [] when none has
    run (or the project has no input yet)."""
    if project is None:
        return []
    try:
        found = _finished(project, stages, config)
    except Exception:  # noqa: BLE001 - e.g. no input yet
        return []
    out: list[Warning_] = []
    if "keyframes" in found:
        a = found["keyframes"]
        out += keyframe_warnings(a.path, a.done.get("summary") or {})
    if "landmarks" in found:
        out += landmark_warnings(found["landmarks"].done.get("summary") or {})
    if "cameras" in found:
        a = found["cameras"]
        out += camera_warnings(a.path, a.done)
    return out


def capture_facts(project, stages, config) -> list[str]:
    """Short facts of the finished stages for the "all fine" line: the keyframes' yaw range,
    faces found, how the cameras were found, and whether the back of the head was seen."""
    try:
        found = _finished(project, stages, config)
    except Exception:  # noqa: BLE001
        return []
    out = []
    kf = (found["keyframes"].done.get("summary") or {}) if "keyframes" in found else {}
    if kf.get("yaw_min") is not None and kf.get("yaw_max") is not None:
        out.append(f"head yaw {kf['yaw_min']:+.0f}° to {kf['yaw_max']:+.0f}°")
    lm = (found["landmarks"].done.get("summary") or {}) if "landmarks" in found else {}
    if isinstance(lm.get("found"), int) and isinstance(lm.get("keyframes"), int):
        out.append(f"face in {lm['found']} of {lm['keyframes']} keyframes")
    if "cameras" in found:
        mode = (found["cameras"].done.get("summary") or {}).get("mode")
        text = f"cameras found with mode '{mode}'"
        try:
            from engine.pipeline import read_json

            sfm = read_json(found["cameras"].path / "fit.json").get("sfm") or {}
            if "registered" in sfm:
                text += f", SfM registered {sfm['registered']} of {sfm.get('total', '?')}"
        except Exception:  # noqa: BLE001
            pass
        out.append(text)
        cs = found["cameras"].done.get("summary") or {}
        if cs.get("back_seen") is False and cs.get("azimuth_min_deg") is not None:
            out.append(f"back of the head not seen (views {cs['azimuth_min_deg']:+.0f}° to "
                       f"{cs['azimuth_max_deg']:+.0f}° round the head): it will be inferred")
    return out


def cameras_mode_of(project, stages, config) -> str | None:
    """The capture situation the finished ``cameras`` stage used ("turn", "landmarks", ...)."""
    try:
        found = _finished(project, stages, config)
    except Exception:  # noqa: BLE001
        return None
    a = found.get("cameras")
    return None if a is None else (a.done.get("summary") or {}).get("mode")
