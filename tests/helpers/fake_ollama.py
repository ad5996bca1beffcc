"""A stand-in Ollama server for tests: a real HTTP server on 127.0.0.1 that speaks Ollama's documented API.

It keeps its state in memory (installed models, running models) and can be told to misbehave:
an error line in the middle of a pull or a chat, slow chat chunks, a slow first chat line. A model that
declares "tools" can be scripted to call one (``tool_call``) and then to answer from the results it gets
back (``answer_from_tools``), as a tool-calling model does.
Tests only: the app never imports it.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

CANNED_REPLY = 'At your service, sir. All systems are running within normal parameters.'
DEFAULT_KEEP_ALIVE_S = 300.0  # Ollama's default: 5m
NDJSON = 'application/x-ndjson'


@dataclass
class FakeModel:
    """One model as /api/tags and /api/show describe it."""

    name: str
    family: str = 'llama'
    parameter_size: str = '1.1B'
    quantization_level: str = 'Q4_0'
    context_length: int = 2048
    layer_sizes: tuple[int, ...] = (637_699_456, 7_020, 98)
    capabilities: tuple[str, ...] = ('completion',)  # ('completion', 'tools') for a tool-calling model
    modified_at: str = field(default_factory=lambda: _now().isoformat())

    @property
    def size(self) -> int:
        return sum(self.layer_sizes)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.name.encode()).hexdigest()

    def layer_digests(self) -> list[str]:
        return ['sha256:' + hashlib.sha256(f'{self.name}/{i}'.encode()).hexdigest()
                for i in range(len(self.layer_sizes))]

    def details(self) -> dict[str, Any]:
        return {'parent_model': '', 'format': 'gguf', 'family': self.family, 'families': [self.family],
                'parameter_size': self.parameter_size, 'quantization_level': self.quantization_level}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def full_name(name: str) -> str:
    """Ollama's default tag: 'tinyllama' is 'tinyllama:latest'."""
    return name if ':' in name.rsplit('/', 1)[-1] else f'{name}:latest'


def parse_keep_alive(value: Any) -> float:
    """Seconds from a keep_alive value: a number of seconds or a Go duration such as '30m'; <0 is forever."""
    if value is None:
        return DEFAULT_KEEP_ALIVE_S
    if isinstance(value, (int, float)):
        return float(value)
    units = {'ms': 0.001, 's': 1, 'm': 60, 'h': 3600}
    parts = re.findall(r'(-?[\d.]+)(ms|s|m|h)', str(value))
    if not parts:
        return float(value)
    return sum(float(number) * units[unit] for number, unit in parts)


def _answer_from_tools(results: list[dict[str, Any]]) -> str:
    return ' '.join(f'{result.get("tool_name")} said: {result.get("content")}' for result in results)


def _line(data: dict[str, Any]) -> bytes:
    return (json.dumps(data) + '\n').encode()


def _not_found(name: str) -> JSONResponse:
    return JSONResponse({'error': f"model '{name}' not found"}, status_code=404)


def _not_pulled(name: str) -> JSONResponse:
    return JSONResponse({'error': f'model "{name}" not found, try pulling it first'}, status_code=404)


class _ClientGone(Exception):
    """The client closed the connection while a chat was held."""


class FakeOllama:
    """The server and its state. Attributes below the state may be changed by a test at any time."""

    def __init__(self, models: Iterable[FakeModel] = (), *, library: Iterable[FakeModel] = ()) -> None:
        self.version = '0.12.3'
        self.models: dict[str, FakeModel] = {m.name: m for m in models}
        # what /api/pull can download; anything else fails the way Ollama's registry does
        self.library: dict[str, FakeModel] = {m.name: m for m in library}
        self.running: dict[str, datetime | None] = {}  # name -> expires_at (None: kept forever)
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request received
        self.last_bodies: dict[str, dict[str, Any]] = {}  # path -> the JSON body of its latest request
        self.streams_completed = 0
        self.streams_aborted = 0  # the client went away in the middle of a stream

        self.pull_error_after: int | None = None  # send {"error": pull_error} after this many lines
        self.pull_error = 'max retries exceeded: unexpected EOF'
        self.pull_delay = 0.0
        self.pull_steps = 4  # progress lines per layer after the first one
        self.chat_reply = CANNED_REPLY
        self.chat_error_after: int | None = None  # send {"error": chat_error} after this many pieces
        self.chat_error = 'an error was encountered while running the model: unexpected EOF'
        self.chat_delay = 0.0  # seconds before each piece
        self.chat_first_delay = 0.0  # seconds before the response starts (as when a model loads)
        # hold a chat until chat_go is set: before its response starts (0) or after this many pieces
        self.chat_hold_at: int | None = None
        self.chat_go = threading.Event()
        # hold every load (/api/generate without a prompt) until load_go is set, as a big model takes time
        self.load_hold = False
        self.load_go = threading.Event()
        self.loads = 0  # loads answered
        self.chat_bodies: list[dict[str, Any]] = []  # every /api/chat request, in order
        # asked with tools, and the last message is not a tool's result: call this ({name, arguments}); None: answer
        self.tool_call: dict[str, Any] | None = None
        # given the tool messages that follow the last user message, the answer (default: what they said)
        self.answer_from_tools: Callable[[list[dict[str, Any]]], str] = _answer_from_tools

        self._app = Starlette(routes=[
            Route('/', self._root, methods=['GET', 'HEAD']),
            Route('/api/version', self._version, methods=['GET']),
            Route('/api/tags', self._tags, methods=['GET']),
            Route('/api/ps', self._ps, methods=['GET']),
            Route('/api/show', self._show, methods=['POST']),
            Route('/api/pull', self._pull, methods=['POST']),
            Route('/api/generate', self._generate, methods=['POST']),
            Route('/api/chat', self._chat, methods=['POST']),
            Route('/api/delete', self._delete, methods=['DELETE']),
        ])
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ----

    @property
    def port(self) -> int:
        assert self._socket is not None, 'the server is not started'
        return self._socket.getsockname()[1]

    @property
    def url(self) -> str:
        return f'http://127.0.0.1:{self.port}'

    def start(self) -> FakeOllama:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(('127.0.0.1', 0))
        config = uvicorn.Config(self._app, log_level='warning', access_log=False, lifespan='off',
                                timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={'sockets': [self._socket]},
                                        name='fake-ollama', daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError('the fake Ollama server did not start')
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
            if self._thread.is_alive():
                raise RuntimeError('the fake Ollama server did not stop')
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = None

    def __enter__(self) -> FakeOllama:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ---- state helpers ----

    def _model(self, name: str) -> FakeModel | None:
        return self.models.get(full_name(name))

    def _keep(self, name: str, keep_alive: Any) -> None:
        seconds = parse_keep_alive(keep_alive)
        if seconds == 0:
            self.running.pop(name, None)
        else:
            self.running[name] = None if seconds < 0 else _now() + timedelta(seconds=seconds)

    async def _body(self, request: Request) -> dict[str, Any]:
        self.requests.append((request.method, request.url.path))
        raw = await request.body()
        body = json.loads(raw) if raw else {}
        self.last_bodies[request.url.path] = body
        return body

    # ---- endpoints ----

    async def _root(self, request: Request) -> Response:
        return Response('Ollama is running', media_type='text/plain')

    async def _version(self, request: Request) -> Response:
        await self._body(request)
        return JSONResponse({'version': self.version})

    async def _tags(self, request: Request) -> Response:
        await self._body(request)
        return JSONResponse({'models': [{
            'name': m.name, 'model': m.name, 'modified_at': m.modified_at, 'size': m.size, 'digest': m.digest,
            'details': m.details(),
        } for m in self.models.values()]})

    async def _ps(self, request: Request) -> Response:
        await self._body(request)
        entries = []
        for name, expires in self.running.items():
            model = self.models[name]
            expires_at = expires or _now() + timedelta(days=365 * 290)
            entries.append({'name': name, 'model': name, 'size': model.size + 300_000_000,
                            'digest': model.digest, 'details': model.details(),
                            'expires_at': expires_at.isoformat(), 'size_vram': model.size + 300_000_000,
                            'context_length': model.context_length})
        return JSONResponse({'models': entries})

    async def _show(self, request: Request) -> Response:
        body = await self._body(request)
        name = body.get('model') or body.get('name', '')
        model = self._model(name)
        if model is None:
            return _not_found(name)
        arch = model.family
        return JSONResponse({
            'modelfile': f'# Modelfile generated by "ollama show"\nFROM {model.name}\n',
            'parameters': 'stop "</s>"',
            'template': '{{ .Prompt }}',
            'details': model.details(),
            'model_info': {
                'general.architecture': arch,
                'general.parameter_count': 1_100_048_384,
                f'{arch}.context_length': model.context_length,
                f'{arch}.embedding_length': 2048,
                'tokenizer.ggml.model': 'llama',
            },
            'capabilities': list(model.capabilities),
            'modified_at': model.modified_at,
        })

    async def _pull(self, request: Request) -> Response:
        body = await self._body(request)
        name = full_name(body.get('model') or body.get('name', ''))
        return StreamingResponse(self._pull_lines(name), media_type=NDJSON)

    async def _pull_lines(self, name: str) -> AsyncIterator[bytes]:
        with self._stream_counter():
            for sent, data in enumerate(self._pull_script(name)):
                if self.pull_error_after is not None and sent == self.pull_error_after:
                    data = {'error': self.pull_error}
                if self.pull_delay:
                    await asyncio.sleep(self.pull_delay)
                yield _line(data)
                if 'error' in data:
                    return  # Ollama ends the stream after an error line
            self.models[name] = dataclasses.replace(self.library[name], modified_at=_now().isoformat())

    def _pull_script(self, name: str) -> list[dict[str, Any]]:
        lines: list[dict[str, Any]] = [{'status': 'pulling manifest'}]
        model = self.library.get(name)
        if model is None:
            # Ollama reports a registry failure as a line once the stream has started
            return [*lines, {'error': 'pull model manifest: file does not exist'}]
        # the layers come one after another, like Ollama's downloads: each size is announced when its turn comes
        for digest, size in zip(model.layer_digests(), model.layer_sizes):
            status = f'pulling {digest[7:19]}'
            lines.append({'status': status, 'digest': digest, 'total': size})
            for step in range(1, self.pull_steps + 1):
                lines.append({'status': status, 'digest': digest, 'total': size,
                              'completed': size * step // self.pull_steps})
        lines += [{'status': 'verifying sha256 digest'}, {'status': 'writing manifest'}, {'status': 'success'}]
        return lines

    async def _generate(self, request: Request) -> Response:
        body = await self._body(request)
        name = full_name(body.get('model', ''))
        if name not in self.models:
            return _not_pulled(body.get('model', ''))
        if body.get('prompt'):
            return JSONResponse({'error': 'the fake Ollama only loads and unloads with /api/generate'},
                                status_code=400)
        reason = 'unload' if parse_keep_alive(body.get('keep_alive')) == 0 else 'load'
        if reason == 'load':
            while self.load_hold and not self.load_go.is_set():
                await asyncio.sleep(0.01)
            self.loads += 1
        self._keep(name, body.get('keep_alive'))
        return JSONResponse({'model': name, 'created_at': _now().isoformat(), 'response': '', 'done': True,
                             'done_reason': reason})

    async def _chat(self, request: Request) -> Response:
        body = await self._body(request)
        name = full_name(body.get('model', ''))
        if name not in self.models:
            return _not_pulled(body.get('model', ''))
        if self.chat_first_delay:
            await asyncio.sleep(self.chat_first_delay)
        if self.chat_hold_at == 0 and not await self._chat_held(request):
            return Response(status_code=499)  # nobody reads it: the client went away while it waited
        self._keep(name, body.get('keep_alive'))
        self.chat_bodies.append(body)
        messages = body.get('messages') or []
        if body.get('tools') and self.tool_call is not None and messages and messages[-1].get('role') != 'tool':
            return StreamingResponse(self._tool_call_lines(name), media_type=NDJSON)
        if messages and messages[-1].get('role') == 'tool':
            results = []
            for message in reversed(messages):
                if message.get('role') != 'tool':
                    break
                results.insert(0, message)
            return StreamingResponse(self._chat_lines(name, request, self.answer_from_tools(results)),
                                     media_type=NDJSON)
        return StreamingResponse(self._chat_lines(name, request), media_type=NDJSON)

    async def _tool_call_lines(self, name: str) -> AsyncIterator[bytes]:
        """What Ollama streams when the model calls a tool: a line whose message has ``tool_calls`` (the
        arguments an object), then the closing line."""
        assert self.tool_call is not None
        with self._stream_counter():
            yield _line({'model': name, 'created_at': _now().isoformat(),
                         'message': {'role': 'assistant', 'content': '', 'tool_calls': [
                             {'id': 'call_fake_1', 'function': {'index': 0, 'name': self.tool_call['name'],
                                                                'arguments': self.tool_call.get('arguments', {})}}]},
                         'done': False})
            yield _line({'model': name, 'created_at': _now().isoformat(),
                         'message': {'role': 'assistant', 'content': ''}, 'done': True, 'done_reason': 'stop'})

    def chat_pieces(self, reply: str | None = None) -> list[str]:
        """The canned reply in the pieces the chat streams: one word (with its space) each."""
        return re.findall(r'\S+\s*', self.chat_reply if reply is None else reply)

    async def _chat_lines(self, name: str, request: Request, reply: str | None = None) -> AsyncIterator[bytes]:
        pieces = self.chat_pieces(reply)
        with self._stream_counter():
            for sent, piece in enumerate(pieces):
                if sent and sent == self.chat_hold_at and not await self._chat_held(request):
                    raise _ClientGone
                if self.chat_error_after is not None and sent == self.chat_error_after:
                    yield _line({'error': self.chat_error})
                    return
                if self.chat_delay:
                    await asyncio.sleep(self.chat_delay)
                yield _line({'model': name, 'created_at': _now().isoformat(),
                             'message': {'role': 'assistant', 'content': piece}, 'done': False})
            yield _line({'model': name, 'created_at': _now().isoformat(),
                         'message': {'role': 'assistant', 'content': ''}, 'done': True, 'done_reason': 'stop',
                         'total_duration': 1_250_000_000, 'load_duration': 50_000_000,
                         'prompt_eval_count': 26, 'prompt_eval_duration': 130_000_000,
                         'eval_count': len(pieces), 'eval_duration': 1_000_000_000})

    async def _chat_held(self, request: Request) -> bool:
        """Wait until chat_go is set; False when the client goes away first."""
        while not self.chat_go.is_set():
            if await request.is_disconnected():
                return False
            await asyncio.sleep(0.02)
        return True

    @contextlib.contextmanager
    def _stream_counter(self) -> Iterator[None]:
        """Count streams that ran to their end and streams cut short because the client went away."""
        try:
            yield
        except _ClientGone:
            self.streams_aborted += 1
            return
        except (asyncio.CancelledError, GeneratorExit):
            self.streams_aborted += 1
            raise
        self.streams_completed += 1

    async def _delete(self, request: Request) -> Response:
        body = await self._body(request)
        raw = body.get('model') or body.get('name', '')
        name = full_name(raw)
        if name not in self.models:
            return _not_found(raw)
        del self.models[name]
        self.running.pop(name, None)
        return Response(status_code=200)
