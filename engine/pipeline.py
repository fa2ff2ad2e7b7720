"""The stage graph: typed configs, content-addressed caching, resume, cancellation, events.

A *stage* is a frozen config dataclass plus a generator function
``run(config, inputs, ctx) -> Iterator[Event]`` that writes its outputs into ``ctx.out_dir``.
Outputs live in the capture project folder under ``cache/<stage>/<key>/`` where ``key`` hashes

* the stage name and its version number (bump it when the algorithm changes),
* the config fields that affect the output (fields whose metadata says
  ``affects_output=False``, such as the device, are left out),
* the keys of the input artifacts (so a change upstream re-runs everything downstream),
* the stage's *fingerprint* of project inputs it reads directly (the source video's content
  hash, user-edited masks, excluded frames).

A stage writes into ``cache/<stage>/.tmp-<key>-<nonce>/``, which is renamed into place when the
generator finishes; ``done.json`` is written last (atomically). A folder without ``done.json`` is
never taken as finished, so a crash or a kill leaves nothing that looks complete and the next
run redoes that stage only. Status is always read from disk (:func:`stage_status`).

Events (:class:`Progress`, :class:`Loss`, :class:`Preview`, ...) are yielded to the caller, the
CLI's progress bar and the app's worker consume the same stream. Cancellation is cooperative:
the runner checks the :class:`CancelToken` after every event a stage yields, and stages call
``ctx.check()`` inside long loops that yield rarely.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime
import hashlib
import json
import math
import os
import shutil
import socket
import sys
import threading
import time
import types
import typing
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from engine.errors import Cancelled, ConfigError, InputError, ProjectBusy, ProjectError
from engine.io.files import file_sha256, read_json, write_json_atomic
from engine.io.media import IMAGE_SUFFIXES

SCHEMA_VERSION = 1
MANIFEST = "project.json"
DONE = "done.json"
LOCK = "strandcap.lock"
HASH_LIMIT = 4 << 20  # done.json records the sha256 of output files up to this size (bytes)


# --------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """Base of everything a run yields. ``stage`` is the stage name ('' for pipeline-level)."""

    stage: str


@dataclass(frozen=True)
class StageStarted(Event):
    """A stage begins (``cached=False``) or is found finished on disk (``cached=True``)."""

    index: int
    count: int
    cached: bool
    key: str


@dataclass(frozen=True)
class Progress(Event):
    """``done`` of ``total`` units of work; ``eta_s`` estimated seconds left in this stage."""

    done: int
    total: int
    message: str = ""
    eta_s: float | None = None


@dataclass(frozen=True)
class Loss(Event):
    """Loss terms at an optimisation step, e.g. ``{"total": 0.3, "eikonal": 0.01}``."""

    step: int
    values: Mapping[str, float]


@dataclass(frozen=True)
class Preview(Event):
    """A detached CPU snapshot for display.

    ``kind`` names the payload: ``"image"`` (RGB uint8 (H, W, 3) numpy array), ``"strands"``
    (float32 (N, L, 3) numpy array, metres, head frame), ``"mesh"`` (dict with ``vertices``
    (V, 3) float32 and ``faces`` (F, 3) int32). Payloads are never tensors that a stage keeps
    mutating.
    """

    kind: str
    data: Any
    label: str = ""


@dataclass(frozen=True)
class Log(Event):
    """A line for the user: a warning about input quality, a note about what was skipped."""

    message: str
    level: str = "info"


@dataclass(frozen=True)
class StageFinished(Event):
    """A stage's output is on disk at ``path`` (``cached=True``: it was already there)."""

    key: str
    path: Path
    cached: bool
    wall_s: float
    summary: Mapping[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Cancellation
# --------------------------------------------------------------------------------------------


class CancelToken:
    """Cooperative cancel and pause, shared between the thread that runs and the one that asks.

    ``cancel()`` makes the next :meth:`check` raise :class:`Cancelled`; ``pause()`` makes
    :meth:`check` block until ``resume()`` or ``cancel()``.
    """

    def __init__(self) -> None:
        self._cancel = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def cancel(self) -> None:
        self._cancel.set()
        self._running.set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if cancelled; block while paused."""
        while not self._running.wait(0.1):
            pass
        if self._cancel.is_set():
            raise Cancelled("cancelled by the user; finished stages are kept and a re-run resumes")


# --------------------------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------------------------


def option(default: Any, help: str, *, unit: str = "", range: tuple | None = None,
           choices: tuple | None = None, affects_output: bool = True) -> Any:
    """A documented config field: ``help`` (what it does), ``unit``, allowed ``range`` or
    ``choices``, and whether it changes the stage's output (and so its cache key)."""
    return field(default=default, metadata={
        "help": help, "unit": unit, "range": range, "choices": choices,
        "affects_output": affects_output})


def _check_value(cls: type, f: dataclasses.Field, value: Any) -> Any:
    hint = typing.get_type_hints(cls)[f.name]
    origin = typing.get_origin(hint)
    allowed = typing.get_args(hint) if origin in (typing.Union, types.UnionType) else (hint,)
    name = f"{cls.__name__}.{f.name}"
    if value is None and type(None) in allowed:
        return None
    ok = False
    for t in allowed:
        base = typing.get_origin(t) or t
        if base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            value, ok = float(value), True
        elif base is tuple and isinstance(value, (list, tuple)):
            value, ok = tuple(value), True
        elif isinstance(base, type) and isinstance(value, base) and not (
                base is int and isinstance(value, bool)):
            ok = True
        if ok:
            break
    if not ok:
        raise ConfigError(f"{name} must be {hint}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{name} = {value!r}: must be a finite number (not NaN or infinity)")
    rng = f.metadata.get("range")
    if rng is not None and isinstance(value, (int, float)):
        lo, hi = rng
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ConfigError(f"{name} = {value!r} is outside its range [{lo}, {hi}]")
    choices = f.metadata.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{name} = {value!r} is not one of {list(choices)}")
    return value


def config_from_dict(cls: type, values: Mapping[str, Any] | None = None, base: Any = None) -> Any:
    """Build a frozen config of type ``cls`` from ``base`` (or defaults) updated with ``values``.

    Raises:
        ConfigError: on an unknown field, a value of the wrong type or out of range.
    """
    values = dict(values or {})
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} field(s): {', '.join(unknown)}; "
                          f"known: {', '.join(known)}")
    start = base if base is not None else cls()
    checked = {k: _check_value(cls, known[k], v) for k, v in values.items()}
    cfg = dataclasses.replace(start, **checked)
    for f in dataclasses.fields(cfg):  # defaults are validated too
        _check_value(cls, f, getattr(cfg, f.name))
    return cfg


def config_to_dict(cfg: Any, output_only: bool = False) -> dict[str, Any]:
    """Plain JSON-able dict of a config (``output_only``: only fields that affect the output)."""
    out = {}
    for f in dataclasses.fields(cfg):
        if output_only and not f.metadata.get("affects_output", True):
            continue
        v = getattr(cfg, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


# --------------------------------------------------------------------------------------------
# Stages
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Artifact:
    """A finished stage output: ``path`` is ``cache/<stage>/<key>/``; ``done`` is its done.json."""

    stage: str
    key: str
    path: Path
    done: Mapping[str, Any]


class StageContext:
    """What a running stage gets besides its config and inputs.

    Attributes:
        project: the capture project.
        out_dir: the temporary folder the stage writes into (renamed into place when it ends).
        stage: the stage name.
        device: torch device string chosen for the run ("cpu", "cuda", "mps").
    """

    def __init__(self, project: "Project", stage: str, out_dir: Path, cancel: CancelToken,
                 device: str = "cpu") -> None:
        self.project = project
        self.stage = stage
        self.out_dir = out_dir
        self.device = device
        self._cancel = cancel
        self._t0 = time.monotonic()

    def check(self) -> None:
        """Raise :class:`Cancelled` if the user cancelled; block while paused."""
        self._cancel.check()

    def progress(self, done: int, total: int, message: str = "") -> Progress:
        """A :class:`Progress` event with an ETA extrapolated from this stage's elapsed time."""
        elapsed = time.monotonic() - self._t0
        eta = elapsed * (total - done) / done if 0 < done <= total else None
        return Progress(self.stage, done, total, message, eta)

    def loss(self, step: int, values: Mapping[str, float]) -> Loss:
        return Loss(self.stage, step, {k: float(v) for k, v in values.items()})

    def preview(self, kind: str, data: Any, label: str = "") -> Preview:
        return Preview(self.stage, kind, data, label)

    def log(self, message: str, level: str = "info") -> Log:
        return Log(self.stage, message, level)


RunFn = Callable[[Any, Mapping[str, Artifact], StageContext], Iterator[Event]]
FingerprintFn = Callable[["Project", Any], Any]


@dataclass(frozen=True)
class Stage:
    """A node of the stage graph.

    Attributes:
        name: folder name under ``cache/`` and the key in configs ("keyframes", "masks", ...).
        version: bumped whenever the algorithm changes its output.
        config_type: frozen dataclass of the stage's options (fields made with :func:`option`).
        inputs: names of the upstream stages whose artifacts ``run`` reads.
        run: generator ``run(config, inputs, ctx)`` yielding events; it may ``return`` a small
            JSON-able summary dict that is stored in ``done.json``.
        fingerprint: JSON-able description of project inputs the stage reads directly (source
            video hash, user mask edits); part of the cache key.
        title: human name for progress bars and the app's stage list.
        presets: per preset name ("preview", "standard", "high"), the config values that differ
            from the dataclass defaults (the defaults are the standard preset).
    """

    name: str
    version: int
    config_type: type
    inputs: tuple[str, ...]
    run: RunFn
    fingerprint: FingerprintFn | None = None
    title: str = ""
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def stage_key(stage: Stage, config: Any, input_keys: Mapping[str, str], fingerprint: Any) -> str:
    """Cache key of a stage: 16 hex digits of sha256 over name, version, config, inputs."""
    return _hash({"stage": stage.name, "version": stage.version,
                  "config": config_to_dict(config, output_only=True),
                  "inputs": dict(sorted(input_keys.items())), "fingerprint": fingerprint})


# --------------------------------------------------------------------------------------------
# Project folder
# --------------------------------------------------------------------------------------------



def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (errs on the side of "alive")."""
    if pid <= 0:
        return False
    if sys.platform == "win32":  # os.kill would terminate the process on Windows
        import ctypes

        kernel32 = ctypes.windll.kernel32
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return kernel32.GetLastError() == 5  # access denied: it exists
        try:
            code = ctypes.c_ulong()
            if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
                return True
            return code.value == 259  # STILL_ACTIVE
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return True
    return True


_held_lock = threading.Lock()
_held: dict[str, list] = {}  # lock path -> [thread id, depth, token] of locks this process holds


def _describe_holder(info: Mapping[str, Any]) -> str:
    try:
        since = datetime.datetime.fromtimestamp(float(info.get("started", 0))).strftime(
            "%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError, OverflowError, OSError):
        since = "an unknown time"
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')}, since {since}"


@contextlib.contextmanager
def project_lock(root: Path | str) -> Iterator[None]:
    """Hold the lock of the project at ``root`` for the ``with`` body.

    The lock is the file ``<root>/strandcap.lock`` holding JSON ``{pid, host, started, token}``,
    created atomically (``O_CREAT | O_EXCL``) and removed when the body ends. The same thread
    may nest it (a command that imports a source and then runs holds it once). A lock whose
    process is gone (same host, pid not running) is stale and taken over; a lock held by a live
    process, another thread of this process, or another host is not.

    Raises:
        ProjectBusy: another run holds the lock (the message names its pid and start time).
        OSError: the lock file cannot be created (read-only folder, full disk).
    """
    path = Path(root).resolve() / LOCK
    key = str(path)
    me = threading.get_ident()
    with _held_lock:
        held = _held.get(key)
        if held is not None and held[0] == me:
            held[1] += 1
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield
        finally:
            with _held_lock:
                _held[key][1] -= 1
        return
    if held is not None:
        raise ProjectBusy(f"{path.parent}: project is busy: another run in this program holds "
                          f"{LOCK}; wait for it to finish or cancel it")
    token = uuid.uuid4().hex
    info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
            "token": token}
    for _attempt in range(20):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read_lock(path)
            if holder is None:  # being written right now, or a crash left it empty
                time.sleep(0.05)
                if _attempt < 10:
                    continue
                holder = {}
            if not _lock_is_stale(holder):
                raise ProjectBusy(
                    f"{path.parent}: project is busy: another strandcap run ("
                    f"{_describe_holder(holder)}) holds {LOCK}; wait for it to finish, or "
                    f"delete {path} if no run is going on") from None
            _take_over(path, holder)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(info, fh)
        break
    else:
        raise ProjectBusy(f"{path.parent}: project is busy: could not take {LOCK} "
                          "(several runs are starting at once)")
    with _held_lock:
        _held[key] = [me, 0, token]
    try:
        yield
    finally:
        with _held_lock:
            _held.pop(key, None)
        if (_read_lock(path) or {}).get("token") == token:
            with contextlib.suppress(OSError):
                path.unlink()


def _read_lock(path: Path) -> dict | None:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return info if isinstance(info, dict) else {}
    except FileNotFoundError:
        return {"missing": True}
    except (OSError, ValueError):
        return None


def _lock_is_stale(holder: Mapping[str, Any]) -> bool:
    if holder.get("missing"):
        return True  # removed meanwhile: try again
    pid, host = holder.get("pid"), holder.get("host")
    if not isinstance(pid, int) or host is None:
        return True  # empty or broken: a run that crashed while writing it
    if host != socket.gethostname():
        return False  # cannot tell whether a process on another machine runs
    if pid == os.getpid():
        return True  # this process holds no such lock (see _held): a leftover
    return not _pid_alive(pid)


def _take_over(path: Path, holder: Mapping[str, Any]) -> None:
    """Move a stale lock out of the way (a rename: of two runs taking it over, one wins)."""
    if holder.get("missing"):
        return
    aside = path.with_name(f".{LOCK}.{uuid.uuid4().hex[:8]}.stale")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return
    moved = _read_lock(aside)
    if moved and not moved.get("missing") and moved.get("token") != holder.get("token"):
        # a live run took the stale lock over between our read and our rename: give it back
        with contextlib.suppress(OSError):
            os.link(aside, path)
    with contextlib.suppress(OSError):
        aside.unlink()


class Project:
    """A capture project folder.

    Layout::

        project.json          manifest: schema_version, source, pipeline config, user choices
        input/                the imported video or image folder (copied, so the project stands alone)
        edits/masks/          user-corrected hair masks, <frame name>.png (uint8, 255 = hair)
        cache/<stage>/<key>/  stage outputs, finished when done.json exists

    Raises:
        ProjectError: when ``root`` is not a project (``open``), or its schema is newer.
    """

    def __init__(self, root: Path, manifest: dict) -> None:
        self.root = Path(root).resolve()
        self.manifest = manifest

    # -- creation and loading ---------------------------------------------------------------
    @classmethod
    def open(cls, root: Path | str) -> "Project":
        root = Path(root)
        path = root / MANIFEST
        if not path.is_file():
            raise ProjectError(f"{root}: not a Strandcap project (no {MANIFEST}); "
                               "create one with `strandcap preprocess VIDEO --project DIR`")
        try:
            manifest = read_json(path)
        except (OSError, ValueError) as exc:
            raise ProjectError(f"{path}: unreadable project manifest ({exc})") from exc
        version = manifest.get("schema_version")
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise ProjectError(f"{path}: schema_version {version!r} is newer than this Strandcap "
                               f"understands ({SCHEMA_VERSION}); update Strandcap")
        return cls(root, manifest)

    @classmethod
    def open_or_create(cls, root: Path | str) -> "Project":
        """Open the project at ``root``, or create it when ``root`` is missing or empty.

        Raises:
            ProjectError: ``root`` is a file, or a non-empty folder that is not a project.
        """
        root = Path(root)
        if (root / MANIFEST).is_file():
            return cls.open(root)
        if root.exists() and not root.is_dir():
            raise ProjectError(f"{root}: is a file, not a project folder")
        if root.is_dir() and any(root.iterdir()):
            raise ProjectError(f"{root}: folder is not empty and is not a Strandcap project; "
                               "choose a new or empty folder")
        root.mkdir(parents=True, exist_ok=True)
        project = cls(root, {"schema_version": SCHEMA_VERSION, "created": time.time(),
                             "source": None, "config": {}, "excluded_frames": []})
        project.save()
        return project

    def save(self) -> None:
        """Write ``project.json`` atomically.

        Raises:
            OSError: read-only folder or full disk (``filename`` is the manifest's path).
        """
        write_json_atomic(self.root / MANIFEST, self.manifest)

    def lock(self) -> contextlib.AbstractContextManager:
        """The project's lock (:func:`project_lock`): held by every command that writes into the
        project (runs, imports); read-only ones (status, export) do not take it.

        Raises:
            ProjectBusy: another run holds it.
        """
        return project_lock(self.root)

    # -- folders --------------------------------------------------------------------------------
    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def input_dir(self) -> Path:
        return self.root / "input"

    @property
    def mask_edits_dir(self) -> Path:
        return self.root / "edits" / "masks"

    # -- source ---------------------------------------------------------------------------------
    def import_source(self, source: Path | str) -> Path:
        """Copy a video file or an image folder into ``input/`` and record its content hash.

        Re-importing identical content is a no-op; a different source is copied beside the
        old one (old cached results stay on disk and are reused if the old source comes back).

        The manifest keeps the user's file name (``source.name``) for messages, so errors name
        ``clip.mp4`` rather than the project's copy ``input/43f95872-clip.mp4``.

        Returns: the path of the copy inside the project.
        Raises:
            InputError: ``source`` does not exist.
            ProjectBusy: another run holds the project's lock.
            OSError: the copy failed (full disk: ``filename`` names the user's file).
        """
        with self.lock():
            return self._import_source(source)

    def _import_source(self, source: Path | str) -> Path:
        src = Path(source)
        if not src.exists():
            raise InputError(f"{src}: no such file or folder")
        if src.is_dir():
            files = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise InputError(f"{src}: folder has no images ({', '.join(IMAGE_SUFFIXES)})")
            digest = _hash([(p.name, file_sha256(p)) for p in files])
        else:
            files = [src]
            digest = file_sha256(src)
        current = self.manifest.get("source") or {}
        if current.get("sha256") == digest and (self.root / current["path"]).exists():
            return self.root / current["path"]
        self.input_dir.mkdir(parents=True, exist_ok=True)
        dest = self.input_dir / f"{digest[:8]}-{src.name}"
        if not dest.exists():
            tmp = self.input_dir / f".tmp-{uuid.uuid4().hex[:8]}"
            try:
                if src.is_dir():
                    tmp.mkdir()
                    for p in files:
                        shutil.copy2(p, tmp / p.name)
                else:
                    shutil.copy2(src, tmp)
                os.replace(tmp, dest)
            except OSError as exc:
                raise OSError(exc.errno, f"cannot copy {src.name} into the project "
                              f"({exc.strerror or exc})", str(src)) from exc
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
        self.manifest["source"] = {"path": dest.relative_to(self.root).as_posix(),
                                   "original": str(src.resolve()), "name": src.name,
                                   "sha256": digest,
                                   "kind": "images" if src.is_dir() else "video"}
        self.save()
        return dest

    @contextlib.contextmanager
    def trying_source(self, source: Path | str) -> Iterator[Path]:
        """Import ``source`` for a run; if the run raises :class:`InputError` (no face, too
        short, unreadable), put the previous manifest back and delete the new copy, so a bad
        input leaves the project exactly as it was. Cancellation and other errors keep the new
        source (a re-run resumes with it). The project's lock is held for the whole ``with``.

        Raises:
            ProjectBusy: another run holds the project; InputError, OSError: as
            :meth:`import_source`.
        """
        with self.lock():
            previous = copy.deepcopy(self.manifest)
            existed = ({p.name for p in self.input_dir.iterdir()} if self.input_dir.is_dir()
                       else set())
            dest = self.import_source(source)
            try:
                yield dest
            except InputError:
                self.manifest = previous
                self.save()
                if dest.name not in existed and dest.exists():
                    shutil.rmtree(dest) if dest.is_dir() else dest.unlink()
                raise

    @property
    def source_name(self) -> str:
        """The user's name of the source (``clip.mp4``), for messages; '' when there is none."""
        src = self.manifest.get("source") or {}
        if src.get("name"):
            return str(src["name"])
        if src.get("original"):
            return Path(src["original"]).name
        name = Path(src.get("path", "")).name
        head, sep, rest = name.partition("-")  # the copy is <8 hex digits>-<name>
        return rest if sep and len(head) == 8 else name

    @property
    def source_path(self) -> Path:
        src = self.manifest.get("source")
        if not src:
            raise InputError(f"{self.root}: project has no input video or images yet")
        return self.root / src["path"]

    def source_fingerprint(self) -> str:
        src = self.manifest.get("source") or {}
        return src.get("sha256", "")

    def mask_edits_fingerprint(self) -> str:
        d = self.mask_edits_dir
        files = sorted(d.glob("*.png")) if d.is_dir() else []
        return _hash([(p.name, file_sha256(p)) for p in files])

    # -- artifacts ------------------------------------------------------------------------------
    def artifact(self, stage: str, key: str) -> Artifact | None:
        """The finished artifact ``cache/<stage>/<key>``, or None if it is not finished (or
        its files no longer match done.json, see :meth:`check_artifact`)."""
        return self.check_artifact(stage, key)[0]

    def check_artifact(self, stage: str, key: str) -> tuple[Artifact | None, str]:
        """``(artifact, "")`` when ``cache/<stage>/<key>`` is finished and its output files
        have the sizes recorded in done.json; ``(None, problem)`` when done.json is unreadable
        or a file is missing or has another size (a corrupt cache, recomputed by the next run);
        ``(None, "")`` when the stage is simply not finished. A done.json without a file list
        (written by an older Strandcap) is taken as finished, unverified."""
        path = self.cache_dir / stage / key
        done = path / DONE
        if not done.is_file():
            return None, ""
        try:
            info = read_json(done)
            if not isinstance(info, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            return None, f"{DONE} is unreadable ({exc})"
        for entry in info.get("files") or []:
            try:
                rel, size = entry["path"], int(entry["size"])
                actual = (path / rel).stat().st_size
            except FileNotFoundError:
                return None, f"{rel} is missing"
            except (KeyError, TypeError, ValueError, OSError) as exc:
                return None, f"{DONE} has a broken file list ({exc})"
            if actual != size:
                return None, f"{rel} has {actual} bytes, {size} were written"
        return Artifact(stage, key, path, info), ""


# --------------------------------------------------------------------------------------------
# The pipeline config (one config system for CLI, app and benchmarks)
# --------------------------------------------------------------------------------------------


class PipelineConfig:
    """Per-stage configs of a graph, built from defaults, a preset and overrides.

    ``overrides`` maps stage name to a dict of field values, e.g.
    ``{"keyframes": {"max_keyframes": 12}}``. A preset's values come from each stage's
    ``presets``; overrides win over the preset.
    """

    def __init__(self, stages: list[Stage], preset: str = "standard",
                 overrides: Mapping[str, Mapping[str, Any]] | None = None,
                 device: str = "auto") -> None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        self.preset = preset
        self.device = resolve_device(device)
        self.overrides = {k: dict(v) for k, v in (overrides or {}).items()}
        names = {s.name for s in stages}
        unknown = sorted(set(self.overrides) - names)
        if unknown:
            raise ConfigError(f"config for unknown stage(s): {', '.join(unknown)}")
        self.configs = {}
        for s in stages:
            merged = dict(s.presets.get(preset, {}))
            merged.update(self.overrides.get(s.name, {}))
            self.configs[s.name] = config_from_dict(s.config_type, merged)

    def __getitem__(self, stage: str) -> Any:
        return self.configs[stage]

    def to_dict(self) -> dict:
        return {"preset": self.preset, "overrides": self.overrides}


PRESETS = ("preview", "standard", "high")


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` picks CUDA when present, then Apple MPS, else CPU.

    Raises:
        ConfigError: an explicitly requested device that this machine lacks.
    """
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available to this torch build")
    if device not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unknown device {device!r}; choose auto, cpu, cuda or mps")
    return device


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageStatus:
    name: str
    title: str
    key: str
    finished: bool


def _plan(project: Project, stages: list[Stage], config: PipelineConfig) -> list[tuple[Stage, str]]:
    keys: dict[str, str] = {}
    plan = []
    for s in stages:
        missing = [i for i in s.inputs if i not in keys]
        if missing:
            raise ConfigError(f"stage {s.name} needs {', '.join(missing)} earlier in the graph")
        cfg = config[s.name]
        fp = s.fingerprint(project, cfg) if s.fingerprint else None
        keys[s.name] = stage_key(s, cfg, {i: keys[i] for i in s.inputs}, fp)
        plan.append((s, keys[s.name]))
    return plan


def stage_status(project: Project, stages: list[Stage], config: PipelineConfig) -> list[StageStatus]:
    """Which stages of the graph are finished for this config, read from disk."""
    return [StageStatus(s.name, s.title or s.name, key, project.artifact(s.name, key) is not None)
            for s, key in _plan(project, stages, config)]


def resolve_artifact(project: Project, stages: list[Stage], config: PipelineConfig,
                     name: str) -> Artifact | None:
    """The finished artifact of stage ``name`` for this config, or None."""
    for s, key in _plan(project, stages, config):
        if s.name == name:
            return project.artifact(name, key)
    raise ConfigError(f"no stage named {name!r}")


def run_pipeline(project: Project, stages: list[Stage], config: PipelineConfig,
                 cancel: CancelToken | None = None) -> Iterator[Event]:
    """Run ``stages`` in order, reusing finished outputs; yield every event.

    Each stage that is not finished on disk runs in a temporary folder that is renamed into
    place when it ends; ``done.json`` (stage, version, key, config, input keys, wall time,
    summary, and the list of output files with their sizes, and sha256 for files up to
    ``HASH_LIMIT``) is written last. A finished stage whose files no longer match that list (a
    truncated or deleted file) is recomputed, with a warning :class:`Log`. On an exception or
    cancellation the temporary folder is removed and the exception propagates; earlier stages
    stay finished.

    The run holds the project's lock (:meth:`Project.lock`) from its first event to its end.
    The config is saved into ``project.json`` only when the run finishes or is cancelled (a
    re-run resumes it); a run that fails leaves the manifest as it was.

    Raises:
        ProjectBusy: another run holds the project.
        Cancelled: when ``cancel`` was cancelled.
        StrandcapError: whatever a stage raises for bad input.
        OSError: a full disk or a read-only project folder.
    """
    cancel = cancel or CancelToken()
    plan = _plan(project, stages, config)
    with project.lock():
        try:
            yield from _run_plan(project, stages, config, plan, cancel)
        except Cancelled:
            _save_config(project, config, stages)
            raise
        _save_config(project, config, stages)


def _save_config(project: Project, config: PipelineConfig, stages: list[Stage]) -> None:
    """Save the run's preset and overrides into ``project.json``. A run of part of the graph
    (``--until``, the app's "Run preprocessing") keeps the saved overrides of the stages it
    did not run (a cameras mode chosen before preprocessing survives it)."""
    new = config.to_dict()
    ran = {s.name for s in stages}
    kept = {k: v for k, v in ((project.manifest.get("config") or {}).get("overrides") or {}
                              ).items() if k not in ran}
    if kept:
        new = dict(new, overrides={**kept, **(new.get("overrides") or {})})
    if project.manifest.get("config") != new:
        project.manifest["config"] = new
        project.save()


def _output_files(folder: Path) -> list[dict]:
    files = []
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != DONE:
            entry = {"path": p.relative_to(folder).as_posix(), "size": p.stat().st_size}
            if entry["size"] <= HASH_LIMIT:
                entry["sha256"] = file_sha256(p)
            files.append(entry)
    return files


def _run_plan(project: Project, stages: list[Stage], config: PipelineConfig,
              plan: list[tuple[Stage, str]], cancel: CancelToken) -> Iterator[Event]:
    artifacts: dict[str, Artifact] = {}
    for index, (stage, key) in enumerate(plan):
        cancel.check()
        stage_dir = project.cache_dir / stage.name
        final = stage_dir / key
        found, problem = project.check_artifact(stage.name, key)
        if problem:
            yield Log(stage.name, f"the cached result {final.relative_to(project.root).as_posix()}"
                      f" was corrupt ({problem}); recomputing it", "warning")
        if found is not None:
            artifacts[stage.name] = found
            yield StageStarted(stage.name, index, len(plan), True, key)
            yield StageFinished(stage.name, key, final, True, 0.0, found.done.get("summary", {}))
            continue
        stage_dir.mkdir(parents=True, exist_ok=True)
        for stale in stage_dir.glob(f".tmp-{key}-*"):  # left by a killed run
            shutil.rmtree(stale, ignore_errors=True)
        if final.exists():  # renamed but done.json never written: not finished
            shutil.rmtree(final)
        tmp = stage_dir / f".tmp-{key}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        yield StageStarted(stage.name, index, len(plan), False, key)
        t0 = time.monotonic()
        ctx = StageContext(project, stage.name, tmp, cancel, config.device)
        gen = stage.run(config[stage.name], {i: artifacts[i] for i in stage.inputs}, ctx)
        summary: Any = None
        try:
            while True:
                try:
                    event = next(gen)
                except StopIteration as stop:
                    summary = stop.value
                    break
                yield event
                cancel.check()
        except BaseException:
            gen.close()
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        os.replace(tmp, final)
        wall = time.monotonic() - t0
        done = {"stage": stage.name, "version": stage.version, "key": key,
                "config": config_to_dict(config[stage.name]),
                "inputs": {i: artifacts[i].key for i in stage.inputs},
                "finished_at": time.time(), "wall_s": wall, "device": config.device,
                "summary": summary or {}, "files": _output_files(final)}
        write_json_atomic(final / DONE, done)
        artifacts[stage.name] = Artifact(stage.name, key, final, done)
        yield StageFinished(stage.name, key, final, False, wall, summary or {})
