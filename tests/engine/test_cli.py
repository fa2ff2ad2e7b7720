"""The strandcap command: bad input gives one error line, a non-zero exit, and loses nothing."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.cli import main, parse_overrides
from engine.errors import ConfigError
from engine.pipeline import Project

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
PORTRAIT = SHARED / "portraits" / "astronaut.png"


def _write_video(path: Path, frames: list[np.ndarray], fps: float = 15.0) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def _noise_frames(n: int, size: int = 160) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(0, 255, (size, size, 3), dtype=np.uint8), (0, 0), 4)
    return [np.roll(base, 3 * i, axis=1) for i in range(n)]


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("strandcap: error: ")
    return err[0]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_missing_file(tmp_path, capsys):
    missing = tmp_path / "nope.mp4"
    assert main(["preprocess", str(missing), "--project", str(tmp_path / "p"), "-q"]) == 2
    line = _error_line(capsys)
    assert "nope.mp4" in line
    assert not (tmp_path / "p").exists()


def test_file_that_is_not_a_video(tmp_path, capsys):
    fake = tmp_path / "holiday.mp4"
    fake.write_text("this is a text file, not a video\n" * 20)
    assert main(["preprocess", str(fake), "--project", str(tmp_path / "p"), "-q"]) == 2
    line = _error_line(capsys)
    assert "holiday.mp4" in line
    assert not (tmp_path / "p").exists()


def test_video_shorter_than_the_minimum(tmp_path, capsys):
    clip = _write_video(tmp_path / "short.mp4", _noise_frames(3))
    assert main(["preprocess", str(clip), "--project", str(tmp_path / "p"), "-q"]) == 2
    assert "short" in _error_line(capsys).lower()
    assert not (tmp_path / "p").exists()


def test_video_with_no_face_leaves_an_existing_project_untouched(tmp_path, capsys):
    # an existing project with a real source and a file of the user's
    good = _write_video(tmp_path / "good.mp4", _noise_frames(40))
    project = Project.open_or_create(tmp_path / "p")
    project.import_source(good)
    (project.root / "notes.txt").write_text("mine")
    before = _snapshot(project.root)
    noface = _write_video(tmp_path / "wall.mp4", _noise_frames(60))
    assert main(["preprocess", str(noface), "--project", str(project.root), "-q"]) == 2
    assert "face" in _error_line(capsys).lower()
    assert _snapshot(project.root) == before


def test_not_a_project_folder_is_refused_and_kept(tmp_path, capsys):
    busy = tmp_path / "docs"
    busy.mkdir()
    (busy / "thesis.tex").write_text("precious")
    clip = _write_video(tmp_path / "c.mp4", _noise_frames(40))
    assert main(["preprocess", str(clip), "--project", str(busy), "-q"]) == 2
    assert "not empty" in _error_line(capsys)
    assert _snapshot(busy) == {"thesis.tex": b"precious"}


def test_status_of_a_missing_project(tmp_path, capsys):
    assert main(["status", "--project", str(tmp_path / "nothing")]) == 2
    assert "not a Strandcap project" in _error_line(capsys)


def test_parse_overrides():
    assert parse_overrides(["keyframes.max_keyframes=12", "masks.mode=fast", "a.b=[1, 2]"]) == {
        "keyframes": {"max_keyframes": 12}, "masks": {"mode": "fast"}, "a": {"b": [1, 2]}}
    with pytest.raises(ConfigError):
        parse_overrides(["max_keyframes=12"])


def test_bad_override_is_one_line(tmp_path, capsys):
    clip = _write_video(tmp_path / "c.mp4", _noise_frames(40))
    code = main(["preprocess", str(clip), "--project", str(tmp_path / "p"), "-q",
                 "--set", "keyframes.no_such_field=1"])
    assert code == 2
    assert "no_such_field" in _error_line(capsys)


def test_export_converts_a_groom_file(tmp_path, capsys):
    from engine.io.export import export_groom, load_groom
    from engine.io.groom import Groom

    rng = np.random.default_rng(1)
    roots = rng.normal(size=(20, 1, 3)).astype(np.float32) * 0.05
    strands = roots + np.linspace(0, 0.1, 8, dtype=np.float32)[None, :, None] * np.array(
        [0.2, -1.0, 0.1], np.float32)
    src = export_groom(Groom(strands=strands), tmp_path / "g.npz", units="m")
    out = tmp_path / "sub" / "g.abc"
    assert main(["export", "--groom", str(src), "-o", str(out)]) == 2  # missing folder
    assert "sub" in _error_line(capsys)
    out = tmp_path / "g.abc"
    assert main(["export", "--groom", str(src), "-o", str(out), "--up", "z"]) == 0
    back = load_groom(out)
    np.testing.assert_allclose(back.strands, strands, atol=1e-6)


def test_export_of_a_project_without_a_groom(tmp_path, capsys):
    project = Project.open_or_create(tmp_path / "p")
    assert main(["export", "--project", str(project.root), "-o", str(tmp_path / "g.abc")]) == 2
    assert "groom" in _error_line(capsys)


def test_a_real_command_line_prints_exactly_one_error_line(tmp_path):
    """As a user sees it: a separate process, mediapipe's native start-up notes included."""
    import subprocess
    import sys

    clip = _write_video(tmp_path / "wall.mp4", _noise_frames(40))
    out = subprocess.run([sys.executable, "-m", "engine.cli", "preprocess", str(clip),
                          "--project", str(tmp_path / "p"), "-q"],
                         capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("strandcap: error: ") and "face" in lines[0], \
        out.stderr
    assert not (tmp_path / "p").exists()


def test_demo_scoring_against_the_sample_truth(tmp_path):
    """The demo's report: perfect cameras and the true groom score perfectly; a shifted groom
    does not."""
    import shutil

    from engine.cameras.camera import load_cameras, save_cameras
    from engine.sample import evaluate_sample
    from engine.io.export import export_groom, load_groom
    from engine.resources import resource

    truth = load_cameras(resource("sample", "cameras.json"))
    picks = [0, 20, 45, 70, 89]
    kf, cams, strands = tmp_path / "kf", tmp_path / "cams", tmp_path / "strands"
    for d in (kf, cams, strands):
        d.mkdir()
    (kf / "keyframes.json").write_text(json.dumps({"frames": [
        {"name": f"{k:03d}", "source_index": i} for k, i in enumerate(picks)]}))
    save_cameras(cams / "cameras.json", {f"{k:03d}": truth[f"{i:03d}"] for k, i in enumerate(picks)})
    shutil.copy(resource("sample", "groom.npz"), strands / "groom.npz")
    lines = evaluate_sample({"keyframes": kf, "cameras": cams, "strands": strands})
    assert "rotation 0.00 deg, centre 0.0 mm" in lines[0] and "scale 1.0" in lines[0]
    assert lines[-1].split()[-1] == "100.00"  # F-score at the last threshold
    g = load_groom(resource("sample", "groom.npz"))
    far = g.strands + np.array([0.0, 0.5, 0.0], np.float32)  # half a metre above the head
    export_groom(g.replace(strands=far), strands / "groom.npz", units="m")
    assert float(evaluate_sample({"strands": strands})[-1].split()[-1]) < 5.0


def test_cameras_import_sets_the_import_mode(tmp_path, monkeypatch, capsys):
    """`strandcap cameras --import` shares reconstruct's camera-import options: a transforms.json
    selects the transforms mode, a folder the COLMAP mode, a missing path fails with one line."""
    import engine.cli as cli_module

    seen = []
    monkeypatch.setattr(cli_module, "cmd_run", lambda args: seen.append(list(args.set)) or 0)
    tj = tmp_path / "transforms.json"
    tj.write_text("{}")
    assert cli_module.main(["cameras", "--project", str(tmp_path), "--import", str(tj)]) == 0
    assert "cameras.mode=transforms" in seen[-1]
    assert f"cameras.import_path={json.dumps(str(tj.resolve()))}" in seen[-1]
    assert cli_module.main(["cameras", "--project", str(tmp_path), "--import", str(tmp_path)]) == 0
    assert "cameras.mode=colmap" in seen[-1]
    assert cli_module.main(["cameras", "--project", str(tmp_path), "--import",
                            str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such COLMAP model folder" in err[0]
