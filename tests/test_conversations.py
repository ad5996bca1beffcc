"""Conversations in the domain: branches (edit, regenerate, "n/m"), titles, pins, full-text search, the
upgrade of an old database and the repair of what a crash or a salvage leaves. Real SQLite, the
assistant's own pipeline, a scripted model where an exact answer matters."""
from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jarvis import events
from jarvis.assistant.assistant import ChatInputError
from jarvis.assistant.conversations import (
    HIT_CLOSE,
    HIT_OPEN,
    ConversationNotFound,
    MessageNotFound,
    read_snippet,
    search_terms,
)
from jarvis.config import Settings
from jarvis.events import ChatMessage
from jarvis.services import Services
from jarvis.storage import Database
from jarvis.storage.database import MIGRATIONS
from jarvis.storage.salvage import salvage

from .helpers.scripted_model import ScriptedModel


async def started(settings: Settings) -> Services:
    services = Services(settings)
    services.plugins._builtins = []  # pylint: disable=protected-access  # only the model answers
    await services.start()
    return services


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    services = await started(settings)
    yield services
    await services.stop()


async def use(services: Services, *pieces: str) -> ScriptedModel:
    model = ScriptedModel(list(pieces))
    await services.models.activate(model, model.info)
    return model


def shown(thread) -> list[tuple[str, int, int]]:  # type: ignore[no-untyped-def]
    return [(m.message.text, m.alternative, m.alternatives) for m in thread.messages]


# --- branches -------------------------------------------------------------------------------------


async def test_regenerate_keeps_both_answers_as_alternatives_and_they_survive_a_restart(settings: Settings) -> None:
    services = await started(settings)
    model = await use(services, 'first answer')
    assistant = services.assistant
    first = await assistant.send('Which city?')
    model.pieces = ['second answer']
    second = await assistant.regenerate(first.id)
    conversation_id = first.conversation_id
    assert second.parent_id == first.parent_id and second.id != first.id
    assert shown(await assistant.thread(conversation_id)) == [('Which city?', 1, 1), ('second answer', 2, 2)]
    assert [turn.content for turn in model.prompts[-1][1:]] == ['Which city?'], 'the old answer is not in the prompt'
    await services.stop()

    again = await started(settings)
    try:
        thread = await again.assistant.thread(conversation_id)
        assert shown(thread) == [('Which city?', 1, 1), ('second answer', 2, 2)], 'the shown branch is kept'
        await again.assistant.show_alternative(thread.messages[1].message.id, -1)
        assert shown(await again.assistant.thread(conversation_id)) == [('Which city?', 1, 1), ('first answer', 1, 2)]
        history = await again.assistant.recent_messages(10, conversation_id)
        assert [(m.to_dict()['text'], m.to_dict()['alternative'], m.to_dict()['alternatives']) for m in history] == \
            [('Which city?', 1, 1), ('first answer', 1, 2)], 'the history API returns the branch that is shown'
    finally:
        await again.stop()


async def test_edit_makes_a_new_branch_and_the_model_reads_only_that_branch(services: Services) -> None:
    model = await use(services, 'ok')
    assistant = services.assistant
    await assistant.send('one')
    second = await assistant.send('two')
    await assistant.send('three')
    conversation_id = second.conversation_id
    thread = await assistant.thread(conversation_id)
    question_two = thread.messages[2].message
    assert question_two.text == 'two'

    await assistant.edit(question_two.id, 'two, edited')
    thread = await assistant.thread(conversation_id)
    assert shown(thread) == [('one', 1, 1), ('ok', 1, 1), ('two, edited', 2, 2), ('ok', 1, 1)]
    assert [turn.content for turn in model.prompts[-1][1:]] == ['one', 'ok', 'two, edited'], \
        'the model reads the new branch, not the messages after the edited one'

    await assistant.show_alternative(thread.messages[2].message.id, -1)
    assert [text for text, *_ in shown(await assistant.thread(conversation_id))] == \
        ['one', 'ok', 'two', 'ok', 'three', 'ok'], 'the earlier version with everything after it'
    with pytest.raises(MessageNotFound, match='no alternative 0'):
        await assistant.show_alternative(question_two.id, -1)
    with pytest.raises(ChatInputError, match='Only your own messages'):
        await assistant.edit(second.id, 'an answer is not edited')
    with pytest.raises(ChatInputError, match='Only an answer'):
        await assistant.regenerate(question_two.id)
    with pytest.raises(MessageNotFound):
        await assistant.edit('no-such-message', 'x')


async def test_two_messages_sent_at_once_follow_each_other(services: Services) -> None:
    """Two windows sending into one conversation at the same moment must not fork it."""
    await use(services, 'ok')
    conversation = await services.assistant.new_conversation()
    await asyncio.gather(*(services.assistant.send(f'message {n}', conversation.id) for n in range(4)))
    thread = await services.assistant.thread(conversation.id)
    assert len(thread.messages) == 8 and all(m.alternatives == 1 for m in thread.messages)
    assert all(b.message.parent_id == a.message.id for a, b in zip(thread.messages, thread.messages[1:]))


async def test_deleting_a_conversation_while_its_answer_streams_stops_it(services: Services) -> None:
    model = ScriptedModel(['word '] * 300, delay=0.01)
    await services.models.activate(model, model.info)
    conversation = await services.assistant.new_conversation()
    streaming = services.hub.subscribe(types=[events.CHAT_MESSAGE])
    task = asyncio.ensure_future(services.assistant.send('a long story', conversation.id))
    while True:
        message = (await asyncio.wait_for(streaming.get(), 10)).data
        if message.role == 'assistant' and message.text:
            break
    await services.assistant.delete(conversation.id)
    with pytest.raises(ConversationNotFound, match='deleted while J.A.R.V.I.S. was answering'):
        await asyncio.wait_for(task, 10)
    streaming.close()
    assert model.generated < 300
    assert conversation.id not in [c.id for c in await services.assistant.conversations()]
    assert await services.assistant.search('word') == [], 'nothing of it is left in the search index'


# --- titles and pins ------------------------------------------------------------------------------


async def test_titles_from_the_first_message_are_told_apart(services: Services) -> None:
    await use(services, 'ok')
    assistant = services.assistant
    titles = []
    for _ in range(3):
        conversation = await assistant.new_conversation()
        await assistant.send('Hello there', conversation.id)
        titles.append((await assistant.conversation(conversation.id)).title)
    stamps = {time.strftime('%b %d, %H:%M', time.localtime(time.time() - ago)) for ago in (0, 60)}  # a minute turned
    assert titles[0] == 'Hello there'
    assert titles[1] in {f'Hello there · {stamp}' for stamp in stamps}
    assert titles[2] == f'{titles[1]} (2)' or titles[2] in {f'Hello there · {stamp}' for stamp in stamps} - {
        titles[1]}, 'made in the same minute: a number'
    assert len(set(titles)) == 3


async def test_pinned_conversations_come_first(services: Services) -> None:
    await use(services, 'ok')
    assistant = services.assistant
    old = await assistant.new_conversation()
    await assistant.send('old topic', old.id)
    new = await assistant.new_conversation()
    await assistant.send('new topic', new.id)
    assert [c.title for c in await assistant.conversations()][:2] == ['new topic', 'old topic']
    pinned = await assistant.pin(old.id, True)
    assert pinned.pinned and pinned.to_dict()['pinned'] is True
    assert [c.title for c in await assistant.conversations()][:2] == ['old topic', 'new topic']
    assert (await assistant.latest_conversation()).id == new.id, 'a pin does not change the one used last'
    await assistant.update(old.id, pinned=False, title='Old, renamed')
    assert [c.title for c in await assistant.conversations()][:2] == ['new topic', 'Old, renamed']
    with pytest.raises(ValueError, match='needs a name'):
        await assistant.update(old.id, title='  ', pinned=True)
    assert not (await assistant.conversation(old.id)).pinned, 'a refused change changes nothing'


# --- search ---------------------------------------------------------------------------------------


async def test_search_finds_words_in_every_conversation_and_marks_them(services: Services) -> None:
    model = await use(services, 'Lisbon is lovely in spring.')
    assistant = services.assistant
    trip = await assistant.new_conversation()
    await assistant.send('Planning a trip to Portugal', trip.id)
    model.pieces = ['Bon appétit.']
    other = await assistant.new_conversation()
    await assistant.send('Crème brûlée recipe <b>please</b>', other.id)

    hits = await assistant.search('lisb')  # a prefix finds the word
    assert [(h.conversation_id, h.role) for h in hits] == [(trip.id, 'assistant')]
    hit = hits[0]
    assert [hit.snippet[a:b] for a, b in hit.highlights] == ['Lisbon']
    assert hit.message_id is not None and hit.title == 'Planning a trip to Portugal'

    [title_hit, message_hit] = await assistant.search('portugal trip')  # every word, in any order
    assert (title_hit.message_id, message_hit.role) == (None, 'user')
    assert [title_hit.snippet[a:b] for a, b in title_hit.highlights] == ['trip', 'Portugal']

    hits = await assistant.search('creme brulee')  # without the accents
    assert [h.snippet[a:b] for h in hits if h.message_id for a, b in h.highlights] == ['Crème', 'brûlée']
    markup = [h for h in await assistant.search('please') if h.message_id]
    assert markup[0].snippet.endswith('<b>please</b>'), 'markup is text; the view never reads it as HTML'

    for query in ('"', '***', 'NEAR(a b)', 'trip OR', '-trip', 'a"b', '(', '^', '   '):  # FTS5 syntax is no syntax
        await assistant.search(query)
    assert await assistant.search('?!') == []
    assert await assistant.search('zebra') == []


async def test_search_reads_long_messages_and_hidden_alternatives(services: Services) -> None:
    model = await use(services, 'first version')
    assistant = services.assistant
    long = 'word ' * 6000 + 'needle ' + 'hay ' * 400  # 32,000 characters
    assert len(long) <= 32_000
    answer = await assistant.send(long)
    model.pieces = ['second version']
    await assistant.regenerate(answer.id)
    [needle] = await assistant.search('needle')
    assert len(needle.snippet) < 300 and 'needle' in needle.snippet
    [hidden] = await assistant.search('first version')
    assert hidden.message_id == answer.id, 'an alternative that is not shown is found too'


def test_snippets_from_text_that_holds_the_marks_themselves_get_no_highlights() -> None:
    assert read_snippet(f'a {HIT_OPEN}cat{HIT_CLOSE} sat') == ('a cat sat', [(2, 5)])
    assert read_snippet(f'{HIT_OPEN}x{HIT_CLOSE}{HIT_OPEN}', marked=False) == ('x', [])
    assert search_terms('  Grüße, 3D-Drucker_v2! ') == ['Grüße', '3D', 'Drucker', 'v2']
    assert len(search_terms('a ' * 100)) == 12


# --- storage: the upgrade, a crash, a salvage -----------------------------------------------------


def old_database(path: Path, versions: int = 3) -> None:
    """A database as the app before branches wrote it."""
    connection = sqlite3.connect(path, isolation_level=None)
    for index, script in enumerate(MIGRATIONS[:versions], start=1):
        connection.executescript(f'BEGIN; {script}; PRAGMA user_version = {index}; COMMIT;')
    connection.execute("INSERT INTO conversations VALUES ('c1', 'Old talk', 1.0, 4.0)")
    for index, (role, text) in enumerate([('user', 'What is a tapir?'), ('assistant', 'A mammal.'),
                                          ('user', 'Where does it live?'), ('assistant', 'In forests.')]):
        connection.execute('INSERT INTO messages(id, conversation_id, role, text, status, created_at) '
                           "VALUES (?, 'c1', ?, ?, 'done', ?)", (f'm{index}', role, text, 1.0 + index))
    connection.close()


async def test_an_old_database_is_upgraded_with_its_messages_in_order(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True)
    old_database(settings.db_path)
    services = await started(settings)
    try:
        thread = await services.assistant.thread('c1')
        assert shown(thread) == [('What is a tapir?', 1, 1), ('A mammal.', 1, 1), ('Where does it live?', 1, 1),
                                 ('In forests.', 1, 1)]
        [hit] = await services.assistant.search('tapir')
        assert hit.message_id == 'm0'
        await use(services, 'Yes.')
        answer = await services.assistant.send('Can it swim?', 'c1')
        assert (await services.assistant.thread('c1')).messages[-2].message.parent_id == 'm3'
        assert answer.status == 'done'
    finally:
        await services.stop()


async def test_an_answer_cut_off_by_a_crash_is_kept_as_stopped(settings: Settings) -> None:
    services = await started(settings)
    model = ScriptedModel(['slow '] * 500, delay=0.02)
    await services.models.activate(model, model.info)
    conversation = await services.assistant.new_conversation()
    task = asyncio.ensure_future(services.assistant.send('go', conversation.id))
    while not services.assistant._streaming:  # pylint: disable=protected-access
        await asyncio.sleep(0.01)
    # a crash: the answer's task ends without a word, so its final state is never written
    services.assistant.stop_generation()  # (only so that the model's thread ends with this test)
    task.cancel()
    await services.stop()
    with sqlite3.connect(settings.db_path) as connection:
        assert connection.execute('SELECT status FROM messages WHERE role = ?', ('assistant',)).fetchall() == \
            [('streaming',)]

    again = await started(settings)
    try:
        thread = await again.assistant.thread(conversation.id)
        assert [(m.message.role, m.message.status) for m in thread.messages] == [('user', 'done'),
                                                                                 ('assistant', 'stopped')]
    finally:
        await again.stop()


def test_salvage_keeps_alternatives_and_pins_and_links_messages_of_an_old_schema(tmp_path: Path) -> None:
    # the current schema: an alternative, a pin and the shown branch come back as they were
    current = Database(tmp_path / 'current.db')
    current.execute("INSERT INTO conversations(id, title, created_at, updated_at, pinned, head_id) "
                    "VALUES ('c', 'Pinned', 1, 2, 1, 'a1')")
    for message_id, parent, text in (('q', '', 'question'), ('a1', 'q', 'answer one'), ('a2', 'q', 'answer two')):
        current.execute("INSERT INTO messages(id, conversation_id, parent_id, role, text, status, created_at) "
                        "VALUES (?, 'c', ?, ?, ?, 'done', ?)",
                        (message_id, parent, 'user' if message_id == 'q' else 'assistant', text,
                         time.time()))
    current.close()
    fresh = Database(tmp_path / 'fresh.db')
    salvage(tmp_path / 'current.db', fresh)
    row = fresh.query_one("SELECT pinned, head_id FROM conversations WHERE id = 'c'")
    assert (row['pinned'], row['head_id']) == (1, 'a1')
    assert {(r['id'], r['parent_id']) for r in fresh.query('SELECT id, parent_id FROM messages')} == \
        {('q', ''), ('a1', 'q'), ('a2', 'q')}
    assert fresh.query_one("SELECT COUNT(*) FROM message_search WHERE message_search MATCH 'answer'")[0] == 2

    # a database from before branches: every message comes back, and the repair at start links them
    old_database(tmp_path / 'old.db')
    older = Database(tmp_path / 'older-fresh.db')
    counts = salvage(tmp_path / 'old.db', older)
    assert counts['messages'] == 4 and counts['conversations'] == 1
    older.close()


async def test_a_salvaged_old_schema_reads_in_order_after_the_repair(tmp_path: Path, settings: Settings) -> None:
    old_database(tmp_path / 'old.db')
    settings.data_dir.mkdir(parents=True)
    target = Database(settings.db_path)
    salvage(tmp_path / 'old.db', target)
    target.close()
    services = await started(settings)
    try:
        assert [text for text, *_ in shown(await services.assistant.thread('c1'))] == \
            ['What is a tapir?', 'A mammal.', 'Where does it live?', 'In forests.']
    finally:
        await services.stop()


async def test_import_reads_version_1_exports_and_keeps_alternatives(services: Services) -> None:
    model = await use(services, 'one')
    assistant = services.assistant
    answer = await assistant.send('q')
    model.pieces = ['two']
    await assistant.regenerate(answer.id)
    copy = await assistant.import_conversation(await assistant.export(answer.conversation_id, 'json'))
    assert shown(await assistant.thread(copy.id)) == [('q', 1, 1), ('two', 2, 2)]
    version_1 = ('{"format": "jarvis-conversation", "version": 1, "title": "v1", "messages": ['
                 '{"role": "user", "text": "a", "id": "x1"}, {"role": "assistant", "text": "b", "id": "x2"}]}')
    old = await assistant.import_conversation(version_1)
    assert shown(await assistant.thread(old.id)) == [('a', 1, 1), ('b', 1, 1)]


async def test_a_message_stored_without_a_parent_follows_the_head(services: Services) -> None:
    """What scripts and plugins that store whole messages get: the conversation stays one line."""
    conversation = await services.assistant.new_conversation()
    store = services.assistant._store  # pylint: disable=protected-access
    for text in ('a', 'b', 'c'):
        await store.save_message(ChatMessage(role='user', text=text, id=uuid.uuid4().hex,
                                             conversation_id=conversation.id))
    assert [text for text, *_ in shown(await services.assistant.thread(conversation.id))] == ['a', 'b', 'c']
