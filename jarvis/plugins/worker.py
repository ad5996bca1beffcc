"""One thread with an event loop of its own for each plugin.

Everything a plugin does runs there: matching a message, ``handle``, ``start``, ``stop`` and the tasks
it schedules (the reminders). A plugin that blocks (``time.sleep`` in ``async def handle``, a slow
library call) holds up its own thread only; the app's loop waits for it with a timeout and carries on.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar('T')

CLOSE_WAIT_S = 2.0  # how long closing waits for a thread before leaving it to end on its own


class WorkerTimeout(Exception):
    """The plugin did not finish within its timeout."""


class PluginWorker:
    def __init__(self, name: str) -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._overdue: list[threading.Event] = []  # calls that ran past their timeout and have not ended yet

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def stuck(self) -> bool:
        """Whether a call that timed out is still running (the thread is blocked, or ignores cancellation)."""
        self._overdue = [ended for ended in self._overdue if not ended.is_set()]
        return bool(self._overdue)

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or self._loop.is_closed():
            loop = asyncio.new_event_loop()  # created here, so callbacks queue up before the thread runs it
            thread = threading.Thread(target=self._serve, args=(loop,), name=f'plugin:{self.name}', daemon=True)
            self._loop, self._thread = loop, thread
            thread.start()
        return self._loop

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.wait(tasks, timeout=CLOSE_WAIT_S))
            loop.run_until_complete(loop.shutdown_asyncgens())
        except Exception:  # a plugin's task that refuses to end must not leave a traceback on stderr
            log.exception('plugin worker did not close cleanly')
        finally:
            loop.close()  # does not wait for the plugin's to_thread work (its executor shuts down without waiting)

    async def call(self, make: Callable[[], Awaitable[T]], timeout: float) -> T:
        """Run ``make()`` on the plugin's loop and wait at most ``timeout`` seconds for its result.

        Raises WorkerTimeout (the plugin's coroutine is cancelled, and the worker counts as stuck until
        it really ends) or whatever the plugin raised.
        """
        loop = self._ensure_loop()
        result: concurrent.futures.Future[T] = concurrent.futures.Future()
        call = _Call(ended=threading.Event())

        def spawn() -> None:  # on the plugin's loop, like cancel(): the two never overlap
            if call.cancelled:
                call.ended.set()
                return
            try:
                call.task = loop.create_task(make())  # type: ignore[arg-type]
            except BaseException as error:  # make() itself raised (e.g. a plugin's match)
                call.ended.set()
                _hand_over(result, error=error)
                return
            call.task.add_done_callback(lambda task: _settle(result, task, call.ended))

        def cancel() -> None:
            call.cancelled = True
            if call.task is not None:
                call.task.cancel()

        loop.call_soon_threadsafe(spawn)
        waiter = asyncio.wrap_future(result)
        try:
            done, _ = await asyncio.wait({waiter}, timeout=timeout)
        except asyncio.CancelledError:  # the caller gave up: so does the plugin
            result.cancel()
            _call_soon(loop, cancel)
            raise
        if not done:
            self._overdue.append(call.ended)
            result.cancel()
            _call_soon(loop, cancel)
            raise WorkerTimeout(timeout)
        return waiter.result()

    async def close(self) -> None:
        """Stop the loop (its tasks are cancelled) and wait a little for the thread; a blocked one is left
        to end on its own (it is a daemon thread)."""
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        self._overdue = []
        if loop is None or thread is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:  # closed meanwhile
            return
        await asyncio.to_thread(thread.join, CLOSE_WAIT_S + 1)
        if thread.is_alive():
            log.warning('plugin %s: its thread is still busy; it is left to finish on its own', self.name)


@dataclass
class _Call:
    ended: threading.Event  # set when the plugin's coroutine has really finished (or never started)
    task: asyncio.Task | None = None
    cancelled: bool = False


def _settle(result: concurrent.futures.Future, task: asyncio.Task, ended: threading.Event) -> None:
    """Hand the task's outcome to the waiting app (unless it gave up) and mark the call as ended."""
    ended.set()
    if task.cancelled():
        result.cancel()
    elif (error := task.exception()) is not None:  # retrieved even when nobody waits: no "never retrieved"
        _hand_over(result, error=error)
    else:
        _hand_over(result, value=task.result())


def _hand_over(result: concurrent.futures.Future, value: object = None, error: BaseException | None = None) -> None:
    try:
        if error is not None:
            result.set_exception(error)
        else:
            result.set_result(value)
    except concurrent.futures.InvalidStateError:  # the app stopped waiting meanwhile
        pass


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    try:
        loop.call_soon_threadsafe(callback)
    except RuntimeError:  # the worker was closed meanwhile: nothing left to cancel
        pass
