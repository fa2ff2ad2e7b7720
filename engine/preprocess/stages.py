"""Preprocessing stages of the graph: keyframes -> landmarks -> masks -> orientation.

Artifact layouts are in :mod:`engine.preprocess.artifacts`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Mapping

import cv2
import numpy as np

from engine.errors import InputError
from engine.io.media import iter_frames, probe_source
from engine.io.files import write_json_atomic
from engine.pipeline import Artifact, Event, Stage, StageContext, option
from engine.preprocess import artifacts as art
from engine.preprocess import previews
from engine.preprocess.keyframes import Candidate, resize_long_side, select_keyframes, sharpness
from engine.preprocess.landmarks import N_LANDMARKS, FaceLandmarker, head_pose
from engine.preprocess.masks import (HistogramColourModel, PersonSegmenter, apply_user_edit,
                                     clean_mask, face_geometry, faceless_seeds, grabcut_hair,
                                     initial_seeds, refine_with_colour, temporal_blend)
from engine.preprocess.orientation import GaborParams, orientation_map

PREVIEW_EVERY = 3  # yield an image preview for every n-th keyframe


# -- keyframes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyframesConfig:
    max_keyframes: int = option(24, "keyframes kept (views without a face can add up to as "
                               "many again: faceless_share)", range=(1, 400))
    min_frames: int = option(10, "shortest accepted input, in frames (or images)", range=(1, None))
    max_candidates: int = option(180, "frames decoded and scored (evenly spaced over the clip)",
                                 range=(4, 5000))
    max_side: int = option(768, "keyframes are downscaled to this long side", unit="px",
                           range=(128, 4096))
    min_sharpness_ratio: float = option(
        0.5, "frames blurrier than this times the clip's median sharpness are avoided",
        range=(0.0, 1.0))
    faceless_share: float = option(
        1.0, "when at least this share of the frames shows no face (the back of the head on an "
        "orbit or a full turn), keyframes without a face are added: this share of "
        "max_keyframes (1: never; 0.2 measured mixed, docs/views.md)", range=(0.0, 1.0))


def _keyframes_fingerprint(project, cfg) -> dict:
    return {"source": project.source_fingerprint(),
            "excluded": sorted(int(i) for i in project.manifest.get("excluded_frames", []))}


def run_keyframes(cfg: KeyframesConfig, inputs: Mapping[str, Artifact],
                  ctx: StageContext) -> Iterator[Event]:
    source = ctx.project.source_path
    label = ctx.project.source_name  # the user's file name, not the project's copy
    info = probe_source(source, label)
    if info.frame_count < cfg.min_frames:
        raise InputError(f"{label}: too short: {info.frame_count} frames, need at least "
                         f"{cfg.min_frames}; record a longer clip")
    excluded = set(_keyframes_fingerprint(ctx.project, cfg)["excluded"])
    stride = max(1, math.ceil(info.frame_count / cfg.max_candidates))
    expected = math.ceil(info.frame_count / stride)
    candidates: list[Candidate] = []
    images: dict[int, np.ndarray] = {}
    decoded = 0
    with FaceLandmarker(static=info.kind == "images") as landmarker:
        for index, rgb in iter_frames(source, stride, label):
            decoded += 1
            ctx.check()
            if index in excluded:
                continue
            small = resize_long_side(rgb, cfg.max_side)
            points = landmarker.detect(small)
            yaw = head_pose(points)[0] if points is not None else None
            candidates.append(Candidate(index, sharpness(resize_long_side(small, 512)), yaw))
            images[index] = small
            if decoded % 5 == 0:
                yield ctx.progress(decoded, max(expected, decoded), f"scored {decoded} frames")
    if decoded * stride < cfg.min_frames:
        raise InputError(f"{label}: too short: only {decoded * stride} decodable frames, "
                         f"need at least {cfg.min_frames}")
    if not any(c.yaw is not None for c in candidates):
        raise InputError(f"{label}: no face found in {len(candidates)} sampled frames; "
                         "film the head with the face visible")
    chosen = select_keyframes(candidates, cfg.max_keyframes, cfg.min_sharpness_ratio,
                              cfg.faceless_share)
    frames = []
    for k, c in enumerate(chosen):
        name = f"{k:03d}"
        art.save_frame(ctx.out_dir, name, images[c.index])
        frames.append({"name": name, "source_index": c.index,
                       "time_s": c.index / info.fps if info.fps else None,
                       "sharpness": round(c.sharpness, 3),
                       "yaw_deg": None if c.yaw is None else round(c.yaw, 2)})
    h, w = images[chosen[0].index].shape[:2]
    meta = {"width": w, "height": h, "fps": info.fps, "source_kind": info.kind,
            "source_frame_count": info.frame_count, "stride": stride, "frames": frames}
    write_json_atomic(ctx.out_dir / art.KEYFRAMES_JSON, meta)
    sheet = previews.contact_sheet([previews.landmarks_overlay(
        images[c.index], None, f"#{c.index} yaw {c.yaw:+.0f}" if c.yaw is not None else f"#{c.index}")
        for c in chosen], columns=6, width=192)
    previews.save_preview(ctx.out_dir, "sheet", sheet)
    yield ctx.preview("image", sheet, "keyframes")
    yield ctx.progress(max(expected, decoded), max(expected, decoded), f"{len(chosen)} keyframes")
    yaws = [c.yaw for c in chosen if c.yaw is not None]
    n_faceless = len(chosen) - len(yaws)
    if n_faceless:
        yield ctx.log(f"keyframes: {n_faceless} of {len(chosen)} show no face (the back or sides "
                      f"of the head; {sum(c.yaw is None for c in candidates)} of "
                      f"{len(candidates)} sampled frames)")
    return {"keyframes": len(chosen), "decoded": decoded, "without_face": n_faceless,
            "yaw_min": min(yaws) if yaws else None, "yaw_max": max(yaws) if yaws else None}


# -- landmarks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LandmarksConfig:
    min_detection_confidence: float = option(0.5, "face detection threshold", range=(0.05, 0.95))
    min_found_fraction: float = option(
        0.5, "fail when fewer keyframes than this have a face", range=(0.0, 1.0))


def run_landmarks(cfg: LandmarksConfig, inputs: Mapping[str, Artifact],
                  ctx: StageContext) -> Iterator[Event]:
    kf = inputs["keyframes"].path
    meta, names = art.load_keyframes(kf)
    points = np.full((len(names), N_LANDMARKS, 3), np.nan, np.float32)
    pose = np.full((len(names), 3), np.nan, np.float32)
    found = np.zeros(len(names), bool)
    sheet = []
    with FaceLandmarker(static=True, min_confidence=cfg.min_detection_confidence) as lm:
        for i, name in enumerate(names):
            ctx.check()
            rgb = art.load_frame(kf, name)
            p = lm.detect(rgb)
            if p is not None:
                points[i], found[i] = p, True
                pose[i] = head_pose(p)
            label = f"{name} yaw {pose[i, 0]:+.0f}" if found[i] else f"{name}: no face"
            over = previews.landmarks_overlay(rgb, p, label)
            previews.save_preview(ctx.out_dir, name, over)
            sheet.append(over)
            if i % PREVIEW_EVERY == 0:
                yield ctx.preview("image", over, f"landmarks {name}")
            yield ctx.progress(i + 1, len(names), name)
    rate = float(found.mean()) if len(names) else 0.0
    if rate < cfg.min_found_fraction:
        raise InputError(f"{ctx.project.source_name}: a face was found in only "
                         f"{found.sum()} of {len(names)} keyframes; keep the face in view")
    art.save_landmarks(ctx.out_dir, names, points, found, pose)
    previews.save_preview(ctx.out_dir, "sheet", previews.contact_sheet(sheet, 6, 192))
    return {"found": int(found.sum()), "keyframes": len(names), "found_fraction": rate}


# -- masks --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MasksConfig:
    grabcut_iterations: int = option(3, "GrabCut iterations per keyframe", range=(1, 20))
    grabcut_side: int = option(320, "GrabCut runs at this long side", unit="px",
                               range=(96, 2048))
    skin_max_distance: float = option(
        3.0, "Mahalanobis distance in YCrCb below which a pixel is skin", range=(0.5, 10.0))
    temporal_weight: float = option(
        0.25, "weight of the neighbouring keyframes' aligned masks", range=(0.0, 0.9))
    feather_px: float = option(1.5, "soft border of the masks", unit="px", range=(0.0, 20.0))


def _masks_fingerprint(project, cfg) -> str:
    return project.mask_edits_fingerprint()


def run_masks(cfg: MasksConfig, inputs: Mapping[str, Artifact],
              ctx: StageContext) -> Iterator[Event]:
    kf = inputs["keyframes"].path
    _, names = art.load_keyframes(kf)
    lms = art.load_landmarks(inputs["landmarks"].path)
    n = len(names)
    frames, persons, seeds, faces, skins = [], [], [], [], []
    hair_model, other_model = HistogramColourModel(), HistogramColourModel()
    # pass 1: person masks, face geometry, first seeds and the clip's shared colour models
    with PersonSegmenter() as segment:
        for i, name in enumerate(names):
            ctx.check()
            rgb = art.load_frame(kf, name)
            person = segment(rgb)
            frames.append(rgb)
            persons.append(person)
            if lms["found"][i]:
                face = face_geometry(lms["points"][i], person.shape)
                labels, skin_like = initial_seeds(rgb, person, face, cfg.skin_max_distance)
                lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
                hair_model.add(lab, labels == cv2.GC_FGD)
                other_model.add(lab, (labels == cv2.GC_BGD) | (
                    (labels == cv2.GC_PR_BGD) & (np.arange(person.shape[0])[:, None]
                                                 > face.chin_y + 0.6 * face.face_height)))
            else:
                face, labels, skin_like = None, None, None
            faces.append(face)
            seeds.append(labels)
            skins.append(skin_like)
            yield ctx.progress(i + 1, 2 * n, f"segmenting {name}")
    # pass 2: colour-refined seeds, GrabCut, clean-up
    hairs = []
    for i, name in enumerate(names):
        ctx.check()
        if seeds[i] is None:  # no face: seeds from the colour models of the face views
            lab = cv2.cvtColor(frames[i], cv2.COLOR_RGB2LAB)
            labels = faceless_seeds(lab, persons[i], hair_model, other_model)
            if labels is None:  # nothing looks like hair: the user can paint this frame
                hairs.append(np.zeros_like(persons[i]))
            else:
                hair = grabcut_hair(frames[i], labels, cfg.grabcut_iterations, cfg.grabcut_side)
                hairs.append(clean_mask(hair, persons[i], cfg.feather_px))
        else:
            lab = cv2.cvtColor(frames[i], cv2.COLOR_RGB2LAB)
            labels = refine_with_colour(seeds[i], lab, persons[i], faces[i], hair_model,
                                        other_model, skins[i])
            hair = grabcut_hair(frames[i], labels, cfg.grabcut_iterations, cfg.grabcut_side)
            hairs.append(clean_mask(hair, persons[i], cfg.feather_px))
        yield ctx.progress(n + i + 1, 2 * n, f"hair mask {name}")
    points = [lms["points"][i] if lms["found"][i] else None for i in range(n)]
    hairs = temporal_blend(hairs, points, cfg.temporal_weight)
    areas, edited, sheet = [], 0, []
    for i, name in enumerate(names):
        edit = art.load_mask_edit(ctx.project.mask_edits_dir, name)
        edited += edit is not None
        hair, bust = apply_user_edit(hairs[i], persons[i], edit)
        art.save_mask(ctx.out_dir, "hair", name, hair)
        art.save_mask(ctx.out_dir, "bust", name, bust)
        over = previews.mask_overlay(frames[i], hair, bust)
        previews.save_preview(ctx.out_dir, name, over)
        sheet.append(over)
        areas.append(float(hair.mean()))
        if i % PREVIEW_EVERY == 0:
            yield ctx.preview("image", over, f"masks {name}")
    previews.save_preview(ctx.out_dir, "sheet", previews.contact_sheet(sheet, 6, 192))
    return {"keyframes": n, "mean_hair_area": float(np.mean(areas)), "user_edits": edited}


# -- orientation --------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrientationConfig:
    orientations: int = option(180, "Gabor filter orientations over [0, pi)", range=(8, 360))
    sigma_x: float = option(1.8, "Gabor envelope across the stripes", unit="px", range=(0.5, 10))
    sigma_y: float = option(2.4, "Gabor envelope along the stripes", unit="px", range=(0.5, 10))
    frequency: float = option(0.23, "Gabor frequency", unit="cycles/px", range=(0.02, 0.5))
    dog_sigma_low: float = option(0.4, "difference-of-Gaussians prefilter, fine sigma",
                                  unit="px", range=(0.0, 5.0))
    dog_sigma_high: float = option(10.0, "difference-of-Gaussians prefilter, coarse sigma",
                                   unit="px", range=(1.0, 50.0))


def run_orientation(cfg: OrientationConfig, inputs: Mapping[str, Artifact],
                    ctx: StageContext) -> Iterator[Event]:
    kf, masks = inputs["keyframes"].path, inputs["masks"].path
    _, names = art.load_keyframes(kf)
    params = GaborParams(cfg.orientations, cfg.sigma_x, cfg.sigma_y, cfg.frequency,
                         cfg.dog_sigma_low, cfg.dog_sigma_high)
    sheet, confidences = [], []
    for i, name in enumerate(names):
        ctx.check()
        rgb = art.load_frame(kf, name)
        hair = art.load_mask(masks, "hair", name)
        angle, conf = orientation_map(rgb, hair, params)
        art.save_orientation(ctx.out_dir, name, angle, conf)
        over = previews.orientation_overlay(rgb, angle, conf, hair)
        previews.save_preview(ctx.out_dir, name, over)
        sheet.append(over)
        if np.any(hair > 0.5):
            confidences.append(float(np.median(conf[hair > 0.5])))
        if i % PREVIEW_EVERY == 0:
            yield ctx.preview("image", over, f"orientation {name}")
        yield ctx.progress(i + 1, len(names), name)
    previews.save_preview(ctx.out_dir, "sheet", previews.contact_sheet(sheet, 6, 192))
    return {"keyframes": len(names),
            "median_confidence": float(np.median(confidences)) if confidences else 0.0}


STAGES = [
    Stage("keyframes", 3, KeyframesConfig, (), run_keyframes, _keyframes_fingerprint,
          "Keyframes", presets={"preview": {"max_keyframes": 12, "max_candidates": 90,
                                            "max_side": 512},
                                "high": {"max_keyframes": 48, "max_candidates": 400,
                                         "max_side": 1024}}),
    Stage("landmarks", 2, LandmarksConfig, ("keyframes",), run_landmarks, None,
          "Face landmarks"),
    Stage("masks", 6, MasksConfig, ("keyframes", "landmarks"), run_masks, _masks_fingerprint,
          "Hair and bust masks", presets={"preview": {"grabcut_iterations": 2,
                                                      "grabcut_side": 256},
                                          "high": {"grabcut_iterations": 5,
                                                   "grabcut_side": 512}}),
    Stage("orientation", 2, OrientationConfig, ("keyframes", "masks"), run_orientation, None,
          "Orientation maps", presets={"preview": {"orientations": 60}}),
]
