"""Render a synthetic capture folder from the command line (see :mod:`engine.synthetic.capture`).

Examples::

    python -m engine.synthetic --out /tmp/cap --rig orbit --views 24 --shell       # coarse check
    python -m engine.synthetic --out /tmp/cap --rig turning --views 60 --groom curly --video
    python -m engine.synthetic --out /tmp/cap --groom path/to/groom.npz --size 256

``--groom`` is a curl class of :mod:`engine.prior.synth` (straight, wavy, curly, coily: medium
length, swept back, seed ``--seed``), ``none``, or a groom file (any format ``load_groom``
reads). The head is the ICT Face Model Light from ``--head`` (default
``../shared/data/heads/ict_face_model_light.npz``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from engine.errors import StrandcapError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engine.synthetic",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="capture folder to write")
    ap.add_argument("--rig", choices=("orbit", "turning"), default="turning")
    ap.add_argument("--views", type=int, default=30)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--fov", type=float, default=30.0, help="horizontal field of view, degrees")
    ap.add_argument("--yaw", type=float, default=None,
                    help="yaw range +-degrees (default 60 turning, 150 orbit)")
    ap.add_argument("--distance", type=float, default=None, help="camera distance, metres")
    ap.add_argument("--groom", default=None,
                    help="curl class, 'none' or a groom file (default: wavy; none with --shell)")
    ap.add_argument("--strands", type=int, default=10000)
    ap.add_argument("--points", type=int, default=100)
    ap.add_argument("--width-mm", type=float, default=0.5, help="strand ribbon width, mm")
    ap.add_argument("--shell", action="store_true", help="add a hair shell")
    ap.add_argument("--ssaa", type=int, default=1)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--video", action="store_true", help="also write capture.mp4")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--head", default=None)
    args = ap.parse_args(argv)

    import numpy as np

    from engine.synthetic import (HeadModel, RenderSettings, make_hair_shell, orbit_rig,
                                  render_capture, turning_head_rig)

    try:
        head = HeadModel.load(args.head)
        groom = args.groom or ("none" if args.shell else "wavy")
        strands = None
        if groom != "none":
            from engine.prior.synth import CURL_CLASSES

            if groom in CURL_CLASSES:
                from engine.prior.synth import sample_style, synth_groom

                style = sample_style(args.seed, curl=groom, length="medium", parting="none",
                                     fringe=False)
                strands = synth_groom(style, args.strands, args.points).strands
            else:
                from engine.io.export import load_groom

                strands = load_groom(groom).strands
        shell = make_hair_shell(head) if args.shell else None
        poses = None
        if args.rig == "orbit":
            yaw = 150.0 if args.yaw is None else args.yaw
            cams = orbit_rig(args.views, args.size, args.size, args.fov,
                             radius_m=args.distance or 0.8, yaw_range_deg=(-yaw, yaw))
            background = "environment"
        else:
            yaw = 60.0 if args.yaw is None else args.yaw
            cams, poses = turning_head_rig(args.views, args.size, args.size, args.fov,
                                           distance_m=args.distance or 0.85,
                                           yaw_range_deg=(-yaw, yaw), fps=args.fps)
            background = "studio"
        settings = RenderSettings(hair_width_m=args.width_mm / 1000.0, ssaa=args.ssaa,
                                  background=background, seed=args.seed)
        t0 = time.perf_counter()
        out = render_capture(args.out, cams, head, strands, shell, settings, poses=poses,
                             fps=args.fps if args.rig == "turning" else None, video=args.video,
                             progress=lambda k, n: print(f"\rframe {k}/{n}", end="", flush=True))
    except StrandcapError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    n = 0 if strands is None else len(np.asarray(strands))
    print(f"\nwrote {len(cams)} frames ({n} strands{', hair shell' if args.shell else ''}) to "
          f"{Path(out)} in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
