"""HTTP routes and the events WebSocket, registered on NiceGUI's FastAPI app.

Every error is JSON ``{"error": "..."}`` with a sentence a person can act on.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from .. import events
from ..assistant.assistant import ChatInputError
from ..models.base import ModelError
from ..plugins.manager import PluginError
from ..services import Services, StartupError

log = logging.getLogger(__name__)

# A script connecting to /api/events starts from the current state, like a window.
REPLAYED_TYPES = (events.SYSTEM_METRICS, events.MODEL_LOADED)
MAX_BODY_BYTES = 2 * 2**20


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({'error': message}, status_code=status)


async def json_body(request: Request, example: str) -> dict[str, Any] | JSONResponse:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        return error(413, f'The request body is too large (limit {MAX_BODY_BYTES // 2**20} MiB).')
    try:
        body = json.loads(raw or b'null')
    except (ValueError, UnicodeDecodeError):
        return error(400, f'The body must be JSON like {example}.')
    if not isinstance(body, dict):
        return error(400, f'The body must be a JSON object like {example}.')
    return body


def register(app: FastAPI, services: Services) -> None:
    # every route waits until the services have started (they start in the background)
    router = APIRouter(dependencies=[Depends(services.wait_ready)])
    _add_routes(router, services)
    app.include_router(router)
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StartupError, _start_failed)  # type: ignore[arg-type]


async def _start_failed(connection: Request | WebSocket, problem: StartupError) -> JSONResponse | None:
    """Every route while the start has failed (the app is quitting): 503 and why, instead of a wait."""
    if isinstance(connection, WebSocket):  # accepted first, so that a script reads why it is closed
        await connection.accept()
        await connection.send_text(json.dumps({'error': str(problem)}))
        await connection.close(code=1011, reason='J.A.R.V.I.S. could not start')
        return None
    return error(503, str(problem))


async def _validation_error(request: Request, problem: RequestValidationError) -> JSONResponse:
    """Bad query parameters as one readable sentence, in the API's error format."""
    if not request.url.path.startswith('/api/'):
        return await request_validation_exception_handler(request, problem)
    parts = []
    for item in problem.errors():
        where = '.'.join(str(part) for part in item.get('loc', ()) if part not in ('query', 'body', 'path'))
        parts.append(f'{where}: {item.get("msg", "invalid")}' if where else str(item.get('msg', 'invalid')))
    return error(422, '; '.join(parts) or 'The request is not valid.')


def _add_routes(app: APIRouter, services: Services) -> None:
    # --- system and hub ---------------------------------------------------------------------

    @app.get('/api/system/status', tags=['system'])
    async def system_status() -> dict:
        """The latest ``system_metrics`` (sampled now if the last sample is stale)."""
        metrics = await services.sampler.current()
        return metrics.to_dict()

    @app.get('/api/hub/stats', tags=['system'])
    async def hub_stats() -> dict:
        """Subscribers, connected viewers, events published and events skipped on full buffers."""
        return services.hub.stats()

    @app.websocket('/api/events')
    async def event_stream(websocket: WebSocket) -> None:
        """Every hub event as JSON: {"type": ..., "data": ..., "timestamp": ...}.

        ``?types=a,b`` limits the stream to those event types.
        """
        await websocket.accept()
        types_param = websocket.query_params.get('types')
        types = {t.strip() for t in types_param.split(',') if t.strip()} if types_param else None
        client = f'{websocket.client.host}:{websocket.client.port}' if websocket.client else '?'
        subscription = services.hub.subscribe(
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
    async def chat(request: Request) -> Any:
        """Answer ``{"message": ...}`` through the same pipeline as the windows (it shows in all of them)."""
        body = await json_body(request, '{"message": "What time is it?"}')
        if isinstance(body, JSONResponse):
            return body
        conversation_id = body.get('conversation_id')
        if conversation_id is not None and not isinstance(conversation_id, str):
            return error(422, 'conversation_id must be a string.')
        try:
            answer = await services.assistant.send(body.get('message'), conversation_id)
        except ChatInputError as problem:
            return error(422, str(problem))
        return answer.to_dict()

    @app.post('/api/chat/stop', tags=['chat'])
    async def chat_stop() -> dict:
        """Stop every answer that is being generated; the partial text is kept."""
        return {'stopped': services.assistant.stop_generation()}

    @app.get('/api/chat/history', tags=['chat'])
    async def chat_history(limit: int = Query(50, ge=1, le=1000),
                           conversation_id: str | None = Query(None, max_length=64)) -> Any:
        """The last ``limit`` messages, oldest first (of one conversation, or of all)."""
        messages = await services.db.run(services.assistant.conversations.last_messages, limit, conversation_id)
        return [m.to_dict() for m in messages]

    @app.get('/api/chat/conversations', tags=['chat'])
    async def conversations() -> Any:
        items = await services.db.run(services.assistant.conversations.list)
        return [{'id': c.id, 'title': c.title, 'created_at': c.created_at, 'updated_at': c.updated_at,
                 'messages': c.message_count, 'active': c.id == services.assistant.active_conversation_id}
                for c in items]

    # --- models (the seed's ListModels and LoadModel) ---------------------------------------

    @app.get('/api/models', tags=['models'])
    async def list_models() -> Any:
        models = await services.models.list_models()
        active = services.models.active_info
        return {'models': [_model_dict(m) for m in models],
                'active': _model_dict(active) if active else None,
                'ollama': services.models.ollama_status or 'ok'}

    @app.post('/api/models/load', tags=['models'])
    async def load_model(request: Request) -> Any:
        body = await json_body(request, '{"model": "gemma-3-270m-q4_k_m", "source": "local"}')
        if isinstance(body, JSONResponse):
            return body
        name, source = body.get('model'), body.get('source') or _guess_source(body.get('model'))
        if not isinstance(name, str) or not isinstance(source, str):
            return error(422, 'model (and source, "local" or "ollama") must be strings.')
        try:
            info = await services.models.load(name, source)
        except ModelError as problem:
            return error(422, str(problem))
        return {'loaded': _model_dict(info)}

    @app.post('/api/models/unload', tags=['models'])
    async def unload_model() -> dict:
        await services.models.unload()
        return {'loaded': None}

    # --- plugins ----------------------------------------------------------------------------

    @app.get('/api/plugins', tags=['plugins'])
    async def list_plugins() -> Any:
        return [entry.to_dict() for entry in services.plugins.list()]

    @app.post('/api/plugins/toggle', tags=['plugins'])
    async def toggle_plugin(request: Request) -> Any:
        body = await json_body(request, '{"plugin": "Wikipedia", "enabled": true}')
        if isinstance(body, JSONResponse):
            return body
        name, enabled = body.get('plugin'), body.get('enabled')
        if not isinstance(enabled, bool):
            return error(422, 'enabled must be true or false.')
        try:
            entry = await services.plugins.toggle(name, enabled)  # type: ignore[arg-type]
        except PluginError as problem:
            return error(404 if 'no plugin called' in str(problem) else 422, str(problem))
        return entry.to_dict()

    @app.post('/api/plugins/settings', tags=['plugins'])
    async def configure_plugin(request: Request) -> Any:
        body = await json_body(request, '{"plugin": "Wikipedia", "settings": {"sentences": 2}}')
        if isinstance(body, JSONResponse):
            return body
        try:
            values = await services.plugins.configure(body.get('plugin'), body.get('settings'))  # type: ignore[arg-type]
        except PluginError as problem:
            return error(404 if 'no plugin called' in str(problem) else 422, str(problem))
        return {'plugin': body.get('plugin'), 'settings': values}


def _model_dict(info: Any) -> dict:
    return {'name': info.name, 'source': info.source, 'size_bytes': info.size_bytes,
            'quantization': info.quantization, 'parameters': info.parameters,
            'context_length': info.context_length, 'state': info.state, 'error': info.error}


def _guess_source(name: object) -> str:
    # a name with a tag ("llama3:8b") is an Ollama model; a plain file name is local
    return 'ollama' if isinstance(name, str) and ':' in name else 'local'
