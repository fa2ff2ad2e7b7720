"""A tiny three-stage graph (a -> b -> c) used to test the stage-graph machinery.

Each stage writes ``value.json`` holding its input value plus its config's ``add``; stage ``b``
can be told to wait for a file to appear (so a test can kill the process mid-stage).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from engine.pipeline import Stage, option

RUNS_LOG = "runs.log"


@dataclass(frozen=True)
class AddConfig:
    add: int = option(1, "value added by this stage", range=(0, 100))
    steps: int = option(3, "progress steps", range=(1, 1000))
    wait_for: str = option("", "a file to wait for mid-stage (tests only)", affects_output=False)
    fail: bool = option(False, "raise mid-stage (tests only)", affects_output=False)


def _make(name: str, inputs: tuple[str, ...]) -> Stage:
    def run(cfg, ins, ctx):
        base = 0
        for i in ins.values():
            base += json.loads((i.path / "value.json").read_text())["value"]
        with open(ctx.project.root / RUNS_LOG, "a") as fh:
            fh.write(name + "\n")
        for step in range(cfg.steps):
            (ctx.out_dir / f"part{step}.txt").write_text(str(step))
            yield ctx.progress(step + 1, cfg.steps, f"step {step + 1}")
            yield ctx.loss(step, {"total": 1.0 / (step + 1)})
            if step == 0 and cfg.wait_for:
                (ctx.project.root / "started").write_text("1")
                while not Path(cfg.wait_for).exists():
                    time.sleep(0.05)
                    ctx.check()
            if step == 0 and cfg.fail:
                raise RuntimeError("boom")
        (ctx.out_dir / "value.json").write_text(json.dumps({"value": base + cfg.add}))
        return {"value": base + cfg.add}

    return Stage(name=name, version=1, config_type=AddConfig, inputs=inputs, run=run,
                 title=name.upper(), presets={"preview": {"steps": 1}})


def toy_stages() -> list[Stage]:
    return [_make("a", ()), _make("b", ("a",)), _make("c", ("b",))]
