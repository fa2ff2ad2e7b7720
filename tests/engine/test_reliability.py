"""Reliability (issue 23): the project lock, failed commands that leave project.json alone,
corrupt caches recomputed, one error line naming the user's file, strict JSON, atomic writes.

Each test drives the real code path (engine.cli.main, run_pipeline, Project) on tiny inputs:
the toy a -> b -> c graph of tests/engine/toy_stages.py stands in for the real stages where a
real stage would take minutes.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import engine.cli as cli
from engine.errors import InputError, ProjectBusy
from engine.pipeline import (DONE, LOCK, CancelToken, Log, PipelineConfig, Project, run_pipeline,
                             stage_status, write_json_atomic)
from tests.engine.test_cli import _error_line, _noise_frames, _snapshot, _write_video
from tests.engine.test_pipeline import CHILD  # a run of the toy graph that waits at stage b
from tests.engine.toy_stages import RUNS_LOG, toy_stages

REPO = Path(__file__).resolve().parents[2]


def _graph(until=None):
    """The toy graph; stage b raises InputError (a bad input, like a bad --import) when its
    ``add`` is 7."""
    a, b, c = toy_stages()

    def bad_b(cfg, ins, ctx):
        if cfg.add == 7:
            raise InputError("/somewhere/transforms.json: its frame names do not match the "
                             "keyframes")
        return (yield from b.run(cfg, ins, ctx))

    stages = [a, dataclasses.replace(b, run=bad_b), c]
    if until is None:
        return stages
    return stages[: [s.name for s in stages].index(until) + 1]


@pytest.fixture
def toy_cli(monkeypatch):
    """engine.cli with the toy graph instead of the real stages."""
    monkeypatch.setattr(cli, "default_stages", _graph)
    return cli


def _finished(project) -> dict[str, bool]:
    stages = _graph()
    saved = project.manifest.get("config") or {}
    cfg = PipelineConfig(stages, preset=saved.get("preset", "standard"),
                         overrides=saved.get("overrides"), device="cpu")
    return {s.name: s.finished for s in stage_status(project, stages, cfg)}


def _ran(project) -> list[str]:
    log = project.root / RUNS_LOG
    return log.read_text().split() if log.exists() else []


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(30)
    return child.pid


# -- 1. the project lock --------------------------------------------------------------------------


def test_a_second_run_on_a_busy_project_is_refused_naming_the_holder(tmp_path, toy_cli, capsys):
    project = Project.open_or_create(tmp_path / "p")
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = time.time() - 120
        (project.root / LOCK).write_text(json.dumps(
            {"pid": holder.pid, "host": __import__("socket").gethostname(), "started": started,
             "token": "x"}))
        before = _snapshot(project.root)
        assert toy_cli.main(["run", "--project", str(project.root), "-q"]) == ProjectBusy.exit_code
        line = _error_line(capsys)
        assert "busy" in line and f"pid {holder.pid}" in line and "since" in line
        assert time.strftime("%Y-%m-%d", time.localtime(started)) in line
        assert _snapshot(project.root) == before  # nothing written, the lock kept
        assert not project.cache_dir.exists()
    finally:
        holder.kill()
        holder.wait(10)


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path, toy_cli, capsys):
    project = Project.open_or_create(tmp_path / "p")
    (project.root / LOCK).write_text(json.dumps(
        {"pid": _dead_pid(), "host": __import__("socket").gethostname(), "started": 0.0,
         "token": "old"}))
    assert toy_cli.main(["run", "--project", str(project.root), "-q"]) == 0
    assert _finished(Project.open(project.root)) == {"a": True, "b": True, "c": True}
    assert not (project.root / LOCK).exists()  # released at the end
    assert not list(project.root.glob(f".{LOCK}*"))  # the stale one is gone too
    # an empty lock (a crash while it was being written) is stale as well
    (project.root / LOCK).write_text("")
    assert toy_cli.main(["run", "--project", str(project.root), "-q"]) == 0




def test_two_processes_on_one_project_do_not_delete_each_others_work(tmp_path, toy_cli, capsys):
    project = Project.open_or_create(tmp_path / "p")
    gate = tmp_path / "gate"
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(
        repo=str(REPO), proj=str(project.root), gate=str(gate))])
    try:
        deadline = time.monotonic() + 60
        while not (project.root / "started").exists():
            assert child.poll() is None, "child ended early"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        tmp_before = sorted(p.name for p in (project.cache_dir / "b").glob(".tmp-*"))
        assert tmp_before
        # b's key differs only in wait_for (affects_output=False): the same .tmp-<key>-* glob
        assert toy_cli.main(["run", "--project", str(project.root), "-q"]) == 3
        line = _error_line(capsys)
        assert f"pid {child.pid}" in line
        assert sorted(p.name for p in (project.cache_dir / "b").glob(".tmp-*")) == tmp_before
        gate.write_text("go")
        assert child.wait(60) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    assert _ran(project) == ["a", "b", "c"]
    assert not (project.root / LOCK).exists()


def test_the_lock_is_at_engine_level_for_the_app_too(tmp_path):
    """run_pipeline (what app/worker.py runs) holds the lock: a second run in another thread
    and an import during the run are refused with ProjectBusy; a nested use in the same thread
    (import, then run, as the CLI does) is allowed."""
    project = Project.open_or_create(tmp_path / "p")
    stages = toy_stages()
    gate = tmp_path / "gate"
    cfg = PipelineConfig(stages, overrides={"b": {"wait_for": str(gate)}}, device="cpu")
    errors: list[BaseException] = []

    def worker():
        try:
            list(run_pipeline(project, stages, cfg, CancelToken()))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    th = threading.Thread(target=worker)
    th.start()
    try:
        deadline = time.monotonic() + 20
        while not (project.root / "started").exists():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with pytest.raises(ProjectBusy, match="busy"):
            list(run_pipeline(project, stages, PipelineConfig(stages, device="cpu")))
        clip = tmp_path / "clip.mp4"
        clip.write_bytes(b"x")
        with pytest.raises(ProjectBusy):
            project.import_source(clip)
    finally:
        gate.write_text("go")
        th.join(20)
    assert not errors and not (project.root / LOCK).exists()
    with project.lock():  # nesting in one thread
        with project.lock():
            list(run_pipeline(project, stages, PipelineConfig(stages, device="cpu")))
        assert (project.root / LOCK).exists()
    assert not (project.root / LOCK).exists()


def test_status_and_export_do_not_take_the_lock(tmp_path, toy_cli, capsys):
    project = Project.open_or_create(tmp_path / "p")
    with project.lock():
        assert toy_cli.main(["status", "--project", str(project.root)]) == 0
    out = capsys.readouterr().out
    assert "to do" in out


# -- 2. a failed command leaves project.json as it was ------------------------------------------


def test_a_failed_run_does_not_rewrite_the_manifest(tmp_path, toy_cli, capsys):
    project = Project.open_or_create(tmp_path / "p")
    assert toy_cli.main(["run", "--project", str(project.root), "-q", "--set", "b.add=2"]) == 0
    manifest = (project.root / "project.json").read_bytes()
    capsys.readouterr()
    # a bad input in stage b (as a bad `cameras --import` is in the cameras stage)
    assert toy_cli.main(["run", "--project", str(project.root), "-q", "--set", "b.add=7"]) == 2
    assert "transforms.json" in _error_line(capsys)
    assert (project.root / "project.json").read_bytes() == manifest
    assert toy_cli.main(["status", "--project", str(project.root)]) == 0
    status = capsys.readouterr().out.split("\n")
    assert [line.split()[1] for line in status if line.strip()] == ["finished"] * 3


def test_a_partial_run_keeps_the_saved_options_of_later_stages(tmp_path, toy_cli, capsys):
    """`run --until a` (the app's "Run preprocessing") must not drop an option chosen for a
    later stage (the app's cameras mode) from project.json."""
    project = Project.open_or_create(tmp_path / "p")
    assert toy_cli.main(["run", "--project", str(project.root), "-q", "--set", "c.add=5"]) == 0
    assert toy_cli.main(["run", "--project", str(project.root), "-q", "--until", "a",
                         "--set", "a.add=3"]) == 0
    saved = Project.open(project.root).manifest["config"]["overrides"]
    assert saved["c"] == {"add": 5} and saved["a"] == {"add": 3}


def test_run_resumes_with_the_saved_preset_and_options(tmp_path, toy_cli, capsys):
    """`run` with no options continues the project's last run (its preset and --set options,
    e.g. the imported cameras of a transforms.json) instead of starting over with defaults;
    --set on top changes only that field."""
    project = Project.open_or_create(tmp_path / "p")
    assert toy_cli.main(["run", "--project", str(project.root), "-q", "--preset", "preview",
                         "--set", "b.add=2"]) == 0
    capsys.readouterr()
    assert toy_cli.main(["status", "--project", str(project.root)]) == 0
    before = capsys.readouterr().out
    assert toy_cli.main(["run", "--project", str(project.root), "-q"]) == 0
    assert "cached" in capsys.readouterr().out  # nothing re-ran
    saved = Project.open(project.root).manifest["config"]
    assert saved["preset"] == "preview" and saved["overrides"]["b"] == {"add": 2}
    assert toy_cli.main(["run", "--project", str(project.root), "-q", "--set", "c.add=4"]) == 0
    saved = Project.open(project.root).manifest["config"]
    assert saved["overrides"]["b"] == {"add": 2} and saved["overrides"]["c"] == {"add": 4}
    capsys.readouterr()
    assert toy_cli.main(["status", "--project", str(project.root)]) == 0
    after = capsys.readouterr().out.split("\n")
    assert [ln.split()[:2] for ln in after if ln.strip()][:2] == \
        [ln.split()[:2] for ln in before.split("\n") if ln.strip()][:2]  # a and b as before


# -- 3. corrupt caches, one error line -------------------------------------------------------------


def test_done_json_lists_the_files_and_a_truncated_file_is_recomputed(tmp_path):
    project = Project.open_or_create(tmp_path / "p")
    stages = toy_stages()
    cfg = PipelineConfig(stages, device="cpu")
    events = list(run_pipeline(project, stages, cfg))
    c_dir = next(e.path for e in events if getattr(e, "path", None) and e.stage == "c")
    done = json.loads((c_dir / DONE).read_text())
    files = {f["path"]: f for f in done["files"]}
    assert set(files) == {"part0.txt", "part1.txt", "part2.txt", "value.json"}
    value = c_dir / "value.json"
    assert files["value.json"]["size"] == value.stat().st_size
    assert len(files["value.json"]["sha256"]) == 64
    value.write_bytes(value.read_bytes()[:3])  # truncated, as a crash of a copy tool leaves it
    assert _finished(project) == {"a": True, "b": True, "c": False}
    events = list(run_pipeline(project, stages, cfg))
    warn = [e for e in events if isinstance(e, Log) and e.stage == "c"]
    assert len(warn) == 1 and "corrupt" in warn[0].message and "value.json" in warn[0].message
    assert _ran(project) == ["a", "b", "c", "c"]
    assert json.loads(value.read_text()) == {"value": 3}
    # a done.json of an older Strandcap (no file list) is finished, unverified
    (c_dir / DONE).write_text(json.dumps({k: v for k, v in done.items() if k != "files"}))
    value.write_text("{}")
    assert _finished(project)["c"] is True


def test_a_truncated_groom_file_is_one_line(tmp_path, capsys):
    bad = tmp_path / "groom.npz"
    np.savez(bad, strands=np.zeros((4, 5, 3), np.float32))
    bad.write_bytes(bad.read_bytes()[:40])
    assert cli.main(["export", "--groom", str(bad), "-o", str(tmp_path / "g.abc")]) == 2
    line = _error_line(capsys)
    assert str(bad) in line and "damaged" in line
    assert not (tmp_path / "g.abc").exists()


def test_a_bad_safetensors_file_names_the_file(tmp_path):
    from engine.prior.checkpoint import load_checkpoint

    w = tmp_path / "strand_vae.safetensors"
    w.write_bytes(b"garbage" * 5)
    w.with_suffix(".json").write_text(json.dumps({"config": {}}))
    with pytest.raises(InputError, match="strand_vae.safetensors"):
        load_checkpoint(w, "strand VAE", lambda c: __import__("torch").nn.Linear(1, 1))


def test_damaged_file_errors_reach_the_top_level_as_one_line(monkeypatch, capsys):
    from safetensors import SafetensorError

    def boom(args):
        raise SafetensorError("Error while deserializing header: header too large")

    monkeypatch.setattr(cli, "cmd_status", boom)
    assert cli.main(["status", "--project", "x"]) == 1
    assert "SafetensorError" in _error_line(capsys)


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0,
                    reason="chmod does not stop root or Windows from writing")
def test_export_to_a_read_only_folder_is_one_line(tmp_path, capsys):
    from engine.io.export import export_groom
    from engine.io.groom import Groom

    strands = np.cumsum(np.full((6, 5, 3), 0.01, np.float32), axis=1)
    src = export_groom(Groom(strands=strands), tmp_path / "g.npz", units="m")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert cli.main(["export", "--groom", str(src), "-o", str(ro / "g.abc")]) != 0
        line = _error_line(capsys)
        assert str(ro / "g.abc") in line
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o700)


def test_an_export_on_a_full_disk_keeps_the_old_file(tmp_path, capsys, monkeypatch):
    """Runs as root too (unlike the read-only folder): the rename of the finished file fails."""
    from engine.io.export import export_groom
    from engine.io.groom import Groom

    strands = np.cumsum(np.full((6, 5, 3), 0.01, np.float32), axis=1)
    src = export_groom(Groom(strands=strands), tmp_path / "g.npz", units="m")
    out = tmp_path / "out"
    out.mkdir()
    dest = out / "g.abc"
    dest.write_bytes(b"the previous export")

    def full(a, b):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("engine.io.files.os.replace", full)
    assert cli.main(["export", "--groom", str(src), "-o", str(dest)]) != 0
    line = _error_line(capsys)
    assert str(dest) in line and os.strerror(errno.ENOSPC) in line
    assert dest.read_bytes() == b"the previous export"
    assert [p.name for p in out.iterdir()] == ["g.abc"]


def test_a_full_disk_names_the_file(tmp_path, toy_cli, capsys, monkeypatch):
    project = Project.open_or_create(tmp_path / "p")
    manifest = (project.root / "project.json").read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("engine.io.files.os.fsync", full)
    assert toy_cli.main(["run", "--project", str(project.root), "-q"]) == 1
    line = _error_line(capsys)
    assert line.startswith("strandcap: error: ") and line.endswith(os.strerror(errno.ENOSPC))
    assert f"{os.sep}cache{os.sep}a{os.sep}" in line and line.split(": ")[2].endswith(DONE)
    assert (project.root / "project.json").read_bytes() == manifest
    assert not list(project.root.rglob("*.tmp*")) and not (project.root / LOCK).exists()
    assert _finished(project) == {"a": False, "b": False, "c": False}


def test_a_full_disk_while_importing_names_the_users_video(tmp_path, capsys, monkeypatch):
    clip = _write_video(tmp_path / "holiday.mp4", _noise_frames(12))

    def full(src, dst, **kw):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

    monkeypatch.setattr("engine.pipeline.shutil.copy2", full)
    assert cli.main(["preprocess", str(clip), "--project", str(tmp_path / "p"), "-q"]) == 1
    line = _error_line(capsys)
    assert f"{clip}: cannot copy holiday.mp4 into the project" in line
    assert os.strerror(errno.ENOSPC) in line and ".tmp-" not in line


# -- 4. NaN in --set -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_float_options_are_refused(tmp_path, capsys, value):
    project = Project.open_or_create(tmp_path / "p")
    before = _snapshot(project.root)
    assert cli.main(["run", "--project", str(project.root), "-q",
                     "--set", f"strands.lr={value}"]) == 2
    line = _error_line(capsys)
    assert "lr" in line and "finite" in line
    assert _snapshot(project.root) == before


# -- 5. phone videos with rotation metadata -----------------------------------------------------------


def test_rotation_metadata_makes_frames_upright():
    from engine.io.media import rotation_from_meta, upright

    assert [rotation_from_meta(m) for m in (None, 0, 90, 180, 270, -90, 450, 89.6, float("nan"))] \
        == [0, 0, 90, 180, 270, 270, 90, 90, 0]
    frame = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)  # landscape 3 wide, 2 high
    np.testing.assert_array_equal(upright(frame, 0), frame)
    np.testing.assert_array_equal(upright(frame, 90), np.rot90(frame, k=-1))  # clockwise
    np.testing.assert_array_equal(upright(frame, 180), np.rot90(frame, k=2))
    np.testing.assert_array_equal(upright(frame, 270), np.rot90(frame, k=1))


# -- 6. messages name the user's file; strict JSON ----------------------------------------------------


def test_messages_name_the_users_file_not_the_projects_copy(tmp_path, capsys):
    import re

    project = Project.open_or_create(tmp_path / "p")
    project.import_source(_write_video(tmp_path / "good.mp4", _noise_frames(40)))
    clip = _write_video(tmp_path / "short.mp4", _noise_frames(3))
    assert cli.main(["preprocess", str(clip), "--project", str(project.root), "-q"]) == 2
    line = _error_line(capsys)
    assert "short.mp4: too short" in line and not re.search(r"[0-9a-f]{8}-short", line)
    dest = Project.open(project.root)
    assert dest.source_name == "good.mp4"
    assert dest.manifest["source"]["name"] == "good.mp4"


def test_write_json_atomic_writes_strict_json(tmp_path):
    path = tmp_path / "fit.json"
    write_json_atomic(path, {"auto": {"background_motion": float("nan"),
                                      "yaw": np.float64("inf"), "ok": np.float32(1.5)}})

    def reject(name):
        raise ValueError(name)

    assert json.loads(path.read_text(), parse_constant=reject) == {
        "auto": {"background_motion": None, "ok": 1.5, "yaw": None}}
    assert [p.name for p in tmp_path.iterdir()] == ["fit.json"]


# -- 7. checked, atomic image and weight writes --------------------------------------------------------


def test_write_image_is_checked_and_atomic(tmp_path):
    from engine.io.media import read_image, write_image

    img = np.full((4, 6, 3), 200, np.uint8)
    out = write_image(tmp_path / "a.png", img)
    np.testing.assert_array_equal(read_image(out), img)
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]
    with pytest.raises(OSError) as info:
        write_image(tmp_path / "missing" / "b.png", img)
    assert info.value.filename == str(tmp_path / "missing" / "b.png")
    with pytest.raises(OSError, match="encode"):
        write_image(tmp_path / "c.notanimage", img)
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_an_interrupted_weights_save_keeps_the_old_weights(tmp_path, monkeypatch):
    import safetensors.torch
    import torch

    from engine.prior.checkpoint import save_checkpoint

    @dataclasses.dataclass
    class Cfg:
        width: int = 1

    model = torch.nn.Linear(2, 2)
    model.cfg = Cfg()
    path = tmp_path / "w.safetensors"
    save_checkpoint(model, path, "test")
    before = path.read_bytes()

    def interrupted(tensors, filename, *a, **kw):
        Path(filename).write_bytes(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(safetensors.torch, "save_file", interrupted)
    with pytest.raises(OSError) as info:
        save_checkpoint(model, path, "test")
    assert info.value.filename == str(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.json", "w.safetensors"]
