"""The chat pipeline: streaming, stop, errors, bad input, history, export, plugins first."""
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jarvis import events
from jarvis.assistant.assistant import NO_MODEL, ChatInputError, fit_to_context
from jarvis.config import Settings
from jarvis.events import ChatMessage
from jarvis.models.base import ToolCall
from jarvis.plugins.base import Plugin, PluginContext
from jarvis.services import Services

from .helpers.scripted_model import ScriptedModel, ScriptedToolModel


class PingPlugin(Plugin):
    name = 'Ping'
    description = 'Answers ping with pong.'
    patterns = [r'^\s*ping\s*$']

    async def handle(self, message: str, context: PluginContext) -> str | None:
        return 'pong'


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    services = Services(settings)
    services.plugins._builtins = [PingPlugin]  # pylint: disable=protected-access
    await services.start()
    yield services
    await services.stop()


async def use(services: Services, model: ScriptedModel) -> None:
    await services.models.activate(model, model.info)


def collect(services: Services) -> list[ChatMessage]:
    seen: list[ChatMessage] = []
    services.hub.subscribe(lambda event: seen.append(event.data), types=[events.CHAT_MESSAGE], maxsize=100_000)
    return seen


async def test_answer_streams_and_is_stored(services: Services) -> None:
    model = ScriptedModel(['Paris ', 'is ', 'the ', 'capital.'], delay=0.1)
    await use(services, model)
    seen = collect(services)
    final = await services.assistant.send('What is the capital of France?')
    await asyncio.sleep(0.05)
    assert final.status == 'done' and final.text == 'Paris is the capital.'
    assert final.model == 'scripted' and final.tokens == 4
    assert final.first_token_s is not None and final.tokens_per_s is not None
    user, *streamed, last = [m for m in seen]
    assert (user.role, user.text) == ('user', 'What is the capital of France?')
    assert streamed[0].status == 'streaming' and streamed[0].text == ''  # the typing indicator
    partials = [m.text for m in streamed if m.text]
    assert len(partials) >= 2, 'the answer arrives in more than one piece'
    assert all(b.startswith(a) for a, b in zip(partials, partials[1:]))
    assert last == final
    stored = await services.assistant.history()
    assert [(m.role, m.text, m.status) for m in stored] == [
        ('user', 'What is the capital of France?', 'done'), ('assistant', 'Paris is the capital.', 'done')]
    assert model.prompts[0][0].role == 'system' and 'J.A.R.V.I.S.' in model.prompts[0][0].content


async def test_fast_model_updates_are_coalesced(services: Services) -> None:
    await use(services, ScriptedModel(['x'] * 3000, delay=0.0002))
    seen = collect(services)
    final = await services.assistant.send('many tokens please')
    await asyncio.sleep(0.05)
    streaming = [m for m in seen if m.status == 'streaming']
    assert final.text == 'x' * 3000
    assert len(streaming) < 100, f'{len(streaming)} updates for 3000 tokens'


async def test_stop_keeps_the_partial_answer(services: Services) -> None:
    model = ScriptedModel([f'word{i} ' for i in range(200)], delay=0.02)
    await use(services, model)
    seen = collect(services)
    task = asyncio.ensure_future(services.assistant.send('tell me a long story'))
    while not any(m.status == 'streaming' and m.text for m in seen):
        await asyncio.sleep(0.01)
    assert services.assistant.stop_generation()
    final = await asyncio.wait_for(task, 5)
    assert final.status == 'stopped'
    assert final.text.startswith('word0 ')
    assert model.generated < 50, 'the model stopped computing'
    stored = (await services.assistant.history())[-1]
    assert (stored.status, stored.text) == ('stopped', final.text)


async def test_model_error_becomes_an_error_bubble(services: Services) -> None:
    await use(services, ScriptedModel(['half ', 'an ', 'answer'], fail_after=2))
    final = await services.assistant.send('hello')
    assert final.status == 'error'
    assert final.text.startswith('half an') and 'the model ran out of memory' in final.text
    await use(services, ScriptedModel(['still ', 'alive']))
    assert (await services.assistant.send('again')).text == 'still alive'


async def test_without_a_model_the_chat_says_so_and_plugins_still_answer(services: Services) -> None:
    assert services.models.active is None
    assert (await services.assistant.send('hello')).text == services.assistant.no_model_text
    assert services.assistant.no_model_text.startswith(NO_MODEL)
    reply = await services.assistant.send('ping')
    assert (reply.text, reply.source) == ('pong', 'Ping')


async def test_plugins_get_the_first_word(services: Services) -> None:
    model = ScriptedModel(['model answer'])
    await use(services, model)
    assert (await services.assistant.send(' ping ')).text == 'pong'
    assert model.prompts == [], 'the model was not asked'
    assert (await services.assistant.send('pingpong')).text == 'model answer'


async def test_a_model_that_keeps_calling_tools_answers_after_three_rounds(services: Services) -> None:
    model = ScriptedToolModel(ToolCall('system_metrics'), answer=lambda results: f'{len(results)} results.',
                              keep_calling=True)
    await use(services, model)
    seen = collect(services)
    reply = await services.assistant.send('ping?')  # a tool model decides, even where a plugin would match
    assert [len(offered) > 0 for offered in model.offered] == [True, True, True, False], 'the last round has none'
    assert 'plugin_ping' in model.offered[0]
    assert (reply.status, reply.text, reply.source) == ('done', '1 results.', 'scripted')
    assert [tool['name'] for tool in reply.tools] == ['system_metrics'] * 3 and all(t['ok'] for t in reply.tools)
    last = model.prompts[-1]
    assert [turn.role for turn in last[-6:]] == ['assistant', 'tool'] * 3
    assert json.loads(last[-1].content)['memory_total'] > 0, 'the real reading went back to the model'
    assert 'tools' in last[0].content, 'the system prompt says what the tools are for'
    # every window saw which tool was running before the answer came
    assert any(m.status == 'streaming' and m.tools for m in seen if m.id == reply.id)


async def test_bad_input_is_refused_clearly_and_unicode_is_kept(services: Services) -> None:
    await use(services, ScriptedModel(['ok']))
    for empty in ('', '   ', '\n\t '):
        with pytest.raises(ChatInputError, match='empty'):
            await services.assistant.send(empty)
    with pytest.raises(ChatInputError, match='too long'):
        await services.assistant.send('x' * 32_001)
    with pytest.raises(ChatInputError, match='text'):
        await services.assistant.send(None)
    assert await services.assistant.history() == [], 'nothing was stored for refused input'
    text = 'Grüße 👋🏽 — 你好 — مرحبا — \u200b\x07 ok'
    await services.assistant.send(text)
    assert (await services.assistant.history())[0].text == text
    await services.assistant.send('broken \ud800 surrogate')
    assert (await services.assistant.history())[2].text == 'broken \ufffd surrogate'


async def test_exactly_the_limit_is_accepted(services: Services) -> None:
    await use(services, ScriptedModel(['ok']))
    await services.assistant.send('y' * 32_000)
    assert len((await services.assistant.history())[0].text) == 32_000


async def test_history_survives_a_restart(settings: Settings) -> None:
    first = Services(settings)
    first.plugins._builtins = []  # pylint: disable=protected-access
    await first.start()
    await use(first, ScriptedModel(['one']))
    await first.assistant.send('first message')
    second_conversation = await first.assistant.new_conversation()
    await first.assistant.send('second conversation')
    await first.stop()

    again = Services(settings)
    again.plugins._builtins = []  # pylint: disable=protected-access
    await again.start()
    try:
        latest = await again.assistant.latest_conversation()
        assert latest is not None and latest.id == second_conversation.id, 'the one used last opens'
        conversations = await again.assistant.conversations()
        assert [c.title for c in conversations] == ['second conversation', 'first message']
        history = await again.assistant.history(conversations[1].id)
        assert [(m.role, m.text) for m in history] == [('user', 'first message'), ('assistant', 'one')]
    finally:
        await again.stop()


async def test_conversations_new_rename_delete(services: Services) -> None:
    assistant = services.assistant
    first = await assistant.latest_conversation()
    assert first is not None, 'the first start makes the first conversation'
    second = await assistant.new_conversation()
    assert (await assistant.latest_conversation()).id == second.id, 'the newest (empty) one is the one used last'
    renamed = await assistant.rename(second.id, '  Plans   for  Friday ')
    assert renamed.title == 'Plans for Friday'
    with pytest.raises(ValueError):
        await assistant.rename(second.id, '   ')
    await assistant.delete(second.id)
    assert (await assistant.latest_conversation()).id == first.id
    await assistant.delete(first.id)  # deleting the last one starts a fresh one
    remaining = await assistant.conversations()
    assert len(remaining) == 1 and remaining[0].id not in (first.id, second.id)


async def test_export_round_trips(services: Services) -> None:
    await use(services, ScriptedModel(['| a | b |\n|---|---|\n| 1 | 2 |']))
    await services.assistant.send('Eine Tabelle, bitte 📊')
    assistant = services.assistant
    conversation_id = (await assistant.latest_conversation()).id
    exported = await assistant.export(conversation_id, 'json')
    data = json.loads(exported)
    assert data['format'] == 'jarvis-conversation' and len(data['messages']) == 2
    copy = await assistant.import_conversation(exported)
    originals = await assistant.history(conversation_id)
    copies = await assistant.history(copy.id)
    assert [(m.role, m.text, m.status) for m in copies] == [(m.role, m.text, m.status) for m in originals]
    assert copy.title == data['title']
    markdown = await assistant.export(conversation_id, 'md')
    assert '## You' in markdown and '## J.A.R.V.I.S.' in markdown and 'Eine Tabelle, bitte 📊' in markdown
    with pytest.raises(ValueError):
        await assistant.import_conversation('{"format": "something else"}')


def test_context_window_keeps_the_newest_messages() -> None:
    model = ScriptedModel([])
    model.context_length = 100
    history = [ChatMessage(role='user' if i % 2 == 0 else 'assistant', text=f'message {i} ' + 'x' * 80)
               for i in range(10)]
    turns = fit_to_context(model, 'system', history, reserve=20, count=lambda text: len(text) // 4)
    assert turns[0].role == 'system'
    assert turns[-1].content.startswith('message 9')
    assert 1 < len(turns) < 11
    long = [ChatMessage(role='user', text='z' * 10_000)]
    turns = fit_to_context(model, 'system', long, reserve=20, count=lambda text: len(text) // 4)
    assert len(turns) == 2 and 0 < len(turns[1].content) < 10_000


async def test_api_chat_and_history(services: Services, tmp_path: Path) -> None:
    # the same pipeline answers scripts: see test_chat_api for the HTTP layer
    await use(services, ScriptedModel(['42']))
    answer = await services.assistant.send('meaning of life?')
    last = await services.assistant.recent_messages(2)
    assert [m.message.text for m in last] == ['meaning of life?', answer.text]
