"""Quitting always ends: once the app is asked to quit, the process is gone within a deadline.

On SIGTERM uvicorn stops accepting, waits for the requests still open (``timeout_graceful_shutdown``
bounds that), runs the shutdown handlers, and Python then waits for every worker thread: a model still
computing, a plugin's blocking call, a disk that hangs. Any of them could keep the process alive for
minutes. A watcher thread, told when quitting begins, ends the process with ``os._exit`` if it is
still there at the deadline. Committed data is safe by then: SQLite's WAL keeps every finished
transaction.

The watcher is started beforehand (``prepare``) and a signal handler only sets events: starting a
thread inside a signal handler could deadlock on a lock that the interrupted code holds.
"""
from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)

DEADLINE_S = 10.0
_LAST_WORDS_S = 1.0  # how long the final log line may take (a full pipe must not keep the process)


class _Watcher:
    def __init__(self) -> None:
        self.armed = threading.Event()
        self.now = threading.Event()  # a second SIGTERM: no more waiting
        self.seconds = DEADLINE_S
        self.code = 0
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def prepare(self) -> None:
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name='exit deadline', daemon=True)
                self.thread.start()

    def arm(self, seconds: float, code: int) -> bool:
        """Only plain assignments and Event.set(): safe inside a signal handler once prepared."""
        if self.armed.is_set():
            return False
        self.seconds, self.code = seconds, code
        self.armed.set()
        return True

    def _run(self) -> None:
        self.armed.wait()
        ended_early = self.now.wait(self.seconds)
        _force_exit(self.code, None if ended_early else self.seconds)


_watcher = _Watcher()


def prepare() -> None:
    """Start the watcher thread (idle until armed); call it outside any signal handler."""
    _watcher.prepare()


def arm(seconds: float = DEADLINE_S, *, code: int = 0) -> bool:
    """End the process with ``code`` in ``seconds`` unless it has ended by then; False if already armed."""
    _watcher.prepare()
    return _watcher.arm(seconds, code)


def on_sigterm(first: Callable[[], None]) -> None:
    """Arm the deadline on SIGTERM and call ``first`` (it must only schedule work, e.g. with
    ``loop.call_soon_threadsafe``), then hand the signal to the handler installed now (uvicorn's while
    it serves, which starts its graceful shutdown). A second SIGTERM ends the process at once.

    Call it while the server runs (from a startup handler): uvicorn installs its handlers before the
    startup and puts the earlier ones back when it stops, which removes this one too. Only the main
    thread may install signal handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    _watcher.prepare()
    previous = signal.getsignal(signal.SIGTERM)

    def handle(signum: int, frame: FrameType | None) -> None:
        if not _watcher.arm(DEADLINE_S, 0):
            _watcher.now.set()
            return
        try:
            first()
        except Exception:  # quitting goes on whatever the hook does
            pass
        if callable(previous):
            previous(signum, frame)
        else:  # nobody else handles it: quit as the default action would, with the deadline armed
            sys.exit(0)

    signal.signal(signal.SIGTERM, handle)


class _CancelledAtQuit(logging.Filter):
    """uvicorn logs every request it cancels when the app quits (after ``timeout_graceful_shutdown``) as
    "Exception in ASGI application" with the traceback of a CancelledError. A request that hangs at
    quit time is expected (a client that never sends the rest of its body): one line says it."""

    def filter(self, record: logging.LogRecord) -> bool:
        kind = record.exc_info[0] if record.exc_info else None
        if kind is not None and issubclass(kind, asyncio.CancelledError):
            record.msg, record.args = 'a request that was still open when the app quit was cancelled', ()
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        return True


def quiet_cancelled_requests(logger_name: str = 'uvicorn.error') -> None:
    """One line instead of a traceback for each request cancelled at quit time (idempotent)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, _CancelledAtQuit) for f in logger.filters):
        logger.addFilter(_CancelledAtQuit())


def _force_exit(code: int, seconds: float | None) -> None:
    def last_words() -> None:
        if seconds is not None:
            log.warning('the app did not end within %.0f s of being asked to quit; ending it now', seconds)
        for handler in logging.getLogger().handlers:
            handler.flush()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass

    # in a thread of its own: a logging lock held by a hung thread, or a full pipe, must not keep the process
    words = threading.Thread(target=last_words, name='last words', daemon=True)
    words.start()
    words.join(_LAST_WORDS_S)
    for child in multiprocessing.active_children():  # the native window runs in a child process
        child.terminate()
    os._exit(code)  # pylint: disable=protected-access
