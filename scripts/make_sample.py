"""Build the embedded sample capture in resources/sample/ (regenerate with this script).

Interim sample: twelve frames made from the public-domain NASA astronaut portrait
(``../shared/data/portraits/astronaut.png``) with small in-plane camera jitter (rotation,
scale, shift), so the whole pipeline can be tried without any download. It is replaced by a
rendered turning-head capture with a ground-truth groom once the end-to-end issue lands.

Usage: python scripts/make_sample.py [--portrait PATH]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--portrait", default=str(REPO.parent / "shared/data/portraits/astronaut.png"))
    ap.add_argument("--frames", type=int, default=12)
    args = ap.parse_args()
    img = cv2.imread(args.portrait, cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f"{args.portrait}: cannot read the portrait")
    out = REPO / "resources" / "sample" / "frames"
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.jpg"):
        old.unlink()
    rng = np.random.default_rng(7)
    h, w = img.shape[:2]
    params = []
    for i in range(args.frames):
        angle = float(rng.uniform(-4, 4))
        scale = float(rng.uniform(0.97, 1.03))
        dx, dy = (float(v) for v in rng.uniform(-8, 8, 2))
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
        m[:, 2] += (dx, dy)
        frame = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        cv2.imwrite(str(out / f"frame_{i:03d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
        params.append({"frame": i, "angle_deg": angle, "scale": scale, "shift_px": [dx, dy]})
    (out.parent / "jitter.json").write_text(json.dumps(params, indent=2))
    print(f"wrote {args.frames} frames to {out}")


if __name__ == "__main__":
    main()
