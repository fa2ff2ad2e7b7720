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


def test_faceless_view_tells_a_shaded_shirt_from_hair_by_texture():
    """A back view whose shirt has the hair's colour but none of its strand texture: colour
    alone makes the shirt hair; with the texture threshold it is sure background, and the hair
    stays hair."""
    from engine.preprocess.masks import texture_energy

    rng = np.random.default_rng(2)
    h, w = 96, 64
    person = np.zeros((h, w), np.float32)
    person[10:, 12:52] = 1.0
    hair = np.zeros((h, w), bool)
    hair[10:50, 12:52] = True
    shirt = (person > 0) & ~hair
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:] = GREY
    stripes = np.broadcast_to((np.arange(w) % 2).astype(np.float64) * 30.0, (h, w))
    rgb[hair] = np.clip(np.array(BROWN, np.float64) + stripes[hair][:, None] - 15, 0, 255)
    rgb[shirt] = BROWN  # smooth, the colour of the hair
    rgb = np.clip(rgb + rng.normal(0, 1, rgb.shape), 0, 255).astype(np.uint8)
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    hm, om = HistogramColourModel(), HistogramColourModel()
    hm.add(lab, hair)
    om.add(lab, person == 0)
    texture = texture_energy(rgb)
    plain = faceless_seeds(lab, person, hm, om)
    assert np.isin(plain[shirt], [cv2.GC_FGD, cv2.GC_PR_FGD]).mean() > 0.5  # colour is fooled
    threshold = 0.4 * float(np.percentile(texture[hair], 10))
    labels = faceless_seeds(lab, person, hm, om, texture, threshold)
    lower_shirt = shirt & (np.arange(h)[:, None] > 60) & (np.abs(np.arange(w) - 32) < 14)
    # (away from the person's outline, whose edge against the background is texture too)
    assert (labels[lower_shirt] == cv2.GC_BGD).mean() > 0.95
    assert np.isin(labels[hair], [cv2.GC_FGD, cv2.GC_PR_FGD]).mean() > 0.9


def test_temporal_blend_skips_neighbours_that_turned_or_whose_landmarks_disagree():
    """Neighbours are blended only within ``max_pose_deg`` of yaw and pitch and when the face
    similarity between them scales by at most 10 %."""
    from engine.preprocess.landmarks import FACE_OVAL
    from engine.preprocess.masks import temporal_blend

    rng = np.random.default_rng(3)
    pts = np.zeros((478, 3), np.float32)
    pts[:, :2] = rng.uniform(30, 70, (478, 2))
    ring = np.linspace(0, 2 * np.pi, len(FACE_OVAL), endpoint=False)
    pts[FACE_OVAL, 0] = 50 + 15 * np.cos(ring)
    pts[FACE_OVAL, 1] = 50 + 20 * np.sin(ring)
    masks = [np.zeros((100, 100), np.float32), np.ones((100, 100), np.float32)]
    same = [pts, pts.copy()]
    poses = np.array([[0.0, 0.0, 0.0], [4.0, 2.0, 0.0]])
    blended = temporal_blend(masks, same, 0.25, poses, 10.0)
    assert 0.2 < blended[0][50, 50] < 0.3  # close pose: a quarter of the neighbour
    turned = np.array([[0.0, 0.0, 0.0], [15.0, 0.0, 0.0]])
    assert temporal_blend(masks, same, 0.25, turned, 10.0)[0][50, 50] == 0.0
    assert temporal_blend(masks, same, 0.25, np.array([[0, 0, 0], [np.nan] * 3]),
                          10.0)[0][50, 50] == 0.0  # no pose: no blending
    grown = pts.copy()
    grown[:, :2] = 50 + 1.3 * (grown[:, :2] - 50)  # the same pose, a 30 % larger face
    assert temporal_blend(masks, [pts, grown], 0.25, poses, 10.0)[0][50, 50] == 0.0


def test_face_oval_covers_nose_and_lips_in_a_three_quarter_view():
    """A three-quarter view folds the face-oval landmarks' outline over itself; the oval is the
    landmarks' convex hull, so the lips and nose inside it are never hair seeds."""
    from engine.preprocess.landmarks import FACE_OVAL
    from engine.preprocess.masks import face_geometry

    pts = np.zeros((478, 3), np.float32)
    n = len(FACE_OVAL)
    ring = np.linspace(0, 2 * np.pi, n, endpoint=False)
    # a crescent: the far half of the outline folded inside the near half
    x = np.where(np.cos(ring) > 0, 60 + 25 * np.cos(ring), 60 + 10 * np.cos(ring))
    pts[FACE_OVAL, 0] = np.where(np.cos(ring) > 0, x, 60 + 15 * np.cos(ring) * -1)
    pts[FACE_OVAL, 1] = 60 + 30 * np.sin(ring)
    others = np.setdiff1d(np.arange(478), FACE_OVAL)
    pts[others, 0] = 50.0  # nose, lips: left of the folded outline
    pts[others, 1] = np.linspace(40, 80, len(others))
    pts[[61, 291, 0, 17], :2] = [[45, 75], [52, 75], [48, 72], [48, 78]]
    pts[152, 1] = 90.0
    geo = face_geometry(pts, (120, 120))
    for p in ([45, 75], [52, 75], [50, 60]):
        assert geo.oval[p[1], p[0]]
