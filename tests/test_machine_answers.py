"""Questions about the machine through the chat pipeline (Services + assistant.send), in German and English:
a real CPU burner now and a minute after it stopped (from the recorded history), a recorded day on a
simulated clock ("at 14:05", "this morning", "today", "this week", alerts), and the model questions with a
catalog of known sizes and free memory."""
from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from jarvis import events
from jarvis.alerts import store as alert_store
from jarvis.alerts.rules import DEFAULT_RULES
from jarvis.config import Settings
from jarvis.events import GpuReading, SystemMetrics
from jarvis.machine import MachineQueries, MachineSources, answer
from jarvis.metrics import HistoryRecorder
from jarvis.metrics import history_store as store
from jarvis.metrics.history import HistoryBuffer
from jarvis.metrics.history_store import HistorySample, RecordedProcess
from jarvis.metrics.processes import ProcessInfo, ProcessSnapshot
from jarvis.models.base import ModelInfo
from jarvis.models.manager import ModelCatalog
from jarvis.plugins.builtin import BUILTIN_PLUGINS
from jarvis.services import Services

from .helpers.scripted_model import ScriptedModel
from .test_processes import start_burner, stop

GIB = 2**30
BURNER = 'jarvis-burner'


class Clock:
    """A simulated clock: the test moves it; nothing sleeps."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    services = Services(settings)
    services.plugins.set_sources(BUILTIN_PLUGINS)
    await services.start()
    model = ScriptedModel(['(the ', 'model ', 'answered', ')'])
    await services.models.activate(model, model.info)
    yield services
    await services.stop()


async def ask(services: Services, text: str) -> str:
    answer = await services.assistant.send(text)
    assert answer.status == 'done', answer
    assert answer.source == 'System status', (text, answer.source, answer.text)
    return answer.text


def ask_at(services: Services, clock: Clock) -> None:
    """The questions ask about the simulated clock's time (the history and the log stay where they are)."""
    services.plugins.machine = replace(services.machine_sources, clock=clock)


async def burner_seen_busy(services: Services, pid: int) -> None:
    """Scans until the burner's CPU share shows (a scan measures CPU since the one before)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        snapshot = await services.system.processes.scan_once()
        if any(p.pid == pid and (p.cpu or 0) > 50 for p in snapshot.processes):
            return
    raise AssertionError('the burner never showed as busy')


# --- now ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(('question', 'share'), [
    ('What is using my CPU right now?', 'of a core'),
    ('Was nutzt gerade die CPU?', 'eines Kerns'),
])
async def test_what_is_using_the_cpu_names_a_real_burner(services: Services, question: str, share: str) -> None:
    burner = start_burner(BURNER)
    try:
        await burner_seen_busy(services, burner.pid)
        text = await ask(services, question)
        scan = services.system.processes.latest()  # the scan the answer used (fresh: no new one since)
    finally:
        stop(burner)
    assert scan is not None and share in text, text
    top = [p for p in scan.ranked('cpu', 3).processes if (p.cpu or 0) > 0]  # an idle one is not "using" it
    for process in top:  # the three busiest of the scan, with their share; on a quiet machine the burner leads
        assert f'{process.name} (PID {process.pid})' in text, (text, top)
    others = [p for p in scan.processes if p.pid != burner.pid]
    if not any((p.cpu or 0) >= 50 for p in others):  # another test's process may outrun it on a shared machine
        assert f'{BURNER} (PID {burner.pid})' in text, text
    cores = services.system.sampler.recent()[-1].cpu_count
    assert (f'{cores} cores' if share == 'of a core' else f'{cores} Kernen') in text


@pytest.mark.parametrize(('question', 'expected'), [
    ('What is using my memory?', 'Using the memory now'),
    ('Was belegt den Arbeitsspeicher?', 'Den Arbeitsspeicher nutzen gerade'),
])
async def test_what_holds_the_memory_names_the_biggest_process(services: Services, question: str,
                                                                expected: str) -> None:
    text = await ask(services, question)
    top = (await services.system.top_processes('memory', 3)).processes
    assert text.startswith(expected) and any(f'(PID {p.pid})' in text for p in top), text


@pytest.mark.parametrize('question', ['Which processes are running?', 'Welche Prozesse laufen gerade?'])
async def test_which_processes_lists_the_busiest_by_cpu(services: Services, question: str) -> None:
    text = await ask(services, question)
    assert ('(PID ' in text and ('of a core' in text or 'eines Kerns' in text)) or \
        text.startswith(('No process uses the CPU', 'Gerade nutzt kein Prozess die CPU')), text


async def test_a_script_asking_with_no_window_gets_a_fresh_reading(services: Services) -> None:
    """No window: the sampler idles and the latest reading is minutes old; the answer takes a new one."""
    assert services.hub.viewer_count == 0
    old = time.time() - 180
    reading = SystemMetrics(cpu=99.9, memory=1.0, disk=1.0, gpu=None, timestamp=old, cpu_count=64)
    services.sampler._history.append(reading)  # pylint: disable=protected-access; a sample from 3 min ago
    services.hub.publish(reading)
    for question in ('What is using my CPU?', 'why is my computer so slow?'):
        text = await ask(services, question)
        assert '99.9' not in text and '64 cores' not in text, text
    latest = services.hub.latest(events.SYSTEM_METRICS)
    assert latest is not None and latest.data.timestamp > old + 60


@pytest.mark.parametrize(('question', 'expected'), [
    ('why is my computer so slow?', ('Nothing stands out', 'Likely reasons')),
    ('Warum ist mein Rechner so langsam?', ('Nichts fällt auf', 'Mögliche Gründe')),
])
async def test_why_slow_gives_a_diagnosis_with_the_numbers(services: Services, question: str,
                                                           expected: tuple[str, ...]) -> None:
    text = await ask(services, question)
    assert text.startswith(expected), text
    assert '%' in text


async def test_the_diagnosis_names_what_holds_the_machine() -> None:
    """A full disk, memory pressure, swap and a hot GPU, each with its number (the sources as Services builds them)."""
    reading = SystemMetrics(cpu=97.0, memory=94.0, disk=97.5, gpu=90.0, cpu_count=2, swap_used=3 * GIB,
                            swap_total=4 * GIB, gpus=[GpuReading(0, 'GPU', 90.0, GIB, 2 * GIB, 91.0, None, None, None)])
    hog = ProcessInfo(7, 'hog', 'tony', 180.0, 3 * GIB, 75.0, None, 1.0, 1.0)

    async def current() -> SystemMetrics:
        return reading

    async def top(sort: str, limit: int) -> ProcessSnapshot:
        return ProcessSnapshot([hog], 1)

    async def unused(*_: object) -> object:
        raise AssertionError('not asked')

    queries = MachineQueries(MachineSources(current, top, unused, unused, unused, unused, unused, unused))
    found = await answer('why is my computer slow?', queries, 'en')
    assert found is not None
    assert found.text == ('Likely reasons: the CPU is 97.0 % busy (hog (PID 7) 180.0 % of a core); memory is '
                          '94.0 % used (hog (PID 7) 3.0 GiB (75.0 %)); 3.0 GiB of swap is in use; the disk is 97.5 % '
                          'full; the GPU is at 91 °C.')
    assert [f['kind'] for f in found.data['findings']] == ['cpu', 'memory', 'swap', 'disk', 'gpu_hot']


@pytest.mark.parametrize('question', ['tell me about the 7B model Mistral', 'why is Python so slow?',
                                      'what is the capital of France?'])
async def test_questions_about_other_things_go_to_the_model(services: Services, question: str) -> None:
    answer = await services.assistant.send(question)
    assert (answer.source, answer.text) == ('scripted', '(the model answered)')


async def test_the_plugin_reads_the_machine_on_the_apps_loop(services: Services) -> None:
    """The plugin runs on its own thread; the monitor's calls it makes run on the app's loop, where the monitor lives."""
    app_loop = asyncio.get_running_loop()
    seen: list[tuple[bool, str]] = []
    real = services.machine_sources.top_processes

    async def watched(sort: str, limit: int) -> ProcessSnapshot:
        seen.append((asyncio.get_running_loop() is app_loop, threading.current_thread().name))
        return await real(sort, limit)

    services.plugins.machine = replace(services.machine_sources, top_processes=watched)
    await ask(services, 'What is using my CPU?')
    assert seen and all(on_app_loop for on_app_loop, _ in seen)
    assert all(not name.startswith('plugin:') for _, name in seen)


# --- a minute after the burner stopped ----------------------------------------------------------------

@pytest.mark.parametrize(('question', 'language'), [
    ('What was using my CPU a minute ago?', 'en'),
    ('Was hat vor einer Minute die CPU genutzt?', 'de'),
])
async def test_a_minute_after_the_burner_stopped_the_history_names_it(services: Services, question: str,
                                                                      language: str) -> None:
    # a recorder on a simulated clock writes into the app's database, ten minutes back, where the app's own
    # recorder writes nothing; it takes the app's real process scans
    t0 = math.floor(time.time() / 60) * 60 - 600
    clock = Clock(t0)
    recorder = HistoryRecorder(services.db, processes=services.system.processes, clock=clock)
    burner = start_burner(BURNER)
    try:
        await burner_seen_busy(services, burner.pid)
        for at in (t0, t0 + 30, t0 + 60):  # the minute ends: written with the scan that saw the burner
            clock.now = at
            await recorder.record(SystemMetrics(cpu=60.0, memory=30.0, disk=40.0, gpu=None, timestamp=at))
    finally:
        stop(burner)
    for at in (t0 + 90, t0 + 120):  # a minute without it (a new scan)
        clock.now = at
        await recorder.record(SystemMetrics(cpu=5.0, memory=30.0, disk=40.0, gpu=None, timestamp=at))
    assert recorder.flushes == 2
    clock.now = t0 + 125
    ask_at(services, clock)
    text = await ask(services, question)
    assert services.plugins.machine is not None
    recorded = await MachineQueries(services.plugins.machine).busy_between('cpu', t0 + 5, t0 + 125, 20)
    burner_row = [p for p in recorded.processes if p.pid == burner.pid]
    assert burner_row and burner_row[0].peak > 50, recorded  # the history kept the burner's minute
    # the answer names the three busiest of the window: the burner, unless another test's process outran it
    for process in recorded.processes[:3]:
        assert f'{process.name} (PID {process.pid})' in text, (text, recorded)
    if burner_row[0].peak >= recorded.processes[min(2, len(recorded.processes) - 1)].peak:
        assert f'{BURNER} (PID {burner.pid})' in text, text
    minute = datetime.fromtimestamp(t0).strftime('%H:%M')
    assert (f'at {minute}' if language == 'en' else f'um {minute}') in text  # when it was busiest
    start, end = (datetime.fromtimestamp(t).strftime('%H:%M') for t in (t0 + 5, t0 + 125))
    assert f'{start}–{end}' in text  # the window it looked at
    assert ('of a core' if language == 'en' else 'eines Kerns') in text


# --- a recorded day on a simulated clock ----------------------------------------------------------

def recorded_day() -> datetime:
    """A Wednesday at 16:30 at least three days back: the week before it holds a Monday and a Tuesday."""
    day = datetime.now().replace(hour=16, minute=30, second=0, microsecond=0) - timedelta(days=3)
    while day.weekday() != 2:
        day -= timedelta(days=1)
    return day


def _profile(moment: datetime) -> tuple[float, float, float, list[RecordedProcess]]:
    """cpu %, memory %, GPU °C and the busiest processes of a minute of the recorded day."""
    t = int(moment.timestamp())
    idle = RecordedProcess(t, 100, 'idle-daemon', 'root', 1.0, 200 * 2**20, None)
    if 6 <= moment.hour < 8:
        backup = RecordedProcess(t, 4242, 'nightly-backup', 'tony', 180.0 if moment.minute != 30 else 190.0,
                                 GIB, None)
        return 90.0, 40.0, 45.0, [backup, idle]
    if moment.hour == 14 and moment.minute < 10:
        peak = moment.minute == 5
        render = RecordedProcess(t, 5151, 'render-farm', 'tony', 95.0, 3 * GIB, None)
        return 70.0, 93.0 if peak else 85.0, 83.0 if peak else 70.0, [render, idle]
    return 5.0, 30.0, 45.0, [idle]


async def record_day(services: Services, now: datetime) -> None:
    """From 06:00 to ``now`` every minute with two samples, as the recorder keeps them, and the Tuesday's peak."""
    buffer = HistoryBuffer()
    minutes = [now.replace(hour=6, minute=0) + timedelta(minutes=m)
               for m in range(int((now - now.replace(hour=6, minute=0)).total_seconds() // 60))]
    tuesday = now.replace(hour=9, minute=58) - timedelta(days=1)
    minutes = [tuesday + timedelta(minutes=m) for m in range(5)] + minutes
    for moment in minutes:
        cpu, memory, temperature, processes = _profile(moment)
        if moment.date() != now.date():
            memory = 97.0 if moment.minute == 2 else 60.0
        for second in (0, 30):
            buffer.add(HistorySample(moment.timestamp() + second, cpu, memory, 50.0, 10.0, 20.0, temperature))
        buffer.processes.extend(processes)
    batch = buffer.take(final=True)
    await services.db.run(store.write, services.db, batch, now.timestamp())
    rules = {rule.id: rule for rule in DEFAULT_RULES}

    def log(rule_id: str, start: datetime, end: datetime, peak: float) -> None:
        entry = alert_store.open_entry(services.db, rules[rule_id], start.timestamp(), peak, start.timestamp())
        alert_store.close_entry(services.db, entry, end.timestamp(), peak, end.timestamp(), 'cleared')

    def write_log() -> None:
        log('memory-high', now.replace(hour=22) - timedelta(days=1), now.replace(hour=23) - timedelta(days=1), 96.0)
        log('cpu-high', now.replace(hour=6, minute=5), now.replace(hour=7, minute=55), 99.0)
        log('gpu-hot', now.replace(hour=14, minute=4), now.replace(hour=14, minute=7), 88.0)

    await services.db.run(write_log)


@pytest.fixture
async def day(services: Services) -> AsyncIterator[Services]:
    now = recorded_day()
    await record_day(services, now)
    ask_at(services, Clock(now.timestamp()))
    yield services


@pytest.mark.parametrize(('question', 'expected'), [
    ('What was using my CPU at 14:05?', ['render-farm (PID 5151) up to 95.0 % of a core (at 14:05)', 'At 14:05 (today)']),
    ('Was hat um 14:05 die CPU genutzt?', ['render-farm (PID 5151) bis 95,0 % eines Kerns (um 14:05)', 'Um 14:05 (heute)']),
    ('What was using my CPU this morning?', ['nightly-backup (PID 4242) up to 190.0 % of a core (at 06:30)',
                                            'Today 06:00–12:00']),
    ('Was hat heute Morgen die CPU genutzt?', ['nightly-backup (PID 4242) bis 190,0 % eines Kerns (um 06:30)',
                                              'Heute 06:00–12:00']),
    ('How busy was the CPU this morning?', ['CPU load today 06:00–12:00: highest 90.0 %']),
    ('What was using the disk this morning?', ['Disk today 06:00–12:00: highest 50.0 %']),  # no disk per process
    ('Which processes were busy this morning?', ['nightly-backup (PID 4242) up to 190.0 % of a core (at 06:30)']),
    ('How hot did the GPU get today?', ['GPU temperature today 00:00–16:30: highest 83 °C (at 14:05)']),
    ('Wie heiß wurde die Grafikkarte heute?', ['GPU-Temperatur heute 00:00–16:30: höchstens 83 °C (um 14:05)']),
    ('When was memory highest this week?', ['Memory was highest at yesterday 10:02: 97.0 %', 'Mon ']),
    ('Wann war der Arbeitsspeicher diese Woche am höchsten?', ['Arbeitsspeicher war am höchsten um gestern 10:02: 97,0 %']),
])
async def test_the_recorded_day_answers_with_its_window(day: Services, question: str, expected: list[str]) -> None:
    text = await ask(day, question)
    for part in expected:
        assert part in text, text


@pytest.mark.parametrize(('question', 'expected'), [
    ('Which alerts fired today?', 'Today 00:00–16:30: 2 alerts – CPU above 90 % (warning, 06:05–07:55, peak 99.0 %); '
                                  'GPU temperature above 85 °C (critical, 14:04–14:07, peak 88 °C).'),
    ('Welche Alarme gab es heute?', 'Heute 00:00–16:30: 2 Alarme – CPU above 90 % (warning, 06:05–07:55, '
                                    'Spitze 99,0 %); GPU temperature above 85 °C (critical, 14:04–14:07, Spitze 88 °C).'),
])
async def test_the_alerts_of_today_come_from_the_log(day: Services, question: str, expected: str) -> None:
    assert await ask(day, question) == expected  # yesterday's memory alert is not today's


async def test_a_time_nothing_was_recorded_says_so(day: Services) -> None:
    text = await ask(day, 'What was using my CPU at 03:00?')
    assert text == 'Nothing was recorded at 03:00 (today) (the app was not running then).'


# --- models ---------------------------------------------------------------------------------------

def catalog(ram_free: int, vram_free: int | None) -> ModelCatalog:
    loaded = ModelInfo(name='llama-3-8b-q4', source='local', size_bytes=int(4.9 * GIB), state='loaded')
    return ModelCatalog(models=[loaded], active=loaded, ollama_status='', ollama_url='', models_dir='',
                        ram_free_bytes=ram_free, vram_free_bytes=vram_free)


def with_catalog(services: Services, ram_free: int, vram_free: int | None) -> None:
    async def fake() -> ModelCatalog:
        return catalog(ram_free, vram_free)

    services.plugins.machine = replace(services.machine_sources, model_catalog=fake)


async def test_a_7b_model_that_does_not_fit_says_how_much_more_and_who_holds_memory(services: Services) -> None:
    with_catalog(services, ram_free=3 * GIB, vram_free=None)
    text = await ask(services, 'can I run a 7B model?')
    # 7e9 weights at 4.85 bits: 3.95 GiB, + 1 GiB: 4.95 GiB; 3 GiB free: 1.95 GiB more
    assert text.startswith('A 7B model needs about 5.0 GiB at Q4_K_M (about 4.85 bits a weight): 4.0 GiB of weights'), text
    assert 'Free now: 3.0 GiB of RAM (no GPU readable).' in text
    assert 'It does not fit: it needs about 2.0 GiB more free RAM; ' in text
    assert 'The loaded model llama-3-8b-q4 holds about 4.9 GiB.' in text
    top = (await services.system.top_processes('memory', 3)).processes
    assert any(f'{p.name} (PID {p.pid}) holds ' in text for p in top), text


async def test_a_model_that_fits_the_gpu_says_so_in_german(services: Services) -> None:
    with_catalog(services, ram_free=8 * GIB, vram_free=20 * GIB)
    text = await ask(services, 'Kann ich ein 13B-Modell laufen lassen?')
    assert text.startswith('Ein 13B-Modell braucht bei Q4_K_M (etwa 4,85 Bit je Gewicht) ungefähr 8,3 GiB'), text
    assert 'Frei sind 8,0 GiB RAM und 20,0 GiB GPU-Speicher. Es passt in den GPU-Speicher' in text


async def test_a_model_that_fits_the_ram_only_runs_on_the_cpu(services: Services) -> None:
    with_catalog(services, ram_free=16 * GIB, vram_free=2 * GIB)
    text = await ask(services, 'would a 7 billion parameter model fit?')
    assert 'It fits in RAM and then runs on the CPU' in text, text


@pytest.mark.parametrize(('question', 'expected'), [
    ('why is the answer so slow?', 'The last answer (scripted) came at {speed} tokens/s'),
    ('Warum ist die Antwort so langsam?', 'Die letzte Antwort (scripted) kam mit {speed} Token/s'),
])
async def test_why_the_answer_is_slow_reads_the_last_answers_speed(services: Services, question: str,
                                                                   expected: str) -> None:
    answer = await services.assistant.send('Write a haiku about autumn.')
    assert answer.source == 'scripted' and answer.tokens_per_s is not None
    text = await ask(services, question)
    speed = f'{answer.tokens_per_s:.1f}'
    assert expected.format(speed=speed if 'tokens' in expected else speed.replace('.', ',')) in text, text
    assert ('The loaded model is scripted' in text) or ('Geladen ist scripted' in text)


async def test_the_queries_answer_a_tool_layer_with_plain_data(services: Services) -> None:
    """The same queries, called directly as a tool would, give JSON-ready dictionaries."""
    queries = services.machine
    now = time.time()
    results = [await queries.top_processes('memory', 2), await queries.diagnose(),
               await queries.history_summary('cpu', now - 3600, now), await queries.busy_between('cpu', now - 600, now),
               await queries.alerts_between(now - 86400, now), await queries.model_fit(7),
               await queries.answer_speed()]
    for result in results:
        json.dumps(result.to_dict())
    assert len(results[0].processes) <= 2
    with pytest.raises(ValueError, match='Unknown resource'):
        await queries.top_processes('disk', 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match='Unknown quantization'):
        await queries.model_fit(7, 'Q9')


# --- the time words, on their own ---------------------------------------------------------------------

NINE = datetime(2026, 5, 6, 9, 0).timestamp()  # a Wednesday, 09:00


@pytest.mark.parametrize(('question', 'start', 'end'), [
    ('what was using my cpu 10 minutes ago', datetime(2026, 5, 6, 8, 48), datetime(2026, 5, 6, 8, 52)),
    ('was lief vor 2 Stunden', datetime(2026, 5, 6, 6, 36), datetime(2026, 5, 6, 7, 24)),
    ('cpu at 11pm', datetime(2026, 5, 5, 23, 0), datetime(2026, 5, 5, 23, 0, 59)),  # later than now: last night
    ('um 8:15 Uhr', datetime(2026, 5, 6, 8, 15), datetime(2026, 5, 6, 8, 15, 59)),
    ('gestern um 14:05', datetime(2026, 5, 5, 14, 5), datetime(2026, 5, 5, 14, 5, 59)),
    ('in the last 2 hours', datetime(2026, 5, 6, 7, 0), datetime(2026, 5, 6, 9, 0)),
    ('yesterday afternoon', datetime(2026, 5, 5, 12, 0), datetime(2026, 5, 5, 18, 0)),
    ('heute Morgen', datetime(2026, 5, 6, 6, 0), datetime(2026, 5, 6, 9, 0)),  # up to now
    ('this week', datetime(2026, 5, 4, 0, 0), datetime(2026, 5, 6, 9, 0)),
    ('gestern', datetime(2026, 5, 5, 0, 0), datetime(2026, 5, 6, 0, 0)),
])
def test_the_time_a_question_asks_about(question: str, start: datetime, end: datetime) -> None:
    from jarvis.machine.timewords import find_window
    window = find_window(question, NINE)
    assert window is not None and (window.start, window.end) == (start.timestamp(), end.timestamp())


@pytest.mark.parametrize('question', ['what is using my cpu right now', 'wer belegt gerade den Speicher',
                                      'this afternoon'])  # 12:00 has not come yet at 09:00
def test_now_and_times_still_to_come_ask_about_now(question: str) -> None:
    from jarvis.machine.timewords import find_window
    assert find_window(question, NINE) is None
