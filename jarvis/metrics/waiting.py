"""Waiting with a timeout in the metrics loops."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable


async def wait_or_timeout(awaitable: Awaitable[object], timeout: float | None) -> None:
    """Wait for ``awaitable`` at most ``timeout`` seconds (None: for ever). Not ``asyncio.wait_for``: on
    Python 3.11 it swallows a cancellation that arrives as the awaitable finishes, and a loop being
    stopped would then carry on and wait for ever."""
    waiter = asyncio.ensure_future(awaitable)
    try:
        await asyncio.wait([waiter], timeout=timeout)
    finally:
        waiter.cancel()
