"""The OpenAI-compatible API (/v1/), with OpenAI's own Python client against the real app and the real Gemma
GGUF: "jarvis" is the whole assistant (plugins, then the model; every window sees the answer), a model's
id asks that model directly; plain and streamed; usage, stop, max_tokens, temperature; errors arrive as the
client's own exception types."""
from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import websockets

from jarvis.models.default_model import DEFAULT_MODEL_FILE

from .helpers.server import AppServer

pytestmark = pytest.mark.model

GEMMA = Path(DEFAULT_MODEL_FILE).stem


@pytest.fixture(scope='module')
def app(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[AppServer]:
    """The app with the Gemma GGUF in its models folder and no model loaded at start."""
    own = tmp_path_factory.mktemp('v1-models')
    (own / DEFAULT_MODEL_FILE).symlink_to(models_dir / DEFAULT_MODEL_FILE)
    with AppServer(tmp_path_factory.mktemp('v1'), env={'JARVIS_MODELS_DIR': str(own)}) as server:
        yield server


@pytest.fixture
def client(app: AppServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=app.url + '/v1', api_key='unused without a token', max_retries=0,
                       timeout=120) as own:
        yield own


def active_model(app: AppServer) -> str | None:
    active = httpx.get(app.url + '/api/models', timeout=30).json()['active']
    return active['name'] if active else None


def history(app: AppServer, limit: int = 2) -> list[dict]:
    return httpx.get(app.url + '/api/chat/history', params={'limit': limit}, timeout=30).json()


class ChatWindow:
    """A script on /api/events, which counts as a window: the chat messages it is shown."""

    def __init__(self, app: AppServer) -> None:
        self.url = app.url.replace('http', 'ws') + '/api/events?types=chat_message'
        self.messages: list[dict] = []
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._listen()), daemon=True)

    async def _listen(self) -> None:
        async with websockets.connect(self.url) as socket:
            self._ready.set()
            while not self._stop.is_set():
                try:
                    self.messages.append(json.loads(await asyncio.wait_for(socket.recv(), 0.2))['data'])
                except asyncio.TimeoutError:
                    continue

    def __enter__(self) -> ChatWindow:
        self._thread.start()
        assert self._ready.wait(30), 'the window connected'
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def final(self, role: str) -> list[dict]:
        return [m for m in self.messages if m['role'] == role and m['status'] != 'streaming']


def test_models_lists_jarvis_and_every_local_model(client: openai.OpenAI) -> None:
    models = {model.id: model for model in client.models.list()}
    assert list(models) == ['jarvis', GEMMA]
    assert models['jarvis'].owned_by == 'jarvis' and models[GEMMA].owned_by == 'local'
    assert models[GEMMA].created > 0
    assert client.models.retrieve(GEMMA).id == GEMMA
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve('no-such-model')
    assert missing.value.code == 'model_not_found'


def test_jarvis_answers_through_its_plugins_in_every_window(app: AppServer, client: openai.OpenAI) -> None:
    with ChatWindow(app) as window:
        answer = client.chat.completions.create(model='jarvis', messages=[
            {'role': 'system', 'content': 'Ignored: jarvis has its own.'}, {'role': 'user', 'content': 'what is 2+2'}])
        streamed = client.chat.completions.create(
            model='jarvis', messages=[{'role': 'user', 'content': 'what is 3*3'}], stream=True,
            stream_options={'include_usage': True})
        chunks = list(streamed)
    choice = answer.choices[0]
    assert (choice.message.role, choice.message.content, choice.finish_reason) == ('assistant', '2 + 2 = 4', 'stop')
    assert answer.model == 'jarvis' and answer.id.startswith('chatcmpl-')
    assert answer.usage is not None and answer.usage.prompt_tokens > 0 and answer.usage.completion_tokens > 0
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    text = ''.join(c.choices[0].delta.content or '' for c in chunks if c.choices)
    assert text == '3 × 3 = 9' or text.replace(' ', '') in ('3*3=9', '3×3=9'), text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == 'stop'
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    assert len({c.id for c in chunks}) == 1
    # the same pipeline as the chat: stored, and shown in the window with the plugin as its source
    shown = {(m['text'], m['source']) for m in window.final('assistant')}
    assert ('2 + 2 = 4', 'Calculator') in shown and (text, 'Calculator') in shown
    assert {m['text'] for m in window.final('user')} >= {'what is 2+2', 'what is 3*3'}
    assert [m['text'] for m in history(app, 4)] == ['what is 2+2', '2 + 2 = 4', 'what is 3*3', text]


def test_a_model_id_is_loaded_and_asked_directly(app: AppServer, client: openai.OpenAI) -> None:
    with ChatWindow(app) as window:
        answer = client.chat.completions.create(
            model=GEMMA, messages=[{'role': 'user', 'content': 'Write a long story about a dragon.'}],
            max_tokens=8, temperature=0)
    assert active_model(app) == GEMMA  # loaded through the model manager, as the Models view loads it
    choice = answer.choices[0]
    assert choice.message.content and choice.finish_reason == 'length'
    assert answer.model == GEMMA and answer.usage is not None
    assert 0 < answer.usage.completion_tokens <= 8 and answer.usage.prompt_tokens >= 5
    assert window.final('assistant') == [] and window.final('user') == []  # no plugins, no chat: the model only

    stream = client.chat.completions.create(
        model=GEMMA, messages=[{'role': 'user', 'content': 'Write a long story about a dragon.'}],
        max_tokens=8, temperature=0, stream=True)
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == 'assistant'
    pieces = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert pieces and [c.choices[0].finish_reason for c in chunks][-1] == 'length'
    assert len({c.id for c in chunks}) == 1 and all(c.model == GEMMA for c in chunks)


def test_stop_ends_the_answer_before_the_sequence(client: openai.OpenAI) -> None:
    # a space: the model writes one within a few words (its exact words vary from call to call, also at
    # temperature 0, as llama.cpp reuses its cache of the last prompt)
    messages = [{'role': 'user', 'content': 'Count from one to twenty in words: one, two, three,'}]
    cut = client.chat.completions.create(model=GEMMA, messages=messages, max_tokens=24, temperature=0,
                                         stop=[' ', 'twenty'])
    text = cut.choices[0].message.content
    assert cut.choices[0].finish_reason == 'stop' and ' ' not in text
    streamed = list(client.chat.completions.create(model=GEMMA, messages=messages, max_tokens=24, temperature=0,
                                                   stop=' ', stream=True))
    text = ''.join(c.choices[0].delta.content or '' for c in streamed)
    assert streamed[-1].choices[0].finish_reason == 'stop' and ' ' not in text


def test_jarvis_asks_the_active_model_and_streams_into_every_window(app: AppServer, client: openai.OpenAI) -> None:
    client.chat.completions.create(model=GEMMA, messages=[{'role': 'user', 'content': 'Hi'}], max_tokens=1)
    with ChatWindow(app) as window:
        stream = client.chat.completions.create(
            model='jarvis', messages=[{'role': 'user', 'content': 'Tell me about the sea and the ships on it.'}],
            max_tokens=40, temperature=0, stream=True, stream_options={'include_usage': True})
        chunks = list(stream)
    text = ''.join(c.choices[0].delta.content or '' for c in chunks if c.choices)
    assert text.strip()
    answers = window.final('assistant')
    assert len(answers) == 1 and answers[0]['source'] == GEMMA
    assert answers[0]['text'].startswith(text.strip())  # the window shows what the client got
    assert answers[0]['tokens'] <= 40  # the request's max_tokens held for the chat's answer
    updates = [m for m in window.messages if m['role'] == 'assistant' and m['status'] == 'streaming']
    assert updates, 'the answer streamed into the window as well'
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens == answers[0]['tokens']


def test_errors_arrive_as_the_clients_own_exceptions(app: AppServer, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model='gpt-9', messages=[{'role': 'user', 'content': 'Hi'}])
    assert (unknown.value.code, unknown.value.param, unknown.value.type) == (
        'model_not_found', 'model', 'invalid_request_error')
    assert 'gpt-9' in unknown.value.message and 'jarvis' in unknown.value.message

    with pytest.raises(openai.BadRequestError) as empty:
        client.chat.completions.create(model='jarvis', messages=[])
    assert empty.value.param == 'messages' and empty.value.type == 'invalid_request_error'
    with pytest.raises(openai.BadRequestError) as hot:
        client.chat.completions.create(model='jarvis', messages=[{'role': 'user', 'content': 'Hi'}], temperature=3)
    assert hot.value.param == 'temperature'
    with pytest.raises(openai.BadRequestError) as image:
        client.chat.completions.create(model='jarvis', messages=[{'role': 'user', 'content': [
            {'type': 'image_url', 'image_url': {'url': 'data:image/png;base64,AAAA'}}]}])
    assert image.value.param == 'messages.0.content' and 'text' in image.value.message
    with pytest.raises(openai.BadRequestError) as last:
        client.chat.completions.create(model='jarvis', messages=[{'role': 'assistant', 'content': 'Hello'}])
    assert 'last message' in last.value.message
    with pytest.raises(openai.BadRequestError) as too_long:
        client.chat.completions.create(model=GEMMA, messages=[{'role': 'user', 'content': 'word ' * 6000}])
    assert too_long.value.code == 'context_length_exceeded' and 'tokens' in too_long.value.message
    # a stream that cannot start is refused with a status, like a plain request
    with pytest.raises(openai.NotFoundError):
        list(client.chat.completions.create(model='gpt-9', messages=[{'role': 'user', 'content': 'Hi'}], stream=True))
    # whatever the router or the gate says under /v1/ is in the same shape
    wrong = httpx.post(app.url + '/v1/chat/completions', content='{"model": "jarvis"}', timeout=30,
                       headers={'Content-Type': 'text/plain'})
    assert wrong.status_code == 415 and wrong.json()['error']['type'] == 'invalid_request_error'
    missing = httpx.get(app.url + '/v1/nothing', timeout=30)
    assert missing.status_code == 404 and set(missing.json()['error']) == {'message', 'type', 'param', 'code'}
    broken = httpx.post(app.url + '/v1/chat/completions', content=b'{', timeout=30,
                        headers={'Content-Type': 'application/json'})
    assert broken.status_code == 400 and 'JSON' in broken.json()['error']['message']


def test_a_long_message_is_taken_as_through_api_chat(app: AppServer, client: openai.OpenAI) -> None:
    httpx.post(app.url + '/api/models/unload', json={}, timeout=60).raise_for_status()
    longest = 'Is this long enough? ' * 1500 + 'x' * 500  # 32,000 characters: the most a message may have
    assert len(longest) == 32_000
    through_api = httpx.post(app.url + '/api/chat', json={'message': longest}, timeout=120).json()
    through_v1 = client.chat.completions.create(model='jarvis', messages=[{'role': 'user', 'content': longest}])
    assert through_v1.choices[0].message.content == through_api['text']  # "No model is loaded ..."
    refused = httpx.post(app.url + '/api/chat', json={'message': longest + '!'}, timeout=60)
    assert refused.status_code == 422
    with pytest.raises(openai.BadRequestError) as too_long:
        client.chat.completions.create(model='jarvis', messages=[{'role': 'user', 'content': longest + '!'}])
    assert too_long.value.message.endswith(refused.json()['error'])
    assert too_long.value.param == 'messages.0.content'


def test_the_server_answers_while_a_model_reads_a_long_prompt(app: AppServer, client: openai.OpenAI) -> None:
    # about 600 tokens: seconds of work for llama.cpp on two cores
    prompt = ' '.join(f'Line {n}: the quick brown fox jumps over the lazy dog.' for n in range(40))
    done = threading.Event()
    result: dict[str, object] = {}

    def complete() -> None:
        try:
            result['answer'] = client.chat.completions.create(
                model=GEMMA, messages=[{'role': 'user', 'content': prompt}], max_tokens=2, temperature=0)
        except Exception as error:  # reported by the assertion below
            result['error'] = error
        finally:
            done.set()

    worker = threading.Thread(target=complete)
    worker.start()
    served_meanwhile = 0
    with httpx.Client(base_url=app.url, timeout=30) as other:
        while not done.is_set():  # other requests are served while llama.cpp reads thousands of tokens
            status = other.get('/api/hub/stats').status_code
            if not done.is_set():
                served_meanwhile += status == 200
            done.wait(0.1)
    worker.join()
    assert 'error' not in result, result
    answer = result['answer']
    assert answer.usage.prompt_tokens > 400  # type: ignore[attr-defined]
    assert served_meanwhile > 0


def test_a_client_that_closes_the_stream_stops_the_answer(app: AppServer, client: openai.OpenAI) -> None:
    client.chat.completions.create(model=GEMMA, messages=[{'role': 'user', 'content': 'Hi'}], max_tokens=1)
    stream = client.chat.completions.create(
        model='jarvis', messages=[{'role': 'user', 'content': 'Write a very long story about a dragon and a king.'}],
        max_tokens=400, stream=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    stream.close()  # the client leaves mid-answer: the model stops, the answer is kept as "stopped"
    deadline = time.monotonic() + 60
    while (last := history(app, 1)[-1])['status'] == 'streaming' or last['role'] != 'assistant':
        assert time.monotonic() < deadline, last
        time.sleep(0.2)
    assert last['status'] == 'stopped' and last['text'] and last['tokens'] < 400
    # the model is free again for the next one
    again = client.chat.completions.create(model=GEMMA, messages=[{'role': 'user', 'content': 'Hi'}], max_tokens=2)
    assert again.choices[0].finish_reason in ('stop', 'length')


def test_the_access_token_is_the_api_key(tmp_path: Path) -> None:
    token = 'v1 secret'
    with AppServer(tmp_path / 'data', host='0.0.0.0', args=['--no-default-model', '--token', token]) as app:
        with openai.OpenAI(base_url=app.url + '/v1', api_key=token, max_retries=0) as allowed:
            assert [model.id for model in allowed.models.list()] == ['jarvis']
            answer = allowed.chat.completions.create(model='jarvis', messages=[{'role': 'user', 'content': '6*7'}])
            assert '42' in answer.choices[0].message.content
        with openai.OpenAI(base_url=app.url + '/v1', api_key='wrong', max_retries=0) as refused:
            with pytest.raises(openai.AuthenticationError) as wrong:
                refused.models.list()
        assert wrong.value.code == 'invalid_api_key' and 'token' in wrong.value.message
        with openai.OpenAI(base_url=app.url + '/v1', api_key=token, max_retries=0,
                           default_headers={'Origin': 'http://evil.example'}) as foreign:
            with pytest.raises(openai.PermissionDeniedError) as page:
                foreign.models.list()
        assert page.value.type == 'permission_error' and '--allow-origin' in page.value.message


def test_quitting_ends_a_direct_stream_with_an_error_that_says_so(tmp_path: Path, models_dir: Path) -> None:
    own = tmp_path / 'models'
    own.mkdir()
    (own / DEFAULT_MODEL_FILE).symlink_to(models_dir / DEFAULT_MODEL_FILE)
    with AppServer(tmp_path / 'data', env={'JARVIS_MODELS_DIR': str(own)}) as app, \
            openai.OpenAI(base_url=app.url + '/v1', api_key='-', max_retries=0, timeout=120) as client:
        stream = client.chat.completions.create(
            model=GEMMA, messages=[{'role': 'user', 'content': 'Write a very long story about a dragon.'}],
            max_tokens=2000, stream=True)
        with pytest.raises(openai.APIError) as quitting:
            for chunk in stream:
                if chunk.choices[0].delta.content:  # under way: asked to quit once (a second SIGTERM ends it at once)
                    app.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
                    break
            for chunk in stream:
                pass
        assert 'quitting' in quitting.value.message
        assert app.process.wait(30) == 0  # type: ignore[union-attr]
