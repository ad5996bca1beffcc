"""Models on an OpenAI-compatible server (vLLM, llama.cpp's llama-server, llama-cpp-python's server, LM Studio,
Ollama's /v1, a hosted API): list them (``GET <url>/models``) and chat with one (``POST <url>/chat/completions``,
streamed as server-sent events).

``list_server_models`` is async (the manager runs on the event loop); ``RemoteChatModel`` is a blocking
``ChatModel`` because the assistant runs ``stream_chat`` in a worker thread. Every failure is a
``ServerError`` whose message is one line a user can read. The API key goes only into the
``Authorization`` header: no message, log line or answer of this module holds it.
"""
from __future__ import annotations

import json
import logging
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..security import is_loopback
from .base import ChatTurn, GenerationOptions, ModelError, ToolCall, ToolSpec
from .http_client import async_client

# the cancel watch of the Ollama chat: it shuts the socket down once Stop is pressed, also while a read is blocked
from .ollama import CancelWatch
from .openai_tools import StreamedToolCalls, chat_request

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

SOURCE_PREFIX = 'server:'
CONNECT_TIMEOUT = 3.0  # a server that does not accept a connection in this time is reported unreachable
LIST_TIMEOUT = 10.0  # listing the models is quick on any server that works
REQUEST_TIMEOUT = 30.0
DEFAULT_CONTEXT = 4096  # when the server does not say how long its model's context is
MAX_ERROR_CHARS = 200


class ServerError(ModelError):
    """A server refused or failed a request; the message is one line meant for the user."""


def server_source(server: str) -> str:
    """The ``source`` of the models of the server called ``server``: ``server:<name>``."""
    return f'{SOURCE_PREFIX}{server}'


def server_of(source: str) -> str | None:
    """The server's name in a model source ``server:<name>``; None for any other source."""
    if isinstance(source, str) and source.startswith(SOURCE_PREFIX) and len(source) > len(SOURCE_PREFIX):
        return source[len(SOURCE_PREFIX):]
    return None


@dataclass(frozen=True, slots=True)
class RemoteModel:
    """A model as the server lists it."""

    id: str
    context_length: int | None = None
    owned_by: str | None = None


def _headers(api_key: str | None) -> dict[str, str]:
    return {'Authorization': f'Bearer {api_key}'} if api_key else {}


def _trust_env(url: str) -> bool:
    # a proxy set in the environment serves remote servers, never a loopback one
    return not is_loopback(urllib.parse.urlsplit(url).hostname or '')


def _scrub(text: str, api_key: str | None) -> str:
    """``text`` without the key, should a server echo it back, on one line and short."""
    if api_key:
        text = text.replace(api_key, '***')
    text = ' '.join(text.split())
    return text[:MAX_ERROR_CHARS] + ('…' if len(text) > MAX_ERROR_CHARS else '')


def transport_error(server: str, url: str, exc: httpx.TransportError) -> ServerError:
    import httpx  # pylint: disable=import-outside-toplevel  # imported already: the error came from it
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return ServerError(f'The server {server} at {url} does not answer: is it running, and is the address right?')
    if isinstance(exc, httpx.ProxyError):
        return ServerError(f'The proxy refused the connection to the server {server} at {url}.')
    if isinstance(exc, httpx.TimeoutException):
        return ServerError(f'The server {server} at {url} did not answer in time.')
    return ServerError(f'Lost the connection to the server {server} at {url} ({exc.__class__.__name__}).')


def _error_message(body: bytes, api_key: str | None) -> str:
    """The message of an OpenAI-style error body ({"error": {"message": ...}} or {"error": "..."}), else the text."""
    text = body.decode('utf-8', 'replace')
    try:
        data = json.loads(text)
    except ValueError:
        return _scrub(text, api_key)
    error = data.get('error') if isinstance(data, dict) else None
    if isinstance(error, dict) and isinstance(error.get('message'), str):
        return _scrub(error['message'], api_key)
    if isinstance(error, str):
        return _scrub(error, api_key)
    if isinstance(data, dict) and isinstance(data.get('detail'), str):  # FastAPI's own errors
        return _scrub(data['detail'], api_key)
    return _scrub(text, api_key)


def status_error(server: str, status: int, body: bytes, api_key: str | None, model: str | None = None) -> ServerError:
    if status in (401, 403):
        given = 'the API key it was given' if api_key else 'a request without an API key'
        return ServerError(f'The server {server} refused {given} (HTTP {status}): add the server again with the '
                           'right key.')
    message = _error_message(body, api_key)
    if status == 404 and model is not None:
        return ServerError(f'The server {server} does not offer {model} (any more) (HTTP 404)'
                           + (f': {message}' if message else '.'))
    return ServerError(f'The server {server} answered HTTP {status}' + (f': {message}' if message else '.'))


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _context_length(entry: dict[str, Any]) -> int | None:
    """The context length where the server tells it: vLLM's ``max_model_len``, llama-server's ``meta``."""
    meta = entry.get('meta') if isinstance(entry.get('meta'), dict) else {}
    for value in (entry.get('max_model_len'), entry.get('context_length'), entry.get('context_window'),
                  meta.get('n_ctx'), meta.get('n_ctx_train')):
        if (length := _int_or_none(value)) is not None:
            return length
    return None


async def list_server_models(server: str, url: str, api_key: str | None, *,
                             timeout: float = LIST_TIMEOUT) -> list[RemoteModel]:
    """The models the server offers (``GET <url>/models``); raises ServerError."""
    client = await async_client(timeout, connect=min(timeout, CONNECT_TIMEOUT), trust_env=_trust_env(url))
    import httpx  # pylint: disable=import-outside-toplevel  # imported off the loop by async_client
    async with client:
        try:
            response = await client.get(f'{url}/models', headers=_headers(api_key))
        except httpx.TransportError as exc:
            raise transport_error(server, url, exc) from None
        except httpx.InvalidURL:
            raise ServerError(f'{url} is not an address the server {server} can be reached at.') from None
    if response.status_code >= 400:
        raise status_error(server, response.status_code, response.content, api_key)
    try:
        data = response.json()
    except ValueError:
        raise ServerError(f'The server {server} at {url} is not an OpenAI-compatible server: its '
                          '/models answer is not JSON.') from None
    entries = data.get('data') if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ServerError(f'The server {server} at {url} is not an OpenAI-compatible server: its '
                          '/models answer has no "data" list.')
    models = []
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get('id'), str) and entry['id'].strip():
            owner = entry.get('owned_by')
            models.append(RemoteModel(entry['id'], _context_length(entry), owner if isinstance(owner, str) else None))
    return models


class _ToolsRefused(Exception):
    """The server answered a request with tools with 400 or 422: it does not take them."""


class RemoteChatModel:
    """A model on an OpenAI-compatible server, as the chat uses it (``ChatModel`` and ``ToolModel``)."""

    # OpenAI-compatible servers take ``tools`` (vLLM, llama-server and LM Studio pass them to models
    # that call tools); one that refuses them is asked without, from then on
    supports_tools = True

    def __init__(self, name: str, server: str, url: str, api_key: str | None, *,
                 context_length: int | None = None) -> None:
        self.name = name
        self.server = server
        self.source = server_source(server)
        self.url = url
        self.context_length = context_length or DEFAULT_CONTEXT
        self.details: dict[str, Any] = {'server': server, 'url': url}
        self._api_key = api_key
        # no keep-alive connections: each chat gets a fresh connection whose socket the cancel watch can see
        # httpx is imported where it is used, not with the app (see http_client); listing the server's models
        # imported it, off the loop
        import httpx  # pylint: disable=import-outside-toplevel
        self._client = httpx.Client(timeout=httpx.Timeout(REQUEST_TIMEOUT, connect=CONNECT_TIMEOUT, read=None),
                                    limits=httpx.Limits(max_keepalive_connections=0), trust_env=_trust_env(url),
                                    headers=_headers(api_key))

    def __repr__(self) -> str:  # never the key
        return f'RemoteChatModel({self.name!r}, server={self.server!r}, url={self.url!r})'

    def stream_chat(self, turns: list[ChatTurn], options: GenerationOptions,
                    cancel: threading.Event) -> Iterator[str]:
        for piece in self._stream(self._payload(turns, options), cancel, None):
            if isinstance(piece, str):
                yield piece

    def stream_chat_with_tools(self, turns: list[ChatTurn], tools: list[ToolSpec], options: GenerationOptions,
                               cancel: threading.Event) -> Iterator[str | ToolCall]:
        """Like ``stream_chat`` with the tools offered (OpenAI's ``tools``); the calls the model asks for
        come last, one ``ToolCall`` each. A server that refuses tools (HTTP 400 or 422 before anything
        streamed) is asked again without them, and is not offered tools again."""
        calls = StreamedToolCalls()
        try:
            yield from self._stream(self._payload(turns, options, tools), cancel, calls)
        except _ToolsRefused as refused:
            log.info('the server %s refused tools (%s); %s answers without them', self.server, refused, self.name)
            self.supports_tools = False
            plain = [ChatTurn(turn.role, turn.content) for turn in turns if turn.role != 'tool']
            yield from self.stream_chat(plain, options, cancel)
            return
        if not cancel.is_set():
            yield from calls.calls()

    def _payload(self, turns: list[ChatTurn], options: GenerationOptions,
                 tools: list[ToolSpec] | None = None) -> dict[str, Any]:
        payload = chat_request(self.name, turns, tools or (), options)
        if options.stop:
            payload['stop'] = list(options.stop)
        return payload

    def _stream(self, payload: dict[str, Any], cancel: threading.Event,
                calls: StreamedToolCalls | None) -> Iterator[str]:
        """The text of a streamed answer; tool-call deltas go into ``calls``. Stop closes the connection."""
        if cancel.is_set():
            return
        finished = False
        import httpx  # pylint: disable=import-outside-toplevel  # the chat runs in a worker thread
        with CancelWatch(cancel) as watch:
            try:
                with self._client.stream('POST', f'{self.url}/chat/completions', json=payload,
                                         extensions={'trace': watch.trace}) as response:
                    if response.status_code >= 400:
                        body = response.read()
                        if 'tools' in payload and response.status_code in (400, 422):
                            raise _ToolsRefused(_error_message(body, self._api_key))
                        raise status_error(self.server, response.status_code, body, self._api_key, self.name)
                    for line in response.iter_lines():
                        if cancel.is_set():
                            return
                        data = self._event(line)
                        if data is None:
                            continue
                        if data == '[DONE]':
                            return
                        piece, done = self._piece(data)
                        if calls is not None:
                            calls.add(data)
                        finished = finished or done
                        if piece:
                            yield piece
            except httpx.TransportError as exc:
                if cancel.is_set():
                    return  # the watch closed the connection on purpose
                raise transport_error(self.server, self.url, exc) from None
        if not cancel.is_set() and not finished:
            raise ServerError(f'The answer from {self.name} on the server {self.server} ended before it was complete.')

    def _event(self, line: str) -> str | dict[str, Any] | None:
        """The JSON of one ``data:`` line, '[DONE]' at the end, None for the other lines of the stream."""
        if not line.startswith('data:'):
            return None  # blank lines between events, comments (": ping"), "event:" lines
        text = line[5:].strip()
        if text == '[DONE]':
            return text
        try:
            data = json.loads(text)
        except ValueError:
            raise ServerError(f'The server {self.server} sent a line that is not JSON: '
                              f'{_scrub(text, self._api_key)[:80]!r}') from None
        if not isinstance(data, dict):
            raise ServerError(f'The server {self.server} sent an unexpected line: {_scrub(text, self._api_key)[:80]!r}')
        if 'error' in data:  # an error once the stream has started comes as an event: the status was already sent
            raise ServerError(f'The server {self.server} failed while it answered: '
                              f'{_error_message(json.dumps(data).encode(), self._api_key)}')
        return data

    @staticmethod
    def _piece(data: dict[str, Any]) -> tuple[str, bool]:
        """The text of one chunk and whether it ends the answer (it has a finish reason)."""
        choices = data.get('choices')
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return '', False  # a usage chunk, or a keep-alive
        choice = choices[0]
        delta = choice.get('delta') if isinstance(choice.get('delta'), dict) else {}
        content = delta.get('content')
        return (content if isinstance(content, str) else ''), bool(choice.get('finish_reason'))

    def count_tokens(self, text: str) -> int:
        """An estimate (about four characters a token): the OpenAI API has no tokenize endpoint."""
        return (len(text) + 3) // 4

    def close(self) -> None:
        self._client.close()
