"""Remote engines: an OpenAI-compatible server as a model source, tested against llama-cpp-python's own server
(``python -m llama_cpp.server``) running the default Gemma GGUF: add it, list its model, load it, chat through
the assistant, Stop, remove it; a wrong key, an unreachable server and a server killed mid-answer each give one
readable line, and the app keeps working. The API key is never returned, logged or put in the settings table."""
from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from nicegui.testing.user import User

from jarvis.events import CHAT_MESSAGE, ChatMessage
from jarvis.models.base import ChatTurn, GenerationOptions
from jarvis.models.default_model import default_model_path
from jarvis.models.remote import RemoteChatModel, ServerError, status_error
from jarvis.models.servers import KEYS_FILE, ServerConfigError, ServerRegistry, normalize_url

from .conftest import Harness
from .helpers.llama_server import LlamaServer
from .helpers.server import free_port
from .helpers.waiting import eventually

pytestmark = pytest.mark.model

KEY = f'sk-test-{secrets.token_hex(12)}'
# long enough that the answer is still streaming when the test stops it or kills the server
LONG_PROMPT = 'Count from 1 to 300, with every number written out in words, separated by commas.'


@pytest.fixture(scope='module')
def llama(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """One llama_cpp.server for the module (it starts in a few seconds with the 270M model), with an API key."""
    with LlamaServer(default_model_path(models_dir), tmp_path_factory.mktemp('llama') / 'llama.log',
                     api_key=KEY) as server:
        yield server


@pytest.fixture(scope='module')
def model_id(llama: LlamaServer) -> str:
    return llama.model_id()


class Recorder:
    """Every answer of the routes a test called, to look for the key in all of them."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.texts: list[str] = []

    async def call(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        response = await self.http.request(method, path, **kwargs)  # type: ignore[arg-type]
        self.texts.append(response.text)
        return response


async def _add(api: Recorder, url: str, name: str, api_key: str | None = KEY) -> dict:
    body: dict[str, str] = {'url': url, 'name': name}
    if api_key is not None:
        body['api_key'] = api_key
    response = await api.call('POST', '/api/models/servers', json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def _load(api: Recorder, model: str, server: str) -> httpx.Response:
    return await api.call('POST', '/api/models/load', json={'model': model, 'source': f'server:{server}'})


async def _until_text(jarvis: Harness, task: asyncio.Task) -> ChatMessage:
    """The answer being streamed, once its first words are in the chat (a hub event, as the windows see it)."""
    subscription = jarvis.services.hub.subscribe(name='test', types=[CHAT_MESSAGE])
    try:
        while True:
            event = await asyncio.wait_for(subscription.get(), 60)
            message = event.data
            if isinstance(message, ChatMessage) and message.role == 'assistant' and message.status == 'streaming' \
                    and message.text.strip():
                return message
            assert not task.done(), f'the answer ended before it streamed: {task.result()}'
    finally:
        subscription.close()


def _connections_to(port: int) -> list:
    return [c for c in psutil.Process().net_connections('tcp')
            if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED]


def _one_line(text: str) -> bool:
    return bool(text.strip()) and '\n' not in text.strip()


async def test_add_list_load_chat_stop_and_remove(jarvis: Harness, llama: LlamaServer, model_id: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level('DEBUG')
    api = Recorder(jarvis.http())
    services = jarvis.services

    added = await _add(api, llama.url, 'llama')
    assert added == {'name': 'llama', 'url': llama.url, 'api_key_set': True, 'reachable': True, 'error': '',
                     'models': [model_id]}
    assert (await api.call('GET', '/api/models/servers')).json() == [added]
    # its model lists with the others, the server as its source, in /api/models and /v1/models
    catalog = (await api.call('GET', '/api/models')).json()
    assert [(m['name'], m['state']) for m in catalog['models'] if m['source'] == 'server:llama'] == \
        [(model_id, 'available')]
    assert catalog['servers'] == [added]
    v1 = (await api.call('GET', '/v1/models')).json()['data']
    assert {'id': model_id, 'owned_by': 'server:llama'} in [{k: e[k] for k in ('id', 'owned_by')} for e in v1]

    loaded = await _load(api, model_id, 'llama')
    assert loaded.status_code == 200, loaded.text
    assert loaded.json()['loaded']['source'] == 'server:llama'
    assert services.models.active_info is not None and services.models.active_info.key == f'server:llama:{model_id}'

    # the answer streams into the chat, a few tokens
    await services.models.set_options(max_tokens=12, temperature=0.0)
    answer = await services.assistant.send('Say hello to Tony.')
    assert answer.status == 'done', answer.text
    assert answer.text and answer.model == model_id
    assert answer.tokens is not None and answer.tokens > 1  # it came in pieces, as the server streamed them

    # Stop closes the stream at once: the connection to the server is gone when the answer is kept as stopped
    await services.models.set_options(max_tokens=1500)
    task = asyncio.ensure_future(services.assistant.send(LONG_PROMPT))
    streaming = await _until_text(jarvis, task)
    assert _connections_to(llama.port), 'the answer streams over a connection to the server'
    stopped = await api.call('POST', '/api/chat/stop')
    assert stopped.json() == {'stopped': True}
    final = await asyncio.wait_for(task, 30)
    assert final.status == 'stopped' and final.text.strip().startswith(streaming.text.strip())
    assert not _connections_to(llama.port)

    # remove: the model that was loaded from it is unloaded, the server and its key are gone
    removed = await api.call('DELETE', '/api/models/servers/llama')
    assert removed.status_code == 200 and removed.json() == {'removed': 'llama'}
    assert services.models.active is None
    assert (await api.call('GET', '/api/models/servers')).json() == []
    assert not [m for m in (await api.call('GET', '/api/models')).json()['models'] if m['source'] == 'server:llama']
    again = await api.call('DELETE', '/api/models/servers/llama')
    assert again.status_code == 404 and set(again.json()) == {'error'}
    assert KEY not in (services.settings.data_dir / KEYS_FILE).read_text()

    assert not [text for text in api.texts if KEY in text], 'no route returns the key'
    assert KEY not in caplog.text and not [r for r in caplog.records if KEY in str(r.args)], 'the key is never logged'


async def test_the_key_is_kept_in_a_private_file_not_in_the_settings(jarvis: Harness, llama: LlamaServer,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level('DEBUG')
    api = Recorder(jarvis.http())
    await _add(api, llama.url, 'llama')
    keys = jarvis.services.settings.data_dir / KEYS_FILE
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert KEY in keys.read_text()
    with sqlite3.connect(jarvis.services.settings.db_path) as db:
        dump = '\n'.join(db.iterdump())
    assert llama.url in dump and KEY not in dump
    # listed, re-added and refused: never the key
    await api.call('GET', '/api/models/servers')
    await api.call('GET', '/api/models')
    await api.call('POST', '/api/models/servers', json={'url': 'ftp://127.0.0.1/v1', 'api_key': KEY})
    assert not [text for text in api.texts if KEY in text]
    assert KEY not in caplog.text


async def test_a_wrong_key_is_one_line_in_the_chat_and_the_servers_row(jarvis: Harness, llama: LlamaServer,
                                                                        model_id: str) -> None:
    api = Recorder(jarvis.http())
    services = jarvis.services
    await services.models.set_options(max_tokens=8, temperature=0.0)
    await _add(api, llama.url, 'llama')
    assert (await _load(api, model_id, 'llama')).status_code == 200

    # the key changes (added again under the same name): the model loads again with the next message, and fails
    wrong = await _add(api, llama.url, 'llama', api_key='sk-wrong')
    assert not wrong['reachable'] and _one_line(wrong['error']) and 'refused' in wrong['error']
    assert 'sk-wrong' not in wrong['error']
    answer = await services.assistant.send('Hello?')
    assert answer.status == 'error' and _one_line(answer.text) and 'refused' in answer.text, answer.text
    row = (await api.call('GET', '/api/models/servers')).json()[0]
    assert row['error'] == wrong['error']

    # the right key again: the next message works
    await _add(api, llama.url, 'llama')
    answer = await services.assistant.send('Hello?')
    assert answer.status == 'done' and answer.text, answer.text


async def test_an_unreachable_server_is_one_line_and_the_app_keeps_working(jarvis: Harness, llama: LlamaServer,
                                                                           model_id: str) -> None:
    api = Recorder(jarvis.http())
    services = jarvis.services
    await services.models.set_options(max_tokens=8, temperature=0.0)
    closed = f'http://127.0.0.1:{free_port()}/v1'

    nowhere = await _add(api, closed, 'nowhere', api_key=None)
    assert nowhere['reachable'] is False and nowhere['models'] == [] and _one_line(nowhere['error'])
    assert 'does not answer' in nowhere['error']

    # the model in use: its server moves to an address where nothing answers
    await _add(api, llama.url, 'llama')
    assert (await _load(api, model_id, 'llama')).status_code == 200
    await _add(api, closed, 'llama')
    answer = await services.assistant.send('Hello?')
    assert answer.status == 'error' and _one_line(answer.text) and 'does not answer' in answer.text, answer.text
    rows = {s['name']: s for s in (await api.call('GET', '/api/models')).json()['servers']}
    assert _one_line(rows['llama']['error']) and 'does not answer' in rows['llama']['error']

    await _add(api, llama.url, 'llama')
    answer = await services.assistant.send('Hello?')
    assert answer.status == 'done' and answer.text, answer.text

    # a model the server does not offer (any more): 404 from the server's list, one sentence from the route
    gone = await _load(api, 'vanished-model', 'llama')
    assert gone.status_code == 422 and 'does not offer vanished-model' in gone.json()['error']


async def test_a_server_killed_mid_answer_is_one_line_and_another_model_answers(
        jarvis: Harness, llama: LlamaServer, model_id: str, models_dir: Path, tmp_path: Path) -> None:
    api = Recorder(jarvis.http())
    services = jarvis.services
    await _add(api, llama.url, 'llama')
    with LlamaServer(default_model_path(models_dir), tmp_path / 'doomed.log') as doomed:
        await _add(api, doomed.url, 'doomed', api_key=None)
        doomed_id = doomed.model_id()
        assert (await _load(api, doomed_id, 'doomed')).status_code == 200
        await services.models.set_options(max_tokens=1500, temperature=0.0)
        task = asyncio.ensure_future(services.assistant.send(LONG_PROMPT))
        streaming = await _until_text(jarvis, task)
        doomed.kill()
        final = await asyncio.wait_for(task, 60)
    assert final.status == 'error'
    assert final.text.strip().startswith(streaming.text.strip())  # what came before the break is kept
    error_line = final.text.rsplit('\n\n', 1)[-1]
    assert _one_line(error_line) and 'doomed' in error_line, final.text

    # the app keeps working: the next message, with another server's model
    await services.models.set_options(max_tokens=8)
    assert (await _load(api, model_id, 'llama')).status_code == 200
    answer = await services.assistant.send('Hello?')
    assert answer.status == 'done' and answer.text, answer.text


def test_the_chat_model_streams_and_says_in_one_line_why_it_cannot(llama: LlamaServer, model_id: str) -> None:
    """The blocking chat model alone: ``stop`` and ``max_tokens`` reach the server; a 401 and a 404 in one line."""
    turns = [ChatTurn('system', 'You are J.A.R.V.I.S., a helpful assistant.'), ChatTurn('user', 'Hello, who are you?')]
    model = RemoteChatModel(model_id, 'llama', llama.url, KEY)
    try:
        pieces = list(model.stream_chat(turns, GenerationOptions(max_tokens=24, temperature=0.0), threading.Event()))
        whole = ''.join(pieces)
        assert 1 < len(pieces) <= 24, pieces  # streamed, one piece a token, no more than max_tokens
        stop = whole.strip()[len(whole.strip()) // 2:][:3]  # a few characters from its middle
        cut = ''.join(model.stream_chat(turns, GenerationOptions(max_tokens=24, temperature=0.0, stop=(stop,)),
                                        threading.Event()))
        assert cut == whole[:whole.index(stop)], (whole, stop, cut)  # the server stopped there
    finally:
        model.close()
    for key, name, words in (('sk-wrong', model_id, 'refused'), (None, model_id, 'refused')):
        model = RemoteChatModel(name, 'llama', llama.url, key)
        try:
            with pytest.raises(ServerError) as raised:
                list(model.stream_chat(turns, GenerationOptions(max_tokens=4), threading.Event()))
        finally:
            model.close()
        assert words in str(raised.value) and _one_line(str(raised.value)) and 'sk-wrong' not in str(raised.value)


@pytest.mark.parametrize(('given', 'expected'), [
    ('http://127.0.0.1:8000', 'http://127.0.0.1:8000/v1'),
    ('http://127.0.0.1:8000/', 'http://127.0.0.1:8000/v1'),
    ('HTTP://Head:8000/v1/', 'http://head:8000/v1'),
    ('https://api.example.com/openai/v1/chat/completions', 'https://api.example.com/openai/v1'),
    ('http://[::1]:8080/v1/models', 'http://[::1]:8080/v1'),
])
def test_a_server_address_is_normalized(given: str, expected: str) -> None:
    assert normalize_url(given) == expected


@pytest.mark.parametrize('given', ['', 'ftp://host/v1', 'http://user:secret@host/v1', 'http://host/v1?x=1',
                                   'http:///v1', 'http://host:99999/v1', 'http://ho st/v1', 'host:8000'])
def test_an_address_that_cannot_be_a_server_is_refused(given: str) -> None:
    with pytest.raises(ServerConfigError):
        normalize_url(given)


async def test_the_keys_file_is_made_private_again(jarvis: Harness, llama: LlamaServer) -> None:
    """A keys file someone made readable by others is made private when it is read."""
    api = Recorder(jarvis.http())
    await _add(api, llama.url, 'llama')
    keys = jarvis.services.settings.data_dir / KEYS_FILE
    os.chmod(keys, 0o644)
    registry = ServerRegistry(jarvis.services.store, keys)  # a fresh one reads the file, as at the next start
    assert await registry.api_key('llama') == KEY
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600


def _marked(user: User, marker: str) -> list:
    """The elements with a marker, visible or not (user.find sees only visible ones)."""
    return [e for e in user.client.elements.values() if marker in e._markers]  # pylint: disable=protected-access


def _in_row(user: User, row_marker: str, marker: str):  # type: ignore[no-untyped-def]
    rows = _marked(user, row_marker)
    assert len(rows) == 1, f'{len(rows)} rows marked {row_marker}'
    found = [e for e in rows[0].descendants() if marker in e._markers]  # pylint: disable=protected-access
    assert len(found) == 1, f'{len(found)} elements marked {marker} in {row_marker}'
    return found[0]


async def test_the_models_view_adds_loads_and_removes_a_server(user: User, llama: LlamaServer, model_id: str) -> None:
    await user.open('/models')
    user.find(marker='server-url').type(llama.url)
    user.find(marker='server-key').type(KEY)
    user.find(marker='server-name').type('llama')
    user.find(marker='server-add').click()
    await eventually(lambda: _marked(user, 'server-row:llama'), 20)
    assert _in_row(user, 'server-row:llama', 'server-status').text == 'answers, 1 model'
    assert _marked(user, 'server-key')[0].value == ''  # the key leaves the page once it is stored
    assert KEY not in str([e.props for e in user.client.elements.values()])

    # its model is a row of the table with the server as source; Load makes it the chat's model
    row = f'model-row:server:llama:{model_id}'
    await eventually(lambda: _marked(user, row), 20)
    with user.scope(marker=row):
        assert user.find('llama').elements  # the source badge names the server
        user.find(marker='model-load').click()
    await eventually(lambda: _in_row(user, row, 'model-state').text == 'loaded', 20)

    # a server where nothing answers: added, and its row says why in one line
    user.find(marker='server-url').type(f'http://127.0.0.1:{free_port()}/v1')
    user.find(marker='server-name').type('nowhere')
    user.find(marker='server-add').click()
    await eventually(lambda: _marked(user, 'server-row:nowhere'), 20)
    status = _in_row(user, 'server-row:nowhere', 'server-status').text
    assert 'does not answer' in status and _one_line(status)

    # removed: its row and its model's row go, and the model is unloaded
    with user.scope(marker='server-row:llama'):
        user.find(marker='server-remove').click()
    await eventually(lambda: not _marked(user, 'server-row:llama') and not _marked(user, row), 20)
    assert user.find(marker='active-model').elements.pop().text == 'No model loaded'


async def test_an_address_beyond_loopback_goes_through_the_proxy_set(jarvis: Harness,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """What keeps the fuzzer's servers on this machine (tests/test_api_fuzz.py): the app asks a remote server
    through the proxy in the environment, without looking its name up; a loopback one never through it."""
    requests: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await reader.readline())
        writer.write(b'HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(proxy, '127.0.0.1', 0)
    port = listener.sockets[0].getsockname()[1]
    for name in ('HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY', 'http_proxy', 'https_proxy', 'all_proxy'):
        monkeypatch.setenv(name, f'http://127.0.0.1:{port}')
    monkeypatch.setenv('NO_PROXY', '')
    monkeypatch.setenv('no_proxy', '')
    try:
        status = await jarvis.services.models.add_server('http://gpu-box.invalid:8000/v1', name='far')
        assert requests == [b'GET http://gpu-box.invalid:8000/v1/models HTTP/1.1\r\n']
        assert not status.reachable and _one_line(status.error)
        closed = f'http://127.0.0.1:{free_port()}/v1'
        near = await jarvis.services.models.add_server(closed, name='near')
        assert len(requests) == 1 and 'does not answer' in near.error  # straight to the closed port
    finally:
        listener.close()
        await listener.wait_closed()


async def test_a_key_that_cannot_be_stored_adds_nothing(jarvis: Harness) -> None:
    (jarvis.services.settings.data_dir / KEYS_FILE).mkdir()  # where the file goes, something it cannot replace
    api = Recorder(jarvis.http())
    response = await api.call('POST', '/api/models/servers',
                              json={'url': f'http://127.0.0.1:{free_port()}/v1', 'api_key': KEY, 'name': 'gpu'})
    assert response.status_code == 503 and 'could not be written' in response.json()['error']
    assert KEY not in response.text
    assert (await api.call('GET', '/api/models/servers')).json() == []


def test_a_vanished_model_and_other_refusals_read_as_one_sentence() -> None:
    """What vLLM and llama-server answer for a model they do not serve (404 in OpenAI's error shape), and a
    server that echoes the key back: one line, never the key."""
    body = b'{"error": {"message": "The model `llama-3-70b` does not exist.", "type": "NotFoundError", "code": 404}}'
    vanished = str(status_error('gpu', 404, body, KEY, 'llama-3-70b'))
    assert vanished == ('The server gpu does not offer llama-3-70b (any more) (HTTP 404): The model `llama-3-70b` '
                        'does not exist.')
    echoed = str(status_error('gpu', 500, f'bad\nheader Bearer {KEY}'.encode(), KEY))
    assert _one_line(echoed) and KEY not in echoed and echoed.startswith('The server gpu answered HTTP 500')


async def test_a_conversation_of_its_own_answers_with_a_servers_model(jarvis: Harness, llama: LlamaServer,
                                                                      model_id: str) -> None:
    """A conversation's own model ("source:name", PATCH) may be a server's: "server:<name>:<model>"."""
    api = Recorder(jarvis.http())
    services = jarvis.services
    await services.models.set_options(max_tokens=8, temperature=0.0)
    await _add(api, llama.url, 'llama')
    first = await services.assistant.send('Hello?')  # no model loaded: a conversation to give a model of its own
    changed = await api.call('PATCH', f'/api/chat/conversations/{first.conversation_id}',
                             json={'model': f'server:llama:{model_id}'})
    assert changed.status_code == 200, changed.text
    answer = await services.assistant.send('Hello again?', first.conversation_id)
    assert answer.status == 'done' and answer.model == model_id, answer.text
    assert services.models.active_info is not None and services.models.active_info.source == 'server:llama'
