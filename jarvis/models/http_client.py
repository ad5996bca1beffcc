"""httpx clients for model servers (Ollama, OpenAI-compatible ones), made in a worker thread.

httpx is not imported with the app: with what it pulls in (its command line's console libraries, httpcore)
that takes about 0.15 s here, and each client reads the CA bundle for its TLS context (about 0.02 s).
Neither the app's start nor an open window waits for that; once a client is made, httpx is imported.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx


async def async_client(timeout: float, *, connect: float, **options: Any) -> httpx.AsyncClient:
    """``httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=connect), **options)``, made off the loop."""
    return await asyncio.to_thread(_make, timeout, connect, options)


def _make(timeout: float, connect: float, options: dict[str, Any]) -> httpx.AsyncClient:
    import httpx  # pylint: disable=import-outside-toplevel
    return httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=connect), **options)
