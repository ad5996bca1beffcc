"""The Ollama client and chat model against a local server that speaks Ollama's API."""
from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta, timezone

import pytest

from jarvis.models.base import ChatModel, ChatTurn, GenerationOptions, ToolCall, ToolSpec
from jarvis.models.ollama import (
    OllamaChatModel,
    OllamaClient,
    OllamaError,
    OllamaModelNotFound,
    OllamaUnavailable,
    PullProgress,
    normalize_host,
)

from .helpers.fake_ollama import CANNED_REPLY, FakeModel, FakeOllama
from .helpers.server import free_port

TINY = FakeModel('tinyllama:latest')
GEMMA = FakeModel('gemma3:1b', family='gemma3', parameter_size='999.89M', quantization_level='Q4_K_M',
                  context_length=32768, layer_sizes=(815_310_432, 8_432, 358, 77))
QWEN = FakeModel('qwen2.5:0.5b', family='qwen2', parameter_size='494.03M', quantization_level='Q4_K_M',
                 context_length=32768, layer_sizes=(397_807_936, 1_482, 382, 11_343, 488))
TURNS = [ChatTurn('system', 'You are J.A.R.V.I.S.'), ChatTurn('user', 'Status report, please.')]


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    threads_before = set(threading.enumerate())
    with FakeOllama([TINY, GEMMA], library=[QWEN, TINY]) as server:
        yield server
    leftover = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    assert not leftover, f'threads left running: {leftover}'


@pytest.fixture
async def client(fake: FakeOllama) -> AsyncIterator[OllamaClient]:
    async with OllamaClient(fake.url) as ollama:
        yield ollama


@pytest.fixture
def chat(fake: FakeOllama) -> Iterator[OllamaChatModel]:
    model = OllamaChatModel('tinyllama:latest', fake.url, context_length=2048)
    yield model
    model.close()


@pytest.mark.parametrize(('value', 'expected'), [
    (None, 'http://127.0.0.1:11434'),
    ('', 'http://127.0.0.1:11434'),
    ('127.0.0.1:11434', 'http://127.0.0.1:11434'),
    ('0.0.0.0:11434', 'http://127.0.0.1:11434'),
    ('0.0.0.0', 'http://127.0.0.1:11434'),
    (':5000', 'http://127.0.0.1:5000'),
    ('example.com', 'http://example.com:11434'),
    ('http://example.com', 'http://example.com:80'),
    ('https://example.com', 'https://example.com:443'),
    ('https://example.com:8443/ollama/', 'https://example.com:8443/ollama'),
    ('[::]:11434', 'http://[::1]:11434'),
    ('http://localhost:11434/', 'http://localhost:11434'),
])
def test_host_is_read_like_ollama_does(value: str | None, expected: str) -> None:
    assert normalize_host(value) == expected


def test_host_with_another_scheme_is_refused() -> None:
    with pytest.raises(OllamaError, match='http'):
        normalize_host('ftp://example.com')


async def test_version_list_running_and_show(client: OllamaClient, fake: FakeOllama) -> None:
    assert await client.version() == fake.version

    models = {m.name: m for m in await client.list_models()}
    assert set(models) == {'tinyllama:latest', 'gemma3:1b'}
    gemma = models['gemma3:1b']
    assert gemma.source == 'ollama'
    assert gemma.key == 'ollama:gemma3:1b'
    assert gemma.size_bytes == GEMMA.size
    assert (gemma.quantization, gemma.parameters, gemma.family) == ('Q4_K_M', '999.89M', 'gemma3')
    assert gemma.extra == {'digest': GEMMA.digest, 'modified_at': GEMMA.modified_at}

    assert await client.running() == []

    info = await client.show('gemma3:1b')
    assert info['details']['family'] == 'gemma3'
    assert info['model_info']['general.architecture'] == 'gemma3'
    assert await client.context_length('gemma3:1b') == 32768
    assert await client.context_length('tinyllama') == 2048  # the default tag, as Ollama resolves it


async def test_show_of_an_unknown_model(client: OllamaClient) -> None:
    with pytest.raises(OllamaModelNotFound, match="model 'nope:latest' not found"):
        await client.show('nope:latest')


async def test_pull_reports_progress_and_installs_the_model(client: OllamaClient) -> None:
    events: list[PullProgress] = [p async for p in client.pull('qwen2.5:0.5b')]

    assert events[0].status == 'pulling manifest'
    assert [e.status for e in events[-3:]] == ['verifying sha256 digest', 'writing manifest', 'success']
    assert events[-1].success
    layers = [e for e in events if e.digest]
    assert {e.digest for e in layers} == set(QWEN.layer_digests())
    assert len(layers) >= 10
    assert layers[0].status.startswith('pulling ')

    done = [e.overall_completed for e in events]
    assert done == sorted(done), 'bytes done never go back'
    fractions = [e.overall for e in events if e.overall is not None]
    assert len(set(fractions)) >= 5
    assert fractions[0] == 0.0
    assert fractions[-1] == pytest.approx(1.0)
    assert events[-1].overall_total == QWEN.size

    assert 'qwen2.5:0.5b' in {m.name for m in await client.list_models()}


async def test_an_error_line_in_the_middle_of_a_pull_raises(client: OllamaClient, fake: FakeOllama) -> None:
    fake.pull_error_after = 6
    events: list[PullProgress] = []
    with pytest.raises(OllamaError, match='max retries exceeded: unexpected EOF'):
        async for progress in client.pull('qwen2.5:0.5b'):
            events.append(progress)
    assert len(events) == 6
    assert 'qwen2.5:0.5b' not in {m.name for m in await client.list_models()}


async def test_pull_of_a_model_the_registry_does_not_have(client: OllamaClient) -> None:
    with pytest.raises(OllamaError, match='file does not exist'):
        async for _ in client.pull('no-such-model:7b'):
            pass


async def test_load_shows_in_ps_and_unload_removes_it(client: OllamaClient, fake: FakeOllama) -> None:
    await client.load('tinyllama:latest', keep_alive='30m', num_ctx=2048)
    assert fake.last_bodies['/api/generate'] == {'model': 'tinyllama:latest', 'keep_alive': '30m', 'stream': False,
                                                 'options': {'num_ctx': 2048}}
    running = await client.running()
    assert [r['name'] for r in running] == ['tinyllama:latest']
    assert running[0]['size'] > 0 and running[0]['size_vram'] > 0
    expires = datetime.fromisoformat(running[0]['expires_at'])
    assert timedelta(minutes=29) < expires - datetime.now(timezone.utc) <= timedelta(minutes=30)

    await client.unload('tinyllama:latest')
    assert fake.last_bodies['/api/generate']['keep_alive'] == 0
    assert await client.running() == []


async def test_load_of_an_unknown_model(client: OllamaClient) -> None:
    with pytest.raises(OllamaModelNotFound, match='try pulling it first'):
        await client.load('nope:latest')


async def test_delete(client: OllamaClient) -> None:
    await client.load('gemma3:1b')
    await client.delete('gemma3:1b')
    assert {m.name for m in await client.list_models()} == {'tinyllama:latest'}
    assert await client.running() == []

    with pytest.raises(OllamaModelNotFound, match="model 'gemma3:1b' not found"):
        await client.delete('gemma3:1b')


async def test_chat_model_from_the_client(client: OllamaClient) -> None:
    model = await client.chat_model('gemma3:1b', num_ctx=8192)
    try:
        assert isinstance(model, ChatModel)
        assert (model.name, model.source) == ('gemma3:1b', 'ollama')
        assert model.context_length == 8192  # what Ollama is told to use, below the trained 32768
        assert model.details['family'] == 'gemma3'
        assert model.details['trained_context_length'] == 32768
    finally:
        model.close()

    small = await client.chat_model('tinyllama:latest', num_ctx=8192)
    small.close()
    assert small.context_length == 2048  # never more than the model was trained for

    with pytest.raises(OllamaModelNotFound):
        await client.chat_model('nope:latest')


def test_chat_streams_the_reply_in_pieces(chat: OllamaChatModel, fake: FakeOllama) -> None:
    pieces = list(chat.stream_chat(TURNS, GenerationOptions(max_tokens=64, temperature=0.2), threading.Event()))

    assert len(pieces) >= 5
    assert ''.join(pieces) == CANNED_REPLY
    sent = fake.last_bodies['/api/chat']
    assert sent['messages'] == [{'role': 'system', 'content': 'You are J.A.R.V.I.S.'},
                                          {'role': 'user', 'content': 'Status report, please.'}]
    assert sent['stream'] is True
    assert sent['options'] == {'temperature': 0.2, 'num_predict': 64, 'num_ctx': 2048}
    assert sent['keep_alive'] == '30m'
    assert 'tinyllama:latest' in fake.running  # a chat loads the model
    assert fake.streams_completed == 1


async def test_a_model_that_declares_tools_streams_its_calls(client: OllamaClient, fake: FakeOllama) -> None:
    fake.models['caller:latest'] = FakeModel('caller:latest', capabilities=('completion', 'tools'))
    plain, caller = await client.chat_model('tinyllama:latest'), await client.chat_model('caller:latest')
    try:
        assert not plain.supports_tools and caller.supports_tools
        assert caller.details['capabilities'] == ['completion', 'tools']
        spec = ToolSpec('top_processes', 'The busiest processes.', {'type': 'object', 'properties': {}})
        fake.tool_call = {'name': 'top_processes', 'arguments': {'sort': 'cpu'}}
        pieces = list(caller.stream_chat_with_tools(TURNS, [spec], GenerationOptions(), threading.Event()))
        assert pieces == [ToolCall('top_processes', {'sort': 'cpu'}, 'call_fake_1')]
        assert fake.last_bodies['/api/chat']['tools'] == [{'type': 'function', 'function': {
            'name': 'top_processes', 'description': 'The busiest processes.', 'parameters': spec.parameters}}]
        # the result goes back as Ollama reads it: the call with its arguments as an object, the tool's name
        turns = [*TURNS, ChatTurn('assistant', '', tool_calls=tuple(pieces)),
                 ChatTurn('tool', '{"processes": []}', tool_call_id='call_fake_1', tool_name='top_processes')]
        answer = ''.join(p for p in caller.stream_chat_with_tools(turns, [spec], GenerationOptions(),
                                                                  threading.Event()) if isinstance(p, str))
        assert answer == 'top_processes said: {"processes": []}'
        sent = fake.last_bodies['/api/chat']['messages']
        assert sent[2] == {'role': 'assistant', 'content': '',
                           'tool_calls': [{'function': {'name': 'top_processes', 'arguments': {'sort': 'cpu'}}}]}
        assert sent[3] == {'role': 'tool', 'content': '{"processes": []}', 'tool_name': 'top_processes',
                           'tool_call_id': 'call_fake_1'}
    finally:
        plain.close()
        caller.close()


def test_an_error_line_in_the_middle_of_a_chat_raises(chat: OllamaChatModel, fake: FakeOllama) -> None:
    fake.chat_error_after = 3
    pieces: list[str] = []
    with pytest.raises(OllamaError, match='error was encountered while running the model'):
        for piece in chat.stream_chat(TURNS, GenerationOptions(), threading.Event()):
            pieces.append(piece)
    assert len(pieces) == 3


def test_chat_with_an_unknown_model(fake: FakeOllama) -> None:
    model = OllamaChatModel('nope:latest', fake.url)
    try:
        with pytest.raises(OllamaModelNotFound, match='try pulling it first'):
            list(model.stream_chat(TURNS, GenerationOptions(), threading.Event()))
    finally:
        model.close()


def _wait_for(condition: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_cancel_stops_a_slow_chat_early(chat: OllamaChatModel, fake: FakeOllama) -> None:
    fake.chat_hold_at = 1  # the second piece comes only when the test says so: it never does
    total = len(fake.chat_pieces())
    cancel = threading.Event()
    pieces: list[str] = []

    def read() -> None:
        for piece in chat.stream_chat(TURNS, GenerationOptions(), cancel):
            pieces.append(piece)

    worker = threading.Thread(target=read)
    worker.start()
    try:
        assert _wait_for(lambda: len(pieces) == 1)
        cancel.set()  # as the UI does: from another thread, while the worker waits for the next piece
        worker.join(30)
        assert not worker.is_alive(), 'the chat ended without waiting for the next piece'
        # the connection is closed, so the server stops generating (it sees so while it holds the piece)
        assert _wait_for(lambda: fake.streams_aborted == 1)
    finally:
        fake.chat_go.set()
        worker.join(30)
    assert len(pieces) == 1 < total
    assert fake.streams_completed == 0


def test_cancel_while_waiting_for_the_first_line(chat: OllamaChatModel, fake: FakeOllama) -> None:
    fake.chat_hold_at = 0  # as when Ollama loads the model before answering: no response yet
    cancel = threading.Event()
    pieces: list[str] = []

    def read() -> None:
        for piece in chat.stream_chat(TURNS, GenerationOptions(), cancel):
            pieces.append(piece)

    worker = threading.Thread(target=read)
    worker.start()
    try:
        assert _wait_for(lambda: ('POST', '/api/chat') in fake.requests)
        cancel.set()
        worker.join(30)
        assert not worker.is_alive(), 'the chat ended while Ollama had not answered yet'
    finally:
        fake.chat_go.set()
        worker.join(30)
    assert pieces == []


def test_a_chat_cancelled_before_it_starts_sends_nothing(chat: OllamaChatModel, fake: FakeOllama) -> None:
    cancel = threading.Event()
    cancel.set()
    assert list(chat.stream_chat(TURNS, GenerationOptions(), cancel)) == []
    assert ('POST', '/api/chat') not in fake.requests


def test_count_tokens_is_an_estimate(chat: OllamaChatModel) -> None:
    assert chat.count_tokens('') == 0
    assert chat.count_tokens('abcd') == 1
    assert chat.count_tokens('a' * 401) == 101


async def test_every_call_says_when_ollama_is_not_running() -> None:
    url = f'http://127.0.0.1:{free_port()}'  # nothing listens there
    message = f'Ollama is not running at {url}'
    async with OllamaClient(url) as ollama:
        calls = {
            'version': ollama.version(),
            'list_models': ollama.list_models(),
            'running': ollama.running(),
            'show': ollama.show('tinyllama'),
            'context_length': ollama.context_length('tinyllama'),
            'chat_model': ollama.chat_model('tinyllama'),
            'load': ollama.load('tinyllama'),
            'unload': ollama.unload('tinyllama'),
            'delete': ollama.delete('tinyllama'),
        }
        for name, call in calls.items():
            with pytest.raises(OllamaUnavailable) as info:
                await call
            assert str(info.value) == message, name
        with pytest.raises(OllamaUnavailable, match=message):
            async for _ in ollama.pull('tinyllama'):
                pass

    model = OllamaChatModel('tinyllama', url)
    try:
        with pytest.raises(OllamaUnavailable, match=message):
            list(model.stream_chat(TURNS, GenerationOptions(), threading.Event()))
    finally:
        model.close()


BAD_NAMES = ['', '   ', 'tiny llama', 'tinyllama\n', 'tiny\x00llama', 'tiny\tllama', 'a' * 300, 'tiny;rm -rf',
             '-rf', 'model"quote']


@pytest.mark.parametrize('name', BAD_NAMES)
async def test_bad_model_names_are_refused_without_a_request(name: str, client: OllamaClient,
                                                             fake: FakeOllama) -> None:
    calls = [client.show(name), client.context_length(name), client.chat_model(name), client.load(name),
             client.unload(name), client.delete(name)]
    for call in calls:
        with pytest.raises(OllamaError, match='model name'):
            await call
    with pytest.raises(OllamaError, match='model name'):
        async for _ in client.pull(name):
            pass
    with pytest.raises(OllamaError, match='model name'):
        OllamaChatModel(name, fake.url)
    assert fake.requests == []
