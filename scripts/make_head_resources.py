"""Build resources/head/ from the ICT Face Model Light (../shared/data/heads/).

Writes ``resources/head/head_model.npz`` (compressed) and copies the MIT licence beside it:

* ``vertices`` (V, 3) float32 neutral shape in metres (head frame = ICT frame, cm -> m);
* ``faces`` (F, 3) int32 triangles (quads split along the 0-2 diagonal, plus ICT's triangles);
* ``quads`` (Q, 4) int32, ``region`` (V,) int8, ``landmarks68`` (68,) int32;
* ``identity_deltas`` (N_ID, V, 3) float16 metres: the first N_ID = 40 of 100 PCA identity
  modes (the leading modes carry almost all shape variance; mode 40 moves vertices < 1 mm), float16
  keeps the error below 2e-5 m while halving the size;
* ``expression_deltas`` (53, V, 3) float16 metres, ``expression_names`` (53,);
* ``mp_index`` (M,) int32 mediapipe face-mesh landmark ids and ``mp_vertex`` (M,) int32 model
  vertices: the correspondence found by rendering the neutral head with a procedural face
  texture from several views, running mediapipe face mesh on the renders and back-projecting
  each landmark to the visible surface; landmarks whose back-projection moves by more than
  ``MAX_SPREAD`` between views (face contour points that slide) are dropped; ``mp_spread`` (M,)
  float32 metres is the measured spread of the kept ones;
* ``scalp_faces`` (S,) int32 indices into ``faces`` of the scalp region (see engine/head/scalp.py).

Run: ``python scripts/make_head_resources.py [--source PATH]``.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
N_ID = 40
MAX_SPREAD = 0.004  # metres
# mediapipe face-oval (silhouette) landmarks: they slide along the cheek contour, never used
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400,
             377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67,
             109]


def triangulate(quads: np.ndarray, tris: np.ndarray) -> np.ndarray:
    return np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]], tris]).astype(np.int32)


def mediapipe_correspondence(verts_m, faces, region, lm68):
    import mediapipe as mp

    from engine.cameras.camera import Camera
    from engine.synthetic.head_capture import head_albedo, render_mesh
    from engine.synthetic.camera import look_at

    col = head_albedo(verts_m * 100, region, lm68)
    H = W = 640
    fm = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True,
                                         max_num_faces=1)
    hits = []
    for yaw in (-25, -12, 0, 12, 25):
        for pitch in (-10, 0, 10):
            a, b = np.radians(yaw), np.radians(pitch)
            c = 0.7 * np.array([np.sin(a) * np.cos(b), np.sin(b), np.cos(a) * np.cos(b)])
            R, t = look_at(c + [0, 0.02, 0.03], (0, 0.02, 0.03))
            cam = Camera(fx=900.0, fy=900.0, cx=319.5, cy=319.5, width=W, height=H, R=R, t=t)
            img, tri, bary = render_mesh(verts_m, faces, col, cam)
            res = fm.process(img)
            if not res.multi_face_landmarks:
                continue
            pts = np.array([(p.x * W, p.y * H) for p in res.multi_face_landmarks[0].landmark])
            xyz = np.full((478, 3), np.nan)
            for i, (x, y) in enumerate(pts):
                xi, yi = int(round(x - 0.5)), int(round(y - 0.5))
                if 0 <= xi < W and 0 <= yi < H and tri[yi, xi] >= 0:
                    f = faces[tri[yi, xi]]
                    xyz[i] = (verts_m[f] * bary[yi, xi][:, None]).sum(0)
            hits.append(xyz)
    fm.close()
    hits = np.stack(hits)  # (views, 478, 3)
    print(f"mediapipe found the rendered face in {len(hits)} of 15 views")
    med = np.nanmedian(hits, axis=0)
    spread = np.nanmedian(np.linalg.norm(hits - med[None], axis=2), axis=0)
    nvalid = np.sum(~np.isnan(hits[..., 0]), axis=0)
    keep = (nvalid >= len(hits) // 2) & (spread < MAX_SPREAD)
    keep[FACE_OVAL] = False
    keep[468:] = False  # irises follow the gaze, not the head
    idx = np.nonzero(keep)[0]
    cand = np.nonzero(region != 2)[0]
    d = np.linalg.norm(verts_m[cand][None] - med[idx][:, None], axis=2)
    vert = cand[np.argmin(d, axis=1)]
    print(f"kept {len(idx)} of 468 landmarks; median spread {np.median(spread[idx]) * 1000:.2f} mm,"
          f" max {spread[idx].max() * 1000:.2f} mm; nearest-vertex distance median "
          f"{np.median(d.min(1)) * 1000:.2f} mm")
    return idx.astype(np.int32), vert.astype(np.int32), spread[idx].astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path,
                    default=ROOT.parent / "shared" / "data" / "heads" / "ict_face_model_light.npz")
    ap.add_argument("--out", type=Path, default=ROOT / "resources" / "head")
    args = ap.parse_args()
    d = np.load(args.source)
    verts = d["vertices"].astype(np.float64) / 100.0
    faces = triangulate(d["quads"], d["tris"])
    region = d["region"].astype(np.int8)
    lm68 = d["landmarks68"].astype(np.int32)
    mp_index, mp_vertex, mp_spread = mediapipe_correspondence(verts, faces, region, lm68)

    from engine.head.scalp import select_scalp_faces

    scalp = select_scalp_faces(verts, faces, region)
    print(f"scalp: {len(scalp)} triangles")
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out / "head_model.npz",
        vertices=verts.astype(np.float32), faces=faces, quads=d["quads"].astype(np.int32),
        region=region, landmarks68=lm68,
        identity_deltas=(d["identity_deltas"][:N_ID] / 100.0).astype(np.float16),
        expression_deltas=(d["expression_deltas"] / 100.0).astype(np.float16),
        expression_names=d["expression_names"], mp_index=mp_index, mp_vertex=mp_vertex,
        mp_spread=mp_spread, scalp_faces=scalp.astype(np.int32))
    lic = args.source.parent / "LICENSE-ICT-FaceKit.txt"
    if lic.is_file():
        shutil.copyfile(lic, args.out / "LICENSE-ICT-FaceKit.txt")
    print(f"wrote {args.out / 'head_model.npz'} "
          f"({(args.out / 'head_model.npz').stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
