"""The chat's routes for scripts: one conversation (GET, PATCH, DELETE), search, the shown branch in the
history, and where a message without a conversation goes. In-process, through the real app and its
guard; tests/test_api_fuzz.py throws generated requests at the same routes."""
from __future__ import annotations

import asyncio

from jarvis import events
from jarvis.events import ChatMessage

from .conftest import Harness
from .helpers.scripted_model import ScriptedModel

JSON = {'Content-Type': 'application/json'}


async def test_one_conversation_can_be_read_renamed_pinned_and_deleted(jarvis: Harness) -> None:
    await jarvis.services.models.activate(model := ScriptedModel(['Fine.']), model.info)
    seen: list = []
    jarvis.services.hub.subscribe(lambda e: seen.append(e.data), types=[events.CONVERSATIONS_CHANGED])
    async with jarvis.http() as http:
        answer = (await http.post('/api/chat', json={'message': 'How are you?'})).json()
        conversation_id = answer['conversation_id']
        read = await http.get(f'/api/chat/conversations/{conversation_id}')
        assert read.status_code == 200
        body = read.json()
        assert (body['id'], body['title'], body['messages'], body['pinned']) == \
            (conversation_id, 'How are you?', 2, False)
        assert [(m['role'], m['text'], m['alternative'], m['alternatives']) for m in body['history']] == \
            [('user', 'How are you?', 1, 1), ('assistant', 'Fine.', 1, 1)]

        changed = await http.patch(f'/api/chat/conversations/{conversation_id}',
                                   json={'title': '  Small   talk ', 'pinned': True})
        assert changed.status_code == 200
        assert (changed.json()['title'], changed.json()['pinned']) == ('Small talk', True)
        await asyncio.sleep(0.05)
        assert {(c.conversation_id, c.action) for c in seen} >= {(conversation_id, 'renamed'),
                                                                 (conversation_id, 'pinned')}
        listed = (await http.get('/api/chat/conversations')).json()
        assert listed[0]['id'] == conversation_id and listed[0]['pinned'] and listed[0]['active']

        deleted = await http.delete(f'/api/chat/conversations/{conversation_id}')
        assert (deleted.status_code, deleted.json()) == (200, {'deleted': conversation_id})
        for gone in (await http.get(f'/api/chat/conversations/{conversation_id}'),
                     await http.delete(f'/api/chat/conversations/{conversation_id}'),
                     await http.patch(f'/api/chat/conversations/{conversation_id}', json={'pinned': False})):
            assert gone.status_code == 404 and 'no conversation' in gone.json()['error']


async def test_bad_changes_are_refused_with_one_sentence_and_change_nothing(jarvis: Harness) -> None:
    conversation = await jarvis.services.assistant.new_conversation()
    path = f'/api/chat/conversations/{conversation.id}'
    async with jarvis.http() as http:
        for body in ({}, {'title': ''}, {'title': 'x' * 121}, {'pinned': 'yes'}, {'title': None, 'pinned': None}):
            response = await http.patch(path, json=body)
            assert response.status_code == 422, body
            assert set(response.json()) == {'error'} and response.json()['error'], body
        blank = await http.patch(path, json={'title': '   ', 'pinned': True})
        assert blank.status_code == 422 and blank.json() == {'error': 'A conversation needs a name.'}
        surrogate = await http.patch(path, content=b'{"title": "a\\ud800"}', headers=JSON)
        assert surrogate.status_code == 422 and 'surrogate' in surrogate.json()['error']
        form = await http.patch(path, content=b'title=x', headers={'Content-Type': 'application/x-www-form-urlencoded'})
        assert form.status_code == 415
        still = (await http.get(path)).json()
    assert (still['title'], still['pinned']) == ('New conversation', False)


async def test_search_returns_snippets_with_offsets(jarvis: Harness) -> None:
    await jarvis.services.models.activate(model := ScriptedModel(['The capybara is the largest rodent.']), model.info)
    async with jarvis.http() as http:
        first = (await http.post('/api/chat', json={'message': 'Name a big rodent'})).json()
        await http.post('/api/chat', json={'message': 'unrelated', 'conversation_id':
                                           (await jarvis.services.assistant.new_conversation()).id})
        response = await http.get('/api/chat/search', params={'q': 'capy'})
        assert response.status_code == 200
        [hit] = [h for h in response.json() if h['conversation_id'] == first['conversation_id']]
        assert hit['message_id'] == first['id'] and hit['role'] == 'assistant'
        assert [hit['snippet'][a:b] for a, b in hit['highlights']] == ['capybara']
        assert (await http.get('/api/chat/search', params={'q': 'nothing-like-it'})).json() == []
        for params in ({}, {'q': ''}, {'q': 'x' * 201}):
            refused = await http.get('/api/chat/search', params=params)
            assert refused.status_code == 422 and set(refused.json()) == {'error'}


async def test_history_returns_the_branch_that_is_shown(jarvis: Harness) -> None:
    model = ScriptedModel(['first'])
    await jarvis.services.models.activate(model, model.info)
    async with jarvis.http() as http:
        answer = (await http.post('/api/chat', json={'message': 'Pick a number'})).json()
        model.pieces = ['second']
        await jarvis.services.assistant.regenerate(answer['id'])
        for params in ({'conversation_id': answer['conversation_id']}, {}):
            history = (await http.get('/api/chat/history', params=params)).json()
            assert [(m['text'], m['alternative'], m['alternatives']) for m in history][-2:] == \
                [('Pick a number', 1, 1), ('second', 2, 2)], params
        await jarvis.services.assistant.show_alternative(answer['id'])
        history = (await http.get('/api/chat/history', params={'limit': 1})).json()
        assert [(m['text'], m['alternative'], m['alternatives']) for m in history] == [('first', 1, 2)]


async def test_a_message_without_a_conversation_goes_to_the_one_used_last(jarvis: Harness) -> None:
    await jarvis.services.models.activate(model := ScriptedModel(['ok']), model.info)
    assistant = jarvis.services.assistant
    older = await assistant.new_conversation()
    newer = await assistant.new_conversation()
    async with jarvis.http() as http:
        await http.post('/api/chat', json={'message': 'into the older one', 'conversation_id': older.id})
        answer = (await http.post('/api/chat', json={'message': 'no id'})).json()
        assert answer['conversation_id'] == older.id, 'the conversation with the newest message'
        listed = (await http.get('/api/chat/conversations')).json()
        assert [c['id'] for c in listed if c['active']] == [older.id]
    assert (await assistant.conversation(newer.id)).message_count == 0


async def test_deleting_through_the_api_while_the_answer_streams(jarvis: Harness) -> None:
    model = ScriptedModel(['word '] * 400, delay=0.01)
    await jarvis.services.models.activate(model, model.info)
    conversation = await jarvis.services.assistant.new_conversation()
    streaming = jarvis.services.hub.subscribe(types=[events.CHAT_MESSAGE])
    async with jarvis.http() as asker, jarvis.http() as deleter:
        request = asyncio.ensure_future(
            asker.post('/api/chat', json={'message': 'a long story', 'conversation_id': conversation.id}))
        while True:
            message: ChatMessage = (await asyncio.wait_for(streaming.get(), 10)).data  # type: ignore[assignment]
            if message.role == 'assistant' and message.text:
                break
        deleted = await deleter.delete(f'/api/chat/conversations/{conversation.id}')
        response = await asyncio.wait_for(request, 10)
    streaming.close()
    assert deleted.status_code == 200
    assert response.status_code == 404 and 'deleted while J.A.R.V.I.S. was answering' in response.json()['error']
    assert model.generated < 400


async def test_a_page_of_another_origin_cannot_rename_delete_or_search(jarvis: Harness) -> None:
    conversation = await jarvis.services.assistant.new_conversation()
    path = f'/api/chat/conversations/{conversation.id}'
    foreign = {'Origin': 'http://evil.example'}
    async with jarvis.http() as http:
        for response in (await http.patch(path, json={'title': 'pwned'}, headers=foreign),
                         await http.delete(path, headers=foreign),
                         await http.get(path, headers=foreign),
                         await http.get('/api/chat/search', params={'q': 'x'}, headers=foreign)):
            assert response.status_code == 403 and set(response.json()) == {'error'}
        long = 'w' * 32_000
        for response in (await http.patch(path, json={'title': long}),
                         await http.get('/api/chat/search', params={'q': long})):
            assert response.status_code in (414, 422, 431) and set(response.json()) == {'error'}, response.text
    assert (await jarvis.services.assistant.conversation(conversation.id)).title == 'New conversation'
