"""Safe saving and loading of the prior's networks: weights as safetensors (no pickle) and a
JSON file beside them (``path.with_suffix('.json')``) holding the config and training facts."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from engine.errors import InputError
from engine.io.files import atomic_path, write_json_atomic


def save_checkpoint(model: nn.Module, path: Path, kind: str, extra: dict | None = None) -> None:
    """Write ``path`` (.safetensors, the state dict) and its .json: schema version, ``kind``,
    ``asdict(model.cfg)`` and ``extra``. Both are written atomically (a temporary file in the
    same folder, then ``os.replace``): an interrupted save leaves the previous weights intact.

    Raises:
        OSError: naming ``path`` (read-only folder, full disk).
    """
    from safetensors.torch import save_file


    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                  str(tmp))
    meta = {"schema_version": 1, "kind": kind, "config": asdict(model.cfg)}
    meta.update(extra or {})
    write_json_atomic(path.with_suffix(".json"), meta)


def load_checkpoint(path: Path, label: str, build: Callable[[dict], nn.Module],
                    device: str | torch.device = "cpu") -> nn.Module:
    """Load a :func:`save_checkpoint` file: ``build(config dict)`` makes the network, whose
    weights are then read. Returns it on ``device`` in eval mode.

    Raises:
        InputError: naming ``path`` and ``label`` when a file is missing or does not match.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    meta_path = path.with_suffix(".json")
    if not path.exists() or not meta_path.exists():
        raise InputError(f"{path}: {label} weights or their .json config not found")
    try:
        meta = json.loads(meta_path.read_text())
        model = build(meta["config"])
        model.load_state_dict(load_file(str(path)))
    except (KeyError, TypeError, RuntimeError, ValueError, SafetensorError) as e:
        raise InputError(f"{path}: not a {label} checkpoint ({e})") from e
    return model.to(device).eval()


def hardware() -> str:
    """One line describing the training hardware."""
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    return f"{dev}; {platform.processor() or platform.machine()}; torch threads {torch.get_num_threads()}"
