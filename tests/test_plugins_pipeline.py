"""Every built-in plugin through the chat pipeline (assistant.send), in German and English."""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from jarvis import events
from jarvis.config import Settings
from jarvis.events import GpuReading, SystemMetrics
from jarvis.plugins.builtin import BUILTIN_PLUGINS
from jarvis.plugins.manager import PluginError
from jarvis.services import Services

from .helpers.fake_wikipedia import FakeWikipedia
from .helpers.scripted_model import ScriptedModel
from .helpers.server import free_port


@pytest.fixture(scope='module')
def wikipedia() -> Iterator[FakeWikipedia]:
    with FakeWikipedia() as server:
        yield server


@pytest.fixture
async def services(settings: Settings, wikipedia: FakeWikipedia) -> AsyncIterator[Services]:
    services = Services(settings.with_changes(wikipedia_url=wikipedia.url_template))
    services.plugins.set_sources(BUILTIN_PLUGINS)
    await services.start()
    model = ScriptedModel(['(the model answered)'])
    await services.models.activate(model, model.info)
    reading = SystemMetrics(
        cpu=37.0, memory=61.0, disk=48.0, gpu=12.0, memory_used=10 * 2**30, memory_total=16 * 2**30,
        disk_used=120 * 2**30, disk_total=250 * 2**30, disk_path='/home/tony', cpu_count=8,
        gpus=[GpuReading(index=0, name='NVIDIA H100', utilization=12.0, memory_used=2**30, memory_total=80 * 2**30,
                         temperature=41.0, power=90.0, power_limit=700.0, fan=None)], gpu_status='ok')
    services.sampler._history.append(reading)  # pylint: disable=protected-access; the sampler's latest sample, fresh: answers use it as it is
    services.hub.publish(reading)
    yield services
    await services.stop()


async def ask(services: Services, text: str) -> tuple[str, str]:
    answer = await services.assistant.send(text)
    assert answer.status == 'done', answer
    return answer.source, answer.text


@pytest.mark.parametrize('question', ['What time is it?', 'Wie spät ist es?', "What's the date today?",
                                      'Welches Datum haben wir?'])
async def test_time_and_date(services: Services, question: str) -> None:
    source, text = await ask(services, question)
    assert source == 'Time and date' and any(ch.isdigit() for ch in text)


async def test_time_answers_in_the_language_of_the_question(services: Services) -> None:
    assert 'Uhr' in (await ask(services, 'Wie spät ist es?'))[1]
    assert 'Uhr' not in (await ask(services, 'What time is it?'))[1]


@pytest.mark.parametrize(('question', 'expected'), [
    ('how busy is my CPU?', '37'), ('Wie ausgelastet ist die CPU?', '37'),
    ('wie viel Speicher ist frei?', '6,0'), ('how much memory is free?', '6.0'),
    ('GPU temperature?', '41'), ('GPU-Temperatur?', '41'),
])
async def test_system_status(services: Services, question: str, expected: str) -> None:
    source, text = await ask(services, question)
    assert source == 'System status' and expected in text


@pytest.mark.parametrize(('question', 'expected'), [
    ('what is 2+2', '4'), ('was ist 2 hoch 10', '1024'), ('rechne 7 mal 8', '56'),
    ('calculate sqrt(16) * (3 + 1)', '16'), ('wie viel ist 10 geteilt durch 4', '2,5'),
    ('what is 17 times 23', '17 * 23 = 391'), ('calculate the square root of 144', 'sqrt(144) = 12'),
    ('Berechne die Wurzel aus 144', 'sqrt(144) = 12'), ('what is the square root of 144?', 'sqrt(144) = 12'),
])
async def test_calculator(services: Services, question: str, expected: str) -> None:
    source, text = await ask(services, question)
    assert source == 'Calculator' and expected in text


async def test_calculator_refuses_huge_powers_quickly(services: Services) -> None:
    answer = await services.assistant.send('what is 9**9**9')  # computed, it would not end before the test times out
    assert answer.source == 'Calculator' and answer.status == 'done'
    assert 'too large' in answer.text
    german = await services.assistant.send('was ist 9 hoch 9 hoch 9')
    assert 'zu groß' in german.text


async def test_notes_in_both_languages(services: Services) -> None:
    assert (await ask(services, 'note: buy milk 🥛'))[0] == 'Notes'
    assert (await ask(services, 'Notiz: Zahnarzt anrufen'))[0] == 'Notes'
    source, listing = await ask(services, 'show my notes')
    assert source == 'Notes' and 'buy milk 🥛' in listing and 'Zahnarzt anrufen' in listing
    source, reply = await ask(services, 'lösche Notiz 1')
    assert source == 'Notes'
    source, listing = await ask(services, 'zeige meine Notizen')
    assert 'buy milk' not in listing and 'Zahnarzt anrufen' in listing
    source, reply = await ask(services, 'delete note 7')
    assert source == 'Notes' and '7' in reply


async def test_reminders_fire_in_every_window_and_survive_a_restart(settings: Settings,
                                                                    wikipedia: FakeWikipedia) -> None:
    services = Services(settings.with_changes(wikipedia_url=wikipedia.url_template))
    await services.start()
    fired: list[str] = []
    services.hub.subscribe(lambda e: fired.append(e.data.message), types=[events.NOTIFICATION], viewer=True)
    source, reply = await ask(services, 'remind me in 1 second to stretch')
    assert source == 'Reminders'
    source, reply = await ask(services, 'erinnere mich in 2 Sekunden ans Trinken')
    assert source == 'Reminders'
    for _ in range(100):
        if len(fired) >= 2:
            break
        await asyncio.sleep(0.05)
    assert any('stretch' in m for m in fired) and any('Trinken' in m for m in fired)

    await ask(services, 'remind me in 2 seconds to check the oven')
    await services.stop()  # the app closes before the reminder is due
    again = Services(settings.with_changes(wikipedia_url=wikipedia.url_template))
    await again.start()
    later: list[str] = []
    again.hub.subscribe(lambda e: later.append(e.data.message), types=[events.NOTIFICATION], viewer=True)
    try:
        for _ in range(100):
            if later:
                break
            await asyncio.sleep(0.05)
        assert any('check the oven' in m for m in later)
    finally:
        await again.stop()


@pytest.mark.parametrize(('question', 'expected'), [
    ('who is Ada Lovelace?', 'English mathematician'), ('wer ist Ada Lovelace?', 'britische'),
    ('tell me about photosynthesis', 'light energy'),
])
async def test_wikipedia(services: Services, question: str, expected: str) -> None:
    source, text = await ask(services, question)
    assert source == 'Wikipedia' and expected in text


async def test_without_an_article_the_model_answers(services: Services) -> None:
    assert await ask(services, 'who is Zzyzx Qwerty?') == ('scripted', '(the model answered)')
    source, text = await ask(services, 'wikipedia Zzyzx Qwerty')  # asked by name: Wikipedia says it has none
    assert source == 'Wikipedia' and text.count('\n') == 0


async def test_offline_the_model_answers_what_wikipedia_cannot(settings: Settings) -> None:
    offline = Services(settings.with_changes(wikipedia_url=f'http://127.0.0.1:{free_port()}/{{lang}}'))
    offline.plugins.set_sources(BUILTIN_PLUGINS)
    await offline.start()
    model = ScriptedModel(['(the model answered)'])
    await offline.models.activate(model, model.info)
    try:
        for question in ('Who was Ada Lovelace?', 'wer ist Alan Turing?'):
            assert await ask(offline, question) == ('scripted', '(the model answered)'), question
        assert await ask(offline, 'what is the square root of 144?') == ('Calculator', 'sqrt(144) = 12')
        source, text = await ask(offline, 'wikipedia Ada Lovelace')  # asked by name: it says why not
        assert (source, text) == ('Wikipedia', 'Wikipedia is not reachable right now.')
        assert len(model.prompts) == 2
    finally:
        await offline.stop()


async def test_ordinary_questions_go_to_the_model(services: Services) -> None:
    for question in ('what is the capital of France?', 'Write a haiku about autumn.', 'Hallo, wie geht es dir?'):
        source, text = await ask(services, question)
        assert text == '(the model answered)', (question, source)


async def test_plugin_settings_change_the_answer(services: Services) -> None:
    long = (await ask(services, 'who is Alan Turing?'))[1]
    wikipedia = await services.plugins.configure('Wikipedia', {'sentences': 1})
    assert wikipedia.settings['sentences'] == 1
    short = (await ask(services, 'who is Alan Turing?'))[1]
    assert len(short) < len(long)
    with pytest.raises(PluginError, match='no setting'):
        await services.plugins.configure('Wikipedia', {'colour': 'red'})
    with pytest.raises(PluginError, match='sentences must be a whole number from 1 to 10'):
        await services.plugins.configure('Wikipedia', {'sentences': 'two'})


async def test_a_script_asking_with_no_window_open_gets_a_fresh_reading(services: Services) -> None:
    """The sampler idles while no window is open; the hub's latest reading is then minutes old."""
    assert services.hub.viewer_count == 0
    old = time.time() - 180
    reading = SystemMetrics(cpu=99.9, memory=1.0, disk=1.0, gpu=None, timestamp=old, cpu_count=64)
    services.sampler._history.append(reading)  # pylint: disable=protected-access; the last sample, taken while a window was open 3 min ago
    services.hub.publish(reading)
    source, text = await ask(services, 'How busy is my CPU?')
    assert source == 'System status'
    assert 'min ago' not in text and '99.9' not in text and '64 cores' not in text  # not the old reading
    latest = services.hub.latest(events.SYSTEM_METRICS)
    assert latest is not None and latest.data.timestamp > old + 60  # a new one was taken for the answer
    assert f'CPU load: {latest.data.cpu:.1f} %' in text


async def test_a_reminder_due_while_the_app_was_closed_waits_for_a_window(settings: Settings) -> None:
    first = Services(settings)
    first.plugins.set_sources(BUILTIN_PLUGINS)
    await first.start()
    now = time.time()
    first.db.execute('INSERT INTO reminders (text, due_at, created_at, fired) VALUES (?, ?, ?, 0)',
                            (json.dumps({'text': 'call the bank', 'lang': 'en', 'seconds': 60}), now - 600, now - 660))
    await first.stop()

    services = Services(settings)  # the app starts again, with no window yet (e.g. headless, or still opening)
    services.plugins.set_sources(BUILTIN_PLUGINS)
    shown: list[str] = []
    await services.start()
    try:
        services.hub.subscribe(lambda e: shown.append(e.data.message), types=[events.NOTIFICATION])  # a script
        await asyncio.sleep(0.5)
        rows = services.db.query('SELECT fired FROM reminders')
        assert shown == [] and [row['fired'] for row in rows] == [0]
        window = services.hub.subscribe(name='window', viewer=True)  # a window connects
        for _ in range(200):
            if shown and services.db.query('SELECT fired FROM reminders')[0]['fired'] == 1:
                break
            await asyncio.sleep(0.02)
        assert len(shown) == 1 and shown[0].startswith('⏰ Reminder: call the bank (was due at ')
        assert [row['fired'] for row in services.db.query('SELECT fired FROM reminders')] == [1]
        window.close()
    finally:
        await services.stop()
