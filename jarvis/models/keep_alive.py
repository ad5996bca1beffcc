"""Unloading a model after a time without use (what Ollama calls keep_alive).

``KeepAlive`` counts the answers that use the model; once the last one ends it waits out the
keep-alive on a clock and then calls ``expire``. A new use cancels the wait. The clock is injected:
the app uses the monotonic one, the tests a manual one that they move forward.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

log = logging.getLogger(__name__)

FOREVER = -1  # keep-alive setting: never unload by itself


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a clock that never goes back."""

    async def sleep(self, seconds: float) -> None:
        """Return once ``now()`` has moved on by ``seconds``."""


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class KeepAlive:
    """When to unload the model: ``seconds`` after its last use ended (None: never)."""

    def __init__(self, expire: Callable[[], Awaitable[None]], clock: Clock | None = None,
                 seconds: float | None = 600.0) -> None:
        self.clock = clock or MonotonicClock()
        self._expire = expire
        self._seconds = seconds
        self._uses = 0
        self._last_used: float | None = None  # None: no model to unload
        self._timer: asyncio.Task | None = None

    @property
    def in_use(self) -> bool:
        return self._uses > 0

    @property
    def seconds(self) -> float | None:
        return self._seconds

    @property
    def deadline(self) -> float | None:
        """The clock time at which the model unloads, or None (in use, none loaded, or kept forever)."""
        if self._seconds is None or self._last_used is None or self._uses:
            return None
        return self._last_used + self._seconds

    def expired(self) -> bool:
        deadline = self.deadline
        return deadline is not None and self.clock.now() >= deadline

    def started(self) -> None:
        """A model was loaded: it counts as used now (one loaded and never asked unloads too)."""
        self._last_used = self.clock.now()
        self._schedule()

    def stopped(self) -> None:
        """No model is loaded any more: nothing to wait for."""
        self._last_used = None
        self._cancel()

    def begin(self) -> None:
        """An answer starts using the model: it stays loaded until the answer ends."""
        self._uses += 1
        self._cancel()

    def end(self) -> None:
        """An answer let go of the model: the keep-alive starts again from now."""
        self._uses = max(0, self._uses - 1)
        if self._last_used is not None:
            self._last_used = self.clock.now()
        self._schedule()

    def set_seconds(self, seconds: float | None) -> None:
        self._seconds = seconds
        self._schedule()

    def close(self) -> None:
        self._cancel()

    def _schedule(self) -> None:
        self._cancel()
        deadline = self.deadline
        if deadline is not None:
            self._timer = asyncio.get_running_loop().create_task(self._wait(deadline), name='model keep-alive')

    def _cancel(self) -> None:
        if self._timer is not None and not self._timer.done():
            self._timer.cancel()
        self._timer = None

    async def _wait(self, deadline: float) -> None:
        while (left := deadline - self.clock.now()) > 0:
            await self.clock.sleep(left)
        # shielded: an unload is never cancelled halfway (it ends by calling ``stopped``, which
        # cancels this task); ``expire`` checks again, under the manager's lock, that nothing
        # started to use the model meanwhile
        try:
            await asyncio.shield(self._expire())
        except asyncio.CancelledError:
            raise
        except Exception:  # pylint: disable=broad-except  # the model stays; the next use restarts the wait
            log.warning('the model could not be unloaded after its keep-alive', exc_info=True)

