"""HTTP routes and the events WebSocket, registered on NiceGUI's FastAPI app.

Each handler only translates HTTP: it takes a validated request, makes one call to a domain
part's interface, maps that part's typed errors to a status, and returns plain data. Every error
is JSON ``{"error": "..."}`` with a sentence a person can act on. The schema of these routes is
published at ``/api/openapi.json``.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from .. import __version__, events
from ..alerts import RuleError, RuleNotFound, TooManyRules
from ..assistant.assistant import ChatInputError
from ..assistant.conversations import ConversationNotFound
from ..metrics import HistoryRangeError
from ..models.base import ModelError
from ..models.servers import KeyStoreError, ServerConfigError, ServerNotFound, TooManyServers
from ..plugins.manager import PluginError, PluginNotFound
from ..services import Services, StartupError
from .errors import error, error_at, install_error_handlers
from .schemas import (
    RULE_ID_MAX,
    RULE_ID_PATTERN,
    AddServerRequest,
    AlertRuleRequest,
    ChatRequest,
    ConversationChange,
    ConversationId,
    ConversationIdInPath,
    HistoryRangeName,
    LoadModelRequest,
    PluginSettingsRequest,
    ProcessSort,
    SearchQuery,
    ServerNameInPath,
    TogglePluginRequest,
    UnixTime,
)

log = logging.getLogger(__name__)

# A script connecting to /api/events starts from the current state, like a window.
REPLAYED_TYPES = (events.SYSTEM_METRICS, events.MODEL_LOADED)
OPENAPI_PATH = '/api/openapi.json'


def register(app: FastAPI, services: Services, more: Sequence[Callable[[APIRouter], None]] = ()) -> None:
    """The routes, and ``more`` routes that other modules add to the same router (the /v1/ routes), so that
    they follow the same rules and appear in the same schema."""
    # every route waits until the services have started (they start in the background)
    router = APIRouter(dependencies=[Depends(services.wait_ready)])
    _add_routes(router, services)
    for add_routes in more:
        add_routes(router)
    app.include_router(router)
    install_error_handlers(app)
    app.add_exception_handler(StartupError, _start_failed)  # type: ignore[arg-type]
    schema: dict[str, Any] = {}
    making = asyncio.Lock()

    @app.get(OPENAPI_PATH, include_in_schema=False)
    async def openapi() -> dict[str, Any]:
        # made on the first request, once, off the loop: it takes about 0.1 s, which the start need not wait for
        async with making:
            if not schema:
                schema.update(await asyncio.to_thread(
                    get_openapi, title='J.A.R.V.I.S. Desktop API', version=__version__, routes=router.routes,
                    description='The hub and the domain for scripts, and the OpenAI-compatible API (/v1/). '
                                'Every error is {"error": "..."}; under /v1/ in OpenAI\'s shape, '
                                '{"error": {"message": "...", "type": "...", "param": ..., "code": ...}}.'))
        return schema


async def _start_failed(connection: Request | WebSocket, problem: StartupError) -> JSONResponse | None:
    """Every route while the start has failed (the app is quitting): 503 and why, instead of a wait."""
    if isinstance(connection, WebSocket):  # accepted first, so that a script reads why it is closed
        await connection.accept()
        await connection.send_text(json.dumps({'error': str(problem)}))
        await connection.close(code=1011, reason='J.A.R.V.I.S. could not start')
        return None
    return error_at(connection.url.path, 503, str(problem))


def _add_routes(app: APIRouter, services: Services) -> None:
    assistant, models, plugins, hub, sampler, alerts, system = (
        services.assistant, services.models, services.plugins, services.hub, services.sampler, services.alerts,
        services.system)

    # --- system and hub ---------------------------------------------------------------------

    @app.get('/api/system/status', tags=['system'])
    async def system_status() -> dict:
        """The latest ``system_metrics`` (sampled now if the last sample is stale)."""
        return (await sampler.current()).to_dict()

    @app.get('/api/system/processes', tags=['system'])
    async def system_processes(
            sort: ProcessSort = Query('cpu', description='What the processes are ranked by, most first.'),
            limit: int = Query(20, ge=1, le=1000, description='How many processes.')) -> dict:
        """The processes that use the most CPU (% of one core, since the previous scan), memory (resident
        bytes) or GPU memory (bytes; null where the driver does not tell or there is no GPU)."""
        return (await system.top_processes(sort, limit)).to_dict()

    @app.get('/api/system/history', tags=['system'])
    async def system_history(
            range: HistoryRangeName | None = Query(None, description='A range ending now; default: 1h.'),  # noqa: A002
            start: UnixTime | None = Query(None, alias='from', description='Start, Unix seconds (instead of range).'),
            end: UnixTime | None = Query(None, alias='to', description='End, Unix seconds; default: now.'),
            max_points: int = Query(1000, ge=2, le=5000, description='Most points per series.')) -> Any:
        """The machine's history, oldest first: the last hour from its samples, older times from the minute
        means and maxima (kept 30 days), averaged into at most ``max_points`` points per series."""
        try:
            return (await system.history_range(range, start, end, max_points)).to_dict()
        except HistoryRangeError as problem:
            return error(422, str(problem))

    @app.get('/api/hub/stats', tags=['system'])
    async def hub_stats() -> dict:
        """Subscribers, connected viewers, events published and events skipped on full buffers."""
        return hub.stats()

    @app.websocket('/api/events')
    async def event_stream(websocket: WebSocket) -> None:
        """Every hub event as JSON: {"type": ..., "data": ..., "timestamp": ...}.

        ``?types=a,b`` limits the stream to those event types.
        """
        await websocket.accept()
        types_param = websocket.query_params.get('types')
        types = {t.strip() for t in types_param.split(',') if t.strip()} if types_param else None
        client = f'{websocket.client.host}:{websocket.client.port}' if websocket.client else '?'
        subscription = hub.subscribe(
            name=f'api client {client}', types=types, viewer=True,
            replay=[t for t in REPLAYED_TYPES if types is None or t in types])
        for notice in services.startup_notices():  # e.g. a damaged database moved aside at start
            subscription.offer(notice)

        async def send() -> None:
            async for event in subscription:
                await websocket.send_text(event.json)

        async def receive() -> None:
            while True:  # nothing is expected from the client; reading notices when it leaves
                message = await websocket.receive()
                if message['type'] == 'websocket.disconnect':
                    return

        tasks = [asyncio.ensure_future(send()), asyncio.ensure_future(receive())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            subscription.close()
            for task in tasks:
                task.cancel()
            for task in tasks:
                try:
                    await task
                except (asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                    pass
                except Exception:
                    log.debug('events websocket ended with an error', exc_info=True)

    # --- chat (the seed's ProcessCommand and GetConversationHistory) ------------------------

    @app.post('/api/chat', tags=['chat'])
    async def chat(request: ChatRequest) -> Any:
        """Answer a message through the same pipeline as the windows (it shows in all of them)."""
        try:
            answer = await assistant.send(request.message, request.conversation_id)
        except ChatInputError as problem:
            return error(422, str(problem))
        except ConversationNotFound as problem:
            return error(404, str(problem))
        return answer.to_dict()

    @app.post('/api/chat/stop', tags=['chat'])
    async def chat_stop() -> dict:
        """Stop every answer that is being generated; the partial text is kept."""
        return {'stopped': assistant.stop_generation()}

    @app.get('/api/chat/history', tags=['chat'])
    async def chat_history(limit: int = Query(50, ge=1, le=1000),
                           conversation_id: ConversationId | None = Query(None)) -> Any:
        """The last ``limit`` messages of the branches shown, oldest first (of one conversation, or of all);
        ``alternative``/``alternatives`` say where each stands among its alternatives ("2/3")."""
        try:
            messages = await assistant.recent_messages(limit, conversation_id)
        except ConversationNotFound as problem:
            return error(404, str(problem))
        return [m.to_dict() for m in messages]

    @app.get('/api/chat/conversations', tags=['chat'])
    async def conversations() -> Any:
        """Conversations, pinned ones first, then newest first; ``active`` marks the one used last (where a
        message without ``conversation_id`` goes, and what a new window opens)."""
        latest = await assistant.latest_conversation()
        return [{**c.to_dict(), 'active': latest is not None and c.id == latest.id}
                for c in await assistant.conversations()]

    @app.get('/api/chat/conversations/{conversation_id}', tags=['chat'])
    async def get_conversation(conversation_id: ConversationIdInPath) -> Any:
        """A conversation and, as ``history``, the branch it shows."""
        try:
            return (await assistant.thread(conversation_id)).to_dict()
        except ConversationNotFound as problem:
            return error(404, str(problem))

    @app.patch('/api/chat/conversations/{conversation_id}', tags=['chat'])
    async def change_conversation(conversation_id: ConversationIdInPath, request: ConversationChange) -> Any:
        """Rename (``title``), pin (``pinned``), and/or give a conversation its own ``system_prompt`` and
        ``model``; every window follows."""
        try:
            conversation = await assistant.update(conversation_id, title=request.title, pinned=request.pinned,
                                                  system_prompt=request.system_prompt, model=request.model)
        except ConversationNotFound as problem:
            return error(404, str(problem))
        except ValueError as problem:
            return error(422, str(problem))
        return conversation.to_dict()

    @app.delete('/api/chat/conversations/{conversation_id}', tags=['chat'])
    async def delete_conversation(conversation_id: ConversationIdInPath) -> Any:
        """Delete a conversation and all its messages; an answer it is streaming stops and is not kept."""
        try:
            await assistant.delete(conversation_id)
        except ConversationNotFound as problem:
            return error(404, str(problem))
        return {'deleted': conversation_id}

    @app.get('/api/chat/search', tags=['chat'])
    async def search(q: SearchQuery) -> Any:
        """Conversations whose title, then messages (every alternative) that hold every word of ``q``, best
        first; ``highlights`` are [start, end) offsets of the matched words in ``snippet``."""
        return [hit.to_dict() for hit in await assistant.search(q)]

    # --- models (the seed's ListModels and LoadModel) ---------------------------------------

    @app.get('/api/models', tags=['models'])
    async def list_models() -> Any:
        """Every model with its state and memory verdict, the active one, Ollama's status and free memory."""
        return (await models.catalog()).to_dict()

    @app.post('/api/models/load', tags=['models'])
    async def load_model(request: LoadModelRequest) -> Any:
        """Make a model the active one; on failure the previous model stays active."""
        try:
            info = await models.load(request.model, request.source)
        except ModelError as problem:  # InvalidModelName included
            return error(422, str(problem))
        return {'loaded': info.to_dict()}

    @app.post('/api/models/unload', tags=['models'])
    async def unload_model() -> dict:
        await models.unload()
        return {'loaded': None}

    @app.get('/api/models/servers', tags=['models'])
    async def list_servers() -> list[dict]:
        """The OpenAI-compatible servers added: name, url, whether an API key is set (never the key), whether it
        answers (else ``error``, one sentence) and the models it offers (their source is ``server:<name>``)."""
        return [status.to_dict() for status in await models.servers()]

    @app.post('/api/models/servers', tags=['models'])
    async def add_server(request: AddServerRequest) -> Any:
        """Add an OpenAI-compatible server (vLLM, llama.cpp's server, LM Studio, Ollama's /v1, a hosted API), or
        replace the one of that name; it is asked for its models at once, and is added also when it does not
        answer (``error`` says why)."""
        try:
            status = await models.add_server(request.url, request.api_key, request.name)
        except TooManyServers as problem:
            return error(409, str(problem))
        except ServerConfigError as problem:
            return error(422, str(problem))
        except KeyStoreError as problem:
            return error(503, str(problem))
        return status.to_dict()

    @app.delete('/api/models/servers/{name}', tags=['models'])
    async def remove_server(name: ServerNameInPath) -> Any:
        """Remove a server and its API key; a model of it that is loaded is unloaded first."""
        try:
            await models.remove_server(name)
        except ServerNotFound as problem:
            return error(404, str(problem))
        except KeyStoreError as problem:
            return error(503, str(problem))
        return {'removed': name}

    # --- plugins ----------------------------------------------------------------------------

    @app.get('/api/plugins', tags=['plugins'])
    async def list_plugins() -> Any:
        """Every plugin with its state, the settings in effect and what each setting may be."""
        return [info.to_dict() for info in await plugins.list()]

    @app.post('/api/plugins/toggle', tags=['plugins'])
    async def toggle_plugin(request: TogglePluginRequest) -> Any:
        try:
            return (await plugins.toggle(request.plugin, request.enabled)).to_dict()
        except PluginNotFound as problem:
            return error(404, str(problem))
        except PluginError as problem:
            return error(422, str(problem))

    @app.post('/api/plugins/settings', tags=['plugins'])
    async def configure_plugin(request: PluginSettingsRequest) -> Any:
        """Change some of a plugin's settings; all are checked before any is stored."""
        try:
            info = await plugins.configure(request.plugin, request.settings)
        except PluginNotFound as problem:
            return error(404, str(problem))
        except PluginError as problem:
            return error(422, str(problem))
        return {'plugin': info.name, 'settings': info.settings}

    # --- alerts -----------------------------------------------------------------------------

    @app.get('/api/alerts', tags=['alerts'])
    async def list_alerts() -> dict:
        """The rules, the alerts firing now, what rules can watch, and whether desktop notifications work."""
        return {'rules': [rule.to_dict() for rule in await alerts.rules()],
                'active': [alert.to_dict() for alert in await alerts.active()],
                'metrics': [metric.to_dict() for metric in alerts.metrics()],
                'desktop_notifications': alerts.desktop_status()}

    @app.post('/api/alerts', tags=['alerts'])
    async def save_alert_rule(request: AlertRuleRequest) -> Any:
        """Add a rule, or change the fields given of the rule ``id`` (the others keep their values)."""
        changes = request.model_dump(exclude_none=True, exclude={'id'})
        try:
            rule = await alerts.save(changes, request.id)
        except TooManyRules as problem:
            return error(409, str(problem))
        except RuleError as problem:
            return error(422, str(problem))
        return rule.to_dict()

    @app.delete('/api/alerts/{rule_id}', tags=['alerts'])
    async def remove_alert_rule(rule_id: str = Path(min_length=1, max_length=RULE_ID_MAX, pattern=RULE_ID_PATTERN,
                                                    examples=['cpu-1'])) -> Any:
        """Remove a rule; a firing alert of it ends, its alerts stay in the log."""
        try:
            await alerts.remove(rule_id)
        except RuleNotFound as problem:
            return error(404, str(problem))
        return {'removed': rule_id}

    @app.get('/api/alerts/log', tags=['alerts'])
    async def alert_log(limit: int = Query(50, ge=1, le=1000)) -> Any:
        """The latest alerts, newest first, with start, end (null while firing) and peak."""
        return [entry.to_dict() for entry in await alerts.log(limit)]
