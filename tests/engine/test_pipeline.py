"""The stage graph: cache keys, re-runs, resume after a kill, cancellation, configs, projects."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.errors import Cancelled, ConfigError, ProjectError
from engine.pipeline import (DONE, SCHEMA_VERSION, CancelToken, Loss, PipelineConfig, Progress,
                             Project, StageFinished, StageStarted, run_pipeline, stage_status)
from tests.engine.toy_stages import RUNS_LOG, toy_stages

REPO = Path(__file__).resolve().parents[2]


def _run(project, overrides=None, preset="standard", cancel=None):
    stages = toy_stages()
    cfg = PipelineConfig(stages, preset=preset, overrides=overrides, device="cpu")
    return list(run_pipeline(project, stages, cfg, cancel))


def _ran(project) -> list[str]:
    log = project.root / RUNS_LOG
    return log.read_text().split() if log.exists() else []


def _value(events, stage):
    fin = [e for e in events if isinstance(e, StageFinished) and e.stage == stage][-1]
    return json.loads((fin.path / "value.json").read_text())["value"]


def test_first_run_runs_all_and_second_run_is_cached(tmp_path):
    project = Project.open_or_create(tmp_path / "p")
    events = _run(project)
    assert _ran(project) == ["a", "b", "c"]
    assert _value(events, "c") == 3
    assert [e.cached for e in events if isinstance(e, StageStarted)] == [False] * 3
    events = _run(project)
    assert _ran(project) == ["a", "b", "c"]  # nothing ran again
    assert [e.cached for e in events if isinstance(e, StageStarted)] == [True] * 3
    assert all(s.finished for s in stage_status(project, toy_stages(),
                                                PipelineConfig(toy_stages(), device="cpu")))


def test_changing_a_config_field_reruns_that_stage_and_later_ones_only(tmp_path):
    project = Project.open_or_create(tmp_path / "p")
    _run(project)
    events = _run(project, overrides={"b": {"add": 5}})
    assert _ran(project) == ["a", "b", "c", "b", "c"]
    assert _value(events, "c") == 1 + 5 + 1
    # a field that does not affect the output keeps the cache
    _run(project, overrides={"b": {"add": 5, "wait_for": ""}})
    assert _ran(project) == ["a", "b", "c", "b", "c"]
    # going back to the old config finds the old results on disk
    _run(project)
    assert len(_ran(project)) == 5


def test_events_carry_progress_with_eta_and_losses(tmp_path):
    project = Project.open_or_create(tmp_path / "p")
    events = _run(project, overrides={"a": {"steps": 4}})
    prog = [e for e in events if isinstance(e, Progress) and e.stage == "a"]
    assert [p.done for p in prog] == [1, 2, 3, 4] and prog[-1].total == 4
    assert prog[-1].eta_s == pytest.approx(0.0, abs=1e-6) and prog[0].eta_s >= 0
    assert any(isinstance(e, Loss) and e.values["total"] == 1.0 for e in events)
    fin_a = next(e for e in events if isinstance(e, StageFinished) and e.stage == "a")
    done = json.loads((fin_a.path / DONE).read_text())
    assert done["stage"] == "a" and done["config"]["steps"] == 4 and done["summary"] == {"value": 1}


def test_presets_and_overrides_are_validated():
    stages = toy_stages()
    assert PipelineConfig(stages, preset="preview", device="cpu")["a"].steps == 1
    assert PipelineConfig(stages, preset="preview", overrides={"a": {"steps": 7}},
                          device="cpu")["a"].steps == 7
    with pytest.raises(ConfigError, match="unknown AddConfig field"):
        PipelineConfig(stages, overrides={"a": {"nope": 1}}, device="cpu")
    with pytest.raises(ConfigError, match="outside its range"):
        PipelineConfig(stages, overrides={"a": {"add": 1000}}, device="cpu")
    with pytest.raises(ConfigError, match="must be"):
        PipelineConfig(stages, overrides={"a": {"add": "three"}}, device="cpu")
    with pytest.raises(ConfigError, match="unknown stage"):
        PipelineConfig(stages, overrides={"zzz": {"add": 1}}, device="cpu")
    with pytest.raises(ConfigError, match="unknown preset"):
        PipelineConfig(stages, preset="ultra", device="cpu")


def test_exception_mid_stage_leaves_no_output_and_earlier_stages_stay(tmp_path):
    project = Project.open_or_create(tmp_path / "p")
    with pytest.raises(RuntimeError, match="boom"):
        _run(project, overrides={"b": {"fail": True}})
    assert list((project.cache_dir / "b").iterdir()) == []
    assert len(list((project.cache_dir / "a").glob(f"*/{DONE}"))) == 1
    _run(project)
    assert _ran(project) == ["a", "b", "b", "c"]


def test_cancel_stops_the_running_stage_and_a_rerun_resumes(tmp_path):
    project = Project.open_or_create(tmp_path / "p")
    token = CancelToken()
    gate = tmp_path / "gate"
    stages = toy_stages()
    cfg = PipelineConfig(stages, overrides={"b": {"wait_for": str(gate)}}, device="cpu")
    errors = []

    def worker():
        try:
            list(run_pipeline(project, stages, cfg, token))
        except Cancelled as exc:
            errors.append(exc)

    th = threading.Thread(target=worker)
    th.start()
    deadline = time.monotonic() + 20
    while not (project.root / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    t0 = time.monotonic()
    token.cancel()
    th.join(10)
    assert not th.is_alive() and time.monotonic() - t0 < 2.0
    assert len(errors) == 1 and "resumes" in str(errors[0])
    assert list((project.cache_dir / "b").iterdir()) == []  # temp folder removed
    assert not (project.cache_dir / "c").exists()
    _run(project)
    assert _ran(project) == ["a", "b", "b", "c"]


def test_pause_blocks_until_resume():
    token = CancelToken()
    token.pause()
    done = threading.Event()
    th = threading.Thread(target=lambda: (token.check(), done.set()))
    th.start()
    assert not done.wait(0.3)
    token.resume()
    assert done.wait(2)
    th.join()


CHILD = """
import sys
sys.path.insert(0, {repo!r})
from engine.pipeline import PipelineConfig, Project, run_pipeline
from tests.engine.toy_stages import toy_stages
stages = toy_stages()
project = Project.open({proj!r})
cfg = PipelineConfig(stages, overrides={{"b": {{"wait_for": {gate!r}}}}}, device="cpu")
for _ in run_pipeline(project, stages, cfg):
    pass
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_stage_killed_mid_run_leaves_nothing_finished_and_next_run_completes(tmp_path):
    project = Project.open_or_create(tmp_path / "p")
    gate = tmp_path / "never"
    code = CHILD.format(repo=str(REPO), proj=str(project.root), gate=str(gate))
    child = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 60
    while not (project.root / "started").exists():
        assert child.poll() is None, "child ended early"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    leftovers = list((project.cache_dir / "b").iterdir())
    assert leftovers and all(p.name.startswith(".tmp-") for p in leftovers)  # half-written
    assert not list((project.cache_dir / "b").glob(f"*/{DONE}"))
    status = {s.name: s.finished for s in stage_status(project, toy_stages(),
                                                        PipelineConfig(toy_stages(), device="cpu"))}
    assert status == {"a": True, "b": False, "c": False}
    _run(project)
    assert _ran(project) == ["a", "b", "b", "c"]  # a was not redone
    assert [p.name for p in (project.cache_dir / "b").iterdir()] and not list(
        (project.cache_dir / "b").glob(".tmp-*"))


def test_renamed_folder_without_done_json_is_not_finished(tmp_path):
    project = Project.open_or_create(tmp_path / "p")
    events = _run(project)
    fin = next(e for e in events if isinstance(e, StageFinished) and e.stage == "c")
    (fin.path / DONE).unlink()
    _run(project)
    assert _ran(project) == ["a", "b", "c", "c"]


def test_project_folder_rules(tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "thesis.txt").write_text("precious")
    with pytest.raises(ProjectError, match="not empty"):
        Project.open_or_create(tmp_path / "busy")
    assert (tmp_path / "busy" / "thesis.txt").read_text() == "precious"
    with pytest.raises(ProjectError, match="not a Strandcap project"):
        Project.open(tmp_path / "busy")
    p = Project.open_or_create(tmp_path / "new")
    assert json.loads((p.root / "project.json").read_text())["schema_version"] == SCHEMA_VERSION
    p.manifest["schema_version"] = SCHEMA_VERSION + 1
    p.save()
    with pytest.raises(ProjectError, match="newer"):
        Project.open(p.root)


def test_import_source_copies_and_hashes(tmp_path):
    src = tmp_path / "clip.mp4"
    src.write_bytes(b"not really a video")
    p = Project.open_or_create(tmp_path / "p")
    dest = p.import_source(src)
    assert dest.read_bytes() == src.read_bytes() and dest.parent == p.input_dir
    fp = p.source_fingerprint()
    assert p.import_source(src) == dest and p.source_fingerprint() == fp
    src.write_bytes(b"another clip")
    dest2 = p.import_source(src)
    assert dest2 != dest and dest.exists() and p.source_fingerprint() != fp
