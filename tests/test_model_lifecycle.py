"""The model's lifecycle: on standby at start, loaded by the first message that needs it (or by opening
the chat with "preload" on), unloaded after the keep-alive without use, loaded again by the next message.

The keep-alive runs on a manual clock (minutes pass in no time); loads use the real Gemma GGUF, or the
local Ollama stand-in where a test must hold a load halfway.
"""
from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import psutil
import pytest

from jarvis import events
from jarvis.config import Settings
from jarvis.events import ChatMessage, ModelLoaded, ModelStatus
from jarvis.models.default_model import DEFAULT_MODEL_FILE
from jarvis.models.keep_alive import FOREVER, KeepAlive
from jarvis.models.local import LlamaCppModel
from jarvis.models.manager import ACTIVE_KEY
from jarvis.services import Services
from jarvis.storage import Database, SettingsStore

from .conftest import simulate
from .helpers.clock import ManualClock
from .helpers.fake_ollama import FakeModel, FakeOllama
from .helpers.server import AppServer
from .helpers.waiting import eventually

GEMMA = Path(DEFAULT_MODEL_FILE).stem
TEN_MINUTES = 600
# the default Gemma answers this with about 430 tokens at temperature 0: long enough to outlast a clock jump
LONG_ANSWER = 'List all the US states with a fact about each one.'


# --- the keep-alive on its own --------------------------------------------------------------

class Expiry:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1


async def test_the_keep_alive_expires_once_after_the_time_without_use() -> None:
    clock, expiry = ManualClock(), Expiry()
    keep_alive = KeepAlive(expiry, clock, TEN_MINUTES)
    keep_alive.started()
    await clock.advance(TEN_MINUTES - 1)
    assert expiry.calls == 0 and keep_alive.deadline == clock.now() + 1
    await clock.advance(1)
    assert expiry.calls == 1
    await clock.advance(10 * TEN_MINUTES)
    assert expiry.calls == 1, 'once'
    keep_alive.close()


async def test_a_use_holds_the_model_and_its_end_starts_the_wait_again() -> None:
    clock, expiry = ManualClock(), Expiry()
    keep_alive = KeepAlive(expiry, clock, TEN_MINUTES)
    keep_alive.started()
    await clock.advance(TEN_MINUTES - 60)
    keep_alive.begin()  # an answer starts; it runs for an hour
    await clock.advance(3600)
    assert expiry.calls == 0 and keep_alive.deadline is None and keep_alive.in_use
    keep_alive.end()
    await clock.advance(TEN_MINUTES - 1)
    assert expiry.calls == 0, 'counted from the end of the answer'
    await clock.advance(1)
    assert expiry.calls == 1
    keep_alive.close()


async def test_forever_never_expires_and_a_new_setting_applies_at_once() -> None:
    clock, expiry = ManualClock(), Expiry()
    keep_alive = KeepAlive(expiry, clock, None)  # forever
    keep_alive.started()
    await clock.advance(30 * 24 * 3600)
    assert expiry.calls == 0 and keep_alive.deadline is None and clock.sleeping == 0
    keep_alive.set_seconds(60)  # counted from the last use, which is long past
    await clock.advance(0)
    assert expiry.calls == 1
    keep_alive.stopped()
    keep_alive.set_seconds(60)
    await clock.advance(120)
    assert expiry.calls == 1, 'nothing loaded: nothing to unload'


# --- the whole app, with the real Gemma -----------------------------------------------------

@pytest.fixture
def gemma_settings(settings: Settings, models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings of a plain start (the default model on standby), with its own models folder."""
    own = tmp_path / 'models'
    own.mkdir()
    (own / DEFAULT_MODEL_FILE).symlink_to(models_dir / DEFAULT_MODEL_FILE)
    monkeypatch.setenv('JARVIS_MODELS_DIR', str(own))
    return settings.with_changes(load_default_model=True)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def app(gemma_settings: Settings, clock: ManualClock) -> AsyncIterator[Services]:
    services = Services(gemma_settings)
    services.models.keep_alive.clock = clock
    services.plugins._builtins = []  # pylint: disable=protected-access
    await services.start()
    await services.model_ready()
    await services.models.set_options(max_tokens=8, temperature=0.0)
    yield services
    await services.stop()


def record(services: Services, *types: str) -> list:
    seen: list = []
    services.hub.subscribe(lambda e: seen.append(e.data), types=list(types), maxsize=100_000)
    return seen


async def test_the_first_message_loads_the_default_model(app: Services) -> None:
    assert app.models.active is None, 'nothing is loaded at start'
    assert app.models.standby == (GEMMA, 'local')
    latest = app.hub.latest(events.MODEL_LOADED)
    assert latest is not None and latest.data == ModelLoaded(model=None, standby=GEMMA, standby_source='local')
    row = next(m for m in (await app.models.catalog()).models if m.name == GEMMA)
    assert row.state == 'standby'
    seen = record(app, events.MODEL_LOADED, events.CHAT_MESSAGE)

    answer = await app.assistant.send('Hello! Who are you?')
    assert answer.status == 'done' and answer.model == GEMMA and answer.text
    assert app.models.active is not None and app.models.active.name == GEMMA
    await asyncio.sleep(0.05)
    loaded = [e for e in seen if isinstance(e, ModelLoaded)]
    assert [(e.model, e.standby, e.loading) for e in loaded] == [(None, GEMMA, True), (GEMMA, '', False)]
    # the answer's first words come after the load, in the same stream the windows show
    order = [('loading' if e.loading else 'loaded') if isinstance(e, ModelLoaded) else e.role
             for e in seen if isinstance(e, ModelLoaded) or (isinstance(e, ChatMessage) and e.text)]
    assert order[:4] == ['user', 'loading', 'loaded', 'assistant']


async def test_the_keep_alive_unloads_and_the_next_message_loads_again(app: Services, clock: ManualClock) -> None:
    await app.assistant.send('Hello!')
    assert isinstance(app.models.active, LlamaCppModel)
    runner = app.models.active.runner_pid
    assert runner is not None and psutil.pid_exists(runner)
    await clock.advance(TEN_MINUTES - 1)
    assert app.models.active is not None, 'used 1 s ago by the clock'
    seen = record(app, events.MODEL_LOADED, events.MODEL_STATUS)
    await clock.advance(1)
    await eventually(lambda: app.models.active is None)
    assert app.models.standby == (GEMMA, 'local'), 'still the chat\'s model: the next message loads it'
    await eventually(lambda: any(isinstance(e, ModelLoaded) for e in seen))
    assert [e for e in seen if isinstance(e, ModelLoaded)] == [ModelLoaded(model=None, standby=GEMMA,
                                                                           standby_source='local')]
    assert ModelStatus(model=GEMMA, source='local', state='standby') in seen
    assert next(m for m in (await app.models.catalog()).models if m.name == GEMMA).state == 'standby'
    assert app.store.get(ACTIVE_KEY) == {'name': GEMMA, 'source': 'local'}, 'remembered for the next start'
    assert not psutil.pid_exists(runner), 'the process the model ran in ended: its memory is back'

    answer = await app.assistant.send('Are you back?')
    assert answer.status == 'done' and answer.model == GEMMA and app.models.active is not None


async def test_the_keep_alive_never_cuts_an_answer_short(app: Services, clock: ManualClock) -> None:
    await app.models.set_options(max_tokens=512)
    streaming = asyncio.Event()

    def seen(event: events.Event) -> None:
        if event.data.role == 'assistant' and event.data.status == 'streaming' and event.data.text:  # type: ignore[union-attr]
            streaming.set()

    app.hub.subscribe(seen, types=[events.CHAT_MESSAGE])
    task = asyncio.ensure_future(app.assistant.send(LONG_ANSWER))
    await asyncio.wait_for(streaming.wait(), 60)
    await clock.advance(3600)  # an hour by the clock while it answers
    final = await asyncio.wait_for(task, 120)
    assert final.status == 'done' and final.tokens and final.tokens > 100, 'not stopped by an unload'
    assert app.models.active is not None
    await clock.advance(TEN_MINUTES)
    await eventually(lambda: app.models.active is None)


async def test_forever_keeps_the_model_and_a_shorter_keep_alive_applies_at_once(app: Services,
                                                                                clock: ManualClock) -> None:
    await app.models.set_options(keep_alive_s=FOREVER)
    await app.assistant.send('Hello!')
    await clock.advance(7 * 24 * 3600)
    await asyncio.sleep(0.1)
    assert app.models.active is not None
    await app.models.set_options(keep_alive_s=60)  # the last use is a week ago
    await clock.advance(0)
    await eventually(lambda: app.models.active is None)
    assert app.store.get('models.options')['keep_alive_s'] == 60
    for bad in (-2, 8 * 24 * 3600, 'soon'):
        with pytest.raises(ValueError):
            await app.models.set_options(keep_alive_s=bad)


async def test_messages_sent_at_once_on_a_cold_start_share_one_load(app: Services) -> None:
    statuses = record(app, events.MODEL_STATUS)
    conversation = await app.assistant.new_conversation()
    answers = await asyncio.gather(app.assistant.send('Hello!'), app.assistant.send('Hi there!', conversation.id))
    assert [(a.status, a.model) for a in answers] == [('done', GEMMA), ('done', GEMMA)]
    await asyncio.sleep(0.05)
    assert [s.state for s in statuses if isinstance(s, ModelStatus)].count('loading') == 1


async def test_an_explicit_unload_means_no_model_until_one_is_loaded(app: Services) -> None:
    await app.assistant.send('Hello!')
    await app.models.unload()
    assert app.models.active is None and app.models.standby is None
    answer = await app.assistant.send('Anyone there?')
    assert answer.source == 'J.A.R.V.I.S.' and answer.text == app.assistant.no_model_text
    assert app.models.active is None, 'not loaded behind the user\'s back'


async def test_a_model_that_cannot_be_loaded_on_first_use_says_why(settings: Settings, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / 'models'
    folder.mkdir()
    (folder / 'broken.gguf').write_text('this is not a model\n' * 100)
    monkeypatch.setenv('JARVIS_MODELS_DIR', str(folder))
    settings = settings.with_changes(load_default_model=True)
    _seed(settings, {ACTIVE_KEY: {'name': 'broken', 'source': 'local'}})
    services = Services(settings)
    services.plugins._builtins = []  # pylint: disable=protected-access
    await services.start()
    try:
        await services.model_ready()
        assert services.models.standby == ('broken', 'local')
        answer = await services.assistant.send('hello')
        assert answer.status == 'error' and 'not a GGUF model' in answer.text
        assert services.models.standby is None, 'not tried again with every message'
        again = await services.assistant.send('hello?')
        assert again.status == 'done' and again.text == services.assistant.no_model_text
    finally:
        await services.stop()


def _seed(settings: Settings, values: dict) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.db_path)
    try:
        store = SettingsStore(db)
        for key, value in values.items():
            store.set_blocking(key, value)
    finally:
        db.close()


# --- a load that takes its time (the Ollama stand-in holds it) ----------------------------------

@pytest.fixture
def slow_ollama() -> FakeOllama:
    with FakeOllama([FakeModel('tinyllama:latest')]) as ollama:
        ollama.load_hold = True
        yield ollama
        ollama.load_go.set()


async def test_a_message_sent_during_a_load_waits_and_then_streams(settings: Settings, slow_ollama: FakeOllama,
                                                                   tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('JARVIS_MODELS_DIR', str(tmp_path / 'models'))
    slow_ollama.chat_delay = 0.15  # pieces far enough apart to be shown one by one
    services = Services(settings.with_changes(ollama_host=slow_ollama.url))
    services.plugins._builtins = []  # pylint: disable=protected-access
    await services.start()
    try:
        await services.model_ready()
        messages = record(services, events.CHAT_MESSAGE)
        load = asyncio.ensure_future(services.models.load('tinyllama:latest'))  # the Load button of a window
        await eventually(lambda: (latest := services.hub.latest(events.MODEL_LOADED)) is not None
                         and latest.data.loading)  # type: ignore[union-attr]
        send = asyncio.ensure_future(services.assistant.send('Status report?'))
        await eventually(lambda: any(m.role == 'assistant' and m.status == 'streaming' for m in messages))
        await asyncio.sleep(0.3)
        assert not send.done() and not load.done(), 'the message waits for the load'
        assert services.models.active is None
        slow_ollama.load_go.set()
        answer = await asyncio.wait_for(send, 30)
        await load
        assert (answer.status, answer.model, answer.text) == ('done', 'tinyllama:latest', slow_ollama.chat_reply)
        assert slow_ollama.loads == 1, 'the message used the load under way'
        assert [m.text for m in messages if m.role == 'assistant' and m.status == 'streaming' and m.text], \
            'it streamed'
    finally:
        await services.stop()


async def test_every_window_shows_the_model_on_standby_then_loading_then_loaded(
        settings: Settings, slow_ollama: FakeOllama, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('JARVIS_MODELS_DIR', str(tmp_path / 'models'))
    settings = settings.with_changes(ollama_host=slow_ollama.url, load_default_model=True)
    _seed(settings, {ACTIVE_KEY: {'name': 'tinyllama:latest', 'source': 'ollama'}})
    async with simulate(settings) as harness:
        await harness.services.model_ready()
        chatting, watching = harness.new_user(), harness.new_user()
        await chatting.open('/chat')
        await watching.open('/models')
        for user in (chatting, watching):
            await eventually(lambda u=user: _text(u, 'header-model') == 'Model: tinyllama:latest (loads on first use)')
        assert not _element(chatting, 'no-model-banner').visible, 'no "No model loaded" for a model that will load'
        row = 'model-row:ollama:tinyllama:latest'
        await eventually(lambda: watching.find(marker=row).elements)
        assert _in_row(watching, row, 'model-state').text == 'standby'

        chatting.find(marker='chat-input').clear().type('Status report?')
        chatting.find(marker='send-button').click()
        for user in (chatting, watching):
            await eventually(lambda u=user: _text(u, 'header-model') == 'Loading tinyllama:latest…')
        await eventually(lambda: _in_row(watching, row, 'model-state').text == 'loading')
        assert not _element(chatting, 'no-model-banner').visible
        slow_ollama.load_go.set()
        for user in (chatting, watching):
            await eventually(lambda u=user: _text(u, 'header-model') == 'Model: tinyllama:latest')
        await eventually(lambda: _in_row(watching, row, 'model-state').text == 'loaded')
        await eventually(lambda: slow_ollama.chat_reply in [e.content for e in chatting.client.elements.values()
                                                            if 'bubble-text' in e._markers])  # pylint: disable=protected-access


async def test_the_chat_view_preloads_the_model_when_asked(settings: Settings, slow_ollama: FakeOllama,
                                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('JARVIS_MODELS_DIR', str(tmp_path / 'models'))
    settings = settings.with_changes(ollama_host=slow_ollama.url, load_default_model=True)
    _seed(settings, {ACTIVE_KEY: {'name': 'tinyllama:latest', 'source': 'ollama'}})
    slow_ollama.load_go.set()
    async with simulate(settings) as harness:
        await harness.services.model_ready()
        user = harness.new_user()
        await user.open('/chat')  # preload is off by default: opening the chat loads nothing
        await asyncio.sleep(0.3)
        assert harness.services.models.active is None and slow_ollama.loads == 0
        await user.open('/models')
        assert _element(user, 'setting-keep-alive').value == 600, 'ten minutes by default'
        _element(user, 'setting-preload').set_value(True)
        _element(user, 'setting-keep-alive').set_value(300)
        user.find(marker='settings-save').click()
        await eventually(lambda: harness.services.models.options.preload)
        assert harness.services.models.options.keep_alive_s == 300
        assert harness.services.models.keep_alive.seconds == 300, 'applies at once'
        await user.open('/chat')
        await eventually(lambda: harness.services.models.active is not None)
        assert slow_ollama.loads == 1 and harness.services.models.active.name == 'tinyllama:latest'


def _element(user, marker: str):  # type: ignore[no-untyped-def]
    found = [e for e in user.client.elements.values() if marker in e._markers]  # pylint: disable=protected-access
    assert len(found) == 1, f'{len(found)} elements marked {marker}'
    return found[0]


def _text(user, marker: str) -> str:  # type: ignore[no-untyped-def]
    return _element(user, marker).text


def _in_row(user, row_marker: str, marker: str):  # type: ignore[no-untyped-def]
    row = _element(user, row_marker)
    found = [e for e in row.descendants() if marker in e._markers]  # pylint: disable=protected-access
    assert len(found) == 1
    return found[0]


# --- the real app in its own process ----------------------------------------------------------

@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='reads the libraries a process mapped from /proc')
def test_the_model_runs_in_a_process_of_its_own_that_ends_with_the_unload(models_dir: Path, tmp_path: Path) -> None:
    """With the model on standby no process of the app has loaded llama.cpp (nor its memory); the first
    message starts a process of the app's own for the model, and unloading ends it, so that the app is
    back to the memory it had before (llama.cpp's libraries, llama-cpp-python's modules and the heap
    its threads used never enter the app's process)."""
    # a plain start (no --no-default-model): the default model goes on standby
    with AppServer(tmp_path / 'data', args=['--log-level', 'INFO'], env={'JARVIS_MODELS_DIR': str(models_dir)}) as server:
        assert server.process is not None
        app = psutil.Process(server.process.pid)
        with httpx.Client(base_url=server.url, timeout=120) as client:
            def gemma_state() -> str:
                return next(m for m in client.get('/api/models').json()['models'] if m['name'] == GEMMA)['state']

            _wait_until(lambda: gemma_state() == 'standby')  # set once the start's check of the model is done
            assert client.get('/api/models').json()['active'] is None
            assert not _llama_processes(app), 'llama.cpp is not in any process of the app yet'
            answer = client.post('/api/chat', json={'message': 'Hello! Who are you?'}).json()
            assert answer['status'] == 'done' and answer['model'] == GEMMA
            assert client.get('/api/models').json()['active']['name'] == GEMMA
            runners = _llama_processes(app)
            assert len(runners) == 1 and runners[0] != app.pid, 'in a child process, not in the app\'s own'
            assert client.post('/api/models/unload').status_code == 200
            _wait_until(lambda: not _llama_processes(app))
            assert not psutil.pid_exists(runners[0]), 'ended and reaped'


def _llama_processes(app: psutil.Process) -> list[int]:
    """The app's process and its children that have llama.cpp's library mapped."""
    found = []
    for process in [app, *app.children(recursive=True)]:
        try:
            if _maps_llama(process.pid):
                found.append(process.pid)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass  # ended meanwhile
    return found


def _wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, 'timed out'
        time.sleep(0.1)


def _maps_llama(pid: int) -> bool:
    maps = Path(f'/proc/{pid}/maps').read_text()
    return bool(re.search(r'/libllama[^/\s]*\.so', maps))

