"""The Chat view with NiceGUI's simulated users: sync across windows, stop, bad input, conversations."""
from __future__ import annotations

import asyncio
import json
import time

import pytest
from nicegui import ui
from nicegui.testing.user import User

from jarvis.models.base import ToolCall
from jarvis.ui import format as fmt
from jarvis.ui import notifications
from jarvis.ui.chat_elements import ChatShortcuts

from .conftest import Harness
from .helpers.scripted_model import ScriptedModel, ScriptedToolModel
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


async def test_the_answer_of_a_tool_model_says_which_tool_ran(jarvis: Harness) -> None:
    model = ScriptedToolModel(ToolCall('top_processes', {'sort': 'memory', 'limit': 3}),
                              answer=lambda results: f'{len(json.loads(results[0])["processes"])} processes.')
    await jarvis.services.models.activate(model, model.info)
    alice, bob = jarvis.new_user(), jarvis.new_user()
    await alice.open('/chat')
    await bob.open('/chat')
    await send(alice, 'What holds my memory?')
    await eventually(lambda: texts(bob, 'assistant') == ['3 processes.'])
    for user in (alice, bob):
        shown = [e.text for e in user.find(marker='bubble-tools').elements if e.text]
        assert shown == ['used: top_processes(sort=memory, limit=3)']
    await alice.open('/chat')  # kept with the message: a window opened later shows it too
    await eventually(lambda: [e.text for e in alice.find(marker='bubble-tools').elements if e.text] ==
                     ['used: top_processes(sort=memory, limit=3)'])


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


async def chat_window(jarvis: Harness, *pieces: str, delay: float = 0.01) -> tuple[ScriptedModel, User]:
    """A window on the chat, and the scripted model that answers in it."""
    model = ScriptedModel(list(pieces), delay=delay)
    await jarvis.services.models.activate(model, model.info)
    user = jarvis.new_user()
    await user.open('/chat')
    return model, user


async def two_windows(jarvis: Harness, *pieces: str, delay: float = 0.01) -> tuple[ScriptedModel, User, User]:
    """Two windows on the chat (alice and bob), and the scripted model that answers in both."""
    model, alice = await chat_window(jarvis, *pieces, delay=delay)
    bob = jarvis.new_user()
    await bob.open('/chat')
    return model, alice, bob


async def search_for(user: User, words: str, hits: int) -> None:
    user.find(marker='open-search').click()
    user.find(marker='search-input').type(words)
    await eventually(lambda: len(element_list(user, 'search-hit')) == hits)


def title(user: User) -> str:
    return element(user, 'conversation-title').text


def listed(user: User) -> list[str]:
    """The titles in the window's conversation list, in order."""
    return [next(c.text for c in item.descendants() if isinstance(c, ui.item_label))
            for item in element_list(user, 'conversation-item')]


async def test_each_window_shows_the_conversation_it_chose(jarvis: Harness) -> None:
    model, alice, bob = await two_windows(jarvis, 'ok')
    await send(alice, 'first topic')
    await eventually(lambda: texts(bob, 'assistant') == ['ok'])  # both opened the one used last
    alice.find(marker='new-conversation').click()
    await eventually(lambda: bubbles(alice) == [] and title(alice) == 'New conversation')
    await eventually(lambda: listed(bob) == ['New conversation', 'first topic'], timeout=5)
    assert texts(bob, 'user') == ['first topic'] and title(bob) == 'first topic', 'bob stays where he was'

    await send(bob, 'more on the first topic')
    await send(alice, 'second topic')
    await eventually(lambda: texts(bob, 'user') == ['first topic', 'more on the first topic'])
    await eventually(lambda: texts(alice, 'user') == ['second topic'] and texts(alice, 'assistant') == ['ok'])
    assert texts(bob, 'user') == ['first topic', 'more on the first topic'], "alice's message is not in bob's"
    await eventually(lambda: listed(bob) == ['second topic', 'first topic'], timeout=5)

    # bob opens alice's conversation and follows it live from then on
    second = (await jarvis.services.assistant.latest_conversation()).id
    bob.find(marker=f'conversation:{second}').click()
    await eventually(lambda: texts(bob, 'user') == ['second topic'] and title(bob) == 'second topic')
    await eventually(lambda: [f'conversation:{second}' in e._markers  # pylint: disable=protected-access
                              for e in element_list(bob, 'conversation-active')] == [True])
    await send(alice, 'alice again')
    await eventually(lambda: texts(bob, 'user') == ['second topic', 'alice again'])


def element_list(user: User, marker: str) -> list:
    return [e for e in user.client.elements.values() if marker in e._markers]  # pylint: disable=protected-access


async def test_rename_pin_and_delete_reach_every_window(jarvis: Harness) -> None:
    model, alice, bob = await two_windows(jarvis, 'ok')
    await send(alice, 'first topic')
    await eventually(lambda: texts(bob, 'assistant') == ['ok'])
    alice.find(marker='new-conversation').click()
    await eventually(lambda: title(alice) == 'New conversation')
    await send(alice, 'second topic')
    await eventually(lambda: listed(bob) == ['second topic', 'first topic'])

    bob.find(marker='rename-conversation').click()  # bob still shows the first topic
    await bob.should_see(marker='rename-input')
    bob.find(marker='rename-input').clear().type('Renamed ✓')
    bob.find(marker='rename-confirm').click()
    await eventually(lambda: listed(alice) == ['second topic', 'Renamed ✓'])
    assert title(alice) == 'second topic'

    bob.find(marker='pin-conversation').click()
    await eventually(lambda: listed(alice) == ['Renamed ✓', 'second topic'], timeout=5)
    await eventually(lambda: element(bob, 'pin-conversation').default_slot.children[0].text == 'Unpin')

    alice.find(marker=f'conversation:{(await jarvis.services.assistant.conversations())[0].id}').click()
    await eventually(lambda: title(alice) == 'Renamed ✓')
    bob.find(marker='delete-conversation').click()
    await bob.should_see(marker='delete-confirm')
    bob.find(marker='delete-confirm').click()
    # both showed it: both now show the conversation used last
    await eventually(lambda: title(alice) == 'second topic' and title(bob) == 'second topic')
    await eventually(lambda: listed(alice) == ['second topic'] and listed(bob) == ['second topic'])
    assert texts(bob, 'user') == ['second topic']


async def test_new_conversation_opens_an_empty_one_only_once(jarvis: Harness) -> None:
    user = jarvis.new_user()
    await user.open('/chat')
    await eventually(lambda: len(listed(user)) == 1)
    user.find(marker='new-conversation').click()
    await asyncio.sleep(0.2)
    assert len(await jarvis.services.assistant.conversations()) == 1, 'the first one is still empty: it is reused'


async def test_export_downloads_markdown_and_json(jarvis: Harness) -> None:
    model, user = await chat_window(jarvis, '**bold** answer')
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
    model, user = await chat_window(jarvis, '<img src=x onerror=alert(1)> and **bold**')
    await send(user, '<script>alert(1)</script>')
    await eventually(lambda: texts(user, 'assistant') == ['<img src=x onerror=alert(1)> and **bold**'])
    rendered = [next(c for c in b.descendants() if 'bubble-text' in c._markers).props['innerHTML']  # pylint: disable=protected-access
                for b in bubbles(user)]
    assert '&lt;script&gt;' in rendered[0] and '<script' not in rendered[0]
    assert '&lt;img' in rendered[1] and '<img' not in rendered[1] and '<strong>bold</strong>' in rendered[1]



def alternatives(user: User) -> list[str]:
    """The "n/m" of every bubble that has alternatives, in order."""
    return [e.text for e in element_list(user, 'alternatives') if all(a.visible for a in (e, *e.ancestors()))]


async def test_regenerate_and_step_through_alternatives_in_every_window(jarvis: Harness) -> None:
    model, alice, bob = await two_windows(jarvis, 'first answer')
    await send(alice, 'question')
    await eventually(lambda: texts(bob, 'assistant') == ['first answer'])
    model.pieces = ['second answer']
    alice.find(marker='regenerate-message').click()
    for user in (alice, bob):
        await eventually(lambda u=user: texts(u, 'assistant') == ['second answer'] and alternatives(u) == ['2/2'])
    alice.find(marker='previous-alternative').click()
    for user in (alice, bob):
        await eventually(lambda u=user: texts(u, 'assistant') == ['first answer'] and alternatives(u) == ['1/2'])
    first = (await jarvis.services.assistant.history())[-1]
    assert not element(bob, f'previous:{first.id}').enabled and element(bob, f'next:{first.id}').enabled


async def test_edit_a_sent_message_and_go_back_to_the_earlier_version(jarvis: Harness) -> None:
    model, user = await chat_window(jarvis, 'ok')
    await send(user, 'first')
    await eventually(lambda: texts(user, 'assistant') == ['ok'])
    await send(user, 'secnd')
    await eventually(lambda: texts(user, 'assistant') == ['ok', 'ok'])
    shortcuts = user.find(kind=ChatShortcuts)
    shortcuts.trigger('shortcut', 'edit-last')  # Up in the empty input
    await eventually(lambda: element(user, 'edit-banner').visible)
    assert user.find(marker='chat-input').elements.pop().value == 'secnd'
    shortcuts.trigger('shortcut', 'escape')  # no answer streams: Esc leaves editing
    await eventually(lambda: not element(user, 'edit-banner').visible)
    assert user.find(marker='chat-input').elements.pop().value == ''

    conversation_id = (await jarvis.services.assistant.latest_conversation()).id
    typo = (await jarvis.services.assistant.history(conversation_id))[2]
    user.find(marker=f'edit:{typo.id}').click()
    await eventually(lambda: user.find(marker='chat-input').elements.pop().value == 'secnd')
    model.pieces = ['better']
    user.find(marker='chat-input').clear().type('second')
    user.find(marker='send-button').click()
    await eventually(lambda: texts(user, 'user') == ['first', 'second']
                     and texts(user, 'assistant') == ['ok', 'better'])
    assert alternatives(user) == ['2/2'] and not element(user, 'edit-banner').visible
    edited = (await jarvis.services.assistant.history(conversation_id))[2]
    user.find(marker=f'previous:{edited.id}').click()
    await eventually(lambda: texts(user, 'user') == ['first', 'secnd'] and texts(user, 'assistant') == ['ok', 'ok'])
    assert alternatives(user) == ['1/2']


async def test_escape_stops_the_answer_and_shortcuts_open_search_and_a_new_conversation(jarvis: Harness) -> None:
    model, user = await chat_window(jarvis, *[f'w{i} ' for i in range(300)], delay=0.03)
    await send(user, 'a long answer, please')
    await eventually(lambda: texts(user, 'assistant') and texts(user, 'assistant')[0])

    def shortcut(name: str) -> None:
        shortcuts = user.find(kind=ChatShortcuts)
        assert len(shortcuts.elements) == 1, 'one Chat view, one set of keys'
        shortcuts.trigger('shortcut', name)

    shortcut('escape')
    await eventually(lambda: not element(user, 'stop-button').visible)
    assert (await jarvis.services.assistant.history())[-1].status == 'stopped'

    shortcut('search')  # Ctrl+K
    await user.should_see(marker='search-input')
    next(e for e in user.client.elements.values() if isinstance(e, ui.dialog)).close()
    shortcut('new')  # Ctrl+Shift+O
    await eventually(lambda: title(user) == 'New conversation' and bubbles(user) == [])
    assert len(await jarvis.services.assistant.conversations()) == 2


async def test_search_finds_a_word_from_another_conversation_and_opens_it_there(jarvis: Harness) -> None:
    model, user = await chat_window(jarvis, 'The okapi lives in the Congo.')
    await send(user, 'Tell me about an odd animal')
    await eventually(lambda: texts(user, 'assistant') == ['The okapi lives in the Congo.'])
    model.pieces = ['Sure.']
    user.find(marker='new-conversation').click()
    await eventually(lambda: title(user) == 'New conversation')
    await send(user, 'something else')
    await eventually(lambda: texts(user, 'assistant') == ['Sure.'])

    await search_for(user, 'okap', hits=1)
    hit = element_list(user, 'search-hit')[0]
    marked = [c.text for c in hit.descendants() if 'jarvis-hit' in c.classes]
    assert marked == ['okapi']
    user.find(marker='search-hit').click()
    await eventually(lambda: title(user) == 'Tell me about an odd animal')
    assert texts(user, 'assistant') == ['The okapi lives in the Congo.']


async def test_search_hit_on_a_hidden_alternative_shows_its_branch(jarvis: Harness) -> None:
    model, user = await chat_window(jarvis, 'aardvark')
    await send(user, 'an animal with a')
    await eventually(lambda: texts(user, 'assistant') == ['aardvark'])
    model.pieces = ['antelope']
    user.find(marker='regenerate-message').click()
    await eventually(lambda: texts(user, 'assistant') == ['antelope'])
    await search_for(user, 'aardvark', hits=1)
    user.find(marker='search-hit').click()
    await eventually(lambda: texts(user, 'assistant') == ['aardvark'] and alternatives(user) == ['1/2'])


async def test_a_window_whose_conversation_is_deleted_while_it_streams_carries_on(
        jarvis: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(notifications, 'notify', lambda client, message, **_: shown.append((client.id, message)))
    model, alice, bob = await two_windows(jarvis, *[f'w{i} ' for i in range(300)], delay=0.02)
    await send(alice, 'an endless story')
    await eventually(lambda: texts(bob, 'assistant') and texts(bob, 'assistant')[0])
    bob.find(marker='delete-conversation').click()
    await bob.should_see(marker='delete-confirm')
    bob.find(marker='delete-confirm').click()
    for user in (alice, bob):
        await eventually(lambda u=user: bubbles(u) == [] and title(u) == 'New conversation')
    await eventually(lambda: any('deleted while J.A.R.V.I.S. was answering' in m for c, m in shown
                                 if c == alice.client.id))
    assert model.generated < 300, 'the answer stopped'
    assert not element(alice, 'stop-button').visible
    await send(alice, 'still works')
    await eventually(lambda: texts(alice, 'user') == ['still works'])


async def test_a_message_sent_while_the_window_opens_goes_into_the_conversation_it_opens(
        jarvis: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a busy machine the first message can beat the window's first read of the database."""
    model = ScriptedModel(['ok'])
    await jarvis.services.models.activate(model, model.info)
    assistant = jarvis.services.assistant
    [opened] = await assistant.conversations()
    slow = assistant.latest_conversation

    async def slow_latest():  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.5)
        return await slow()
    monkeypatch.setattr(assistant, 'latest_conversation', slow_latest)
    user = jarvis.new_user()
    await user.open('/chat')
    await send(user, 'typed at once')
    await eventually(lambda: texts(user, 'user') == ['typed at once'] and texts(user, 'assistant') == ['ok'])
    assert [c.id for c in await assistant.conversations()] == [opened.id], 'no second conversation'


def test_times_in_the_list_and_on_the_bubbles() -> None:
    now = time.mktime((2026, 11, 27, 15, 0, 0, 0, 0, -1))
    assert [fmt.relative_time(now - ago, now) for ago in (5, 300, 7200)] == ['just now', '5 min ago', '2 h ago']
    assert fmt.relative_time(now - 3 * 86400, now) == '2026-11-24'
    assert fmt.message_stamp(now - 3600, now) == '14:00', 'today: the time of day'
    assert fmt.message_stamp(now - 86400, now) == '2026-11-26 15:00', 'another day: with the date'
