"""The one gate in front of every request and socket (pages, NiceGUI's socket, /api/ and the routes to come).

A pure ASGI middleware, so that HTTP and WebSocket connections pass the same checks, in this order:

1. Host names this server (``localhost``, a loopback address, the bound address or a name given with
   ``--allow-host``; on a network bind also this machine's host name and any IP address). This is what
   stops DNS rebinding: a foreign site that points its own name at 127.0.0.1 still sends that name.
2. Origin, when there is one, is this app's own (the scheme, host and port of the request itself) or
   one given with ``--allow-origin``. Browsers send it with every WebSocket and every POST, so a page
   of another site can neither act for the user nor listen to the events; scripts send none. A page
   the user allowed gets the CORS headers a browser needs to read the answers (and its preflight,
   which never carries the token, an answer).
3. The access token, when one is set (``jarvis.security`` has the rules for giving it).
4. State-changing requests under /api/, /v1/ and /mcp carry JSON (``Content-Type: application/json``):
   the content types that a foreign page may send without asking first (text/plain, forms) are refused.
5. No request body is read beyond ``MAX_BODY_BYTES``: an announced larger one is refused before it
   is sent, a streamed (chunked) one as soon as it passes the limit.
"""
from __future__ import annotations

import hmac
import html
import ipaddress
import json
import socket
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, unquote_plus

from .config import Settings
from .security import (
    COOKIE,
    DEFAULT_PORTS,
    Origin,
    cookie_value,
    encode_token,
    is_loopback,
    parse_origin,
    token_candidates,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# 2 MiB: a chat message is at most 32,000 characters; nothing the app takes comes near it.
# This holds for every path: NiceGUI's socket.io would otherwise read a polling body whole as well.
MAX_BODY_BYTES = 2 * 2**20
OPENAI_PREFIX = '/v1'
API_PREFIXES = ('/api', OPENAI_PREFIX, '/mcp')
STATE_CHANGING = frozenset({'POST', 'PUT', 'PATCH', 'DELETE'})
TOKEN_HEADER = b'x-jarvis-token'


def is_api_path(path: str) -> bool:
    """Routes for scripts (JSON in and out): /api/..., /v1/... (the OpenAI-compatible API) and /mcp."""
    return any(path == prefix or path.startswith(prefix + '/') for prefix in API_PREFIXES)


def is_openai_path(path: str) -> bool:
    """The OpenAI-compatible routes, whose clients read errors only in OpenAI's shape."""
    return path == OPENAI_PREFIX or path.startswith(OPENAI_PREFIX + '/')


def error_payload(path: str, status: int, message: str) -> dict[str, Any]:
    """The body of an error for a script: ``{"error": "..."}``, or under /v1 OpenAI's shape
    ``{"error": {"message", "type", "param", "code"}}`` (OpenAI's clients raise their own exception types
    from it and show its message; a plain string there would reach the user as a repr of the body)."""
    if not is_openai_path(path):
        return {'error': message}
    return openai_error_payload(status, message)


def openai_error_payload(status: int, message: str, *, type_: str | None = None, code: str | None = None,
                         param: str | None = None) -> dict[str, Any]:
    kind, default_code = _OPENAI_KINDS.get(status, ('server_error' if status >= 500 else 'invalid_request_error',
                                                    None))
    return {'error': {'message': message, 'type': type_ or kind, 'param': param, 'code': code or default_code}}


# OpenAI's error type for a status, and a code where the status alone says what happened
_OPENAI_KINDS: dict[int, tuple[str, str | None]] = {
    400: ('invalid_request_error', None),
    401: ('authentication_error', 'invalid_api_key'),
    403: ('permission_error', None),
    404: ('invalid_request_error', 'not_found'),
    405: ('invalid_request_error', 'method_not_allowed'),
    413: ('invalid_request_error', 'request_too_large'),
    415: ('invalid_request_error', 'unsupported_media_type'),
    422: ('invalid_request_error', None),
    429: ('rate_limit_error', None),
    503: ('server_error', 'service_unavailable'),
}


# --- the rules, built once from the settings ------------------------------------------------------


@dataclass(frozen=True)
class GuardPolicy:
    names: frozenset[str]  # host names (lower case) and IP addresses (compressed) this server answers to
    any_address: bool  # on a network bind: any IP address in Host is accepted (see allows_host)
    origins: frozenset[Origin]  # origins the user allowed besides the app's own
    token: str | None
    max_body: int = MAX_BODY_BYTES

    @classmethod
    def from_settings(cls, settings: Settings) -> GuardPolicy:
        bind = settings.host.strip('[]').lower()
        names = {'localhost', *settings.allowed_hosts}
        if bind not in ('0.0.0.0', '::', ''):
            names.add(_compressed(bind))
        network = not is_loopback(bind)
        if network:  # a browser on another machine reaches this one by its name
            hostname = socket.gethostname().lower()
            short = hostname.split('.')[0]
            names |= {hostname, short, f'{short}.local'}  # .local: the name mDNS (Bonjour, Avahi) gives it
        return cls(frozenset(names), network, frozenset(settings.allowed_origins), settings.access_token)

    def allows_host(self, host: str) -> bool:
        """Names must be known; an IP address is never a DNS-rebinding attempt (rebinding needs a name the
        attacker controls), so loopback addresses always pass and, on a network bind, every address does:
        the machine's own, and those that a NAT or a port forward in front of it shows."""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return host in self.names
        return address.is_loopback or self.any_address or address.compressed in self.names

    def allows_origin(self, origin: Origin, own: Origin | None) -> bool:
        return origin == own or origin in self.origins

    def token_matches(self, candidates: Iterable[str]) -> bool:
        assert self.token is not None
        expected = self.token.encode()
        matched = False
        for candidate in candidates:  # compare every one: the time taken says nothing about the token
            matched |= hmac.compare_digest(candidate.encode('utf-8', 'surrogatepass'), expected)
        return matched


def _compressed(host: str) -> str:
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        return host


def split_host(value: str) -> tuple[str, int | None] | None:
    """``name``, ``name:port``, ``1.2.3.4:port`` or ``[::1]:port`` as (host, port), or None if malformed."""
    host, port_text = value, ''
    if value.startswith('['):
        end = value.find(']')
        if end < 0:
            return None
        host, rest = value[1:end], value[end + 1:]
        if rest and not rest.startswith(':'):
            return None
        port_text = rest[1:]
        try:
            host = ipaddress.IPv6Address(host).compressed
        except ValueError:
            return None
    elif ':' in value:
        host, _, port_text = value.partition(':')
    if port_text or value.endswith(':'):
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            return None
    if not host:
        return None
    return host.lower(), int(port_text) if port_text else None


# --- the middleware --------------------------------------------------------------------------------


class WebGuard:
    def __init__(self, app: ASGIApp, policy: GuardPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope['type'] not in ('http', 'websocket'):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        refusal, cross_origin = self._check_host_and_origin(scope, headers)
        if refusal is None and cross_origin is not None and scope['type'] == 'http':
            # a page the user allowed: the browser needs CORS headers to read the answers, and an answer
            # to its preflight (which never carries the token) before it sends JSON
            if scope.get('method') == 'OPTIONS' and b'access-control-request-method' in headers \
                    and is_api_path(scope.get('path', '')):
                await _answer_preflight(send, cross_origin, headers)
                return
            send = _with_cors(send, cross_origin)
        if refusal is None and self.policy.token is not None:
            refusal, token_in_query = self._check_token(scope, headers)
            if refusal is None and token_in_query and scope['type'] == 'http':
                send = _with_cookie(send, self.policy.token)
        if refusal is not None:
            status, message, extra = refusal
            await refuse(scope, receive, send, status, message, extra)
            return
        if scope['type'] == 'http':
            await self._http(scope, receive, send, headers)
            return
        await self.app(scope, receive, send)

    def _check_host_and_origin(self, scope: Scope,
                               headers: dict[bytes, list[bytes]]) -> tuple[_Refusal | None, bytes | None]:
        """A refusal, or None and the Origin header when it is another origin that the user allowed."""
        hosts = headers.get(b'host', [])
        host: tuple[str, int | None] | None = None
        if hosts:
            text = hosts[0].decode('latin-1')
            host = split_host(text) if len(hosts) == 1 else None
            if host is None or not self.policy.allows_host(host[0]):
                shown = text[:100] if len(hosts) == 1 else ', '.join(h.decode('latin-1')[:50] for h in hosts)
                port = _server_port(scope)
                where = ("by this machine's IP address or host name" if self.policy.any_address
                         else f'as http://127.0.0.1:{port}/ or http://localhost:{port}/')
                return (403, (f'This server does not answer to the name {shown!r}: open it {where}, or, if that '
                              'name is yours, start jarvis with --allow-host NAME.'), ()), None
        # no Host at all is an HTTP/1.0 script: browsers always send one
        origins = headers.get(b'origin', [])
        if not origins:
            return None, None
        text = origins[0].decode('latin-1')
        origin = parse_origin(text) if len(origins) == 1 else None
        scheme = 'https' if scope.get('scheme') in ('https', 'wss') else 'http'
        own = (scheme, host[0], host[1] or DEFAULT_PORTS[scheme]) if host is not None else None
        if origin is None or not self.policy.allows_origin(origin, own):
            shown = text[:100]
            return (403, (f'Requests from the web page at {shown!r} are refused: only the app\'s own pages may '
                          'use it. If you trust that page, start jarvis with --allow-origin followed by its '
                          'origin (like http://localhost:5173).'), ()), None
        return None, (origins[0] if origin != own else None)

    def _check_token(self, scope: Scope, headers: dict[bytes, list[bytes]]) -> tuple[_Refusal | None, bool]:
        from_query = _query_tokens(scope.get('query_string', b''))
        given = list(from_query)
        for value in headers.get(TOKEN_HEADER, []):
            given += token_candidates(_text(value).strip())
        for value in headers.get(b'authorization', []):
            text = _text(value)
            if text[:7].lower() == 'bearer ':
                given += token_candidates(text[7:].strip())
        for value in headers.get(b'cookie', []):
            if (found := cookie_value(_text(value))) is not None:
                given += token_candidates(found)
        if given and self.policy.token_matches(given):
            return None, bool(from_query) and self.policy.token_matches(from_query)
        if scope['type'] == 'http' and not is_api_path(scope.get('path', '')):
            message = ('J.A.R.V.I.S.: access token required. Open the address printed at start (it ends in '
                       '?token=...), or add ?token= and your token to this address.')
        else:
            message = ('An access token is required: add ?token=... to the URL, or send the header '
                       'Authorization: Bearer <token> or X-Jarvis-Token (jarvis prints the token at start).')
        return (401, message, ((b'www-authenticate', b'Bearer'),)), False

    async def _http(self, scope: Scope, receive: Receive, send: Send, headers: dict[bytes, list[bytes]]) -> None:
        limit = self.policy.max_body
        too_large = (413, f'The request body is too large (limit {limit // 2**20} MiB); send less.', ())
        lengths = headers.get(b'content-length', [])
        chunked = bool(headers.get(b'transfer-encoding'))
        if lengths:
            text = lengths[0].decode('latin-1').strip()
            if len(set(lengths)) != 1 or not text.isdigit():
                await refuse(scope, receive, send, 400, 'The Content-Length header is not a number; send one '
                             'that is, or none.', ())
                return
            if int(text) > limit:  # refused before any of it is read
                await refuse(scope, receive, send, *too_large)
                return
        has_body = chunked or (bool(lengths) and int(lengths[0]) > 0)
        if is_api_path(scope.get('path', '')) and scope.get('method') in STATE_CHANGING:
            types = headers.get(b'content-type', [])
            if (types or has_body) and not (len(types) == 1 and _is_json(types[0])):
                await refuse(scope, receive, send, 415, 'Send the body as JSON, with the header '
                             'Content-Type: application/json.', ())
                return
        if not has_body:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive, limit)
        if body is None:
            await refuse(scope, receive, send, *too_large)
            return
        await self.app(scope, _replay(body, receive), send)


_Refusal = tuple[int, str, Iterable[tuple[bytes, bytes]]]


def _headers(scope: Scope) -> dict[bytes, list[bytes]]:
    found: dict[bytes, list[bytes]] = {}
    for name, value in scope.get('headers') or ():
        found.setdefault(name.lower(), []).append(value)
    return found


def _text(value: bytes) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value.decode('latin-1')


def _query_tokens(query_string: bytes) -> list[str]:
    """Every ``token=`` value of the query, both as a form decodes it (``+`` is a space) and as a URL does."""
    given: list[str] = []
    for pair in _text(query_string).split('&'):
        name, sep, value = pair.partition('=')
        if sep and unquote_plus(name) == 'token':
            given += {unquote_plus(value, errors='replace'), unquote(value, errors='replace')}
    return given


def _is_json(content_type: bytes) -> bool:
    media_type = content_type.split(b';', 1)[0].strip().lower()
    return media_type == b'application/json'


def _server_port(scope: Scope) -> int | str:
    server = scope.get('server')
    return server[1] if server and len(server) > 1 and server[1] else 'PORT'


async def _read_body(receive: Receive, limit: int) -> Message | None:
    """The whole body as one message, or None as soon as it passes the limit (the rest is never read)."""
    buffer = bytearray()
    while True:
        message = await receive()
        if message['type'] != 'http.request':  # the client went away: let the app see it
            return message
        buffer += message.get('body', b'')
        if len(buffer) > limit:
            return None
        if not message.get('more_body', False):
            return {'type': 'http.request', 'body': bytes(buffer), 'more_body': False}


def _replay(first: Message, receive: Receive) -> Receive:
    pending: list[Message] = [first]

    async def replayed() -> Message:
        if pending:
            return pending.pop()
        return await receive()
    return replayed


CORS_METHODS = b'GET, POST, PUT, PATCH, DELETE'
CORS_HEADERS = b'Content-Type, Authorization, X-Jarvis-Token'


async def _answer_preflight(send: Send, origin: bytes, headers: dict[bytes, list[bytes]]) -> None:
    answer = [(b'access-control-allow-origin', origin), (b'access-control-allow-methods', CORS_METHODS),
              (b'access-control-allow-headers', CORS_HEADERS), (b'access-control-max-age', b'600'),
              (b'vary', b'Origin'), (b'content-length', b'0')]
    if headers.get(b'access-control-request-private-network'):  # Chrome, for a public page reaching 127.0.0.1
        answer.append((b'access-control-allow-private-network', b'true'))
    await send({'type': 'http.response.start', 'status': 204, 'headers': answer})
    await send({'type': 'http.response.body', 'body': b''})


def _with_cors(send: Send, origin: bytes) -> Send:
    async def send_with_cors(message: Message) -> None:
        if message['type'] == 'http.response.start':
            extra = [(b'access-control-allow-origin', origin), (b'vary', b'Origin')]
            message = {**message, 'headers': [*(message.get('headers') or []), *extra]}
        await send(message)
    return send_with_cors


def _with_cookie(send: Send, token: str) -> Send:
    cookie = f'{COOKIE}={encode_token(token)}; Path=/; HttpOnly; SameSite=Strict'.encode()

    async def send_with_cookie(message: Message) -> None:
        if message['type'] == 'http.response.start':
            message = {**message, 'headers': [*(message.get('headers') or []), (b'set-cookie', cookie)]}
        await send(message)
    return send_with_cookie


# --- refusals: JSON for scripts, a short page for people, a refused handshake for sockets ------------


async def refuse(scope: Scope, receive: Receive, send: Send, status: int, message: str,
                 extra_headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    path = scope.get('path', '')
    api = scope['type'] == 'websocket' or is_api_path(path)
    body = json.dumps(error_payload(path, status, message)).encode() if api else _page(status, message)
    headers = [(b'content-type', b'application/json' if api else b'text/html; charset=utf-8'),
               (b'content-length', str(len(body)).encode()), *extra_headers]
    if scope['type'] == 'websocket':
        await receive()  # the websocket.connect message
        if 'websocket.http.response' in (scope.get('extensions') or {}):  # the handshake gets the real status
            await send({'type': 'websocket.http.response.start', 'status': status, 'headers': headers})
            await send({'type': 'websocket.http.response.body', 'body': body})
        else:  # the server answers the handshake with 403
            await send({'type': 'websocket.close', 'code': 1008, 'reason': message[:120]})
        return
    if status == 413:
        headers.append((b'connection', b'close'))  # the rest of the body is never read
    await send({'type': 'http.response.start', 'status': status, 'headers': headers})
    await send({'type': 'http.response.body', 'body': body})


def _page(status: int, message: str) -> bytes:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>J.A.R.V.I.S. ({status})</title></head>'
            f'<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem">'
            f'<h1>J.A.R.V.I.S.</h1><p>{html.escape(message)}</p></body></html>').encode()
