"""The no-ground-truth checks on hand-made cases: a bald back, strands drawn against a mask."""

from __future__ import annotations

import numpy as np

from engine.checks import bald_scalp_check, silhouette_check
from engine.head.model import load_head_model
from engine.io.export import load_groom
from engine.resources import resource


def _head_and_groom():
    m = load_head_model()
    keep = ~(m.region == 2)[m.faces].any(1)
    remap = np.cumsum(keep) - 1
    scalp = remap[m.scalp_faces[keep[m.scalp_faces]]]
    g = load_groom(resource("sample", "groom.npz"))
    return m.vertices, m.faces[keep], scalp, np.asarray(g.strands)[::3]


def test_bald_back_is_seen_from_behind():
    v, f, scalp, strands = _head_and_groom()
    bare = bald_scalp_check(np.zeros((1, 2, 3)) + 10.0, v, f, scalp, size=96)
    assert bare["views"]["180"] == 100.0  # no hair in view: all the visible scalp is bare
    front_only = strands[strands[:, 0, 2] > 0.02]  # roots in front of z = 2 cm: a bald back
    full = bald_scalp_check(strands, v, f, scalp, size=96)
    half = bald_scalp_check(front_only, v, f, scalp, size=96)
    assert half["views"]["180"] > full["views"]["180"] + 30.0


def test_silhouette_of_strands_against_their_own_drawing():
    from engine.cameras.camera import Camera
    from engine.preview.turntable import turntable_camera

    v, f, _, strands = _head_and_groom()
    K, R, t = turntable_camera(np.array([0.0, 0.0, 0.0]), 0.25, 30.0, 96)
    cam = Camera(fx=K[0, 0], fy=K[1, 1], cx=K[0, 2], cy=K[1, 2], width=96, height=96, R=R, t=t)
    renders: dict = {}
    empty = np.zeros((96, 96), np.float32)
    silhouette_check(strands, {"a": cam}, {"a": empty}, (v, f), renders)
    drawn = renders["a"].hair.astype(np.float32)
    assert drawn.sum() > 100
    same = silhouette_check(strands, {"a": cam}, {"a": drawn}, (v, f))["mean"]
    assert same["iou"] == 100.0
    wrong = silhouette_check(strands, {"a": cam}, {"a": 1.0 - drawn}, (v, f))["mean"]
    assert wrong["iou"] == 0.0
