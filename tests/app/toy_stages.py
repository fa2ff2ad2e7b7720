"""Small stage graphs for the app tests, built with engine.pipeline.Stage.

``preprocess_stages()`` writes the documented preprocessing artifact formats (notes/common.md)
from the project's input video with cheap synthetic content; ``run_stages()`` is a quick stage
plus an optimisation-like stage that yields progress, losses and strand/mesh previews."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

import cv2
import numpy as np

from engine.pipeline import Stage, option


# -- preprocessing formats --------------------------------------------------------------------
@dataclass(frozen=True)
class KeyframesConfig:
    every: int = option(5, "take every n-th frame", range=(1, None))


def _keyframes(cfg, inputs, ctx):
    cap = cv2.VideoCapture(str(ctx.project.source_path))
    frames, i, shape = [], 0, (0, 0)
    (ctx.out_dir / "frames").mkdir()
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        shape = bgr.shape[:2]
        if i % cfg.every == 0:
            name = f"{len(frames):03d}"
            cv2.imwrite(str(ctx.out_dir / "frames" / f"{name}.png"), bgr)
            frames.append({"name": name, "source_index": i, "time_s": i / 10.0,
                           "sharpness": 100.0, "yaw_deg": None})
            yield ctx.progress(len(frames), 4)
        i += 1
    cap.release()
    h, w = shape
    (ctx.out_dir / "keyframes.json").write_text(json.dumps(
        {"width": w, "height": h, "fps": 10.0, "source_kind": "video", "frames": frames}))
    return {"frames": len(frames)}


def _names(inputs):
    meta = json.loads((inputs["keyframes"].path / "keyframes.json").read_text())
    return [f["name"] for f in meta["frames"]]


@dataclass(frozen=True)
class Empty:
    pass


def _landmarks(cfg, inputs, ctx):
    names = _names(inputs)
    t = np.linspace(0, 2 * np.pi, 478, endpoint=False)
    pts = np.stack([64 + 25 * np.cos(t), 70 + 30 * np.sin(t), np.zeros_like(t)], 1)
    points = np.repeat(pts[None].astype(np.float32), len(names), 0)
    np.savez(ctx.out_dir / "landmarks.npz", names=np.array(names), found=np.ones(len(names), bool),
             points=points, pose=np.zeros((len(names), 3), np.float32))
    yield ctx.log("toy landmarks written")


def _masks(cfg, inputs, ctx):
    yy, xx = np.mgrid[:128, :128]
    hair = (((xx - 64) / 45.0) ** 2 + ((yy - 40) / 30.0) ** 2 < 1).astype(np.float32)
    bust = (yy > 80).astype(np.float32)
    for kind, m in (("hair", hair), ("bust", bust)):
        (ctx.out_dir / kind).mkdir()
        for n in _names(inputs):
            cv2.imwrite(str(ctx.out_dir / kind / f"{n}.png"), (m * 65535).astype(np.uint16))
    yield ctx.progress(1, 1)


def _orientation(cfg, inputs, ctx):
    yy, xx = np.mgrid[:128, :128].astype(np.float32)
    angle = (np.arctan2(yy - 64, xx - 64) % np.pi).astype(np.float32)
    conf = (((xx - 64) / 45.0) ** 2 + ((yy - 40) / 30.0) ** 2 < 1).astype(np.float32)
    (ctx.out_dir / "orientation").mkdir()
    for n in _names(inputs):
        np.savez(ctx.out_dir / "orientation" / f"{n}.npz", angle=angle, confidence=conf)
    yield ctx.progress(1, 1)


def preprocess_stages() -> list[Stage]:
    return [
        Stage("keyframes", 1, KeyframesConfig, (), _keyframes,
              fingerprint=lambda p, c: [p.source_fingerprint(),
                                        sorted(p.manifest.get("excluded_frames", []))],
              title="Keyframes"),
        Stage("landmarks", 1, Empty, ("keyframes",), _landmarks, title="Landmarks"),
        Stage("masks", 1, Empty, ("keyframes",), _masks,
              fingerprint=lambda p, c: p.mask_edits_fingerprint(), title="Masks"),
        Stage("orientation", 1, Empty, ("keyframes", "masks"), _orientation, title="Orientation"),
    ]


# -- an optimisation-like run --------------------------------------------------------------------
@dataclass(frozen=True)
class QuickConfig:
    size: int = option(3, "numbers to write", range=(1, None))


def _quick(cfg, inputs, ctx):
    (ctx.out_dir / "numbers.json").write_text(json.dumps(list(range(cfg.size))))
    yield ctx.progress(1, 1, "quick")
    return {"size": cfg.size}


@dataclass(frozen=True)
class StrandsConfig:
    steps: int = option(60, "optimisation steps", range=(1, None))
    strands: int = option(300, "strands", range=(1, None))
    step_s: float = option(0.0, "sleep per step (test pacing)", unit="s", affects_output=False)
    fail_at: int = option(-1, "raise at this step (-1: never)", affects_output=False)
    fail_kind: str = option("runtime", "exception type", choices=("runtime", "input"),
                            affects_output=False)


def toy_groom(n: int, length: int = 16, phase: float = 0.0) -> np.ndarray:
    """(n, length, 3) float32 strands on a 0.09 m sphere, hanging down and out."""
    rng = np.random.default_rng(1)
    theta = rng.uniform(0, 2 * np.pi, n)
    phi = rng.uniform(0.1, 1.2, n)
    roots = 0.09 * np.stack([np.sin(phi) * np.cos(theta), np.cos(phi), np.sin(phi) * np.sin(theta)], 1)
    out = roots / np.linalg.norm(roots, axis=1, keepdims=True)
    t = np.linspace(0, 0.15, length)[None, :, None]
    drift = np.array([0, -1.0, 0])[None, None] * t * (1 + 0.3 * math.sin(phase))
    return (roots[:, None] + out[:, None] * t * 0.4 + drift).astype(np.float32)


def _head_mesh():
    u, v = np.meshgrid(np.linspace(0, np.pi, 12), np.linspace(0, 2 * np.pi, 16), indexing="ij")
    verts = 0.09 * np.stack([np.sin(u) * np.cos(v), np.cos(u), np.sin(u) * np.sin(v)], -1)
    verts = verts.reshape(-1, 3).astype(np.float32)
    faces = []
    for i in range(11):
        for j in range(15):
            a, b, c, d = i * 16 + j, i * 16 + j + 1, (i + 1) * 16 + j, (i + 1) * 16 + j + 1
            faces += [(a, c, b), (b, c, d)]
    return {"vertices": verts, "faces": np.array(faces, np.int32)}


def _strands(cfg, inputs, ctx):
    yield ctx.preview("mesh", _head_mesh(), "head")
    yield ctx.preview("image", np.full((32, 48, 3), 200, np.uint8), "render")
    for step in range(1, cfg.steps + 1):
        ctx.check()
        if step == cfg.fail_at:
            if cfg.fail_kind == "input":
                from engine.errors import InputError
                raise InputError("toy.mp4: the toy stage rejects this input")
            raise RuntimeError("boom at step %d" % step)
        if cfg.step_s:
            time.sleep(cfg.step_s)
        yield ctx.loss(step, {"total": 1.0 / step, "smoothness": 0.1 * math.exp(-step / 20)})
        yield ctx.progress(step, cfg.steps, f"step {step}")
        if step % 5 == 0 or step == cfg.steps:
            yield ctx.preview("strands", toy_groom(cfg.strands, phase=step / 10), f"step {step}")
    np.savez(ctx.out_dir / "strands.npz", strands=toy_groom(cfg.strands))
    return {"steps": cfg.steps}


def run_stages() -> list[Stage]:
    return [
        Stage("toy_quick", 1, QuickConfig, (), _quick, title="Quick"),
        Stage("toy_strands", 1, StrandsConfig, ("toy_quick",), _strands, title="Strands",
              presets={"preview": {"steps": 40}}),
    ]


def factory(stages_fn):
    """A stages factory with the signature of app.state.installed_stages."""
    def make(until: str | None = None):
        stages = stages_fn()
        if until is None:
            return stages
        names = [s.name for s in stages]
        return stages[: names.index(until) + 1]
    return make


# -- a graph whose last stage leaves a groom, as the real ``strands`` stage does -----------------
@dataclass(frozen=True)
class GroomConfig:
    steps: int = option(30, "optimisation steps", range=(1, None))
    strands: int = option(120, "strands", range=(1, None))
    step_s: float = option(0.0, "sleep per step (test pacing)", unit="s", affects_output=False)


def _groom(cfg, inputs, ctx):
    from engine.io.export import export_groom
    from engine.io.groom import Groom

    mesh = _head_mesh()
    yield ctx.preview("mesh", mesh, "head")
    for step in range(1, cfg.steps + 1):
        ctx.check()
        if cfg.step_s:
            time.sleep(cfg.step_s)
        yield ctx.loss(step, {"total": 1.0 / step})
        yield ctx.progress(step, cfg.steps, f"step {step}")
    groom = Groom(strands=toy_groom(cfg.strands), head_vertices=mesh["vertices"],
                  head_faces=mesh["faces"])
    export_groom(groom, ctx.out_dir / "groom.npz", units="m")
    return {"steps": cfg.steps}


def groom_stages() -> list[Stage]:
    """``toy_quick`` then a stage named ``strands`` that writes ``groom.npz`` (with a head)."""
    return [
        Stage("toy_quick", 1, QuickConfig, (), _quick, title="Quick"),
        Stage("strands", 1, GroomConfig, ("toy_quick",), _groom, title="Strands",
              presets={"preview": {"steps": 10}}),
    ]
