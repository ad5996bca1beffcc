"""The hub for scripts: /api/system/status and the /api/events WebSocket on the real server."""
from __future__ import annotations

import asyncio
import json
import time

import httpx
import websockets

from jarvis import events
from jarvis.events import ChatMessage

from .conftest import Harness
from .helpers.server import AppServer


async def test_system_status_returns_the_latest_metrics(jarvis: Harness) -> None:
    async with jarvis.http() as http:
        response = await http.get('/api/system/status')
    assert response.status_code == 200
    data = response.json()
    assert {'cpu', 'memory', 'disk', 'gpu', 'cpu_per_core', 'gpus', 'gpu_status'} <= set(data)
    assert 0 <= data['cpu'] <= 100
    assert data['gpu'] is None or 0 <= data['gpu'] <= 100


async def test_events_websocket_streams_hub_events(server: AppServer) -> None:
    # the app's own subscribers (the history recorder) are there before any client
    before = httpx.get(server.url + '/api/hub/stats').json()

    async def next_sample(socket: websockets.ClientConnection) -> dict:
        while True:  # other events (a process scan) come in between
            event = json.loads(await asyncio.wait_for(socket.recv(), 10))
            if event['type'] == events.SYSTEM_METRICS:
                return event

    async with websockets.connect(server.url.replace('http', 'ws') + '/api/events') as socket:
        first = await next_sample(socket)  # after the latest state (the chat's model on standby, ...)
        assert {'cpu', 'memory', 'disk', 'gpu'} <= set(first['data'])
        assert isinstance(first['timestamp'], float)
        second = await next_sample(socket)
        assert second['timestamp'] > first['timestamp']
        stats = httpx.get(server.url + '/api/hub/stats').json()
        assert stats['viewers'] >= 1
        assert stats['visible'] == 0, 'a script is no window a person sees'
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if httpx.get(server.url + '/api/hub/stats').json()['subscribers'] == before['subscribers']:
            break
        await asyncio.sleep(0.1)
    assert httpx.get(server.url + '/api/hub/stats').json() | {'published': 0} == \
        {'subscribers': before['subscribers'], 'viewers': 0, 'visible': 0, 'watching': 0, 'published': 0, 'skipped': 0}


async def test_events_websocket_type_filter(jarvis: Harness) -> None:
    # the same route in-process: a filtered subscriber sees only what it asked for
    hub = jarvis.services.hub
    subscription = hub.subscribe(types=[events.CHAT_MESSAGE])
    hub.publish(ChatMessage(role='user', text='only this'))
    event = await asyncio.wait_for(subscription.get(), 2)
    assert event.to_json_dict()['data']['text'] == 'only this'
    subscription.close()


async def test_chat_api_answers_and_shows_in_every_window(jarvis: Harness) -> None:
    from .test_chat_view import eventually, texts

    window = jarvis.new_user()
    await window.open('/chat')
    async with jarvis.http() as http:
        response = await http.post('/api/chat', json={'message': 'what is 12*12'})
        assert response.status_code == 200
        answer = response.json()
        assert (answer['role'], answer['text'], answer['source'], answer['status']) == \
            ('assistant', '12 * 12 = 144', 'Calculator', 'done')
        await eventually(lambda: texts(window, 'user') == ['what is 12*12'])
        await eventually(lambda: texts(window, 'assistant') and texts(window, 'assistant')[-1].endswith('144'))
        history = (await http.get('/api/chat/history', params={'limit': 1})).json()
        assert [m['role'] for m in history] == ['assistant'] and history[0]['text'].endswith('144')
        both = (await http.get('/api/chat/history', params={'limit': 50})).json()
        assert [m['text'] for m in both][0] == 'what is 12*12'
        conversations = (await http.get('/api/chat/conversations')).json()
        assert conversations[0]['active'] and conversations[0]['messages'] == 2


async def test_plugins_api_lists_and_toggles(jarvis: Harness) -> None:
    seen: list = []
    jarvis.services.hub.subscribe(lambda e: seen.append(e.to_json_dict()['data']), types=[events.PLUGIN_TOGGLED])
    async with jarvis.http() as http:
        plugins = (await http.get('/api/plugins')).json()
        assert [p['name'] for p in plugins] == ['Notes', 'Reminders', 'Time and date', 'System status',
                                                 'Calculator', 'Wikipedia']
        assert all(p['source'] == 'built-in' and p['state'] == 'enabled' for p in plugins)
        response = await http.post('/api/plugins/toggle', json={'plugin': 'Calculator', 'enabled': False})
        assert response.status_code == 200 and response.json()['state'] == 'disabled'
        await asyncio.sleep(0.05)
        assert seen[-1] == {'plugin': 'Calculator', 'enabled': False, 'state': 'disabled', 'error': ''}
        response = await http.post('/api/plugins/settings', json={'plugin': 'Wikipedia', 'settings': {'sentences': 2}})
        assert response.json() == {'plugin': 'Wikipedia', 'settings': {'sentences': 2}}
