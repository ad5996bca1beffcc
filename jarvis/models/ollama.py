"""The Ollama side of the model manager: a client for Ollama's HTTP API and a chat model on top of it.

``OllamaClient`` is async (the manager and the UI run on the event loop); ``OllamaChatModel`` is a
blocking ``ChatModel`` because the assistant runs ``stream_chat`` in a worker thread.
Every failure surfaces as an ``OllamaError`` whose message a user can read.
"""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config import DEFAULT_OLLAMA_HOST
from ..security import is_loopback
from .base import ChatTurn, GenerationOptions, ModelError, ModelInfo, ToolCall, ToolSpec
from .http_client import async_client
from .names import validate_name
from .openai_tools import read_arguments, tool_definitions

DEFAULT_PORT = urllib.parse.urlsplit(DEFAULT_OLLAMA_HOST).port or 11434  # Ollama's port, from its default address
# how long Ollama keeps a model in memory after a request; every request resets it, so the chat sends it too
DEFAULT_KEEP_ALIVE = '30m'
# Ollama runs a model with its own num_ctx (4096 unless configured), not the trained context length:
# the chat sends num_ctx explicitly so that what the assistant assumes and what Ollama uses agree
DEFAULT_NUM_CTX = 4096

if TYPE_CHECKING:
    import httpx

CONNECT_TIMEOUT = 5.0
REQUEST_TIMEOUT = 30.0
LOAD_TIMEOUT = 300.0  # loading a large model from disk into memory can take minutes

_CANCEL_POLL = 0.05  # seconds between looks at the cancel event while a read is blocked


class OllamaError(ModelError):
    """Ollama refused or failed a request; the message is meant for the user."""


class OllamaUnavailable(OllamaError):
    """Nothing answers at the Ollama address (not running, wrong host, or it stopped answering)."""


class OllamaModelNotFound(OllamaError):
    """Ollama does not have the model (HTTP 404)."""


def normalize_host(host: str | None) -> str:
    """Turn an ``OLLAMA_HOST`` value into a base URL, as Ollama's own clients read it.

    No scheme means http and Ollama's port (11434); an explicit http/https without a port means 80/443.
    The wildcard addresses a server listens on (0.0.0.0, ::) are not addresses to connect to:
    they become the loopback address.
    """
    host = (host or '').strip()
    scheme, sep, rest = host.partition('://')
    port = DEFAULT_PORT
    if not sep:
        scheme, rest = 'http', host
    elif scheme not in ('http', 'https'):
        raise OllamaError(f'The Ollama address {host!r} must start with http:// or https://')
    elif scheme == 'http':
        port = 80
    else:
        port = 443
    split = urllib.parse.urlsplit(f'{scheme}://{rest}')
    try:
        port = split.port or port
    except ValueError as exc:
        raise OllamaError(f'The Ollama address {host!r} has an invalid port') from exc
    hostname = split.hostname or '127.0.0.1'
    if hostname == '0.0.0.0':
        hostname = '127.0.0.1'
    elif hostname == '::':
        hostname = '::1'
    if ':' in hostname:
        hostname = f'[{hostname}]'
    path = split.path.rstrip('/')
    return f'{scheme}://{hostname}:{port}{path}'


def validate_model_name(name: object) -> str:
    """Refuse a name Ollama could never accept before anything is sent; return it unchanged."""
    try:
        return validate_name(name, 'ollama')
    except ModelError as error:
        raise OllamaError(str(error)) from None  # every failure of this module is an OllamaError


def _client_options(url: str) -> dict[str, Any]:
    # like Go's ProxyFromEnvironment (which Ollama's CLI uses), never send a loopback address to a proxy
    return {'base_url': url, 'trust_env': not is_loopback(urllib.parse.urlsplit(url).hostname or '')}


def _transport_error(url: str, exc: httpx.TransportError) -> OllamaError:
    import httpx  # pylint: disable=import-outside-toplevel  # imported already: the error came from it
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return OllamaUnavailable(f'Ollama is not running at {url}')
    if isinstance(exc, httpx.TimeoutException):
        return OllamaUnavailable(f'Ollama at {url} did not answer in time')
    return OllamaUnavailable(f'Lost the connection to Ollama at {url} ({exc.__class__.__name__})')


def _error_text(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if isinstance(data, dict) and isinstance(data.get('error'), str):
        return data['error']
    return None


def _status_error(url: str, path: str, status: int, body: bytes) -> OllamaError:
    message = _error_text(body)
    if message is None:
        # not Ollama's JSON error: a missing endpoint ("404 page not found") or something else on the port
        if status == 404:
            return OllamaError(f'Ollama at {url} does not offer {path} (too old a version, or not Ollama)')
        snippet = body.decode('utf-8', 'replace').strip()[:200]
        return OllamaError(f'Ollama at {url} answered HTTP {status}' + (f': {snippet}' if snippet else ''))
    if status == 404:
        return OllamaModelNotFound(message)
    return OllamaError(message)


def _decode_line(url: str, line: str) -> dict[str, Any]:
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise OllamaError(f'Ollama at {url} sent a line that is not JSON: {line[:200]!r}') from exc
    if not isinstance(data, dict):
        raise OllamaError(f'Ollama at {url} sent an unexpected line: {line[:200]!r}')
    if 'error' in data:
        # errors after the stream started come as a line with status 200: the headers are already sent
        raise OllamaError(str(data['error']))
    return data


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True, slots=True)
class PullProgress:
    """One line of a pull, with the running totals over every layer seen so far.

    ``overall`` can step back a little when the next layer starts, because Ollama downloads the
    layers one after another and announces each size only when its turn comes; the bytes done
    (``overall_completed``) never go back.
    """

    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None
    overall_completed: int = 0
    overall_total: int = 0

    @property
    def overall(self) -> float | None:
        """Fraction done across the layers seen so far (0..1); None before any size is known."""
        if not self.overall_total:
            return None
        return min(1.0, self.overall_completed / self.overall_total)

    @property
    def success(self) -> bool:
        return self.status == 'success'


class _PullTotals:
    """Keeps the latest total/completed per layer digest."""

    def __init__(self) -> None:
        self._totals: dict[str, int] = {}
        self._completed: dict[str, int] = {}

    def progress(self, data: dict[str, Any]) -> PullProgress:
        digest = data.get('digest') if isinstance(data.get('digest'), str) else None
        total = _int_or_none(data.get('total'))
        completed = _int_or_none(data.get('completed'))
        if digest:
            if total is not None:
                self._totals[digest] = total
            if completed is not None:
                self._completed[digest] = completed
        return PullProgress(status=str(data.get('status', '')), digest=digest, total=total, completed=completed,
                            overall_completed=sum(self._completed.values()),
                            overall_total=sum(self._totals.values()))


class OllamaClient:
    """Async access to one Ollama server: list, inspect, pull, load, unload, delete."""

    def __init__(self, host: str | None = DEFAULT_OLLAMA_HOST, *, timeout: float = REQUEST_TIMEOUT) -> None:
        self.url = normalize_host(host)
        self._timeout_s = timeout
        self._http: httpx.AsyncClient | None = None
        self._making = asyncio.Lock()

    async def _connection(self) -> httpx.AsyncClient:
        """The connection pool, made on the first request, off the loop (``http_client``)."""
        if self._http is None:
            async with self._making:
                if self._http is None:
                    self._http = await async_client(self._timeout_s, connect=CONNECT_TIMEOUT,
                                                    **_client_options(self.url))
        return self._http

    async def __aenter__(self) -> OllamaClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def version(self) -> str:
        data = await self._request('GET', '/api/version')
        return str(data.get('version', ''))

    async def list_models(self) -> list[ModelInfo]:
        data = await self._request('GET', '/api/tags')
        models = []
        for entry in data.get('models') or []:
            details = entry.get('details') or {}
            models.append(ModelInfo(
                name=entry.get('name') or entry.get('model', ''),
                source='ollama',
                size_bytes=_int_or_none(entry.get('size')),
                quantization=details.get('quantization_level') or None,
                parameters=details.get('parameter_size') or None,
                family=details.get('family') or None,
                extra={'digest': entry.get('digest'), 'modified_at': entry.get('modified_at')},
            ))
        return models

    async def running(self) -> list[dict[str, Any]]:
        """The models Ollama holds in memory now."""
        data = await self._request('GET', '/api/ps')
        return [{
            'name': entry.get('name') or entry.get('model', ''),
            'size': _int_or_none(entry.get('size')),
            'size_vram': _int_or_none(entry.get('size_vram')),
            'expires_at': entry.get('expires_at'),
        } for entry in data.get('models') or []]

    async def show(self, name: str) -> dict[str, Any]:
        return await self._request('POST', '/api/show', json={'model': validate_model_name(name)})

    async def context_length(self, name: str) -> int | None:
        """The context length the model was trained for, from its GGUF metadata."""
        return context_length_from_show(await self.show(name))

    async def chat_model(self, name: str, *, num_ctx: int = DEFAULT_NUM_CTX,
                         keep_alive: str | int = DEFAULT_KEEP_ALIVE) -> OllamaChatModel:
        """An ``OllamaChatModel`` for an installed model, its context and details read from Ollama."""
        info = await self.show(name)
        return OllamaChatModel(name, self.url, context_length=context_length_from_show(info),
                               num_ctx=num_ctx, keep_alive=keep_alive, details=dict(info.get('details') or {}),
                               capabilities=capabilities_from_show(info))

    async def pull(self, name: str) -> AsyncIterator[PullProgress]:
        """Download a model, yielding a progress record per line Ollama sends."""
        validate_model_name(name)
        totals = _PullTotals()
        client = await self._connection()
        import httpx  # pylint: disable=import-outside-toplevel  # imported off the loop by _connection
        timeout = httpx.Timeout(None, connect=CONNECT_TIMEOUT)  # a layer can take long between lines
        try:
            async with client.stream('POST', '/api/pull', json={'model': name, 'stream': True},
                                           timeout=timeout) as response:
                if response.status_code >= 400:
                    raise _status_error(self.url, '/api/pull', response.status_code, await response.aread())
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    progress = totals.progress(_decode_line(self.url, line))
                    yield progress
                    if progress.success:
                        return
        except httpx.TransportError as exc:
            raise _transport_error(self.url, exc) from exc
        raise OllamaError(f'The download of {name} stopped before it finished')

    async def load(self, name: str, keep_alive: str | int = DEFAULT_KEEP_ALIVE, *, num_ctx: int | None = None) -> None:
        """Load the model into memory: a generate request without a prompt does only that.

        Pass the ``num_ctx`` the chat will use: Ollama reloads a model whose context size changes.
        """
        payload: dict[str, Any] = {'model': validate_model_name(name), 'keep_alive': keep_alive, 'stream': False}
        if num_ctx is not None:
            payload['options'] = {'num_ctx': num_ctx}
        await self._request('POST', '/api/generate', json=payload, timeout_s=LOAD_TIMEOUT)

    async def unload(self, name: str) -> None:
        await self._request('POST', '/api/generate',
                            json={'model': validate_model_name(name), 'keep_alive': 0, 'stream': False})

    async def delete(self, name: str) -> None:
        await self._request('DELETE', '/api/delete', json={'model': validate_model_name(name)})

    async def _request(self, method: str, path: str, *, json: dict[str, Any] | None = None,
                       timeout_s: float | None = None) -> dict[str, Any]:
        client = await self._connection()
        import httpx  # pylint: disable=import-outside-toplevel  # imported off the loop by _connection
        timeout = httpx.Timeout(timeout_s or self._timeout_s, connect=CONNECT_TIMEOUT)
        try:
            response = await client.request(method, path, json=json, timeout=timeout)
        except httpx.TransportError as exc:
            raise _transport_error(self.url, exc) from exc
        if response.status_code >= 400:
            raise _status_error(self.url, path, response.status_code, response.content)
        if not response.content.strip():
            return {}  # delete answers 200 with an empty body
        try:
            data = response.json()
        except ValueError as exc:
            raise OllamaError(f'Ollama at {self.url} sent an answer to {path} that is not JSON') from exc
        if not isinstance(data, dict):
            raise OllamaError(f'Ollama at {self.url} sent an unexpected answer to {path}')
        return data


def capabilities_from_show(info: dict[str, Any]) -> list[str]:
    """What the model can do, as /api/show declares it ("completion", "tools", "vision", ...); older Ollama
    versions declare nothing."""
    capabilities = info.get('capabilities')
    return [c for c in capabilities if isinstance(c, str)] if isinstance(capabilities, list) else []


def ollama_messages(turns: list[ChatTurn]) -> list[dict[str, Any]]:
    """Chat turns as /api/chat messages: an assistant turn's calls with their arguments as an object, a tool
    result with the tool's name (``tool_name``, as Ollama matches results to calls)."""
    messages: list[dict[str, Any]] = []
    for turn in turns:
        message: dict[str, Any] = {'role': turn.role, 'content': turn.content}
        if turn.tool_calls:
            message['tool_calls'] = [{'function': {'name': call.name, 'arguments': call.arguments}}
                                     for call in turn.tool_calls]
        if turn.role == 'tool':
            message['tool_name'] = turn.tool_name
            if turn.tool_call_id:
                message['tool_call_id'] = turn.tool_call_id
        messages.append(message)
    return messages


def context_length_from_show(info: dict[str, Any]) -> int | None:
    """Read ``<architecture>.context_length`` from a /api/show answer."""
    model_info = info.get('model_info') or {}
    arch = model_info.get('general.architecture')
    if not isinstance(arch, str):
        return None
    return _int_or_none(model_info.get(f'{arch}.context_length'))


class CancelWatch:
    """Shuts the chat's socket down once ``cancel`` is set, even while a read is blocked.

    The reading thread may wait a long time for Ollama's first line (loading the model,
    reading the prompt) and cannot look at the event meanwhile. Shutting the socket down wakes
    that read, and the closed connection is what makes Ollama stop generating.
    """

    def __init__(self, cancel: threading.Event) -> None:
        self._cancel = cancel
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._fired = False
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._watch, name='ollama-chat-cancel', daemon=True)

    def __enter__(self) -> CancelWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._finished.set()
        self._thread.join()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace hook: note the socket as soon as the connection is made."""
        if event != 'connection.connect_tcp.complete':
            return
        stream = info.get('return_value')
        sock = stream.get_extra_info('socket') if stream is not None else None
        with self._lock:
            self._socket = sock
            fired = self._fired
        if fired:
            self._shutdown()

    def _watch(self) -> None:
        while not self._finished.is_set():
            if self._cancel.wait(_CANCEL_POLL):
                with self._lock:
                    self._fired = True
                self._shutdown()
                return

    def _shutdown(self) -> None:
        with self._lock:
            sock = self._socket
        if sock is None:
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed


class OllamaChatModel:
    """A model served by Ollama, as the chat uses it (``ChatModel`` protocol)."""

    source = 'ollama'

    def __init__(self, name: str, host: str | None = DEFAULT_OLLAMA_HOST, *, context_length: int | None = None,
                 num_ctx: int = DEFAULT_NUM_CTX, keep_alive: str | int = DEFAULT_KEEP_ALIVE,
                 details: dict[str, Any] | None = None, capabilities: list[str] | None = None) -> None:
        self.name = validate_model_name(name)
        # a model whose /api/show declares "tools" is offered the app's tools (Assistant)
        self.supports_tools = 'tools' in (capabilities or [])
        self.url = normalize_host(host)
        # the window Ollama actually runs with: the configured num_ctx, never more than the model knows
        self.context_length = min(context_length, num_ctx) if context_length else num_ctx
        self.keep_alive = keep_alive
        self.details: dict[str, Any] = {**(details or {}), 'host': self.url,
                                        'trained_context_length': context_length,
                                        'capabilities': list(capabilities or [])}
        # no keep-alive connections: each chat gets a fresh connection whose socket CancelWatch can see
        import httpx  # pylint: disable=import-outside-toplevel  # OllamaClient.chat_model imported it, off the loop
        self._client = httpx.Client(timeout=httpx.Timeout(REQUEST_TIMEOUT, connect=CONNECT_TIMEOUT, read=None),
                                    limits=httpx.Limits(max_keepalive_connections=0), **_client_options(self.url))

    def stream_chat(self, turns: list[ChatTurn], options: GenerationOptions,
                    cancel: threading.Event) -> Iterator[str]:
        for piece in self._chat(turns, None, options, cancel):
            if isinstance(piece, str):
                yield piece

    def stream_chat_with_tools(self, turns: list[ChatTurn], tools: list[ToolSpec], options: GenerationOptions,
                               cancel: threading.Event) -> Iterator[str | ToolCall]:
        """Like ``stream_chat``, with the tools offered: Ollama sends the calls the model asks for in a
        line's ``message.tool_calls`` (arguments as an object); each comes out as a ``ToolCall``."""
        return self._chat(turns, tools, options, cancel)

    def _chat(self, turns: list[ChatTurn], tools: list[ToolSpec] | None, options: GenerationOptions,
              cancel: threading.Event) -> Iterator[str | ToolCall]:
        if cancel.is_set():
            return
        payload: dict[str, Any] = {
            'model': self.name,
            'messages': ollama_messages(turns),
            'stream': True,
            'keep_alive': self.keep_alive,
            'options': {'temperature': options.temperature, 'num_predict': options.max_tokens,
                        'num_ctx': self.context_length},
        }
        if tools:
            payload['tools'] = tool_definitions(tools)
        import httpx  # pylint: disable=import-outside-toplevel  # the chat runs in a worker thread
        with CancelWatch(cancel) as watch:
            try:
                with self._client.stream('POST', '/api/chat', json=payload,
                                         extensions={'trace': watch.trace}) as response:
                    if response.status_code >= 400:
                        raise _status_error(self.url, '/api/chat', response.status_code, response.read())
                    for line in response.iter_lines():
                        if cancel.is_set():
                            return
                        if not line.strip():
                            continue
                        data = _decode_line(self.url, line)
                        message = data.get('message') or {}
                        piece = message.get('content') or ''
                        if piece:
                            yield piece
                        for entry in message.get('tool_calls') or []:
                            function = entry.get('function') or {} if isinstance(entry, dict) else {}
                            if isinstance(function.get('name'), str) and function['name']:
                                yield read_arguments(function['name'], function.get('arguments'),
                                                     str(entry.get('id') or ''))
                        if data.get('done'):
                            return
            except httpx.TransportError as exc:
                if cancel.is_set():
                    return  # the watch closed the connection on purpose
                raise _transport_error(self.url, exc) from exc
        if not cancel.is_set():
            raise OllamaError(f'The reply from {self.name} ended unexpectedly')

    def count_tokens(self, text: str) -> int:
        """An estimate (about four characters a token): Ollama's API has no tokenize endpoint."""
        return (len(text) + 3) // 4

    def close(self) -> None:
        self._client.close()
