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
from jarvis.models.base import ModelError
from jarvis.models.default_model import DEFAULT_MODEL_FILE
from jarvis.models.gguf import GGUFError, read_gguf
from jarvis.services import Services

from .helpers.fake_ollama import FakeModel, FakeOllama
from .helpers.server import free_port

GEMMA = Path(DEFAULT_MODEL_FILE).stem


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
    models = await services.models.list_models()
    gemma = next(m for m in models if m.name == GEMMA)
    assert (gemma.source, gemma.quantization, gemma.parameters, gemma.context_length) == \
        ('local', 'Q4_K_M', '270M', 32768)
    assert gemma.size_bytes and gemma.size_bytes > 200 * 2**20 and gemma.state == 'available'
    assert gemma.extra['memory_needed'] > gemma.size_bytes
    assert 'ollama' in services.models.ollama_status.lower() and 'not running' in services.models.ollama_status

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
    assert [(e.model, e.source) for e in loaded] == [(GEMMA, 'local'), (None, ''), (GEMMA, 'local')]
    assert loaded[0].details['quantization'] == 'Q4_K_M'


async def test_bad_files_are_refused_and_the_previous_model_stays(services: Services, models_dir: Path) -> None:
    truncated, text, garbage = write_corrupt(services.models.models_dir, models_dir / DEFAULT_MODEL_FILE)
    await services.models.load(GEMMA)
    listed = {m.name: m for m in await services.models.list_models()}
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
    monkeypatch.setenv('JARVIS_MODELS_DIR', str(tmp_path / 'models'))
    services = Services(model_settings)
    services.plugins._builtins = []  # pylint: disable=protected-access
    await services.start()
    await services.models.set_options(context_length=2048, temperature=0.3, gpu_layers=0, max_tokens=64)
    for bad in ({'context_length': 10}, {'temperature': 5}, {'max_tokens': 0}, {'gpu_layers': 'lots'},
                {'context_length': 'NaN'}, {'threads': -1}, {'colour': 'red'}):
        with pytest.raises(ValueError):
            await services.models.set_options(**bad)
    assert services.models.options.context_length == 2048
    await services.models.load(GEMMA)
    assert services.models.active is not None and services.models.active.context_length == 2048
    assert services.models.active.details['threads'] == max(1, (os.cpu_count() or 2) - 1), 'a core left for the UI'
    await services.stop()
    again = Services(model_settings)
    again.plugins._builtins = []  # pylint: disable=protected-access
    await again.start()
    try:
        await again.model_ready()
        assert again.models.options.context_length == 2048 and again.models.options.temperature == 0.3
        assert again.models.active is not None and again.models.active.name == GEMMA, 'restored at start'
    finally:
        await again.stop()


async def test_memory_need_against_free_memory(services: Services) -> None:
    gemma = next(m for m in await services.models.list_models() if m.name == GEMMA)
    need = await services.models.memory_need(gemma)
    assert gemma.size_bytes is not None and need.needed_bytes > gemma.size_bytes
    assert need.ram_free_bytes > 0 and need.fits
    assert need.vram_free_bytes is None  # no GPU reading here


async def test_ollama_models_list_pull_load_chat_unload_delete(settings: Settings, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('JARVIS_MODELS_DIR', str(tmp_path / 'models'))
    with FakeOllama([FakeModel('tinyllama:latest')], library=[FakeModel('qwen2:0.5b', parameter_size='494M')]) as ollama:
        services = Services(settings.with_changes(ollama_host=ollama.url))
        services.plugins._builtins = []  # pylint: disable=protected-access
        await services.start()
        try:
            listed = await services.models.list_models()
            assert [(m.name, m.source) for m in listed] == [('tinyllama:latest', 'ollama')]
            assert services.models.ollama_status == ''

            progress = [p async for p in services.models.pull('qwen2:0.5b')]
            assert len(progress) > 3 and progress[-1].done and progress[-1].status == 'success'
            fractions = [p.completed / p.total for p in progress if p.total]
            assert fractions and fractions[-1] == 1.0
            assert 'qwen2:0.5b' in [m.name for m in await services.models.list_models()]

            await services.models.load('qwen2:0.5b', 'ollama')
            assert 'qwen2:0.5b' in ollama.running
            answer = await services.assistant.send('Status report?')
            assert answer.text == ollama.chat_reply and answer.model == 'qwen2:0.5b'

            await services.models.load('tinyllama:latest', 'ollama')  # replaces it; the server frees the first
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
        assert await services.models.list_models() == []
        assert 'not running' in services.models.ollama_status
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
        assert (await client.get('/api/models')).json()['active']['name'] == GEMMA


def _api_app(services: Services):  # type: ignore[no-untyped-def]
    from fastapi import FastAPI

    from jarvis import api

    app = FastAPI()
    api.register(app, services)
    return app
