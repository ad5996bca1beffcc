"""The hub and the domain for scripts: JSON routes under /api/, the /api/events WebSocket, the
OpenAI-compatible API under /v1/ and the MCP server at /mcp."""
from __future__ import annotations

from typing import TYPE_CHECKING

from . import app_routes, mcp, openai, routes

if TYPE_CHECKING:
    from nicegui import App

    from ..services import Services


def register(app: App, services: Services) -> None:
    routes.register(app, services, more=[lambda router: openai.add_routes(router, services.completions),
                                         lambda router: app_routes.add_routes(router, services.hub)])
    mcp.register(app, services)


__all__ = ['register']
