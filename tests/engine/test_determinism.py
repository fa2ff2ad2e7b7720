"""Same input, same seed, same groom (the benchmark issue): previews taken on a timer, a busy
CPU and the number of previews must not change what the optimisations produce.

The strand stage takes a live preview every ``preview_every`` steps *or* every 5 s, so a slow
(loaded) machine takes more previews than an idle one; the coarse stage's previews render the
fields between steps. Both are checked to leave the result bit for bit unchanged, with a
CPU-bound process running beside the second run. (A different torch thread count does change
the strand optimisation's floating-point sums, which Adam's normalised steps amplify; the
stages therefore choose their thread count from the machine's core count, never from its load.)
"""

from __future__ import annotations

import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.pipeline import CancelToken, Preview, Project, StageContext


@contextmanager
def cpu_burner():
    """A CPU-bound process running for the ``with`` body."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        proc.kill()
        proc.wait(10)


def _ctx(tmp_path: Path, stage: str) -> StageContext:
    out = tmp_path / stage
    out.mkdir()
    return StageContext(Project.open_or_create(tmp_path / "project"), stage, out, CancelToken())


def _drain(gen) -> tuple[list, dict]:
    events = []
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            return events, stop.value


def test_strand_previews_on_a_timer_do_not_change_the_groom(tmp_path, monkeypatch):
    from engine.io.export import load_groom
    from engine.strands import stage as strands_stage
    from tests.engine.test_strands import _tiny_trainer

    quiet = tmp_path / "quiet"
    quiet.mkdir()
    _drain(strands_stage.train_and_export(_tiny_trainer(iterations=12), quiet))

    clock = iter(np.arange(0.0, 1e6, 10.0))  # every reading 10 s later: a preview every step
    monkeypatch.setattr(strands_stage.time, "monotonic", lambda: float(next(clock)))
    with cpu_burner():
        events, _ = _drain(strands_stage.train_and_export(_tiny_trainer(iterations=12),
                                                          tmp_path / "strands",
                                                          _ctx(tmp_path, "strands")))
    previews = [e for e in events if isinstance(e, Preview) and e.kind == "strands"]
    assert len(previews) >= 12  # one per step, and the final groom
    a, b = load_groom(quiet / "groom.npz"), load_groom(tmp_path / "strands" / "groom.npz")
    assert a.strands.shape == b.strands.shape
    assert np.array_equal(a.strands, b.strands)


def test_coarse_previews_and_load_do_not_change_the_fields(tmp_path):
    from engine.synthetic.analytic_scene import make_scene
    from engine.coarse.stage import train_and_export
    from engine.coarse.train import CoarseConfig
    from tests.engine.test_coarse import TINY

    data, _ = make_scene(6, 32)
    names = [f"{i:03d}" for i in range(6)]
    runs = {}
    for label, every in (("rare", 10**6), ("often", 3)):
        cfg = CoarseConfig(**{**TINY, "iterations": 12, "preview_every": every})
        out = tmp_path / label
        out.mkdir()
        if every == 3:
            with cpu_burner():
                events, _ = _drain(train_and_export(data, names, cfg, "cpu", out,
                                                    _ctx(tmp_path, "coarse")))
            assert sum(isinstance(e, Preview) for e in events) >= 3
        else:
            _drain(train_and_export(data, names, cfg, "cpu", out, _ctx(tmp_path, "coarse-q")))
        from safetensors.torch import load_file

        runs[label] = load_file(str(out / "fields.safetensors"))
    rare, often = runs["rare"], runs["often"]
    assert rare.keys() == often.keys()
    for k in rare:
        assert torch.equal(rare[k], often[k]), k


@pytest.mark.parametrize("seed", [0])
def test_a_seed_changes_the_groom(seed):
    """The one thing that may change the result does (so the tests above can fail)."""
    from tests.engine.test_strands import _tiny_trainer

    a, b = _tiny_trainer(seed=seed), _tiny_trainer(seed=seed + 1)
    for tr in (a, b):
        for _ in range(5):
            tr.step()
    assert not np.array_equal(a.dense_groom(50)["strands"], b.dense_groom(50)["strands"])


def test_stage_threads_do_not_depend_on_the_load():
    """The coarse and strand stages take their thread count from engine.threads, which must not
    change when another process is busy: the fields and the groom depend on the count (the
    coarse fields' GEMM reductions differ between 1 and 2 threads on some CPUs)."""
    from engine.threads import stage_threads, usable_cores

    idle = stage_threads()
    assert 1 <= idle <= min(4, max(1, usable_cores() // 2))
    with cpu_burner():
        time.sleep(0.2)
        assert stage_threads() == idle
    assert stage_threads(1) == 1
