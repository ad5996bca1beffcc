"""The model manager: the real Gemma GGUF, bad files, imports, settings, and Ollama over HTTP."""
from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from jarvis import events
from jarvis.config import Settings
from jarvis.events import ChatMessage
from jarvis.models.base import ChatTurn, MemoryNeed, ModelError
from jarvis.models.default_model import DEFAULT_MODEL_FILE
from jarvis.models.gguf import GGUFError, read_gguf
from jarvis.models.manager import ACTIVE_KEY
from jarvis.models.names import MAX_NAME_CHARS, InvalidModelName, validate_name
from jarvis.models.prompt import STOP, stop_sequences
from jarvis.models.repetition import LoopGuard
from jarvis.services import Services

from .helpers.fake_ollama import FakeModel, FakeOllama
from .helpers.files import read_only
from .helpers.server import free_port

GEMMA = Path(DEFAULT_MODEL_FILE).stem
# the default Gemma answers this with about 430 tokens at temperature 0: long enough to be stopped midway
LONG_ANSWER = 'List all the US states with a fact about each one.'


@pytest.fixture
def model_settings(settings: Settings, models_dir: Path, tmp_path: Path) -> Settings:
    own = tmp_path / 'models'
    own.mkdir()
    (own / DEFAULT_MODEL_FILE).symlink_to(models_dir / DEFAULT_MODEL_FILE)
    return settings.with_changes(ollama_host=f'http://127.0.0.1:{free_port()}')  # nothing listens there


@pytest.fixture
async def services(model_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Services]:
    monkeypatch.setenv('JARVIS_MODELS_DIR', str(tmp_path / 'models'))
    services = Services(model_settings)
    services.plugins._builtins = []  # pylint: disable=protected-access
    await services.start()
    yield services
    await services.stop()


def write_corrupt(directory: Path, gemma: Path) -> tuple[Path, Path, Path]:
    truncated = directory / 'truncated.gguf'
    truncated.write_bytes(gemma.read_bytes()[:5000])
    text = directory / 'notes.gguf'
    text.write_text('this is not a model\n' * 100)
    garbage = directory / 'garbage.gguf'
    garbage.write_bytes(b'GGUF' + (3).to_bytes(4, 'little') + b'\xff' * 64)
    return truncated, text, garbage


async def test_real_gemma_list_load_answer_unload_reload(services: Services) -> None:
    catalog = await services.models.catalog()
    gemma = next(m for m in catalog.models if m.name == GEMMA)
    assert (gemma.source, gemma.quantization, gemma.parameters, gemma.context_length) == \
        ('local', 'Q4_K_M', '270M', 32768)
    assert gemma.size_bytes and gemma.size_bytes > 200 * 2**20 and gemma.state == 'available'
    assert gemma.memory is not None and gemma.memory.needed_bytes > gemma.size_bytes and gemma.memory.fits
    assert 'ollama' in catalog.ollama_status.lower() and 'not running' in catalog.ollama_status
    assert catalog.active is None and catalog.ram_free_bytes and catalog.ram_free_bytes > 0

    loaded: list = []
    services.hub.subscribe(lambda e: loaded.append(e.data), types=[events.MODEL_LOADED])
    await services.models.set_options(max_tokens=8, temperature=0.0)
    info = await services.models.load(GEMMA)
    assert info.name == GEMMA and services.models.active is not None
    answer = await services.assistant.send('Say hello.')
    assert answer.status == 'done' and answer.model == GEMMA and answer.text
    await services.models.unload()
    assert services.models.active is None
    assert (await services.assistant.send('anyone?')).source == 'J.A.R.V.I.S.'
    await services.models.load(GEMMA)
    assert services.models.active is not None
    await asyncio.sleep(0.05)
    # every window sees the load begin (no model yet, the chat's model loading), end, and the unload
    assert [(e.model, e.source, e.standby, e.loading) for e in loaded] == [
        (None, '', GEMMA, True), (GEMMA, 'local', '', False), (None, '', '', False),
        (None, '', GEMMA, True), (GEMMA, 'local', '', False)]
    assert loaded[1].details['quantization'] == 'Q4_K_M'


async def test_bad_files_are_refused_and_the_previous_model_stays(services: Services, models_dir: Path) -> None:
    truncated, text, garbage = write_corrupt(services.models.models_dir, models_dir / DEFAULT_MODEL_FILE)
    await services.models.load(GEMMA)
    listed = {m.name: m for m in (await services.models.catalog()).models}
    for path in (truncated, text, garbage):
        assert listed[path.stem].state == 'error' and listed[path.stem].error
    with pytest.raises(ModelError, match='not a GGUF model'):
        await services.models.load('notes')
    with pytest.raises(ModelError, match='truncated or corrupt'):
        await services.models.load('truncated')
    with pytest.raises(ModelError, match='corrupt'):
        await services.models.load('garbage')
    with pytest.raises(ModelError, match='missing'):
        await services.models.load('no-such-model')
    for bad in ('../etc/passwd', 'a/b', 'x\\y', '', '   ', 'a\x00b', 'n' * 300):
        with pytest.raises(ModelError):
            await services.models.load(bad)
    assert services.models.active is not None and services.models.active.name == GEMMA, 'still active'
    assert services.models.active_info is not None and services.models.active_info.name == GEMMA


async def test_import_checks_the_file_first(services: Services, models_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / 'downloads'
    outside.mkdir()
    truncated, text, _ = write_corrupt(outside, models_dir / DEFAULT_MODEL_FILE)
    with pytest.raises(GGUFError, match='not a GGUF model'):
        await services.models.import_gguf(text)
    with pytest.raises(GGUFError, match='truncated'):
        await services.models.import_gguf(truncated)
    with pytest.raises(ModelError, match='no file'):
        await services.models.import_gguf(outside / 'missing.gguf')
    copy = outside / 'mini.gguf'
    shutil.copyfile(models_dir / DEFAULT_MODEL_FILE, copy)
    for bad_name in ('../escape', 'sub/dir', '..'):
        with pytest.raises(ModelError, match='not a valid'):
            await services.models.import_gguf(copy, bad_name)
    info = await services.models.import_gguf(copy, 'my-gemma')
    assert info.name == 'my-gemma' and (services.models.models_dir / 'my-gemma.gguf').is_file()
    assert read_gguf(services.models.models_dir / 'my-gemma.gguf').quantization == 'Q4_K_M'
    with pytest.raises(ModelError, match='already exists'):
        await services.models.import_gguf(copy, 'my-gemma')
    assert not list(services.models.models_dir.glob('*.partial'))


async def test_settings_persist_and_bad_values_are_refused(model_settings: Settings, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings survive a restart, and so does the chat's model: the last one used is on standby (not loaded)
    and loads with the first message."""
    monkeypatch.setenv('JARVIS_MODELS_DIR', str(tmp_path / 'models'))
    (tmp_path / 'models' / 'gemma-copy.gguf').symlink_to(tmp_path / 'models' / DEFAULT_MODEL_FILE)
    services = Services(model_settings)
    services.plugins._builtins = []  # pylint: disable=protected-access
    await services.start()
    await services.models.set_options(context_length=2048, temperature=0.3, gpu_layers=0, max_tokens=64)
    for bad in ({'context_length': 10}, {'temperature': 5}, {'max_tokens': 0}, {'gpu_layers': 'lots'},
                {'context_length': 'NaN'}, {'threads': -1}, {'colour': 'red'}):
        with pytest.raises(ValueError):
            await services.models.set_options(**bad)
    assert services.models.options.context_length == 2048
    await services.models.load('gemma-copy')
    assert services.models.active is not None and services.models.active.context_length == 2048
    assert services.models.active.details['threads'] == max(1, (os.cpu_count() or 2) - 1), 'a core left for the UI'
    await services.stop()
    again = Services(model_settings.with_changes(load_default_model=True))
    again.plugins._builtins = []  # pylint: disable=protected-access
    await again.start()
    try:
        await again.model_ready()
        assert again.models.options.context_length == 2048 and again.models.options.temperature == 0.3
        assert again.models.active is None, 'nothing loads at start'
        assert again.models.standby == ('gemma-copy', 'local'), 'the last one used, not the default'
        answer = await again.assistant.send('Say hello.')
        assert answer.status == 'done' and answer.model == 'gemma-copy' and answer.text
        assert again.models.active is not None and again.models.active.context_length == 2048
    finally:
        await again.stop()


async def test_no_default_model_means_no_model_at_start(model_settings: Settings, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """--no-default-model (load_default_model off) loads no model at all, not even the last one."""
    monkeypatch.setenv('JARVIS_MODELS_DIR', str(tmp_path / 'models'))
    first = Services(model_settings)
    await first.start()
    await first.models.load(GEMMA)
    assert first.store.get(ACTIVE_KEY) == {'name': GEMMA, 'source': 'local'}
    await first.stop()
    again = Services(model_settings)  # load_default_model=False, as --no-default-model sets it
    await again.start()
    try:
        await again.model_ready()
        assert again.models.active is None and again.models.active_info is None
        assert again.models.standby is None, 'none waits for the first message either'
        assert (await again.assistant.send('hello')).text == again.assistant.no_model_text
        assert again.models.active is None
        assert again.store.get(ACTIVE_KEY) == {'name': GEMMA, 'source': 'local'}, 'remembered for the next start'
    finally:
        await again.stop()


async def test_memory_need_against_free_memory(services: Services) -> None:
    gemma = next(m for m in (await services.models.catalog()).models if m.name == GEMMA)
    need = await services.models.memory_need(gemma)
    assert gemma.size_bytes is not None and need.needed_bytes > gemma.size_bytes
    assert need.ram_free_bytes and need.ram_free_bytes > 0 and need.fits
    assert need.vram_free_bytes is None  # no GPU reading here
    assert need.to_dict() == {'needed_bytes': need.needed_bytes, 'ram_free_bytes': need.ram_free_bytes,
                              'vram_free_bytes': None, 'fits': True, 'short_bytes': 0, 'offload': None,
                              'holders': [], 'gpu_holders': [], 'verdict': need.describe()}
    assert need.describe().endswith('RAM (fits).')


async def test_ollama_models_list_pull_load_chat_unload_delete(settings: Settings, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('JARVIS_MODELS_DIR', str(tmp_path / 'models'))
    with FakeOllama([FakeModel('tinyllama:latest')], library=[FakeModel('qwen2:0.5b', parameter_size='494M')]) as ollama:
        services = Services(settings.with_changes(ollama_host=ollama.url))
        services.plugins._builtins = []  # pylint: disable=protected-access
        await services.start()
        try:
            catalog = await services.models.catalog()
            assert [(m.name, m.source) for m in catalog.models] == [('tinyllama:latest', 'ollama')]
            assert catalog.ollama_status == '' and catalog.ollama_url == ollama.url
            assert catalog.to_dict()['ollama'] == 'ok'

            progress = [p async for p in services.models.pull('qwen2:0.5b')]
            assert len(progress) > 3 and progress[-1].done and progress[-1].status == 'success'
            fractions = [p.completed / p.total for p in progress if p.total]
            assert fractions and fractions[-1] == 1.0
            assert 'qwen2:0.5b' in [m.name for m in (await services.models.catalog()).models]

            await services.models.load('qwen2:0.5b', 'ollama')
            assert 'qwen2:0.5b' in ollama.running
            answer = await services.assistant.send('Status report?')
            assert answer.text == ollama.chat_reply and answer.model == 'qwen2:0.5b'

            await services.models.load('tinyllama:latest')  # no source: the tag says Ollama; it replaces qwen2
            assert 'qwen2:0.5b' not in ollama.running and 'tinyllama:latest' in ollama.running
            await services.models.unload()
            assert ollama.running == {}
            await services.models.delete_ollama('qwen2:0.5b')
            with pytest.raises(ModelError, match='not found'):
                await services.models.delete_ollama('qwen2:0.5b')
            with pytest.raises(ModelError):
                await services.models.load('never-pulled:latest', 'ollama')
        finally:
            await services.stop()


async def test_ollama_pull_error_and_dead_server(settings: Settings, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('JARVIS_MODELS_DIR', str(tmp_path / 'models'))
    with FakeOllama(library=[FakeModel('qwen2:0.5b')]) as ollama:
        ollama.pull_error_after = 4
        url = ollama.url
        services = Services(settings.with_changes(ollama_host=url))
        services.plugins._builtins = []  # pylint: disable=protected-access
        await services.start()
        seen: list = []
        services.hub.subscribe(lambda e: seen.append(e.data), types=[events.PULL_PROGRESS])
        try:
            with pytest.raises(ModelError, match='unexpected EOF'):
                async for _ in services.models.pull('qwen2:0.5b'):
                    pass
            await asyncio.sleep(0.05)
            assert seen[-1].error and seen[-1].done
        finally:
            await services.stop()
    # the server is gone now
    services = Services(settings.with_changes(ollama_host=url))
    services.plugins._builtins = []  # pylint: disable=protected-access
    await services.start()
    try:
        catalog = await services.models.catalog()
        assert catalog.models == [] and 'not running' in catalog.ollama_status
        with pytest.raises(ModelError, match='not running'):
            await services.models.load('qwen2:0.5b', 'ollama')
    finally:
        await services.stop()


async def test_models_api(services: Services) -> None:
    transport = httpx.ASGITransport(app=_api_app(services))
    async with httpx.AsyncClient(transport=transport, base_url='http://test') as client:
        listed = (await client.get('/api/models')).json()
        assert GEMMA in [m['name'] for m in listed['models']] and listed['active'] is None
        response = await client.post('/api/models/load', json={'model': GEMMA})
        assert response.status_code == 200 and response.json()['loaded']['name'] == GEMMA
        response = await client.post('/api/models/load', json={'model': '../../etc/passwd'})
        assert response.status_code == 422 and 'not a valid' in response.json()['error']
        response = await client.post('/api/models/load', content=b'{not json')
        assert response.status_code == 400 and 'JSON' in response.json()['error']
        listed = (await client.get('/api/models')).json()
        assert (listed['active']['name'], listed['active']['state']) == (GEMMA, 'loaded'), 'the active model is loaded'
        assert next(m for m in listed['models'] if m['name'] == GEMMA)['state'] == 'loaded'


async def test_the_catalog_says_the_active_model_is_loaded(services: Services) -> None:
    info = await services.models.load(GEMMA)  # no source: a plain file name is local
    assert info.state == 'loaded' and services.models.active_info is not None
    assert services.models.active_info.state == 'loaded'
    catalog = await services.models.catalog()
    assert catalog.active is not None and catalog.active.state == 'loaded'
    as_dict = catalog.to_dict()
    assert as_dict['active']['state'] == 'loaded' and as_dict['active']['name'] == GEMMA
    row = next(m for m in as_dict['models'] if m['name'] == GEMMA)
    assert row['state'] == 'loaded' and row['memory']['fits'] is True and 'path' not in row
    await services.models.unload()
    assert (await services.models.catalog()).active is None


async def test_a_gguf_cut_short_after_its_header_is_refused_with_a_sentence(services: Services,
                                                                           models_dir: Path,
                                                                           tmp_path: Path) -> None:
    gemma = models_dir / DEFAULT_MODEL_FILE
    assert read_gguf(gemma).data_end == gemma.stat().st_size, 'the tensor table accounts for every byte'
    with gemma.open('rb') as stream:
        head = stream.read(20 * 2**20)  # the whole header and tensor table, and a little of the tensors
    cut = services.models.models_dir / 'cut.gguf'
    cut.write_bytes(head)
    listed = {m.name: m for m in (await services.models.catalog()).models}
    assert listed['cut'].state == 'error'
    assert 'incomplete' in listed['cut'].error and 'again' in listed['cut'].error
    with pytest.raises(ModelError, match='cut.gguf is incomplete: it has 20,971,520 of the 253,113,024 bytes'):
        await services.models.load('cut')
    assert services.models.active is None
    outside = tmp_path / 'cut-elsewhere.gguf'
    outside.write_bytes(head)
    with pytest.raises(GGUFError, match='incomplete'):
        await services.models.import_gguf(outside)


async def test_a_read_only_models_folder_says_what_to_do(settings: Settings, models_dir: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / 'models'
    folder.mkdir()
    monkeypatch.setenv('JARVIS_MODELS_DIR', str(folder))
    services = Services(settings.with_changes(load_default_model=True, ollama_host=f'http://127.0.0.1:{free_port()}'))
    services.plugins._builtins = []  # pylint: disable=protected-access
    statuses: list = []
    services.hub.subscribe(lambda e: statuses.append(e.data), types=[events.MODEL_STATUS])
    with read_only(folder):
        await services.start()
        try:
            await services.model_ready()  # the default model's install fails in the background
            assert services.models.active is None
            hint = services.models.no_model_hint
            assert 'could not be installed' in hint and 'writable' in hint and 'no download' not in hint
            await asyncio.sleep(0.05)
            assert statuses[-1].model == GEMMA and statuses[-1].state == 'error' and 'writable' in statuses[-1].error
            row = next(m for m in (await services.models.catalog()).models if m.name == GEMMA)
            assert row.state == 'error' and 'JARVIS_MODELS_DIR' in row.error
            answer = await services.assistant.send('hello')
            assert 'could not be installed' in answer.text and 'no download' not in answer.text
            assert any('could not be installed' in r.getMessage() for r in caplog.records if r.levelname == 'WARNING')
            with pytest.raises(ModelError, match='could not be installed'):  # a retry says the same
                await services.models.load(GEMMA)
            with pytest.raises(ModelError, match='could not be copied.*writable'):
                await services.models.import_gguf(models_dir / DEFAULT_MODEL_FILE, 'imported')
        finally:
            await services.stop()
    assert not list(folder.iterdir())


async def _start_long_answer(services: Services) -> asyncio.Task[ChatMessage]:
    """Send LONG_ANSWER to the real Gemma; return once its answer streams."""
    await services.models.set_options(max_tokens=512, temperature=0.0)
    streaming = asyncio.Event()

    def seen(event: events.Event) -> None:
        message = event.data
        if message.role == 'assistant' and message.status == 'streaming' and message.text.strip():  # type: ignore[union-attr]
            streaming.set()

    services.hub.subscribe(seen, types=[events.CHAT_MESSAGE])
    answer = asyncio.ensure_future(services.assistant.send(LONG_ANSWER))
    await asyncio.wait_for(streaming.wait(), 60)
    return answer


async def _assert_stopped_midway(services: Services, answer: asyncio.Task[ChatMessage]) -> None:
    final = await asyncio.wait_for(answer, 30)
    # far from the 512 allowed and from the ~430 the answer runs to when left alone
    assert final.status == 'stopped' and final.text.strip() and final.tokens is not None and final.tokens < 256
    stored = next(m for m in await services.assistant.history() if m.id == final.id)
    assert (stored.status, stored.text) == ('stopped', final.text), 'kept with its text'


async def test_unloading_while_an_answer_streams_stops_it(services: Services) -> None:
    await services.models.load(GEMMA)
    answer = await _start_long_answer(services)
    await services.models.unload()  # returns once the answer has let go of the model
    assert services.models.active is None
    await _assert_stopped_midway(services, answer)
    assert (await services.assistant.send('anyone there?')).source == 'J.A.R.V.I.S.', 'no model: it says so'


async def test_loading_another_model_while_an_answer_streams_stops_it(services: Services) -> None:
    (services.models.models_dir / 'gemma-copy.gguf').symlink_to(services.models.local_path(GEMMA).resolve())
    await services.models.load(GEMMA)
    answer = await _start_long_answer(services)
    await services.models.load('gemma-copy')
    assert services.models.active is not None and services.models.active.name == 'gemma-copy'
    await _assert_stopped_midway(services, answer)
    await services.models.set_options(max_tokens=8)
    assert (await services.assistant.send('Say hello.')).model == 'gemma-copy', 'the new model answers'


def _api_app(services: Services):  # type: ignore[no-untyped-def]
    from fastapi import FastAPI

    from jarvis.api import routes

    app = FastAPI()  # the /api/ routes alone: /mcp runs its sessions from the NiceGUI app's start
    routes.register(app, services)
    return app


# --- the pure parts ---------------------------------------------------------------------------

def _feed(guard: LoopGuard, text: str, size: int = 3) -> list[str]:
    return [guard.feed(text[i:i + size]) for i in range(0, len(text), size)]


def test_the_loop_guard_passes_an_answer_without_repeats_through_at_once() -> None:
    text = 'Paris is the capital of France. It lies on the Seine and has about two million inhabitants.'
    guard = LoopGuard()
    shown = _feed(guard, text)
    assert ''.join(shown) + guard.flush() == text and not guard.looped
    assert all(shown), 'nothing held back: every piece shows as it comes'


def test_the_loop_guard_releases_a_repeat_that_breaks_off() -> None:
    text = 'The first rule of the table is short. The first rule of the table is also long enough.'
    guard = LoopGuard()
    assert ''.join(_feed(guard, text)) + guard.flush() == text and not guard.looped


def test_the_loop_guard_ends_an_answer_that_copies_a_paragraph() -> None:
    paragraph = ('1. Each number in the table is separated by a space. 2. The first line starts with a word. '
                 '3. Every row ends with a newline character.\n')
    guard = LoopGuard()
    shown, text = '', paragraph * 3
    for piece in (text[i:i + 4] for i in range(0, len(text), 4)):
        shown += guard.feed(piece)
        if guard.looped:
            break
    assert guard.looped
    assert shown.startswith(paragraph) and len(shown) < len(paragraph) + guard.hold_chars, 'the copy is not shown'


def test_stop_sequences_end_every_turn_label_and_a_recital() -> None:
    assert {'User:', '\nuser:', '\nUSER:', 'J.A.R.V.I.S.:', '\nAssistant:'} <= set(STOP)
    stops = stop_sequences([ChatTurn('system', 'You are J.A.R.V.I.S., a helpful assistant. Be brief.'),
                            ChatTurn('user', 'hi')])
    assert stops[:len(STOP)] == STOP
    assert stops[len(STOP):] == ['You are J.A.R.V.I.S., a helpful', 'are J.A.R.V.I.S., a helpful assistant.',
                                 'J.A.R.V.I.S., a helpful assistant. Be', 'a helpful assistant. Be brief.']


def test_one_check_for_model_names() -> None:
    for name, source in (('gemma-3-270m-q4_k_m', 'local'), ('llama3.2:3b', 'ollama'), ('library/x:latest', 'ollama'),
                         ('my model', 'local'), ('llama3.2:3b', None)):
        assert validate_name(name, source) == name
    for name, source in (('', None), ('   ', 'local'), ('a\x00b', None), ('\ud800', 'local'), (' padded', None),
                         ('n' * (MAX_NAME_CHARS + 1), None), ('../x', None), ('a/b', 'local'), ('c:x', 'local'),
                         ('my model', 'ollama'), ('-rf', 'ollama'), (42, None)):
        with pytest.raises(InvalidModelName):
            validate_name(name, source)


def test_the_memory_verdict() -> None:
    gib = 2**30
    assert not MemoryNeed(2 * gib, gib, None).fits
    assert MemoryNeed(2 * gib, gib, 3 * gib).fits, 'the GPU has room'
    assert MemoryNeed(2 * gib, 3 * gib, None).fits
    assert MemoryNeed(2 * gib, None, None).fits, 'nothing could be read: nothing is refused'


async def test_unloading_an_ollama_model_stops_its_answer(settings: Settings, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('JARVIS_MODELS_DIR', str(tmp_path / 'models'))
    with FakeOllama([FakeModel('tinyllama:latest')]) as ollama:
        ollama.chat_hold_at = 1  # the answer's second piece never comes while the test runs
        services = Services(settings.with_changes(ollama_host=ollama.url))
        services.plugins._builtins = []  # pylint: disable=protected-access
        await services.start()
        try:
            await services.models.load('tinyllama:latest', 'ollama')
            streaming = asyncio.Event()

            def seen(event: events.Event) -> None:
                message = event.data
                if message.role == 'assistant' and message.status == 'streaming' and message.text:  # type: ignore[union-attr]
                    streaming.set()

            services.hub.subscribe(seen, types=[events.CHAT_MESSAGE])
            answer = asyncio.ensure_future(services.assistant.send('Status report?'))
            await asyncio.wait_for(streaming.wait(), 30)
            await asyncio.wait_for(services.models.unload(), 30)  # not held by the answer
            final = await asyncio.wait_for(answer, 30)
            assert (final.status, final.text) == ('stopped', ollama.chat_pieces()[0])
            assert ollama.running == {}
        finally:
            ollama.chat_go.set()
            await services.stop()
