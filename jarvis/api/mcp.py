"""The MCP server's route at ``/mcp``, loaded with its first request.

The ``mcp`` SDK takes about 25 MiB of memory and seconds to import on two cores: neither the start of the
app nor a user who never connects an MCP client should pay that. The route is there from the start, under
the same gate as the others (``jarvis.web_guard``); its first request imports ``jarvis.api.mcp_server``
off the event loop, builds the server and starts its sessions, and every request then goes to it.
"""
from __future__ import annotations

import asyncio
import importlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nicegui import App

    from ..services import Services
    from ..web_guard import Receive, Scope, Send

MCP_PATH = '/mcp'


class LazyMcpEndpoint:
    """An ASGI app that becomes the MCP server with its first request."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._endpoint: Any = None  # the server's McpEndpoint, once loaded
        self._lock: asyncio.Lock | None = None  # made on the server's loop

    @property
    def loaded(self) -> bool:
        return self._endpoint is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = await self._load()
        await endpoint(scope, receive, send)

    async def _load(self) -> Any:
        if self._endpoint is None:
            self._lock = self._lock or asyncio.Lock()
            async with self._lock:
                if self._endpoint is None:  # the first of several concurrent requests loads it
                    server = await asyncio.to_thread(importlib.import_module, 'jarvis.api.mcp_server')
                    endpoint = server.McpEndpoint(self.services, server.build_server(self.services))
                    await endpoint.start()
                    self._endpoint = endpoint
        return self._endpoint

    async def stop(self) -> None:
        if self._endpoint is not None:
            await self._endpoint.stop()


def register(app: App, services: Services) -> None:
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # the SDK logs each session manager start and stop at INFO: noise among the app's own lines (and a
        # failed start must say what to do in one line); --log-level DEBUG shows them
        logging.getLogger('mcp').setLevel(logging.WARNING)
    endpoint = LazyMcpEndpoint(services)
    app.add_route(MCP_PATH, endpoint, include_in_schema=False)  # type: ignore[arg-type]  # an ASGI app: every method
    app.on_shutdown(endpoint.stop)
