"""The embedded sample capture (resources/sample, made by scripts/make_sample.py)."""

from __future__ import annotations

import json

import cv2
import numpy as np

from engine.io.export import load_groom
from engine.resources import resource, sample_dir
from engine.synthetic import load_cameras


def test_sample_files_exist_and_fit_the_size_budget():
    root = sample_dir()
    for name in ("capture.mp4", "groom.npz", "cameras.json", "transforms.json", "sample.json",
                 "README.md", "LICENSE-ICT-FaceKit.txt"):
        assert resource("sample", name).is_file(), name
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert total < 10 * 2**20, f"sample is {total / 2**20:.1f} MB"
    assert "MIT" in (root / "LICENSE-ICT-FaceKit.txt").read_text()


def test_sample_ground_truth_matches_the_video():
    root = sample_dir()
    meta = json.loads((root / "sample.json").read_text())
    groom = load_groom(root / "groom.npz")
    assert groom.strands.shape == (meta["strands"], meta["points_per_strand"], 3)
    # metres in the head frame: strands sit around a head ~20 cm across
    assert 0.05 < np.abs(groom.strands).max() < 0.4
    cams = load_cameras(root / "cameras.json")
    cap = cv2.VideoCapture(str(root / "capture.mp4"))
    n, w, h = (int(cap.get(p)) for p in (cv2.CAP_PROP_FRAME_COUNT, cv2.CAP_PROP_FRAME_WIDTH,
                                          cv2.CAP_PROP_FRAME_HEIGHT))
    ok, first = cap.read()
    cap.release()
    assert ok and n == len(cams) == meta["frames"] and (w, h) == (meta["width"], meta["height"])
    assert cams[0].width == w and cams[0].height == h
    # the strands' roots project inside the frame, in front of the camera
    px, z = cams[0].project_with_depth(groom.strands[:, 0])
    assert (z > 0.5).all() and (px > 0).all() and (px < w - 1).all()
    # the image-folder copy holds frames of the same video
    jpgs = sorted((root / "frames").glob("frame_*.jpg"))
    assert len(jpgs) >= 10 and jpgs[0].name == "frame_000.jpg"
    img = cv2.imread(str(jpgs[0]))
    assert np.abs(img.astype(int) - first.astype(int)).mean() < 6
    assert meta["mediapipe_face_rate"] >= 0.8


def test_mediapipe_finds_the_face_in_the_sample_frames():
    import pytest

    mp = pytest.importorskip("mediapipe")
    root = sample_dir()
    jpgs = sorted((root / "frames").glob("frame_*.jpg"))[::3]
    cams = load_cameras(root / "cameras.json")
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1) as fm:
        found = 0
        for p in jpgs:
            img = cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
            res = fm.process(img)
            if not res.multi_face_landmarks:
                continue
            found += 1
            # the nose tip landmark (index 1) lies near the projected nose tip of the ICT head
            k = int(p.stem.split("_")[1])
            nose = cams[k].project(np.array([[0.0, 0.004, 0.131]]))[0]
            lm = res.multi_face_landmarks[0].landmark[1]
            assert np.hypot(lm.x * img.shape[1] - nose[0], lm.y * img.shape[0] - nose[1]) < 25
    assert found >= len(jpgs) - 1
