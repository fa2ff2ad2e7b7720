"""engine.preview: strands over keyframes land where they project, the turntable turns, files
read back."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine.cameras.camera import Camera
from engine.errors import InputError, StrandcapError
from engine.io.groom import Groom
from engine.preview import overlay_frames, render_view, turntable_frames, write_preview

SIZE = 96


def _groom(xs=(-0.04, -0.01, 0.02, 0.05), z=0.0, head=None) -> Groom:
    """Vertical strands hanging down from y = 0.05 m at the given x (metres), L = 8."""
    y = np.linspace(0.05, -0.05, 8)
    strands = np.stack([np.stack([np.full(8, x), y, np.full(8, z)], 1) for x in xs]).astype(
        np.float32)
    kw = {} if head is None else {"head_vertices": head[0], "head_faces": head[1]}
    return Groom(strands, **kw)


def _camera(size: int = SIZE, distance: float = 0.5) -> Camera:
    """Looks at the origin from +Z (OpenCV: x right = +X, y down = -Y)."""
    f = 1.2 * size
    return Camera(fx=f, fy=f, cx=(size - 1) / 2, cy=(size - 1) / 2, width=size, height=size,
                  R=np.diag([1.0, -1.0, -1.0]), t=np.array([0.0, 0.0, distance]))


def _drawn(img: np.ndarray, background: np.ndarray) -> np.ndarray:
    return np.abs(img.astype(int) - background.astype(int)).sum(-1) > 30


def test_overlay_draws_where_the_strands_project_and_nowhere_else():
    groom = _groom()
    cam = _camera()
    frame = np.full((SIZE, SIZE, 3), 128, np.uint8)
    sheet = overlay_frames(groom, {"000": cam}, [frame], ["000"], n=1, columns=1,
                           tile_width=SIZE)
    assert sheet.shape == (SIZE, SIZE, 3) and sheet.dtype == np.uint8
    drawn = _drawn(sheet, frame)
    drawn[:24, :70] = False  # the frame label
    roots = cam.project(groom.strands[:, 0])
    tips = cam.project(groom.strands[:, -1])
    for (rx, ry), (tx, ty) in zip(roots, tips):
        mid = (int(round((rx + tx) / 2)), int(round((ry + ty) / 2)))
        assert drawn[mid[1], mid[0]], f"nothing drawn at the projected strand {mid}"
        assert drawn[int(round(ty)), int(round(tx))]
    # nothing more than 2 px away from a projected strand (columns between strands, rows above)
    near = np.zeros_like(drawn)
    for (rx, ry), (tx, ty) in zip(roots, tips):
        x0, x1 = int(np.floor(min(rx, tx))) - 2, int(np.ceil(max(rx, tx))) + 3
        y0, y1 = int(np.floor(min(ry, ty))) - 2, int(np.ceil(max(ry, ty))) + 3
        near[max(y0, 0):y1, max(x0, 0):x1] = True
    assert drawn.sum() > 40
    assert not (drawn & ~near).any()


def test_overlay_scales_intrinsics_to_a_resized_frame_and_skips_frames_without_camera():
    groom = _groom(xs=(0.03,))
    cam = _camera()
    big = np.full((2 * SIZE, 2 * SIZE, 3), 90, np.uint8)  # the frame is twice the camera's size
    sheet = overlay_frames(groom, {"b": cam}, {"a": big, "b": big}, ["a", "b"], n=4, columns=2,
                           tile_width=SIZE)
    assert sheet.shape == (SIZE, 2 * SIZE, 3)  # one tile used, one blank
    drawn = _drawn(sheet[:, :SIZE], cv2.resize(big, (SIZE, SIZE)))
    drawn[:24] = False
    x = cam.project(groom.strands[0, :1])[0, 0]  # the camera's own image is SIZE wide
    cols = np.nonzero(drawn.any(0))[0]
    assert abs(cols.mean() - x) < 2.0
    assert not sheet[:, SIZE:].any()
    with pytest.raises(InputError):
        overlay_frames(groom, {"zzz": cam}, [big], ["a"])


def test_head_hides_the_strands_behind_it():
    # a big square (two CCW-outward triangles facing +Z) at z = 0.02 in front of strands at z = 0
    v = np.array([[-0.1, -0.1, 0.02], [0.1, -0.1, 0.02], [0.1, 0.1, 0.02], [-0.1, 0.1, 0.02]],
                 np.float32)
    f = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
    cam = _camera()
    frame = np.full((SIZE, SIZE, 3), 128, np.uint8)
    with_head = render_view(_groom(head=(v, f)), cam.K, cam.R, cam.t, SIZE, SIZE, frame,
                            head_alpha=1.0)
    without = render_view(_groom(), cam.K, cam.R, cam.t, SIZE, SIZE, frame)
    x, y = np.round(cam.project(_groom().strands[1, 3:4])[0]).astype(int)
    assert _drawn(without, frame)[y, x]
    # behind the head: the pixel is head grey, the same as a head-only render
    head_only = render_view(_groom(xs=(0.5,), head=(v, f)), cam.K, cam.R, cam.t, SIZE, SIZE,
                            frame, head_alpha=1.0)
    assert np.abs(with_head.astype(int) - head_only.astype(int)).max() == 0
    # strands in front of the head stay visible
    front = render_view(_groom(z=0.04, head=(v, f)), cam.K, cam.R, cam.t, SIZE, SIZE, frame,
                        head_alpha=1.0)
    assert _drawn(front, head_only)[y, x]
    with pytest.raises(InputError):
        render_view(_groom(), cam.K, cam.R, cam.t, SIZE, SIZE, style="cartoon")


def test_turntable_turns_about_y():
    # strands on the +X side only, in front of a symmetric card (z = -0.01, facing +Z) that puts
    # the turntable's centre at x = 0
    v = np.array([[-0.07, -0.06, -0.01], [0.07, -0.06, -0.01], [0.07, 0.06, -0.01],
                  [-0.07, 0.06, -0.01]], np.float32)
    f = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
    groom = _groom(xs=(0.04, 0.05, 0.06), z=0.01, head=(v, f))
    frames = turntable_frames(groom, size=SIZE, angles_deg=[0, 90, 180, 270])
    assert len(frames) == 4 and all(f.shape == (SIZE, SIZE, 3) for f in frames)

    def centroid(img):
        hair = img[..., 0].astype(int) - img[..., 2].astype(int) > 15  # brown/blond, not grey
        assert hair.sum() > 20
        return np.nonzero(hair)[1].mean()

    c = [centroid(f) for f in frames]
    mid = (SIZE - 1) / 2
    assert c[0] > mid + 5  # +X is on the right when seen from the front
    assert c[2] < mid - 5  # and on the left seen from behind
    assert abs((c[0] - mid) + (c[2] - mid)) < 0.25 * (c[0] - mid)  # mirror images (perspective)
    assert abs(c[1] - mid) < abs(c[0] - mid) and abs(c[3] - mid) < abs(c[0] - mid)  # edge-on
    assert len(turntable_frames(groom, n_frames=5, size=32)) == 5
    with pytest.raises(InputError):
        turntable_frames(groom, n_frames=0)


def test_write_preview_files_read_back(tmp_path):
    groom = _groom()
    cam = _camera()
    frame = np.full((SIZE, SIZE, 3), 128, np.uint8)
    paths = write_preview(groom, tmp_path / "p", n_frames=8, size=64, tile_width=48)
    sheet = cv2.imread(str(paths["preview"]))
    assert sheet.shape == (48, 4 * 48, 3)
    cap = cv2.VideoCapture(str(paths["turntable"]))
    assert cap.isOpened()
    count = 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        assert img.shape == (64, 64, 3)
        count += 1
    cap.release()
    assert count == 8
    paths = write_preview(groom, tmp_path / "q", {"000": cam, "001": cam}, [frame, frame],
                          ["000", "001"], n_frames=6, size=64, tile_width=48)
    sheet = cv2.imread(str(paths["preview"]))
    assert sheet.shape == (96, 4 * 48, 3)  # turntable row + one row of overlays
    assert sorted(p.name for p in (tmp_path / "q").iterdir()) == ["preview.png", "turntable.mp4"]


def test_write_preview_into_a_file_is_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StrandcapError) as info:
        write_preview(_groom(), blocker, n_frames=2, size=32)
    assert "\n" not in str(info.value) and str(blocker) in str(info.value)
