"""The one worker of the app: runs any engine job (a generator of events) on a thread.

DESIGN.md convention 4, built on superqt's generator worker
(:class:`superqt.utils.GeneratorWorker`, the ``thread_worker`` pattern of napari): the job is a
callable ``job(token) -> Iterator[event]`` that is called *inside* a thread of Qt's global
thread pool; superqt re-emits what the thread yields as its ``yielded`` signal, which
:class:`JobWorker` (a QObject of the GUI thread) turns into one typed signal per kind of event.
Slots connected to these signals run in the GUI thread.

Events are dispatched by type: the engine's :mod:`engine.pipeline` events go to their own
signals, anything else (for example the capture page's frames) to :attr:`JobWorker.item`.
:class:`engine.pipeline.Preview` events are throttled per ``(stage, kind)`` to at most
``preview_rate`` per second, in the worker thread (a slow GUI never queues stale snapshots);
the newest snapshot always wins and the last one is delivered before the job ends.
Cancellation and pause are cooperative, through :class:`engine.pipeline.CancelToken`: the
pipeline checks the token after every event, so a run stops at its next event and keeps every
stage that already finished.

Errors: a :class:`engine.errors.Cancelled` ends the job with :attr:`cancelled`; another
:class:`engine.errors.StrandcapError` with :attr:`failed` (its one-line message, no details);
any other exception with :attr:`failed` (``"TypeName: message"`` and the traceback as details).
The job's exceptions are caught inside the generator superqt runs: superqt itself treats a
``RuntimeError`` out of a generator as a deleted worker and reports nothing, and a failing
stage must always reach the user.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
import traceback
from typing import Any, Callable, Iterator

from PySide6 import QtCore

# superqt reaches Qt through qtpy, which takes the first binding it finds installed (PyQt5
# first): name ours, so that a PyQt in the same environment cannot mix its objects with ours.
os.environ.setdefault("QT_API", "pyside6")
from superqt.utils import GeneratorWorker  # noqa: E402

from engine.errors import Cancelled, StrandcapError  # noqa: E402
from engine.pipeline import (CancelToken, Log, Loss, Preview, Progress,  # noqa: E402
                             StageFinished, StageStarted)

# torch's optimisers import torch._dynamo the first time one is built, and with the CUDA wheels
# of torch that import loads Triton and the LLVM inside it. Done first in a worker thread after
# the 3D view had made its OpenGL context (Mesa's llvmpipe loads the system's LLVM), it killed
# the app with a segmentation fault (Python 3.12, torch 2.13.0+cu130, Xvfb; the head fit's Adam
# in the cameras stage). Imported here, on the GUI thread before any window exists, it does not.
# The CPU wheels carry no Triton: nothing to do there (the import costs about a second).
if importlib.util.find_spec("triton") is not None:
    import torch._dynamo  # noqa: F401,E402

Job = Callable[[CancelToken], Iterator[Any]]

_SIGNAL_OF = ((Progress, "progress"), (Loss, "loss"), (StageStarted, "stageStarted"),
              (Log, "log"))


class JobWorker(QtCore.QObject):
    """Runs one job generator on a worker thread and re-emits its events as signals.

    Args:
        job: ``job(token)`` returning an iterator of events; called in the worker thread.
        preview_rate: most :class:`Preview` signals per second per (stage, kind); 0 = no limit.
        parent: Qt parent (a GUI-thread object).

    Signals are emitted in the GUI thread, in the order the job yielded the events; then one of
    ``succeeded`` / ``cancelled`` / ``failed``, then ``finished``.
    """

    stageStarted = QtCore.Signal(object)    # engine.pipeline.StageStarted
    progress = QtCore.Signal(object)        # engine.pipeline.Progress
    loss = QtCore.Signal(object)            # engine.pipeline.Loss
    preview = QtCore.Signal(object)         # engine.pipeline.Preview (throttled)
    log = QtCore.Signal(object)             # engine.pipeline.Log
    stageFinished = QtCore.Signal(object)   # engine.pipeline.StageFinished
    item = QtCore.Signal(object)            # any other object a job yields
    succeeded = QtCore.Signal()
    cancelled = QtCore.Signal(str)
    failed = QtCore.Signal(str, str)        # one-line message, details (traceback or "")
    finished = QtCore.Signal()              # after the outcome signal

    def __init__(self, job: Job, preview_rate: float = 4.0,
                 parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._job = job
        self.token = CancelToken()
        self.preview_rate = float(preview_rate)
        self._last_emit: dict[tuple[str, str], float] = {}
        self._pending: dict[tuple[str, str], Preview] = {}
        self._started = False
        self._done = threading.Event()  # set by the worker thread when the job has ended
        self.outcome: str | None = None  # "succeeded" | "cancelled" | "failed" once finished
        self._worker = GeneratorWorker(self._events)
        self._worker.yielded.connect(self._on_yielded)
        self._worker.returned.connect(self._on_returned)

    # -- control (called from the GUI thread) -------------------------------------------------
    def start(self) -> None:
        """Start the job on a thread of Qt's global pool (one more thread when all are busy,
        so a long run never waits behind another worker)."""
        pool = QtCore.QThreadPool.globalInstance()
        if pool.activeThreadCount() >= pool.maxThreadCount():
            pool.setMaxThreadCount(pool.activeThreadCount() + 1)
        self._started = True
        self._worker.start()

    def isRunning(self) -> bool:  # noqa: N802 - the Qt-style name the pages use
        """Whether the job was started and has not ended yet."""
        return self._started and not self._done.is_set()

    def wait(self, msecs: int | None = None) -> bool:
        """Block until the job has ended (at most ``msecs`` ms; None: no limit). Returns whether
        it has. The outcome signals are queued to the GUI thread and arrive with its next
        event processing."""
        if not self._started:
            return True
        return self._done.wait(None if msecs is None else msecs / 1000)

    def cancel(self) -> None:
        """Ask the job to stop at its next event (also wakes a paused job)."""
        self.token.cancel()

    def pause(self) -> None:
        self.token.pause()

    def resume(self) -> None:
        self.token.resume()

    @property
    def paused(self) -> bool:
        return self.token.paused

    # -- the worker thread ------------------------------------------------------------------
    def _events(self) -> Iterator[tuple[str, tuple]]:
        """The generator superqt runs: the job's events as (signal name, arguments), throttled;
        returns the outcome (name, arguments). Never raises (module docstring)."""
        try:
            try:
                for event in self._job(self.token):
                    yield from self._dispatch(event)
                    yield from self._flush(due_only=True)
            except GeneratorExit:
                raise
            except Cancelled as exc:
                outcome = ("cancelled", (str(exc),))
            except StrandcapError as exc:
                outcome = ("failed", (str(exc), ""))
            except BaseException as exc:  # noqa: BLE001 - every failure must reach the user
                outcome = ("failed", (f"{type(exc).__name__}: {exc}", traceback.format_exc()))
            else:
                outcome = ("succeeded", ())
            yield from self._flush(due_only=False)
            return outcome
        finally:
            self._done.set()

    def _dispatch(self, event: Any) -> Iterator[tuple[str, tuple]]:
        if isinstance(event, Preview):
            yield from self._throttle(event)
            return
        if isinstance(event, StageFinished):
            yield from self._flush(due_only=False)
            yield "stageFinished", (event,)
            return
        for kind, name in _SIGNAL_OF:
            if isinstance(event, kind):
                yield name, (event,)
                return
        yield "item", (event,)

    def _throttle(self, event: Preview) -> Iterator[tuple[str, tuple]]:
        key = (event.stage, event.kind)
        now = time.monotonic()
        interval = 1.0 / self.preview_rate if self.preview_rate > 0 else 0.0
        if now - self._last_emit.get(key, -1e9) >= interval:
            self._pending.pop(key, None)
            self._last_emit[key] = now
            yield "preview", (event,)
        else:
            self._pending[key] = event  # newest wins

    def _flush(self, due_only: bool) -> Iterator[tuple[str, tuple]]:
        if not self._pending:
            return
        now = time.monotonic()
        interval = 1.0 / self.preview_rate if self.preview_rate > 0 else 0.0
        for key in [k for k in self._pending
                    if not due_only or now - self._last_emit.get(k, -1e9) >= interval]:
            self._last_emit[key] = now
            yield "preview", (self._pending.pop(key),)

    # -- the GUI thread -----------------------------------------------------------------------
    @QtCore.Slot(object)
    def _on_yielded(self, signal_args: tuple[str, tuple]) -> None:
        name, args = signal_args
        getattr(self, name).emit(*args)

    @QtCore.Slot(object)
    def _on_returned(self, outcome: tuple[str, tuple]) -> None:
        name, args = outcome
        self.outcome = name
        getattr(self, name).emit(*args)
        self.finished.emit()
