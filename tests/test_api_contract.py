"""The /api/ contract for scripts: the published schema, bad input that must never be a 500, and the
conversation rules (an unknown id is a 404; a conversation deleted mid-answer is a clear 404)."""
from __future__ import annotations

import asyncio
import json

import pytest

from jarvis import events
from jarvis.events import ChatMessage

from .conftest import Harness
from .helpers.scripted_model import ScriptedModel

POST_ROUTES = ['/api/chat', '/api/models/load', '/api/plugins/toggle', '/api/plugins/settings', '/api/alerts']


async def test_openapi_schema_describes_every_route_with_its_request_body(jarvis: Harness) -> None:
    async with jarvis.http() as http:
        response = await http.get('/api/openapi.json')
    assert response.status_code == 200
    schema = response.json()
    assert schema['openapi'].startswith('3.')
    paths = schema['paths']
    assert {'/api/system/status', '/api/hub/stats', '/api/chat', '/api/chat/stop', '/api/chat/history',
            '/api/chat/conversations', '/api/models', '/api/models/load', '/api/models/unload', '/api/plugins',
            '/api/plugins/toggle', '/api/plugins/settings', '/api/alerts', '/api/alerts/log',
            '/api/alerts/{rule_id}'} <= set(paths)
    assert {'/v1/models', '/v1/chat/completions'} <= set(paths)  # the OpenAI-compatible routes too
    assert all(path.startswith(('/api/', '/v1/')) for path in paths), 'only the API, not the pages'
    for path in [*POST_ROUTES, '/v1/chat/completions']:
        body = paths[path]['post']['requestBody']['content']['application/json']['schema']
        assert '$ref' in body, f'{path} has a typed body'
    chat = schema['components']['schemas']['ChatRequest']
    assert chat['required'] == ['message'] and 'conversation_id' in chat['properties']


async def test_chat_with_an_unknown_conversation_is_404_and_changes_nothing(jarvis: Harness) -> None:
    assistant = jarvis.services.assistant
    before = [c.id for c in await assistant.conversations()]
    latest = await assistant.latest_conversation()
    async with jarvis.http() as http:
        response = await http.post('/api/chat', json={'message': 'hello', 'conversation_id': 'no-such-id'})
        history = await http.get('/api/chat/history', params={'conversation_id': 'no-such-id'})
    assert response.status_code == 404
    assert 'no conversation' in response.json()['error']
    assert history.status_code == 404 and 'error' in history.json()
    assert [c.id for c in await assistant.conversations()] == before, 'no conversation was created'
    assert await assistant.latest_conversation() == latest, 'nothing was touched'


async def test_deleting_a_conversation_while_its_answer_streams_is_a_clear_404(jarvis: Harness) -> None:
    model = ScriptedModel(['word '] * 400, delay=0.01)
    await jarvis.services.models.activate(model, model.info)
    assistant = jarvis.services.assistant
    conversation = await assistant.new_conversation()
    streaming = jarvis.services.hub.subscribe(types=[events.CHAT_MESSAGE])
    async with jarvis.http() as http:
        request = asyncio.ensure_future(
            http.post('/api/chat', json={'message': 'tell me a long story', 'conversation_id': conversation.id}))
        while True:  # wait until the answer is really streaming text
            event = await asyncio.wait_for(streaming.get(), 10)
            message: ChatMessage = event.data  # type: ignore[assignment]
            if message.role == 'assistant' and message.status == 'streaming' and message.text:
                break
        await assistant.delete(conversation.id)  # what the Chat view's Delete does
        response = await asyncio.wait_for(request, 10)
    streaming.close()
    assert response.status_code == 404
    assert response.json() == {'error': 'The conversation was deleted while J.A.R.V.I.S. was answering, so the '
                                        'answer was not kept.'}
    assert model.generated < 400, 'the answer was stopped, not generated to the end'
    assert conversation.id not in [c.id for c in await assistant.conversations()]


@pytest.mark.parametrize('path', POST_ROUTES)
async def test_json_nested_100000_deep_is_a_json_error_not_a_500(jarvis: Harness, path: str) -> None:
    body = '{"a": ' + '[' * 100_000 + ']' * 100_000 + '}'
    async with jarvis.http() as http:
        response = await http.post(path, content=body, headers={'Content-Type': 'application/json'})
    assert 400 <= response.status_code < 500
    assert set(response.json()) == {'error'}


@pytest.mark.parametrize(('path', 'body'), [
    ('/api/chat', '{"message": "hi", "conversation_id": "\\ud800"}'),
    ('/api/models/load', '{"model": "gemma\\ud800"}'),
    ('/api/plugins/toggle', '{"plugin": "Calc\\ud800", "enabled": true}'),
    ('/api/plugins/settings', '{"plugin": "Wikipedia", "settings": {"sentences\\ud800": 2}}'),
])
async def test_a_lone_surrogate_in_a_name_is_refused_with_422(jarvis: Harness, path: str, body: str) -> None:
    async with jarvis.http() as http:
        response = await http.post(path, content=body.encode(), headers={'Content-Type': 'application/json'})
        plugins = (await http.get('/api/plugins')).json()
    assert response.status_code == 422
    assert 'surrogate' in response.json()['error']
    assert all(p['state'] == 'enabled' for p in plugins), 'nothing was changed'


async def test_a_lone_surrogate_in_a_message_is_marked_and_kept(jarvis: Harness) -> None:
    async with jarvis.http() as http:
        response = await http.post('/api/chat', content=json.dumps({'message': 'what is 2+2 \ud800'}).encode(),
                                   headers={'Content-Type': 'application/json'})
        history = (await http.get('/api/chat/history', params={'limit': 2})).json()
    assert response.status_code == 200
    assert history[0]['text'] == 'what is 2+2 \ufffd'
