"""The Chat view with NiceGUI's simulated users: sync across windows, stop, bad input, conversations."""
from __future__ import annotations

import asyncio
import json

import pytest
from nicegui import ui
from nicegui.testing.user import User

from jarvis.ui import notifications

from .conftest import Harness
from .helpers.scripted_model import ScriptedModel
from .helpers.waiting import eventually


def bubbles(user: User, role: str | None = None) -> list:
    found = [e for e in user.client.elements.values() if isinstance(e, ui.chat_message)]
    return [b for b in found if role is None or f'bubble-{role}' in b._markers]  # pylint: disable=protected-access


def element(user: User, marker: str):  # type: ignore[no-untyped-def]
    """The element with a marker, visible or not (user.find sees only visible ones)."""
    found = [e for e in user.client.elements.values() if marker in e._markers]  # pylint: disable=protected-access
    assert len(found) == 1, f'{len(found)} elements marked {marker}'
    return found[0]


def texts(user: User, role: str) -> list[str]:
    result = []
    for bubble in bubbles(user, role):
        markdown = next(c for c in bubble.descendants() if 'bubble-text' in c._markers)  # pylint: disable=protected-access
        result.append(markdown.content)
    return result


async def send(user: User, text: str) -> None:
    user.find(marker='chat-input').clear().type(text)
    user.find(marker='send-button').click()


async def test_message_and_streamed_answer_appear_in_every_window(jarvis: Harness) -> None:
    model = ScriptedModel(['Hello ', 'from ', 'J.A.R.V.I.S.'], delay=0.15)
    await jarvis.services.models.activate(model, model.info)
    alice, bob = jarvis.new_user(), jarvis.new_user()
    await alice.open('/chat')
    await bob.open('/chat')
    await send(alice, 'Hi there!')
    await eventually(lambda: texts(bob, 'user') == ['Hi there!'])
    # while it streams, bob already sees part of the answer
    await eventually(lambda: texts(bob, 'assistant') and texts(bob, 'assistant')[0] not in ('', 'Hello from J.A.R.V.I.S.'))
    await eventually(lambda: texts(bob, 'assistant') == ['Hello from J.A.R.V.I.S.'])
    await eventually(lambda: texts(alice, 'assistant') == ['Hello from J.A.R.V.I.S.'])
    assert alice.find(marker='chat-input').elements.pop().value == '', 'the input clears'
    meta = next(e for e in bob.find(marker='bubble-meta').elements if e.text)
    assert 'scripted' in meta.text and 'tokens/s' in meta.text and 'first token' in meta.text


async def test_typing_indicator_and_stop_button(jarvis: Harness) -> None:
    model = ScriptedModel([f'w{i} ' for i in range(300)], delay=0.03)
    await jarvis.services.models.activate(model, model.info)
    user = jarvis.new_user()
    await user.open('/chat')
    await send(user, 'a long answer, please')
    stop = element(user, 'stop-button')
    await eventually(lambda: stop.visible)
    await eventually(lambda: texts(user, 'assistant') and texts(user, 'assistant')[0])
    user.find(marker='stop-button').click()
    await eventually(lambda: not stop.visible)
    history = await jarvis.services.assistant.history()
    assert history[-1].status == 'stopped' and history[-1].text.startswith('w0 ')
    assert model.generated < 100
    meta = [e.text for e in user.find(marker='bubble-meta').elements if e.text]
    assert meta and meta[-1].endswith('stopped')


async def test_empty_and_too_long_messages_are_not_sent(jarvis: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[str] = []
    monkeypatch.setattr(notifications, 'notify', lambda client, message, **_: shown.append(message))
    user = jarvis.new_user()
    await user.open('/chat')
    await send(user, '    ')
    await asyncio.sleep(0.1)
    assert bubbles(user) == []
    too_long = 'x' * 32_001
    await send(user, too_long)
    await asyncio.sleep(0.1)
    assert bubbles(user) == []
    assert any('too long' in m for m in shown)
    assert user.find(marker='chat-input').elements.pop().value == too_long, 'nothing is lost'
    assert await jarvis.services.assistant.history() == []


async def test_no_model_banner_and_plugins_still_answer(jarvis: Harness) -> None:
    user = jarvis.new_user()
    await user.open('/chat')
    banner = element(user, 'no-model-banner')
    assert banner.visible
    await send(user, 'What is 6 * 7?')
    await eventually(lambda: texts(user, 'assistant') and '42' in texts(user, 'assistant')[-1])


async def test_answer_notifies_a_window_that_is_not_on_the_chat(jarvis: Harness,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(notifications, 'notify', lambda client, message, **_: shown.append((client.id, message)))
    model = ScriptedModel(['Done.'])
    await jarvis.services.models.activate(model, model.info)
    chatting, elsewhere = jarvis.new_user(), jarvis.new_user()
    await chatting.open('/chat')
    await elsewhere.open('/')
    await send(chatting, 'ping me when done')
    await eventually(lambda: any('J.A.R.V.I.S. answered: Done.' in m for _, m in shown))
    assert {client for client, m in shown if 'answered' in m} == {elsewhere.client.id}


async def test_conversations_switch_rename_delete_in_sync(jarvis: Harness) -> None:
    model = ScriptedModel(['ok'])
    await jarvis.services.models.activate(model, model.info)
    alice, bob = jarvis.new_user(), jarvis.new_user()
    await alice.open('/chat')
    await bob.open('/chat')
    await send(alice, 'first topic')
    await eventually(lambda: texts(bob, 'assistant') == ['ok'])
    alice.find(marker='new-conversation').click()
    await eventually(lambda: bubbles(bob) == [] and bubbles(alice) == [])
    await send(bob, 'second topic')
    await eventually(lambda: texts(alice, 'user') == ['second topic'])
    await eventually(lambda: [e.text for e in alice.find(marker='conversation-title').elements] == ['second topic'])

    alice.find(marker='rename-conversation').click()
    await alice.should_see(marker='rename-input')
    alice.find(marker='rename-input').clear().type('Renamed ✓')
    alice.find(marker='rename-confirm').click()
    await eventually(lambda: [e.text for e in bob.find(marker='conversation-title').elements] == ['Renamed ✓'])

    bob.find(marker='delete-conversation').click()
    await bob.should_see(marker='delete-confirm')
    bob.find(marker='delete-confirm').click()
    await eventually(lambda: texts(alice, 'user') == ['first topic'])
    conversations = await jarvis.services.assistant.conversations()
    assert [c.title for c in conversations] == ['first topic']


async def test_export_downloads_markdown_and_json(jarvis: Harness) -> None:
    model = ScriptedModel(['**bold** answer'])
    await jarvis.services.models.activate(model, model.info)
    user = jarvis.new_user()
    await user.open('/chat')
    await send(user, 'export me')
    await eventually(lambda: texts(user, 'assistant') == ['**bold** answer'])
    user.find(marker='export-json').click()
    await eventually(lambda: user.download.http_responses)
    data = json.loads(user.download.http_responses[-1].content)
    assert [m['text'] for m in data['messages']] == ['export me', '**bold** answer']
    user.find(marker='export-md').click()
    await eventually(lambda: len(user.download.http_responses) == 2)
    assert '**bold** answer' in user.download.http_responses[-1].text


async def test_markdown_bubble_escapes_html(jarvis: Harness) -> None:
    model = ScriptedModel(['<img src=x onerror=alert(1)> and **bold**'])
    await jarvis.services.models.activate(model, model.info)
    user = jarvis.new_user()
    await user.open('/chat')
    await send(user, '<script>alert(1)</script>')
    await eventually(lambda: texts(user, 'assistant') == ['<img src=x onerror=alert(1)> and **bold**'])
    rendered = [next(c for c in b.descendants() if 'bubble-text' in c._markers).props['innerHTML']  # pylint: disable=protected-access
                for b in bubbles(user)]
    assert '&lt;script&gt;' in rendered[0] and '<script' not in rendered[0]
    assert '&lt;img' in rendered[1] and '<img' not in rendered[1] and '<strong>bold</strong>' in rendered[1]

