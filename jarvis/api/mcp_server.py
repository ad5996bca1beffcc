"""An MCP server at ``/mcp`` (streamable HTTP, the official ``mcp`` SDK), so that any assistant that speaks the
Model Context Protocol (desktop clients, editors, agents) can read this machine and ask J.A.R.V.I.S.

Its tools are thin like the routes: one call to a domain part's interface each. The machine's tools are the
ones the chat offers to a model that calls tools (``jarvis.assistant.tools``: the same functions, schemas and
descriptions); notes and reminders are read through the plugins' records, ask_jarvis is the assistant. It is served on the app's own server behind the same gate
(``jarvis.web_guard``: Host, Origin, JSON bodies, the body limit, the access token as ``Authorization:
Bearer``), so the SDK's own Host and Origin check is left off: the gate's rules (``--allow-host``,
``--allow-origin``) are the ones the user set.

Imported with the first request to ``/mcp`` (``jarvis.api.mcp``), not at start.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ToolAnnotations
from pydantic import Field

from .. import __version__
from ..assistant.assistant import ChatInputError
from ..assistant.conversations import ConversationNotFound
from ..assistant.tools import ToolRefused
from ..services import Services, StartupError
from ..web_guard import Receive, Scope, Send, refuse
from .mcp import MCP_PATH

log = logging.getLogger(__name__)

INSTRUCTIONS = (
    'J.A.R.V.I.S. is a desktop assistant that runs on the user\'s computer: it monitors the machine (CPU, memory, '
    'disk, network, GPUs), alerts when a metric stays too high, keeps the user\'s notes and reminders, and answers '
    'through plugins and a local language model. Read the machine with system_metrics, top_processes and '
    'machine_history (what happened earlier, which processes were busy then), its alerts with alerts_overview; '
    'read notes and reminders with list_notes and list_reminders; '
    'ask_jarvis sends a message to the assistant itself, as if the user typed it in its chat.')
# the SDK reads the tools' annotations by name, in this module: the types they use live here
AskMessage = Annotated[str, Field(min_length=1, description=(
    'What to ask or tell J.A.R.V.I.S., in English or German (at most 32,000 characters): a question ("what is '
    '2+2", "how busy is the CPU?"), a command of its plugins ("note: buy milk", "remind me in 10 minutes to '
    'stretch") or anything for its language model.'))]
READ_ONLY = ToolAnnotations(readOnlyHint=True, destructiveHint=False, idempotentHint=True, openWorldHint=False)


def _raising_tool_errors(function: Callable[..., Awaitable[dict[str, Any]]]) -> Callable[..., Awaitable[dict[str, Any]]]:
    """The tool's function, with its refusal as the SDK's ToolError (its text reaches the client; any other
    exception the SDK hides). The SDK reads the parameters through ``__wrapped__``."""
    @functools.wraps(function)
    async def run(**arguments: Any) -> dict[str, Any]:
        try:
            return await function(**arguments)
        except ToolRefused as refused:
            raise ToolError(str(refused)) from None

    return run


def build_server(services: Services) -> MCPServer:
    """The MCP server with J.A.R.V.I.S.' tools; each reads through a domain part's interface."""
    server = MCPServer('J.A.R.V.I.S.', title='J.A.R.V.I.S. Desktop', version=__version__,
                       instructions=INSTRUCTIONS, log_level='WARNING')
    records, assistant = services.records, services.assistant

    for tool in services.tools.machine:  # the same functions the chat's models call
        server.add_tool(_raising_tool_errors(tool.function), name=tool.name, title=tool.title,
                        description=tool.description, annotations=READ_ONLY, structured_output=True)

    @server.tool(title='Notes', annotations=READ_ONLY)
    async def list_notes() -> dict[str, Any]:
        """The user's notes, oldest first, numbered as J.A.R.V.I.S.' chat numbers them ("delete note 2"):
        number, text, created_at (Unix time). Notes are added in the chat ("note: buy milk")."""
        return {'notes': [note.to_dict() for note in await records.notes()]}

    @server.tool(title='Pending reminders', annotations=READ_ONLY)
    async def list_reminders() -> dict[str, Any]:
        """The reminders and timers not shown yet, soonest first, numbered as the chat numbers them:
        number, text (what to remind of, or "Timer (...)"), due_at (Unix time; in the past for one that
        waits for the app's window to show it), language ("en" or "de")."""
        return {'reminders': [reminder.to_dict() for reminder in await records.pending_reminders()]}

    @server.tool(title='Ask J.A.R.V.I.S.',
                 annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=False,
                                             openWorldHint=True))
    async def ask_jarvis(message: AskMessage) -> dict[str, Any]:
        """Send a message to J.A.R.V.I.S. as if the user typed it in its chat: its plugins answer first
        (time, calculator, system status, notes, reminders, Wikipedia), else its local language model. The
        message and the answer appear in the app's chat. Returns answer (the text), source (the plugin or
        model that answered) and status ("done"; "error" when a plugin or the model failed, "stopped"
        when it was stopped)."""
        try:
            answer = await assistant.send(message)
        except (ChatInputError, ConversationNotFound) as problem:
            raise ToolError(str(problem)) from None
        return {'answer': answer.text, 'source': answer.source, 'status': answer.status}

    return server


class McpEndpoint:
    """The SDK's streamable HTTP transport as one ASGI route of the app. Its session manager runs in a task of
    its own from the app's start to its end (the SDK's task group must be entered and left in one task);
    a request that comes before it runs waits, as the other routes wait for the services."""

    def __init__(self, services: Services, server: MCPServer) -> None:
        self.services = services
        server.streamable_http_app(streamable_http_path=MCP_PATH,
                                   transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
        self.manager: StreamableHTTPSessionManager = server.session_manager
        self._running: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.services.wait_ready()
        except StartupError as problem:
            await refuse(scope, receive, send, 503, str(problem))
            return
        running = self._events()[0]
        if not running.is_set():
            await running.wait()
        await self.manager.handle_request(scope, receive, send)

    def _events(self) -> tuple[asyncio.Event, asyncio.Event]:
        if self._running is None or self._stopping is None:  # made on the server's loop
            self._running, self._stopping = asyncio.Event(), asyncio.Event()
        return self._running, self._stopping

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._serve(), name='mcp sessions')

    async def _serve(self) -> None:
        running, stopping = self._events()
        async with self.manager.run():
            running.set()
            await stopping.wait()

    async def stop(self) -> None:
        if self._task is None:
            return
        self._events()[1].set()
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(self._task, timeout=2.0)
        self._task = None
