"""Waiting for a simulated user's page to catch up."""
from __future__ import annotations

import asyncio
from collections.abc import Callable


async def eventually(condition: Callable[[], object], timeout: float = 10.0) -> None:
    """Wait until ``condition()`` holds; fail with its own assertion when it never does."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        try:
            if condition():
                return
        except AssertionError:  # user.find() raises while the element is not there yet
            pass
        await asyncio.sleep(0.02)
    assert condition()
