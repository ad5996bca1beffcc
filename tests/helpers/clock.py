"""A clock that stands still until a test moves it: minutes of keep-alive pass in no time."""
from __future__ import annotations

import asyncio


class ManualClock:
    """The ``Clock`` of ``jarvis.models.keep_alive``: ``now()`` and ``sleep()`` follow ``advance()`` only."""

    def __init__(self) -> None:
        self._now = 1000.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self._now + seconds, waiter)
        self._sleepers.append(entry)
        try:
            await waiter
        finally:
            self._sleepers.remove(entry)

    @property
    def sleeping(self) -> int:
        """How many sleeps are waiting for the clock."""
        return len(self._sleepers)

    async def advance(self, seconds: float) -> None:
        """Move the clock on; every sleep that has run its time returns, and its task gets to run."""
        self._now += seconds
        for deadline, waiter in list(self._sleepers):
            if deadline <= self._now and not waiter.done():
                waiter.set_result(None)
        for _ in range(3):
            await asyncio.sleep(0)
