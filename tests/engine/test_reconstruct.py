"""`strandcap reconstruct`: bad input fails early with one line and leaves nothing behind; the
options reach the stage graph; a finished strands stage is exported and previewed. The stage
graph itself is replaced by a fake here (a full run is far too slow for the test suite)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import engine.cli as cli
from engine.cameras.camera import Camera, save_cameras
from engine.cli import main, parse_formats
from engine.errors import ConfigError
from engine.head.model import save_obj
from engine.io.export import export_groom, load_groom
from engine.io.groom import Groom
from engine.pipeline import Project, StageFinished
from engine.preprocess.artifacts import save_frame
from engine.resources import sample_dir

VIDEO = sample_dir() / "capture.mp4"


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("strandcap: error: ")
    return err[0]


class FakeRun:
    """Stands in for cli._run: records the plan; optionally 'finishes' a keyframes, cameras and
    strands stage with tiny artifacts inside the project."""

    def __init__(self, groom: Groom | None = None) -> None:
        self.groom = groom
        self.calls: list = []

    def __call__(self, project: Project, plan, args) -> list[StageFinished]:
        self.calls.append(plan)
        if self.groom is None:
            return []
        size = 64
        kf = project.cache_dir / "keyframes" / "k"
        cams = project.cache_dir / "cameras" / "c"
        strands = project.cache_dir / "strands" / "s"
        for d in (kf, cams, strands):
            d.mkdir(parents=True, exist_ok=True)
        names = ["000", "001"]
        for n in names:
            save_frame(kf, n, np.full((size, size, 3), 100, np.uint8))
        (kf / "keyframes.json").write_text(json.dumps(
            {"width": size, "height": size, "fps": None, "source_kind": "video",
             "frames": [{"name": n, "source_index": i, "time_s": None, "sharpness": 1.0,
                         "yaw_deg": None} for i, n in enumerate(names)]}))
        cam = Camera(fx=80.0, fy=80.0, cx=31.5, cy=31.5, width=size, height=size,
                     R=np.diag([1.0, -1.0, -1.0]), t=np.array([0.0, 0.0, 0.5]))
        save_cameras(cams / "cameras.json", {n: cam for n in names})
        v = np.array([[-0.1, -0.1, -0.02], [0.1, -0.1, -0.02], [0.1, 0.1, -0.02],
                      [-0.1, 0.1, -0.02]])
        save_obj(cams / "head.obj", v, np.array([[0, 1, 2], [0, 2, 3]]))
        export_groom(self.groom, strands / "groom.npz")
        return [StageFinished(name, path.name, path, False, 0.1, {})
                for name, path in (("keyframes", kf), ("cameras", cams), ("strands", strands))]


def _groom() -> Groom:
    y = np.linspace(0.05, -0.05, 6)
    return Groom(np.stack([np.stack([np.full(6, x), y, np.zeros(6)], 1)
                           for x in (-0.03, 0.0, 0.03)]).astype(np.float32))


def test_parse_formats():
    assert parse_formats("abc") == ["abc"]
    assert parse_formats("Alembic, usda,obj,abc") == ["abc", "usd", "obj"]
    for bad in ("fbx", "abc,fbx", " , "):
        with pytest.raises(ConfigError):
            parse_formats(bad)


def test_missing_video_is_one_line_and_leaves_no_project(tmp_path, capsys, monkeypatch):
    fake = FakeRun()
    monkeypatch.setattr(cli, "_run", fake)
    out = tmp_path / "out"
    assert main(["reconstruct", str(tmp_path / "nope.mp4"), "-o", str(out), "-q"]) == 2
    assert "nope.mp4" in _error_line(capsys)
    assert not out.exists() and not fake.calls


def test_unreadable_video_is_one_line_and_leaves_no_project(tmp_path, capsys, monkeypatch):
    fake = FakeRun()
    monkeypatch.setattr(cli, "_run", fake)
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"this is not a video")
    out = tmp_path / "out"
    assert main(["reconstruct", str(bad), "-o", str(out), "-q"]) == 2
    assert "clip.mp4" in _error_line(capsys)
    assert not out.exists() and not fake.calls


def test_unknown_format_fails_before_any_work(tmp_path, capsys, monkeypatch):
    fake = FakeRun(_groom())
    monkeypatch.setattr(cli, "_run", fake)
    out = tmp_path / "out"
    assert main(["reconstruct", str(VIDEO), "-o", str(out), "--format", "abc,fbx", "-q"]) == 2
    assert "fbx" in _error_line(capsys)
    assert not out.exists() and not fake.calls


def test_bad_camera_path_fails_before_any_work(tmp_path, capsys, monkeypatch):
    fake = FakeRun()
    monkeypatch.setattr(cli, "_run", fake)
    out = tmp_path / "out"
    code = main(["reconstruct", str(VIDEO), "-o", str(out), "--cameras",
                 str(tmp_path / "nothing.json"), "-q"])
    assert code == 2 and "nothing.json" in _error_line(capsys)
    assert not out.exists() and not fake.calls


@pytest.mark.parametrize("kind", ["transforms", "colmap"])
def test_cameras_option_sets_the_import_mode_and_path(tmp_path, capsys, monkeypatch, kind):
    fake = FakeRun()  # no groom: the command ends with the one-line 'no groom' error
    monkeypatch.setattr(cli, "_run", fake)
    if kind == "transforms":
        src = tmp_path / "transforms.json"
        src.write_text("{}")
    else:
        src = tmp_path / "sparse" / "0"
        src.mkdir(parents=True)
    out = tmp_path / "out"
    code = main(["reconstruct", str(VIDEO), "-o", str(out), "--cameras", str(src), "--preset",
                 "preview", "--set", "keyframes.max_keyframes=9", "-q"])
    assert code == 2 and "groom" in _error_line(capsys)
    (stages, config), = fake.calls
    assert [s.name for s in stages] == [s.name for s in cli.default_stages()]  # every stage
    assert config["cameras"].mode == kind
    assert Path(config["cameras"].import_path) == src.resolve()
    assert config["keyframes"].max_keyframes == 9
    assert config.preset == "preview"
    assert (out / "project.json").is_file()  # the finished stages are kept for a resume


def test_finished_groom_is_exported_and_previewed(tmp_path, capsys, monkeypatch):
    groom = _groom()
    fake = FakeRun(groom)
    monkeypatch.setattr(cli, "_run", fake)
    out = tmp_path / "out"
    argv = ["reconstruct", str(VIDEO), "-o", str(out), "--format", "abc,obj", "--units", "mm",
            "-q"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    for name in ("groom.abc", "groom.obj", "preview.png", "turntable.mp4"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
        assert name in text
    back = load_groom(out / "groom.abc")
    assert np.allclose(back.strands, groom.strands, atol=1e-5)
    sheet = cv2.imread(str(out / "preview.png"))
    assert sheet.shape[1] == 4 * 320 and sheet.shape[0] > 320  # turntable row + overlays
    cap = cv2.VideoCapture(str(out / "turntable.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 48
    cap.release()
    # a second run opens the same project (resume) and rewrites the outputs
    assert main(argv) == 0
    assert len(fake.calls) == 2


def test_demo_writes_the_preview_when_a_groom_exists(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "_run", FakeRun(_groom()))
    monkeypatch.setattr("engine.sample.evaluate_sample", lambda outputs: ["scored"])
    project = tmp_path / "demo"
    assert main(["demo", "--project", str(project), "-q"]) == 0
    assert (project / "preview.png").is_file() and (project / "turntable.mp4").is_file()
    assert "turntable.mp4" in capsys.readouterr().out


def test_an_error_after_preprocessing_keeps_the_finished_work(tmp_path, monkeypatch, capsys):
    """An error raised once the cameras stage has finished (e.g. unreadable prior weights) is
    not the video's fault: the new project and its finished stages stay for a resume, while an
    error during preprocessing removes the project made for that input."""
    from engine.errors import InputError

    def failing_run(done_stage):
        def run(project, plan, args):
            d = project.cache_dir / done_stage / "k"
            d.mkdir(parents=True)
            (d / "done.json").write_text("{}")
            raise InputError("weights: unreadable")
        return run

    out = tmp_path / "kept"
    monkeypatch.setattr(cli, "_run", failing_run("cameras"))
    assert main(["reconstruct", str(VIDEO), "-o", str(out)]) == 2
    assert "weights: unreadable" in _error_line(capsys)
    assert (out / "cache" / "cameras" / "k" / "done.json").is_file()
    gone = tmp_path / "gone"
    monkeypatch.setattr(cli, "_run", failing_run("keyframes"))
    assert main(["reconstruct", str(VIDEO), "-o", str(gone)]) == 2
    _error_line(capsys)
    assert not gone.exists()
