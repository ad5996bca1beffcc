"""The built-in plugins, each in German and English, against a real hub, database and a local
Wikipedia stand-in (tests/helpers/fake_wikipedia.py): nothing here reaches the internet."""
from __future__ import annotations

import asyncio
import builtins
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from jarvis import events
from jarvis.config import Settings
from jarvis.events import GpuReading, Notification, SystemMetrics
from jarvis.hub import Hub
from jarvis.plugins.base import Plugin, PluginContext
from jarvis.plugins.builtin import (
    BUILTIN_PLUGINS,
    CalculatorPlugin,
    NotesPlugin,
    RemindersPlugin,
    SystemStatusPlugin,
    TimeDatePlugin,
    WikipediaPlugin,
)
from jarvis.plugins.builtin.calculator import MAX_CHARS, calculate
from jarvis.plugins.builtin.wikipedia import shorten
from jarvis.plugins.language import guess_language
from jarvis.storage import Database

from .helpers.fake_wikipedia import FakeWikipedia

NOW = datetime(2024, 5, 7, 14, 5, 0)  # a Tuesday
GIB = 1024 ** 3


@dataclass
class Env:
    hub: Hub
    db: Database
    settings: Settings

    def context(self, message: str, **changes: Any) -> PluginContext:
        values: dict[str, Any] = {'hub': self.hub, 'db': self.db, 'settings': self.settings,
                                  'language': guess_language(message), 'now': lambda: NOW}
        values.update(changes)
        return PluginContext(**values)


@pytest.fixture
def wiki() -> Iterator[FakeWikipedia]:
    with FakeWikipedia() as server:
        yield server
    assert not server.running


@pytest.fixture
async def env(tmp_path: Path, wiki: FakeWikipedia) -> AsyncIterator[Env]:
    db = Database(tmp_path / 'db.sqlite')
    yield Env(Hub(), db, Settings(data_dir=tmp_path, wikipedia_url=wiki.url_template))
    db.close()


async def ask(plugin: Plugin, message: str, env: Env, **changes: Any) -> str | None:
    assert plugin.match(message), f'{plugin.name} does not match {message!r}'
    return await plugin.handle(message, env.context(message, **changes))


def metrics(**changes: Any) -> SystemMetrics:
    values: dict[str, Any] = {
        'cpu': 23.5, 'memory': 37.5, 'disk': 40.0, 'gpu': 12.0, 'cpu_per_core': [10.0, 80.0, 4.0, 0.0],
        'cpu_count': 4, 'memory_used': 6 * GIB, 'memory_total': 16 * GIB, 'disk_path': '/',
        'disk_used': 200 * GIB, 'disk_total': 500 * GIB,
        'gpus': [GpuReading(index=0, name='NVIDIA GeForce RTX 4090', utilization=12.0, memory_used=2 * GIB,
                            memory_total=24 * GIB, temperature=61.0, power=None, power_limit=None, fan=None)],
        'gpu_status': 'ok',
    }
    values.update(changes)
    return SystemMetrics(**values)


# --- the list ----------------------------------------------------------------------------------

def test_builtin_plugins_are_complete_and_ordered() -> None:
    names = [plugin.name for plugin in BUILTIN_PLUGINS]
    assert names == ['Notes', 'Reminders', 'Time and date', 'System status', 'Calculator', 'Wikipedia']
    for plugin_class in BUILTIN_PLUGINS:
        plugin = plugin_class()
        assert issubclass(plugin_class, Plugin) and plugin.description and plugin.patterns and plugin.version


async def dispatch(plugins: list[Plugin], message: str, env: Env) -> tuple[str, str] | None:
    """As the app does: the first plugin that matches and does not decline answers."""
    for plugin in plugins:
        if plugin.match(message) and (reply := await plugin.handle(message, env.context(message))) is not None:
            return plugin.name, reply
    return None


@pytest.mark.parametrize(('message', 'expected'), [
    ('Wie spät ist es?', 'Time and date'),
    ("What's the date today?", 'Time and date'),
    ('how busy is my CPU?', 'System status'),
    ('what is 2+2', 'Calculator'),
    ('was ist 2 hoch 10', 'Calculator'),
    ('note: buy milk', 'Notes'),
    ('remind me in 10 minutes to check the CPU load', 'Reminders'),
    ('who is Alan Turing', 'Wikipedia'),
    ('was ist Photosynthese', 'Wikipedia'),
    ('what is the capital of France?', None),
    ('what is your name?', None),
    ('tell me a joke', None),
])
async def test_the_right_plugin_answers(env: Env, message: str, expected: str | None) -> None:
    plugins = [plugin_class() for plugin_class in BUILTIN_PLUGINS]
    try:
        answer = await dispatch(plugins, message, env)
    finally:
        for plugin in plugins:
            await plugin.stop()
    assert (answer[0] if answer else None) == expected, answer


# --- time and date -----------------------------------------------------------------------------

@pytest.mark.parametrize(('message', 'reply'), [
    ('What time is it?', "It's 14:05."),
    ('Wie spät ist es?', 'Es ist 14:05 Uhr.'),
    ('wie viel Uhr ist es', 'Es ist 14:05 Uhr.'),
    ("What's the date today?", 'Today is Tuesday, 7 May 2024.'),
    ('what day is it', 'Today is Tuesday, 7 May 2024.'),
    ('Welcher Tag ist heute?', 'Heute ist Dienstag, der 7. Mai 2024.'),
    ('Welches Datum haben wir?', 'Heute ist Dienstag, der 7. Mai 2024.'),
])
async def test_time_and_date(env: Env, message: str, reply: str) -> None:
    assert await ask(TimeDatePlugin(), message, env) == reply


async def test_time_answers_in_the_language_of_the_question_words(env: Env) -> None:
    # guess_language calls anything with an umlaut German; the question's own words decide here
    assert guess_language('What time is it, Jürgen?') == 'de'
    assert await ask(TimeDatePlugin(), 'What time is it, Jürgen?', env) == "It's 14:05."


async def test_time_uses_german_month_names_without_the_locale(env: Env) -> None:
    march = datetime(2025, 3, 2, 9, 7)
    assert await ask(TimeDatePlugin(), 'Welches Datum haben wir?', env, now=lambda: march) == \
        'Heute ist Sonntag, der 2. März 2025.'


@pytest.mark.parametrize('message', ['what time is it in Tokyo?', 'what is the time complexity of quicksort',
                                     'tell me a joke'])
def test_time_leaves_other_questions(message: str) -> None:
    assert TimeDatePlugin().match(message) is None


# --- system status -----------------------------------------------------------------------------

async def test_status_without_a_reading(env: Env) -> None:
    assert await ask(SystemStatusPlugin(), 'CPU load', env) == \
        'There is no system reading yet. Open the System view or ask again in a moment.'
    assert await ask(SystemStatusPlugin(), 'wie ausgelastet ist die CPU?', env) == \
        'Ich habe noch keine Systemmessung. Öffne die Systemansicht oder frag gleich noch einmal.'


@pytest.mark.parametrize(('message', 'expected', 'absent'), [
    ('how busy is my CPU?', ['CPU load: 23.5 %', '4 cores', 'busiest core 80 %'], ['Memory']),
    ('CPU load', ['CPU load: 23.5 %'], []),
    ('wie ausgelastet ist die CPU?', ['CPU-Auslastung: 23,5 %', '4 Kerne'], []),
    ('how much memory is free?', ['Memory: 6.0 GiB of 16.0 GiB used (37.5 %), 10.0 GiB free.'], ['CPU']),
    ('wie viel Speicher ist frei?', ['Arbeitsspeicher: 6,0 GiB von 16,0 GiB belegt (37,5 %), 10,0 GiB frei.'], []),
    ('disk space', ['Disk (/): 200.0 GiB of 500.0 GiB used (40.0 %), 300.0 GiB free.'], ['Memory']),
    ('wie viel Platz ist auf der Festplatte?', ['Festplatte (/): 200,0 GiB von 500,0 GiB belegt', '300,0 GiB frei'],
     ['Arbeitsspeicher']),
    ('GPU temperature?', ['GPU 0 (NVIDIA GeForce RTX 4090): temperature 61 °C', 'load 12 %',
                          'memory 2.0 GiB / 24.0 GiB', 'power n/a', 'fan n/a'], ['fan 0', 'power 0']),
    ('GPU-Temperatur?', ['Temperatur 61 °C', 'Auslastung 12 %', 'Leistung nicht verfügbar',
                         'Lüfter nicht verfügbar'], ['Lüfter 0']),
    ('system status', ['CPU load', 'Memory', 'Disk', 'GPU 0'], []),
])
async def test_status_from_the_latest_metrics(env: Env, message: str, expected: list[str], absent: list[str]) -> None:
    env.hub.publish(metrics())
    reply = await ask(SystemStatusPlugin(), message, env)
    assert reply is not None
    for text in expected:
        assert text in reply, reply
    for text in absent:
        assert text not in reply, reply


async def test_status_follows_the_newest_sample(env: Env) -> None:
    env.hub.publish(metrics())
    env.hub.publish(metrics(cpu=91.25))
    assert 'CPU load: 91.2 %' in (await ask(SystemStatusPlugin(), 'CPU load', env) or '')


@pytest.mark.parametrize(('message', 'expected'), [
    ('GPU temperature?', 'No GPU could be read (NVML not available: no NVIDIA driver).'),
    ('GPU-Temperatur?', 'Es konnte keine GPU ausgelesen werden (NVML not available: no NVIDIA driver).'),
])
async def test_status_without_a_gpu(env: Env, message: str, expected: str) -> None:
    env.hub.publish(metrics(gpu=None, gpus=[], gpu_status='NVML not available: no NVIDIA driver'))
    reply = await ask(SystemStatusPlugin(), message, env)
    assert reply == expected
    assert '0 °C' not in reply


async def test_status_unknown_gpu_fields_are_not_zero(env: Env) -> None:
    blank = GpuReading(index=1, name=None, utilization=None, memory_used=None, memory_total=None,
                       temperature=None, power=None, power_limit=None, fan=None)
    env.hub.publish(metrics(gpu=None, gpus=[blank]))
    reply = await ask(SystemStatusPlugin(), 'GPU temperature?', env)
    assert reply == 'GPU 1: temperature n/a, load n/a, memory n/a, power n/a, fan n/a.'
    german = await ask(SystemStatusPlugin(), 'wie heiß ist die Grafikkarte?', env)
    assert german is not None and german.count('nicht verfügbar') == 5 and ' 0 ' not in german


async def test_status_reads_metrics_published_from_another_thread(env: Env) -> None:
    subscription = env.hub.subscribe(name='test')  # binds the hub to this loop, as the app does
    thread = threading.Thread(target=env.hub.publish, args=(metrics(cpu=55.0),))  # as the sampler does
    thread.start()
    thread.join()
    assert await eventually(lambda: env.hub.latest(events.SYSTEM_METRICS) is not None)
    assert 'CPU load: 55.0 %' in (await ask(SystemStatusPlugin(), 'CPU load', env) or '')
    subscription.close()


# --- calculator --------------------------------------------------------------------------------

@pytest.mark.parametrize(('message', 'reply'), [
    ('what is 2+2', '2 + 2 = 4'),
    ('calculate 3*(4+5)', '3 * (4 + 5) = 27'),
    ('12*7', '12 * 7 = 84'),
    ('what is 2^10 - -3', '2^10 - -3 = 1027'),
    ('what is sqrt(16) + abs(-2)', 'sqrt(16) + abs(-2) = 6'),
    ('what is 5!', 'factorial(5) = 120'),
    ('what is round(pi, 3)', 'round(pi, 3) = 3.142'),
    ('what is ln(e) + log(1000)', 'ln(e) + log(1000) = 4'),
    ('what is 10 / 4', '10 / 4 = 2.5'),
    ('was ist 2 hoch 10', '2^10 = 1024'),
    ('rechne 7 mal 8', '7 * 8 = 56'),
    ('wie viel ist 10 geteilt durch 4', '10 / 4 = 2,5'),
    ('was ist 2,5 plus 1,25', '2,5 + 1,25 = 3,75'),
    ('was ist wurzel aus 2', 'sqrt(2) = 1,41421356237'),
    ('berechne 10 minus 3 mal 2', '10 - 3 * 2 = 4'),
    ('was ist cos(pi) + floor(2,7)', 'cos(pi) + floor(2,7) = 1'),
    ('was ist log(8; 2) mal 3', 'log(8; 2) * 3 = 9'),
    ('was ist round(2,567; 2)', 'round(2,567; 2) = 2,57'),
])
async def test_calculator(env: Env, message: str, reply: str) -> None:
    assert await ask(CalculatorPlugin(), message, env) == reply


@pytest.mark.parametrize('message', ['what is 9**9**9', 'was ist 9 hoch 9 hoch 9', 'what is 2 ** 10 ** 10',
                                     'what is 10**9999 * 10**9999', 'what is (10**5000)**3'])
async def test_calculator_refuses_huge_powers_at_once(env: Env, message: str) -> None:
    reply = await ask(CalculatorPlugin(), message, env)  # computed, 9**9**9 would not end before the test times out
    assert reply is not None and ('too large' in reply or 'zu groß' in reply)


async def test_calculator_big_but_bounded_results(env: Env) -> None:
    assert await ask(CalculatorPlugin(), 'what is 2**100', env) == '2^100 = 1267650600228229401496703205376'
    reply = await ask(CalculatorPlugin(), 'what is 2**1000', env)
    assert reply == '2^1000 ≈ 1.07150860718 × 10^301 (302 digits)'


@pytest.mark.parametrize(('message', 'expected'), [
    ('what is factorial(100000)', 'I only compute factorials of whole numbers from 0 to 1000.'),
    ('was ist 5000!', 'Fakultäten berechne ich nur für ganze Zahlen von 0 bis 1000.'),
    ('what is factorial(2.5)', 'I only compute factorials of whole numbers from 0 to 1000.'),
    ('what is 1/0', 'Division by zero is not defined.'),
    ('was ist 5 geteilt durch 0', 'Division durch null ist nicht definiert.'),
    ('what is 7 % 0', 'Division by zero is not defined.'),
    ('what is 0 ** -1', 'Division by zero is not defined.'),
    ('what is sqrt(-1)', 'That is not defined for these numbers (e.g. the square root or logarithm of a negative '
                         'number).'),
    ('what is (-8) ** 0.5', 'The result is not a real number.'),
    ('what is exp(1000)', 'The result is too large to compute.'),
])
async def test_calculator_errors_are_clear(env: Env, message: str, expected: str) -> None:
    assert await ask(CalculatorPlugin(), message, env) == expected


async def test_calculator_refuses_long_input(env: Env) -> None:
    message = 'what is ' + '+'.join(['1'] * 150)
    assert len(message) > MAX_CHARS
    assert await ask(CalculatorPlugin(), message, env) == \
        f'That expression is too long (at most {MAX_CHARS} characters).'
    # a long ordinary question is not a calculation: it goes on to the model
    question = 'what is the difference between the years 1914 and 1918 ' + 'in the history of Europe ' * 8
    assert len(question) > MAX_CHARS
    assert await CalculatorPlugin().handle(question, env.context(question)) is None


@pytest.mark.parametrize('message', [
    "__import__('os').system('touch /tmp/jarvis-pwned')",
    "calculate __import__('os').system('touch /tmp/jarvis-pwned')",
    'what is (1).__class__.__bases__[0].__subclasses__()',
    'what is [x for x in range(10**9)]',
    'what is open("/etc/passwd").read() and 1',
    'what is lambda: 1',
    'what is 2 if 1 else 3',
    "what is 'a' * 10",
    'what is 1 < 2',
    'what is True + 1',
])
async def test_calculator_never_evaluates_code(env: Env, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError('eval/exec must never be called')

    monkeypatch.setattr(builtins, 'eval', forbidden)
    monkeypatch.setattr(builtins, 'exec', forbidden)
    plugin = CalculatorPlugin()
    assert await plugin.handle(message, env.context(message)) is None
    assert not Path('/tmp/jarvis-pwned').exists()


@pytest.mark.parametrize('message', ['what is the capital of France?', 'what is photosynthesis?',
                                     'wie spät ist es?', 'tell me a joke'])
async def test_calculator_leaves_ordinary_questions(env: Env, message: str) -> None:
    plugin = CalculatorPlugin()
    assert plugin.match(message) is None
    assert await plugin.handle(message, env.context(message)) is None


@pytest.mark.parametrize('message', ['what is the population of Germany in 2020?', 'what is 2 + 2 in binary',
                                     'what is 12:30'])
async def test_calculator_declines_questions_with_numbers(env: Env, message: str) -> None:
    assert await CalculatorPlugin().handle(message, env.context(message)) is None


def test_calculate_keeps_exact_integers() -> None:
    assert calculate('2**64').value == 18446744073709551616
    assert calculate('factorial(20)').value == 2432902008176640000


# --- notes -------------------------------------------------------------------------------------

async def test_notes_in_english(env: Env) -> None:
    notes = NotesPlugin()
    assert await ask(notes, 'show my notes', env) == 'You have no notes yet.'
    assert await ask(notes, 'note: buy milk', env) == 'Noted (note 1): “buy milk”'
    assert await ask(notes, 'remember: the car is on level 3', env) == 'Noted (note 2): “the car is on level 3”'
    assert await ask(notes, 'list notes', env) == 'Your notes:\n1. buy milk\n2. the car is on level 3'
    assert await ask(notes, 'delete note 1', env) == 'Deleted note 1: “buy milk”'
    assert await ask(notes, 'show my notes', env) == 'Your notes:\n1. the car is on level 3'
    assert await ask(notes, 'delete note 5', env) == 'There is no note 5 – you have 1 note.'
    assert await ask(notes, 'delete note', env) == 'Which note should I delete? Say for example "delete note 2".'


async def test_notes_in_german(env: Env) -> None:
    notes = NotesPlugin()
    assert await ask(notes, 'zeige meine Notizen', env) == 'Du hast noch keine Notizen.'
    assert await ask(notes, 'notiz: Milch kaufen', env) == 'Notiert (Notiz 1): „Milch kaufen“'
    assert await ask(notes, 'merke dir: Zahnarzt am Montag', env) == 'Notiert (Notiz 2): „Zahnarzt am Montag“'
    assert await ask(notes, 'zeige meine Notizen', env) == 'Deine Notizen:\n1. Milch kaufen\n2. Zahnarzt am Montag'
    assert await ask(notes, 'lösche Notiz 2', env) == 'Notiz 2 gelöscht: „Zahnarzt am Montag“'
    assert await ask(notes, 'lösche Notiz 7', env) == 'Es gibt keine Notiz 7 – du hast 1 Notiz.'
    assert await ask(notes, 'lösche Notiz', env) == \
        'Welche Notiz soll ich löschen? Sag zum Beispiel „lösche Notiz 2“.'


async def test_notes_keep_the_text_exactly(env: Env) -> None:
    text = 'Grüße an Zoë 🎉 — «ça va?»  *nicht* fett; 1 < 2 & "quotes"\tTab'
    await ask(NotesPlugin(), f'note: {text}', env)
    rows = env.db.query('SELECT text FROM notes')
    assert [row['text'] for row in rows] == [text]
    assert (await ask(NotesPlugin(), 'show my notes', env) or '').endswith(f'1. {text}')


async def test_notes_answer_in_the_language_of_the_command(env: Env) -> None:
    assert await ask(NotesPlugin(), 'remember: Grüße an Zoë', env) == 'Noted (note 1): “Grüße an Zoë”'
    assert await ask(NotesPlugin(), 'notiz: call the office', env) == 'Notiert (Notiz 2): „call the office“'
    assert await ask(NotesPlugin(), 'how many notes do I have?', env) == \
        'Your notes:\n1. Grüße an Zoë\n2. call the office'


async def test_notes_are_never_deleted_all_at_once(env: Env) -> None:
    await ask(NotesPlugin(), 'note: keep me', env)
    assert await ask(NotesPlugin(), 'delete all notes', env) == \
        'I delete notes one at a time, for example "delete note 2".'
    assert await ask(NotesPlugin(), 'lösche alle Notizen', env) == \
        'Ich lösche Notizen nur einzeln, zum Beispiel „lösche Notiz 2“.'
    assert len(env.db.query('SELECT * FROM notes')) == 1


@pytest.mark.parametrize('message', ['what is a note?', 'I noted that', 'remember when we met?', 'notes are fine'])
def test_notes_leave_other_messages(message: str) -> None:
    assert NotesPlugin().match(message) is None


# --- reminders ---------------------------------------------------------------------------------

async def next_notification(subscription: Any, timeout: float = 5.0) -> Notification:
    event = await asyncio.wait_for(subscription.get(), timeout)
    assert isinstance(event.data, Notification)
    return event.data


async def eventually(condition: Any, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def fired(env: Env, reminder_id: int | None = None) -> list[int]:
    for _ in range(200):
        rows = env.db.query('SELECT id FROM reminders WHERE fired = 1')
        if rows and (reminder_id is None or reminder_id in [row['id'] for row in rows]):
            return [row['id'] for row in rows]
        await asyncio.sleep(0.01)
    return []


@pytest.mark.parametrize(('message', 'confirmation', 'notification'), [
    ('remind me in 1 second to stretch', "Okay, I'll remind you at 14:05:01 (in 1 second): stretch",
     '⏰ Reminder: stretch'),
    ('erinnere mich in 1 Sekunde ans Dehnen', 'Okay, ich erinnere dich um 14:05:01 Uhr (in 1 Sekunde): Dehnen',
     '⏰ Erinnerung: Dehnen'),
    ('set a timer for 1 second', 'Timer set for 1 second – it goes off at 14:05:01.', '⏰ Timer done: 1 second'),
    ('Timer für 1 Sekunde', 'Timer auf 1 Sekunde gestellt – er meldet sich um 14:05:01 Uhr.',
     '⏰ Timer abgelaufen: 1 Sekunde'),
])
async def test_reminder_fires_on_the_hub(env: Env, message: str, confirmation: str, notification: str) -> None:
    plugin = RemindersPlugin()
    await plugin.start(env.context(''))
    subscription = env.hub.subscribe(name='window', types=[events.NOTIFICATION], viewer=True)
    try:
        assert await ask(plugin, message, env) == confirmation
        assert len(plugin.scheduled) == 1 and subscription.pending == 0  # not at once: in a second
        row = env.db.query('SELECT due_at, created_at FROM reminders')[0]
        assert row['due_at'] - row['created_at'] == pytest.approx(1)
        note = await next_notification(subscription)
        assert (note.message, note.level) == (notification, 'warning')
        assert await fired(env)
        assert await eventually(lambda: plugin.scheduled == [])
    finally:
        await plugin.stop()
        subscription.close()


async def test_pending_reminder_survives_a_restart(env: Env) -> None:
    first = RemindersPlugin()
    await first.start(env.context(''))
    await ask(first, 'remind me in 1 second to drink water', env)
    await first.stop()  # the app closes before it is due
    assert first.scheduled == []
    assert [row['fired'] for row in env.db.query('SELECT fired FROM reminders')] == [0]

    subscription = env.hub.subscribe(name='window', types=[events.NOTIFICATION], viewer=True)
    second = RemindersPlugin()  # the app starts again
    try:
        await second.start(env.context(''))
        assert len(second.scheduled) == 1
        assert (await next_notification(subscription)).message == '⏰ Reminder: drink water'
        assert await fired(env)
    finally:
        await second.stop()
        subscription.close()


async def test_an_overdue_reminder_waits_for_a_window_then_fires_in_its_language(env: Env) -> None:
    now = time.time()
    stored = json.dumps({'text': 'Blumen gießen', 'lang': 'de', 'seconds': 600})
    env.db.execute('INSERT INTO reminders (text, due_at, created_at, fired) VALUES (?, ?, ?, 0)',
                   (stored, now - 3600, now - 4200))
    env.db.execute('INSERT INTO reminders (text, due_at, created_at, fired) VALUES (?, ?, ?, 1)',
                   (json.dumps({'text': 'already done', 'lang': 'en', 'seconds': 1}), now - 60, now - 61))
    script = env.hub.subscribe(name='script', types=[events.NOTIFICATION])  # not a window
    plugin = RemindersPlugin()
    try:
        await plugin.start(env.context(''))  # the app starts with no window connected yet
        await asyncio.sleep(0.5)
        assert script.pending == 0  # shown nowhere ...
        assert [row['fired'] for row in env.db.query('SELECT fired FROM reminders ORDER BY id')] == [0, 1]  # ... so kept
        window = env.hub.subscribe(name='window', types=[events.NOTIFICATION], viewer=True)
        note = await next_notification(window, timeout=2)
        assert note.message == '⏰ Erinnerung: Blumen gießen (fällig um 13:05 Uhr)'
        assert await eventually(lambda: [row['fired'] for row in env.db.query('SELECT fired FROM reminders')] == [1, 1])
        await asyncio.sleep(0.2)
        assert window.pending == 0  # the fired one does not fire again
        window.close()
    finally:
        await plugin.stop()
        script.close()


@pytest.mark.parametrize(('message', 'confirmation', 'text'), [
    ('remind me in 2 hours and 30 minutes to call mom',
     "Okay, I'll remind you at 16:35 (in 2 hours 30 minutes): call mom", 'call mom'),
    ('remind me in 1 minute to stretch', "Okay, I'll remind you at 14:06 (in 1 minute): stretch", 'stretch'),
    ('remind me in 5 minutes to call Jürgen', "Okay, I'll remind you at 14:10 (in 5 minutes): call Jürgen",
     'call Jürgen'),
    ('remind me to take a second look in 10 minutes',
     "Okay, I'll remind you at 14:15 (in 10 minutes): take a second look", 'take a second look'),
    ('remind me in half an hour about the meeting',
     "Okay, I'll remind you at 14:35 (in 30 minutes): the meeting", 'the meeting'),
    ('erinnere mich in einer halben Stunde an den Termin',
     'Okay, ich erinnere dich um 14:35 Uhr (in 30 Minuten): den Termin', 'den Termin'),
    ('erinnere mich in 10 Minuten ans Dehnen', 'Okay, ich erinnere dich um 14:15 Uhr (in 10 Minuten): Dehnen',
     'Dehnen'),
    ('Timer für 30 Sekunden', 'Timer auf 30 Sekunden gestellt – er meldet sich um 14:05:30 Uhr.', ''),
    ('set a timer for 5 minutes', 'Timer set for 5 minutes – it goes off at 14:10.', ''),
    ('remind me in 25 hours to water the plants',
     "Okay, I'll remind you at 8 May 2024 at 15:05 (in 1 day 1 hour): water the plants", 'water the plants'),
    ('remind me in 2 days to call the bank',
     "Okay, I'll remind you at 9 May 2024 at 14:05 (in 2 days): call the bank", 'call the bank'),
    ('erinnere mich in 3 Tagen an die Steuer',
     'Okay, ich erinnere dich um 10.05.2024 um 14:05 Uhr (in 3 Tagen): die Steuer', 'die Steuer'),
    ('set a timer for 1 day and 2 hours', 'Timer set for 1 day 2 hours – it goes off at 8 May 2024 at 16:05.', ''),
    ('remind me in a week to renew the pass',
     "Okay, I'll remind you at 14 May 2024 at 14:05 (in 7 days): renew the pass", 'renew the pass'),
])
async def test_reminder_is_stored_with_its_language(env: Env, message: str, confirmation: str, text: str) -> None:
    plugin = RemindersPlugin()
    try:
        before = time.time()
        assert await ask(plugin, message, env) == confirmation
        row = env.db.query('SELECT text, due_at, fired FROM reminders')[0]
        stored = json.loads(row['text'])
        assert stored['text'] == text and stored['lang'] == ('de' if 'Okay, ich' in confirmation or
                                                             'Timer auf' in confirmation else 'en')
        assert row['fired'] == 0 and row['due_at'] >= before + stored['seconds'] - 1
    finally:
        await plugin.stop()


async def test_reminder_without_a_time_asks_for_one(env: Env) -> None:
    plugin = RemindersPlugin()
    assert 'When should I remind you?' in (await ask(plugin, 'remind me to stretch', env) or '')
    assert 'Wann soll ich dich erinnern?' in (await ask(plugin, 'erinnere mich ans Dehnen', env) or '')
    assert await ask(plugin, 'remind me in 2000 hours to renew', env) == 'I can only remind you up to 30 days ahead.'
    assert await ask(plugin, 'remind me in 31 days to renew', env) == 'I can only remind you up to 30 days ahead.'
    assert await ask(plugin, 'erinnere mich in 5 Wochen', env) == \
        'So weit im Voraus kann ich nicht erinnern: höchstens 30 Tage.'
    assert await ask(plugin, 'Timer für 0 Sekunden', env) == 'Das ist zu kurz: mindestens 1 Sekunde.'
    # a question about the past is for the model
    assert await plugin.handle('remind me what we talked about', env.context('remind me what')) is None
    assert await plugin.handle('erinnere mich, wie das hieß', env.context('erinnere mich')) is None
    assert env.db.query('SELECT * FROM reminders') == []


@pytest.mark.parametrize(('message', 'reply'), [
    ('remind me in -5 minutes to stretch', 'That is in the past. Say how long from now, for example "in 5 minutes".'),
    ('set a timer for -1 hour', 'That is in the past. Say how long from now, for example "in 5 minutes".'),
    ('erinnere mich in -2 Tagen an die Steuer',
     'Das liegt in der Vergangenheit. Sag, in wie viel Zeit, zum Beispiel „in 5 Minuten“.'),
])
async def test_a_reminder_in_the_past_is_refused(env: Env, message: str, reply: str) -> None:
    assert await ask(RemindersPlugin(), message, env) == reply
    assert env.db.query('SELECT * FROM reminders') == []


async def test_reminders_list_and_cancel(env: Env) -> None:
    plugin = RemindersPlugin()
    try:
        assert await ask(plugin, 'show my reminders', env) == 'You have no pending reminders.'
        await ask(plugin, 'remind me in 10 minutes to stretch', env)
        await ask(plugin, 'set a timer for 1 hour', env)
        assert await ask(plugin, 'show my reminders', env) == \
            'Your reminders:\n1. 14:15 – stretch\n2. 15:05 – Timer (1 hour)'
        assert await ask(plugin, 'zeige meine Erinnerungen', env) == \
            'Deine Erinnerungen:\n1. 14:15 Uhr – stretch\n2. 15:05 Uhr – Timer (1 hour)'
        assert len(plugin.scheduled) == 2
        assert await ask(plugin, 'cancel reminder 1', env) == 'Cancelled reminder 1: stretch'
        assert len(plugin.scheduled) == 1
        assert await ask(plugin, 'lösche Erinnerung 3', env) == 'Es gibt keine Erinnerung 3 – du hast 1 offene.'
        assert await ask(plugin, 'lösche Erinnerung', env) == 'Erinnerung 1 gelöscht: Timer (1 hour)'
        assert plugin.scheduled == [] and env.db.query('SELECT * FROM reminders') == []
    finally:
        await plugin.stop()


# --- Wikipedia ---------------------------------------------------------------------------------

@pytest.mark.parametrize(('message', 'title', 'first', 'link'), [
    ('who is Alan Turing', 'Alan Turing', 'Alan Turing was an English mathematician',
     'More on Wikipedia: https://en.wikipedia.org/wiki/Alan_Turing'),
    ('tell me about Ada Lovelace', 'Ada Lovelace', 'Ada Lovelace was an English mathematician',
     'More on Wikipedia: https://en.wikipedia.org/wiki/Ada_Lovelace'),
    ('what is photosynthesis?', 'Photosynthesis', 'Photosynthesis is the process',
     'More on Wikipedia: https://en.wikipedia.org/wiki/Photosynthesis'),
    ('wikipedia Albert Einstein', 'Albert Einstein', 'Albert Einstein was a German-born',
     'More on Wikipedia: https://en.wikipedia.org/wiki/Albert_Einstein'),
    ('wer ist Ada Lovelace?', 'Ada Lovelace', 'Ada Lovelace (* 10. Dezember 1815 in London',
     'Mehr auf Wikipedia: https://de.wikipedia.org/wiki/Ada_Lovelace'),
    ('was ist Photosynthese', 'Photosynthese', 'Die Photosynthese ist ein Vorgang',
     'Mehr auf Wikipedia: https://de.wikipedia.org/wiki/Photosynthese'),
    ('erzähl mir etwas über Alan Turing', 'Alan Turing', 'Alan Turing war ein britischer',
     'Mehr auf Wikipedia: https://de.wikipedia.org/wiki/Alan_Turing'),
])
async def test_wikipedia_finds_articles(env: Env, wiki: FakeWikipedia, message: str, title: str, first: str,
                                        link: str) -> None:
    reply = await ask(WikipediaPlugin(), message, env)
    assert reply is not None
    heading, extract, more = reply.split('\n\n')
    assert heading == f'**{title}**'
    assert extract.startswith(first)
    assert more == link
    assert wiki.requests and all(r.user_agent.startswith('JARVIS-Desktop/') for r in wiki.requests)


async def test_wikipedia_shortens_to_whole_sentences(env: Env) -> None:
    reply = await ask(WikipediaPlugin(), 'wer ist Ada Lovelace?', env) or ''
    extract = reply.split('\n\n')[1]
    # three sentences, not cut at "10.", "u. a." or "z. B.", and without the fourth
    assert extract.endswith('das erste Computerprogramm.')
    assert 'Programmiersprache' not in extract
    english = (await ask(WikipediaPlugin(), 'who is Ada Lovelace', env) or '').split('\n\n')[1]
    assert english.endswith('the first published computer program.') and '1815' not in english


def test_shorten_cuts_one_overlong_sentence_at_a_word() -> None:
    text = 'word ' * 200
    short = shorten(text, max_chars=100)
    assert len(short) <= 102 and short.endswith(' …')


async def test_wikipedia_searches_when_there_is_no_such_title(env: Env, wiki: FakeWikipedia) -> None:
    reply = await ask(WikipediaPlugin(), 'who is Turing?', env) or ''
    assert reply.startswith('**Alan Turing**')
    paths = [request.path for request in wiki.requests]
    assert paths == ['/en/api/rest_v1/page/summary/Turing', '/en/w/rest.php/v1/search/page',
                     '/en/api/rest_v1/page/summary/Alan_Turing']
    assert wiki.requests[1].query == {'q': ['Turing'], 'limit': ['1']}


async def test_wikipedia_follows_redirects(env: Env) -> None:
    assert (await ask(WikipediaPlugin(), 'who was Einstein?', env) or '').startswith('**Albert Einstein**')
    assert (await ask(WikipediaPlugin(), 'was ist Fotosynthese?', env) or '').startswith('**Photosynthese**')


@pytest.mark.parametrize(('message', 'expected'), [
    ('wikipedia Xyzzy Quuxbar', 'I found no Wikipedia article about “Xyzzy Quuxbar”.'),
    ('search Wikipedia for Jürgen Quuxbar', 'I found no Wikipedia article about “Jürgen Quuxbar”.'),
    ('suche auf Wikipedia nach Flux-Kompensation', 'Ich habe keinen Wikipedia-Artikel zu „Flux-Kompensation“ gefunden.'),
])
async def test_wikipedia_not_found_when_asked_by_name(env: Env, message: str, expected: str) -> None:
    assert await ask(WikipediaPlugin(), message, env) == expected


@pytest.mark.parametrize('message', ['who is Xyzzy Quuxbar?', 'wer ist Xyzzy Quuxbar?', 'who is Jürgen Quuxbar?',
                                     'what is the Flux Capacitor?', 'was ist die Flux-Kompensation?',
                                     'tell me about Xyzzy Quuxbar'])
async def test_wikipedia_without_an_article_lets_the_model_answer(env: Env, wiki: FakeWikipedia, message: str) -> None:
    assert await ask(WikipediaPlugin(), message, env) is None
    assert wiki.requests  # it did look


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(('message', 'expected'), [
    ('who is Ada Lovelace', None),
    ('wer ist Ada Lovelace?', None),
    ('wikipedia Ada Lovelace', 'Wikipedia is not reachable right now.'),
    ('suche auf Wikipedia nach Ada Lovelace', 'Wikipedia ist gerade nicht erreichbar.'),
])
async def test_wikipedia_offline(env: Env, message: str, expected: str | None) -> None:
    """Offline, a question goes on to the model; only a request that names Wikipedia hears that it is offline."""
    offline = env.settings.with_changes(wikipedia_url=f'http://127.0.0.1:{free_port()}/{{lang}}')
    assert await ask(WikipediaPlugin(), message, env, settings=offline) == expected


async def test_wikipedia_server_error(env: Env, wiki: FakeWikipedia) -> None:
    wiki.fail_with = 503
    assert await ask(WikipediaPlugin(), 'who is Ada Lovelace', env) is None
    assert await ask(WikipediaPlugin(), 'wikipedia Ada Lovelace', env) == 'Wikipedia did not answer properly (HTTP 503).'


@pytest.mark.parametrize('message', ['what is 2+2', 'was ist 2 hoch 10', 'what is 3*(4+5)?',
                                     'what is the capital of France?', 'what is your name?', 'who are you',
                                     "what's the date today?", 'tell me about yourself', 'what is 15% of 80?'])
async def test_wikipedia_declines_what_is_not_for_it(env: Env, wiki: FakeWikipedia, message: str) -> None:
    assert await WikipediaPlugin().handle(message, env.context(message)) is None
    assert wiki.requests == []


def test_no_fake_server_is_left_running() -> None:
    assert not [thread for thread in threading.enumerate() if thread.name == 'fake-wikipedia']
