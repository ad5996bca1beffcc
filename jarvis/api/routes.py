"""HTTP routes and the events WebSocket, registered on NiceGUI's FastAPI app."""
from __future__ import annotations

import asyncio
import json
import logging

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from .. import events
from ..services import Services

log = logging.getLogger(__name__)

# A script connecting to /api/events starts from the current state, like a window.
REPLAYED_TYPES = (events.SYSTEM_METRICS, events.MODEL_LOADED)


def register(app: FastAPI, services: Services) -> None:
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
        subscription = services.hub.subscribe(
            name=f'api client {websocket.client.host if websocket.client else "?"}:'
                 f'{websocket.client.port if websocket.client else "?"}',
            types=types, viewer=True,
            replay=[t for t in REPLAYED_TYPES if types is None or t in types])

        async def send() -> None:
            async for event in subscription:
                await websocket.send_text(json.dumps(event.to_json_dict()))

        async def receive() -> None:
            while True:  # nothing is expected from the client; reading notices when it leaves
                message = await websocket.receive()
                if message['type'] == 'websocket.disconnect':
                    return

        tasks = [asyncio.ensure_future(send()), asyncio.ensure_future(receive())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        except WebSocketDisconnect:
            pass
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
