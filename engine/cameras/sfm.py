"""Structure from motion on keyframes with pycolmap (COLMAP: Schoenberger and Frahm, CVPR 2016),
background-motion analysis for choosing the capture situation, and alignment to the head frame.

Capture situations (issue 3):

1. ``orbit``  - the camera walks around a still head: SfM on the whole keyframes;
2. ``turn``   - the subject turns before a still camera: SfM on the head region only (features
   masked to the person), the result aligned to the landmark head poses;
3. ``landmarks`` - near-frontal talking head: poses of the head-model fit only.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np

from engine.cameras.camera import Camera, import_colmap
from engine.errors import InputError
from engine.io.media import write_image


def run_sfm(images: dict[str, np.ndarray], work_dir: Path, masks: dict[str, np.ndarray] | None = None,
            focal: float | None = None, matching: str = "sequential", overlap: int = 8,
            max_features: int = 4096, num_threads: int = 1, camera_model: str = "SIMPLE_PINHOLE",
            refine_focal: bool = True, cancel=None) -> tuple[dict[str, Camera], dict]:
    """Incremental SfM (SIFT features, sequential or exhaustive matching, incremental mapping).

    Args:
        images: {name: (H, W, 3) uint8 RGB}, all the same size (one shared camera).
        work_dir: scratch folder (images, database and model are written there).
        masks: optional {name: (H, W) bool/float} where features may be detected (True/>0.5).
        focal: prior focal length in pixels (used as the initial value), or None (1.2 * max side).
        matching: "sequential" (video order, ``overlap`` neighbours) or "exhaustive".
        camera_model: COLMAP model of the shared camera (SIMPLE_PINHOLE or SIMPLE_RADIAL).
        refine_focal: let bundle adjustment refine the focal length.
    Returns:
        ({name: Camera} of the largest reconstruction, arbitrary similarity frame), and info dict
        with ``registered``, ``total``, ``points``, ``reprojection_px``.
    Raises:
        InputError: fewer than 3 images, or SfM found no model.
    """
    import pycolmap

    if len(images) < 3:
        raise InputError(f"structure from motion needs at least 3 keyframes, got {len(images)}")
    work_dir = Path(work_dir)
    if work_dir.exists():
        shutil.rmtree(work_dir)
    img_dir = work_dir / "images"
    img_dir.mkdir(parents=True)
    names = sorted(images)
    H, W = images[names[0]].shape[:2]
    for n in names:
        write_image(img_dir / f"{n}.png", np.ascontiguousarray(images[n][:, :, ::-1]))
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = camera_model
    f0 = float(focal) if focal else 1.2 * max(H, W)
    reader.camera_params = (f"{f0},{(W) / 2.0},{(H) / 2.0}" if camera_model == "SIMPLE_PINHOLE"
                            else f"{f0},{W / 2.0},{H / 2.0},0")
    if masks:
        mdir = work_dir / "masks"
        mdir.mkdir()
        for n in names:
            m = masks.get(n)
            m = np.ones((H, W), np.uint8) * 255 if m is None else \
                (np.asarray(m, np.float32) > 0.5).astype(np.uint8) * 255
            write_image(mdir / f"{n}.png.png", m)
        reader.mask_path = str(mdir)
    ext = pycolmap.FeatureExtractionOptions()
    ext.num_threads = num_threads
    ext.use_gpu = False
    ext.sift.max_num_features = max_features
    db = work_dir / "database.db"
    pycolmap.extract_features(db, img_dir, camera_mode=pycolmap.CameraMode.SINGLE,
                              reader_options=reader, extraction_options=ext,
                              device=pycolmap.Device.cpu)
    # with more than one thread COLMAP's result depends on thread timing (two runs on the
    # sample differed by 2 mm in camera position); the default of one keeps a seed the only
    # thing that changes a groom, at a cost of seconds on 12-30 keyframes
    mopt = pycolmap.FeatureMatchingOptions()
    mopt.num_threads = num_threads
    mopt.use_gpu = False
    if matching == "exhaustive":
        pycolmap.match_exhaustive(db, matching_options=mopt, device=pycolmap.Device.cpu)
    else:
        pair = pycolmap.SequentialPairingOptions()
        pair.overlap = overlap
        pair.quadratic_overlap = True
        pycolmap.match_sequential(db, matching_options=mopt, pairing_options=pair,
                                  device=pycolmap.Device.cpu)
    opts = pycolmap.IncrementalPipelineOptions()
    opts.num_threads = num_threads
    opts.ba_refine_focal_length = refine_focal
    opts.ba_refine_principal_point = False
    opts.min_model_size = 3
    opts.multiple_models = False
    opts.random_seed = 0
    out_dir = work_dir / "sparse"
    out_dir.mkdir()
    recs = pycolmap.incremental_mapping(db, img_dir, out_dir, options=opts)
    if not recs:
        raise InputError("structure from motion found no model in the keyframes (too little "
                         "texture or overlap); capture more slowly with more overlap, or use "
                         "landmark poses (cameras mode 'landmarks')")
    rec = max(recs.values(), key=lambda r: r.num_reg_images())
    rec.write(str(out_dir))
    cams = import_colmap(out_dir)
    info = {"registered": len(cams), "total": len(names), "points": int(rec.num_points3D()),
            "reprojection_px": float(rec.compute_mean_reprojection_error())}
    return cams, info


def background_motion(images: dict[str, np.ndarray], person_masks: dict[str, np.ndarray]) -> float:
    """Median displacement of background features between consecutive keyframes.

    ORB features (OpenCV) detected outside the dilated person mask are matched between
    consecutive keyframes (Hamming distance, cross-checked); the median match displacement is
    taken per pair and the median over pairs returned. A still camera gives ~0 (the background
    is identical), an orbiting camera moves it by many pixels.

    Args:
        images: {name: (H, W, 3) uint8 RGB}. person_masks: {name: (H, W) float} 1 on the person.
    Returns:
        displacement per keyframe step as a fraction of the image width (float); NaN when the
        background has too few features (a blank wall) to tell.
    """
    names = sorted(images)
    orb = cv2.ORB_create(nfeatures=1500, fastThreshold=5)
    bf = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
    feats = {}
    for n in names:
        g = cv2.cvtColor(images[n], cv2.COLOR_RGB2GRAY)
        m = person_masks.get(n)
        bg = np.full(g.shape, 255, np.uint8)
        if m is not None:
            bg[cv2.dilate((m > 0.3).astype(np.uint8), np.ones((25, 25), np.uint8)) > 0] = 0
        feats[n] = orb.detectAndCompute(g, bg)
    vals = []
    for a, b in zip(names[:-1], names[1:]):
        (ka, da), (kb, db) = feats[a], feats[b]
        if da is None or db is None or len(ka) < 10 or len(kb) < 10:
            continue
        ms = bf.match(da, db)
        if len(ms) < 8:
            continue
        d = [np.hypot(*(np.subtract(kb[m.trainIdx].pt, ka[m.queryIdx].pt))) for m in ms]
        vals.append(float(np.median(d)))
    if not vals:
        return float("nan")
    return float(np.median(vals)) / images[names[0]].shape[1]


def landmark_hull_masks(landmarks: dict[str, np.ndarray], shape: tuple[int, int],
                        grow: float = 0.6) -> dict[str, np.ndarray]:
    """Head-region masks from face landmarks: the landmark hull grown by ``grow`` times its size
    (covers hair and ears). Returns {name: (H, W) float32 in {0, 1}}."""
    out = {}
    H, W = shape
    for n, p in landmarks.items():
        p = np.asarray(p)[:, :2]
        p = p[np.all(np.isfinite(p), axis=1)]
        if len(p) < 3:
            continue
        c = p.mean(0)
        q = c + (1 + grow) * (p - c)
        hull = cv2.convexHull(q.astype(np.float32)).astype(np.int32)
        m = np.zeros((H, W), np.uint8)
        cv2.fillConvexPoly(m, hull, 1)
        out[n] = m.astype(np.float32)
    return out
