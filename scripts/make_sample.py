"""Build the embedded sample capture in resources/sample/ (regenerate with this script).

A short synthetic turning-head capture rendered by the project's CPU renderer
(:mod:`engine.synthetic`): the ICT Face Model Light head (MIT licence, ``../shared/data/heads``)
with a procedural skin and a shoulders stand-in, wearing a procedural groom from
:mod:`engine.prior.synth` (a small fallback generator is used when that module is missing),
seen by a still camera while the head turns from one side to the other.

Writes (all in resources/sample/):

* ``capture.mp4``: the video (mp4v, 512x512, 30 fps);
* ``frames/frame_<k>.jpg``: every ``--frame-step``-th frame as JPEG, named by its video frame
  index ``k`` (an image-folder input for the same capture; ``strandcap demo`` and the app use it);
* ``groom.npz``: the ground-truth groom (:func:`engine.io.export.export_groom`, units "m",
  head frame), exactly the strands that were rendered;
* ``cameras.json``: per-frame cameras in the head frame
  (:func:`engine.synthetic.camera.save_cameras`) with the head's yaw/pitch/roll;
* ``transforms.json``: the cameras of the ``frames/`` images in nerfstudio's format;
* ``sample.json``: how it was made (style, render settings, mediapipe face-detection rate);
* ``README.md`` and ``LICENSE-ICT-FaceKit.txt``.

Usage: python scripts/make_sample.py [--frames 90] [--size 512] [--strands 5000] [--points 48]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.io.export import export_groom  # noqa: E402
from engine.io.groom import Groom  # noqa: E402
from engine.synthetic.camera import (save_cameras, save_transforms_json,  # noqa: E402
                                     turning_head_rig)
from engine.synthetic.head import ICT_SHARED, HeadModel  # noqa: E402
from engine.synthetic.render import RenderSettings, render  # noqa: E402

OUT = REPO / "resources" / "sample"
STYLE = dict(curl="wavy", length_class="medium", parting="side", fringe=False, length_m=0.17,
             length_variation=0.12, nape_ratio=0.95, curl_radius_m=0.005, curl_period_m=0.06,
             volume_m=0.012, lift=0.3, stiffness_m=0.05, clump_count=80, clump_strength=0.35,
             density_variation=0.2, part_x_m=0.025, fringe_length_m=0.08, seed=20261121)


README = """# Embedded sample capture (synthetic, with ground truth)

Made by `python scripts/make_sample.py` (regenerate it with that command; it needs
`../shared/data/heads/ict_face_model_light.npz`). Everything here is rendered by Strandcap's own
CPU renderer (`engine/synthetic`), so the true groom and cameras are known.

| file | what it is |
|---|---|
| `capture.mp4` | {frames} frames, {size}x{size}, {fps:g} fps (mp4v): a still camera and a head turning from -{yaw:g} to +{yaw:g} degrees of yaw with small pitch and roll wobbles |
| `frames/frame_<k>.jpg` | every {step}th frame of the same capture as JPEG ({n_jpg} files), named by video frame index `k` |
| `groom.npz` | the ground-truth groom, exactly the rendered strands: {strands} strands x {points} points, metres, head frame (`engine.io.export.load_groom`) |
| `cameras.json` | per-frame cameras in the head frame (OpenCV convention, world-to-camera R, t in metres, fx, fy, cx, cy in pixels), keyed by video frame index ("000" ... ), with the head's yaw/pitch/roll; `engine.cameras.camera.load_cameras` and `engine.synthetic.load_cameras` read it |
| `transforms.json` | the cameras of the `frames/` images in nerfstudio / instant-ngp format (camera-to-world, OpenGL axes, head frame, metres) |
| `sample.json` | how it was made: groom style, render settings, mediapipe result per frame |

Scene: the neutral ICT Face Model Light head (USC ICT "ICT-FaceKit", MIT licence, text in
`LICENSE-ICT-FaceKit.txt`), centimetres scaled to metres, with a procedural skin (noise texture,
painted brows, eyelids, lips and eyes) and a superellipsoid standing in for the shoulders; a
procedural groom from `{gen}` (curl class: {curl}) drawn as camera-facing ribbons
{width_mm:.2f} mm wide; Lambert skin and Kajiya-Kay hair shading with one light;
{ssaa}x{ssaa} supersampling. mediapipe's face mesh finds the face in {rate:.0f}% of the video's frames.

Head frame: metres, +Y up, +Z out of the face (the ICT Face Model frame). All content is
generated; no photographs of people are included.
"""


def make_groom(n_strands: int, n_points: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Strands (N, L, 3) float32 m, root UVs (N, 2), and a description of the generator."""
    try:
        from engine.prior.synth import HairStyle, synth_groom
    except ImportError:  # the prior's generator has not landed: a crude stand-in
        return fallback_groom(n_strands, n_points)
    style = HairStyle(**STYLE)
    g = synth_groom(style, n_strands=n_strands, n_points=n_points)
    return g.strands, g.uv, {"generator": "engine.prior.synth.synth_groom",
                             "style": style.to_dict()}


def fallback_groom(n_strands: int, n_points: int, seed: int = 0):
    """Strands falling from a spherical scalp cap under gravity (used only without the prior)."""
    rng = np.random.default_rng(seed)
    centre, radius = np.array([0.0, 0.045, -0.01]), 0.098
    u, v = rng.uniform(0, 1, n_strands), rng.uniform(0, 1, n_strands)
    az = 2 * np.pi * u
    el = np.arcsin(np.clip(0.25 + 0.75 * v, -1, 1))
    d = np.stack([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)], 1)
    keep = ~((d[:, 2] > 0.3) & (d[:, 1] < 0.75))  # no hair on the forehead
    d, uvs = d[keep], np.stack([u, v], 1)[keep]
    root = centre + radius * d
    s = np.linspace(0, 1, n_points)[None, :, None]
    length = rng.uniform(0.12, 0.18, len(d))[:, None, None]
    pts = root[:, None] + d[:, None] * 0.02 * s + np.array([0, -1.0, -0.15]) * length * s ** 1.5
    out = np.linalg.norm(pts - centre, axis=-1, keepdims=True)
    pts = centre + (pts - centre) * np.maximum(out, radius + 0.004) / np.maximum(out, 1e-9)
    return pts.astype(np.float32), uvs.astype(np.float32), {"generator": "fallback"}


def face_detection_rate(video: Path) -> tuple[float, list[bool]]:
    """Share of the video's frames where mediapipe's face mesh finds a face."""
    import mediapipe as mp

    cap = cv2.VideoCapture(str(video))
    found = []
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1,
                                         refine_landmarks=True, min_detection_confidence=0.5) as fm:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            res = fm.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            found.append(bool(res.multi_face_landmarks))
    cap.release()
    return (float(np.mean(found)) if found else 0.0), found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=90)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--strands", type=int, default=7000)
    ap.add_argument("--points", type=int, default=48)
    ap.add_argument("--yaw", type=float, default=50.0, help="head turns from -yaw to +yaw degrees")
    ap.add_argument("--ssaa", type=int, default=2)
    ap.add_argument("--frame-step", type=int, default=6, help="write every n-th frame to frames/")
    ap.add_argument("--head", default=str(ICT_SHARED))
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for old in ("frames", "jitter.json"):  # old frames (and the interim sample's files)
        p = out / old
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()

    t0 = time.perf_counter()
    head_seed = 1
    head = HeadModel.load(args.head, seed=head_seed)
    strands, uv, gen = make_groom(args.strands, args.points)
    settings = RenderSettings(hair_width_m=0.0007, ssaa=args.ssaa, seed=5)
    cams, poses = turning_head_rig(args.frames, args.size, args.size,
                                   yaw_range_deg=(-args.yaw, args.yaw), fps=args.fps)
    tmp = out / ".capture.tmp.mp4"
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), args.fps,
                             (args.size, args.size))
    if not writer.isOpened():
        raise SystemExit("cannot open an mp4v video writer")
    hair_cover = []
    frames_dir = out / "frames"
    frames_dir.mkdir()
    for k, cam in enumerate(cams):
        r = render(cam, head, strands, settings=settings)
        bgr = cv2.cvtColor(r.rgb, cv2.COLOR_RGB2BGR)
        writer.write(bgr)
        if k % args.frame_step == 0:
            cv2.imwrite(str(frames_dir / f"frame_{k:03d}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])
        hair_cover.append(float(r.hair_mask.mean()))
        print(f"\rframe {k + 1}/{len(cams)}", end="", flush=True)
    writer.release()
    tmp.replace(out / "capture.mp4")
    render_s = time.perf_counter() - t0
    print(f"\nrendered {len(cams)} frames in {render_s:.1f} s")

    widths = np.full(len(strands), settings.hair_width_m, np.float32)
    export_groom(Groom(strands, widths=widths, root_uv=uv), out / "groom.npz", units="m")
    save_cameras(out / "cameras.json", cams, fps=args.fps, poses=poses,
                 extra={"video": "capture.mp4", "head_model": "ICT Face Model Light (neutral)"})
    jpg_idx = list(range(0, len(cams), args.frame_step))
    save_transforms_json(out / "transforms.json", [cams[k] for k in jpg_idx],
                         [f"frames/frame_{k:03d}.jpg" for k in jpg_idx])
    licence = "LICENSE-ICT-FaceKit.txt"
    shutil.copy2(Path(args.head).with_name(licence), out / licence)

    rate, found = face_detection_rate(out / "capture.mp4")
    print(f"mediapipe face mesh found a face in {100 * rate:.1f}% of {len(found)} frames")
    meta = {
        "schema_version": 1, "frames": len(cams), "fps": args.fps, "width": args.size,
        "height": args.size, "yaw_range_deg": [-args.yaw, args.yaw], "strands": int(len(strands)),
        "points_per_strand": int(strands.shape[1]), "groom": gen, "head_seed": head_seed,
        "render_settings": {k: (list(v) if isinstance(v, tuple) else v)
                            for k, v in settings.__dict__.items()},
        "mean_hair_coverage": float(np.mean(hair_cover)),
        "mediapipe_face_rate": rate, "mediapipe_found": found,
        "make_sample_args": vars(args) | {"head": Path(args.head).name, "out": "resources/sample"},
    }
    (out / "sample.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    (out / "README.md").write_text(README.format(
        frames=len(cams), fps=args.fps, size=args.size, yaw=args.yaw, step=args.frame_step,
        n_jpg=len(list(frames_dir.glob("*.jpg"))), strands=len(strands), points=strands.shape[1],
        gen=gen["generator"], curl=gen.get("style", {}).get("curl", "n/a"),
        rate=100 * rate, width_mm=1000 * settings.hair_width_m, ssaa=args.ssaa), encoding="utf-8")
    sizes = {p.relative_to(out).as_posix(): p.stat().st_size for p in sorted(out.rglob("*"))
             if p.is_file()}
    print(json.dumps({"bytes": sizes, "total_mb": round(sum(sizes.values()) / 2**20, 2)}, indent=2))


if __name__ == "__main__":
    main()
