"""Small file helpers shared by the whole engine: the one atomic writer (:func:`atomic_path`),
strict JSON (:func:`write_json_atomic`, :func:`read_json`) and :func:`file_sha256`.

Kept free of engine imports so that any module (stages, the prior, exports, the app) can use it
without pulling in the pipeline.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import uuid
from pathlib import Path
from typing import Any, Iterator

@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a fresh temporary path in ``path``'s folder (same suffix, so writers that choose
    the format from the suffix still work); when the ``with`` body ends without an error it is
    renamed over ``path`` with :func:`os.replace`, so readers see the old file or the complete
    new one, never half of it. On any error the temporary file is removed and ``path`` is
    untouched. The one atomic file writer of the engine (JSON, images, weights).

    Raises:
        OSError: from the body or the rename, with ``filename`` set to ``path`` (the user's
            file, not the temporary name) when it names no file.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        if exc.filename is None or str(exc.filename) == str(tmp):
            exc.filename = str(path)
        raise
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _strict(obj: Any) -> Any:
    """``obj`` with NaN and infinite floats (numpy ones too) turned into None (JSON null)."""
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "shape", None) == ():  # numpy scalar
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as strict JSON to ``path`` through :func:`atomic_path`.

    NaN and infinity (a value that is legitimately missing, e.g. a motion that could not be
    measured) are written as ``null``: strict JSON has no NaN.

    Raises:
        OSError: the folder is missing or read-only, the disk is full (``filename`` is ``path``).
    """
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(_strict(obj), fh, indent=2, sort_keys=True, default=str, allow_nan=False)
            fh.flush()
            os.fsync(fh.fileno())


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
