"""Hair masks of keyframes without a face (engine/preprocess/masks.py: faceless_seeds)."""

import cv2
import numpy as np

from engine.preprocess.masks import HistogramColourModel, clean_mask, faceless_seeds, grabcut_hair

BROWN, BLUE, GREY = (70, 45, 30), (40, 60, 160), (128, 128, 128)


def _back_view():
    """A back view, 96 x 64: grey background, a person whose upper part is brown hair and lower
    part a blue shirt. Returns (rgb, lab, person, hair truth)."""
    rng = np.random.default_rng(0)
    rgb = np.zeros((96, 64, 3), np.uint8)
    rgb[:] = GREY
    person = np.zeros((96, 64), np.float32)
    person[10:, 12:52] = 1.0
    hair = np.zeros((96, 64), bool)
    hair[10:50, 12:52] = True
    rgb[hair] = BROWN
    rgb[(person > 0) & ~hair] = BLUE
    rgb = np.clip(rgb + rng.normal(0, 4, rgb.shape), 0, 255).astype(np.uint8)
    return rgb, cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB), person, hair


def _models(lab, hair, person):
    h, o = HistogramColourModel(), HistogramColourModel()
    h.add(lab, hair)
    o.add(lab, ~hair)  # shirt and background, as the face views' clothing model holds them
    return h, o


def test_faceless_view_gets_hair_from_the_colour_models():
    rgb, lab, person, truth = _back_view()
    labels = faceless_seeds(lab, person, *_models(lab, truth, person))
    assert labels is not None
    assert (labels[truth] == cv2.GC_FGD).mean() > 0.9  # the head's upper half: sure hair
    assert (labels[person == 0] == cv2.GC_BGD).all()
    assert not np.isin(labels[(person > 0) & ~truth], [cv2.GC_FGD, cv2.GC_PR_FGD]).any()
    hair = clean_mask(grabcut_hair(rgb, labels, 2, 64), person, 0.0) > 0.5
    iou = (hair & truth).sum() / (hair | truth).sum()
    assert iou > 0.9


def test_faceless_view_without_colour_models_or_hair_gets_none():
    rgb, lab, person, truth = _back_view()
    assert faceless_seeds(lab, person, HistogramColourModel(), HistogramColourModel()) is None
    bald = np.zeros_like(truth)  # a hair model of a colour absent here
    h, o = HistogramColourModel(), HistogramColourModel()
    h.add(np.full_like(lab, 250), np.ones(truth.shape, bool))
    o.add(lab, ~bald)
    assert faceless_seeds(lab, person, h, o) is None
