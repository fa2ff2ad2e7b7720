"""The one worker of the app: runs any engine job (a generator of events) in a QThread.

DESIGN.md convention 4. The job is a callable ``job(token) -> Iterator[event]`` that is called
*inside* the worker thread; every event it yields is re-emitted as a Qt signal. Slots connected
to these signals must be methods of QObjects that live in the GUI thread (Qt then queues the
call into the GUI thread); never connect lambdas, which would run in the worker thread.

Events are dispatched by type: the engine's :mod:`engine.pipeline` events go to their own
signals, anything else (for example the capture page's frames) to :attr:`JobWorker.item`.
:class:`engine.pipeline.Preview` events are throttled per ``(stage, kind)`` to at most
``preview_rate`` per second; the newest snapshot always wins and the last one is delivered
before the job ends. Cancellation and pause are cooperative, through
:class:`engine.pipeline.CancelToken`: the pipeline checks the token after every event, so a
run stops at its next event and keeps every stage that already finished.

Errors: a :class:`engine.errors.Cancelled` ends the job with :attr:`cancelled`; another
:class:`engine.errors.StrandcapError` with :attr:`failed` (its one-line message, no details);
any other exception with :attr:`failed` (``"TypeName: message"`` and the traceback as details).
"""

from __future__ import annotations

import importlib.util
import time
import traceback
from typing import Any, Callable, Iterator

from PySide6 import QtCore

from engine.errors import Cancelled, StrandcapError
from engine.pipeline import (CancelToken, Log, Loss, Preview, Progress, StageFinished,
                             StageStarted)

# torch's optimisers import torch._dynamo the first time one is built, and with the CUDA wheels
# of torch that import loads Triton and the LLVM inside it. Done first in a worker thread after
# the 3D view had made its OpenGL context (Mesa's llvmpipe loads the system's LLVM), it killed
# the app with a segmentation fault (Python 3.12, torch 2.13.0+cu130, Xvfb; the head fit's Adam
# in the cameras stage). Imported here, on the GUI thread before any window exists, it does not.
# The CPU wheels carry no Triton: nothing to do there (the import costs about a second).
if importlib.util.find_spec("triton") is not None:
    import torch._dynamo  # noqa: F401,E402

Job = Callable[[CancelToken], Iterator[Any]]


class JobWorker(QtCore.QThread):
    """Runs one job generator in its own thread and re-emits its events as signals.

    Args:
        job: ``job(token)`` returning an iterator of events; called in the worker thread.
        preview_rate: most :class:`Preview` signals per second per (stage, kind); 0 = no limit.
        parent: Qt parent (a GUI-thread object).
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

    def __init__(self, job: Job, preview_rate: float = 4.0,
                 parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._job = job
        self.token = CancelToken()
        self.preview_rate = float(preview_rate)
        self._last_emit: dict[tuple[str, str], float] = {}
        self._pending: dict[tuple[str, str], Preview] = {}
        self.outcome: str | None = None  # "succeeded" | "cancelled" | "failed" once finished

    # -- control (called from the GUI thread) -------------------------------------------------
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

    # -- the thread -------------------------------------------------------------------------
    def run(self) -> None:  # noqa: D401 - Qt override, runs in the worker thread
        try:
            for event in self._job(self.token):
                self._dispatch(event)
                self._flush_due()
        except Cancelled as exc:
            self._flush_all()
            self.outcome = "cancelled"
            self.cancelled.emit(str(exc))
        except StrandcapError as exc:
            self._flush_all()
            self.outcome = "failed"
            self.failed.emit(str(exc), "")
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the user
            self._flush_all()
            self.outcome = "failed"
            self.failed.emit(f"{type(exc).__name__}: {exc}", traceback.format_exc())
        else:
            self._flush_all()
            self.outcome = "succeeded"
            self.succeeded.emit()

    def _dispatch(self, event: Any) -> None:
        if isinstance(event, Preview):
            self._throttle(event)
        elif isinstance(event, Progress):
            self.progress.emit(event)
        elif isinstance(event, Loss):
            self.loss.emit(event)
        elif isinstance(event, StageStarted):
            self.stageStarted.emit(event)
        elif isinstance(event, StageFinished):
            self._flush_all()
            self.stageFinished.emit(event)
        elif isinstance(event, Log):
            self.log.emit(event)
        else:
            self.item.emit(event)

    def _throttle(self, event: Preview) -> None:
        key = (event.stage, event.kind)
        now = time.monotonic()
        interval = 1.0 / self.preview_rate if self.preview_rate > 0 else 0.0
        if now - self._last_emit.get(key, -1e9) >= interval:
            self._pending.pop(key, None)
            self._last_emit[key] = now
            self.preview.emit(event)
        else:
            self._pending[key] = event  # newest wins

    def _flush_due(self) -> None:
        if not self._pending:
            return
        now = time.monotonic()
        interval = 1.0 / self.preview_rate if self.preview_rate > 0 else 0.0
        for key in [k for k in self._pending if now - self._last_emit.get(k, -1e9) >= interval]:
            self._last_emit[key] = now
            self.preview.emit(self._pending.pop(key))

    def _flush_all(self) -> None:
        for key in list(self._pending):
            self._last_emit[key] = time.monotonic()
            self.preview.emit(self._pending.pop(key))
