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


def _face_view():
    """A front view, 120 x 96, in Lab: background, brown hair around and above the face, a
    skin-coloured face oval, a neck painted in the hair's colour (shaded skin that passes for
    dark hair) and a blue shirt. Returns (lab, person, face, regions)."""
    from engine.preprocess.masks import FaceGeometry

    h, w = 120, 96
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:] = GREY
    rows, cols = np.mgrid[:h, :w]
    person = ((cols > 14) & (cols < 82) & (rows > 6)).astype(np.float32)
    oval = ((cols - 48) / 18.0) ** 2 + ((rows - 50) / 26.0) ** 2 < 1.0
    hair = (person > 0) & ~oval & (rows < 80)
    neck = (person > 0) & (rows >= 76) & (rows < 95) & (np.abs(cols - 48) < 10)
    shirt = (person > 0) & (rows >= 95)
    rgb[hair] = BROWN
    rgb[oval] = (200, 150, 120)
    rgb[neck] = BROWN
    rgb[shirt] = BLUE
    rng = np.random.default_rng(1)
    rgb = np.clip(rgb + rng.normal(0, 3, rgb.shape), 0, 255).astype(np.uint8)
    face = FaceGeometry(oval=oval, skin_sample=oval, brow_y=40.0, chin_y=76.0, face_height=52.0,
                        centre_x=48.0)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB), person, face, {
        "hair": hair, "neck": neck, "shirt": shirt}


def test_refine_with_colour_adds_hair_but_not_the_neck_skin_or_clothes():
    """Second-pass seeds (refine_with_colour): probable background the shared hair model
    explains becomes probable hair above the brows and beside the face, but not on the neck
    below the jaw (neck_zone) nor on skin-like pixels; the shirt becomes sure background."""
    from engine.preprocess.masks import neck_zone, refine_with_colour

    lab, person, face, reg = _face_view()
    h, o = HistogramColourModel(), HistogramColourModel()
    h.add(lab, reg["hair"] & (np.arange(120)[:, None] < 20))  # the first pass's sure hair
    o.add(lab, (person == 0) | reg["shirt"] | face.oval)
    labels = np.full(person.shape, cv2.GC_PR_BGD, np.uint8)
    labels[person == 0] = cv2.GC_BGD
    labels[face.oval] = cv2.GC_BGD
    out = refine_with_colour(labels, lab, person, face, h, o)
    assert neck_zone(face, person.shape)[reg["neck"]].mean() > 0.9
    hair_rows = reg["hair"] & ~cv2.dilate(face.oval.astype(np.uint8), np.ones((5, 5), np.uint8),
                                         iterations=1).astype(bool)
    assert (out[hair_rows] == cv2.GC_PR_FGD).mean() > 0.9
    assert (out[reg["neck"]] == cv2.GC_PR_BGD).mean() > 0.8  # same colour as hair, not hair
    assert (out[reg["shirt"]] == cv2.GC_BGD).all()
    assert (out[face.oval] == cv2.GC_BGD).all()  # sure labels never change
    # skin-like pixels are never made hair, whatever their colour
    skin_like = np.zeros_like(reg["hair"])
    skin_like[:, :30] = True
    vetoed = refine_with_colour(labels, lab, person, face, h, o, skin_like)
    assert not np.isin(vetoed[skin_like & reg["hair"]], [cv2.GC_PR_FGD, cv2.GC_FGD]).any()
    assert (vetoed[hair_rows & ~skin_like] == cv2.GC_PR_FGD).mean() > 0.9
