"""Safe exposure: loopback by default; any other interface needs an access token.

With a token set, every HTTP request and WebSocket (pages, NiceGUI's socket, /api/) must carry
it: as ``?token=...`` (the first page load, which then sets a cookie), as a cookie, as
``Authorization: Bearer ...`` or as ``X-Jarvis-Token``.
"""
from __future__ import annotations

import hmac
import ipaddress
import secrets
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

COOKIE = 'jarvis_token'
HEADER = b'x-jarvis-token'


def is_loopback(host: str) -> bool:
    if host in ('localhost', ''):
        return host == 'localhost'
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_access(host: str, token: str | None, *, insecure: bool) -> str | None:
    """The token to require, or None; raise ValueError when serving would be unsafe."""
    if insecure:
        return None
    if token is not None and not token.strip():
        if is_loopback(host):
            return None
        raise ValueError(f'serving on {host} needs an access token; give one with --token, '
                         'or pass --insecure to serve without one')
    if token:
        return token.strip()
    if is_loopback(host):
        return None
    return secrets.token_urlsafe(24)


class TokenMiddleware:
    """Pure ASGI middleware, so that it guards HTTP and WebSocket connections alike."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope['type'] not in ('http', 'websocket'):
            await self.app(scope, receive, send)
            return
        given, from_query = _token_from(scope)
        if given is None or not hmac.compare_digest(given.encode(), self.token.encode()):
            await _refuse(scope, receive, send)
            return
        if from_query and scope['type'] == 'http':
            send = _with_cookie(send, self.token)
        await self.app(scope, receive, send)


def _token_from(scope: dict) -> tuple[str | None, bool]:
    query = parse_qs(scope.get('query_string', b'').decode(errors='replace'))
    if query.get('token'):
        return query['token'][0], True
    headers = dict(scope.get('headers') or [])
    if HEADER in headers:
        return headers[HEADER].decode(errors='replace'), False
    authorization = headers.get(b'authorization', b'').decode(errors='replace')
    if authorization.lower().startswith('bearer '):
        return authorization[7:].strip(), False
    cookie_header = headers.get(b'cookie', b'').decode(errors='replace')
    if cookie_header:
        cookies: SimpleCookie = SimpleCookie()
        try:
            cookies.load(cookie_header)
        except Exception:  # a malformed cookie header is simply no token
            return None, False
        if COOKIE in cookies:
            return cookies[COOKIE].value, False
    return None, False


async def _refuse(scope: dict, receive: Any, send: Any) -> None:
    if scope['type'] == 'websocket':
        await receive()  # the websocket.connect message
        await send({'type': 'websocket.close', 'code': 1008, 'reason': 'access token required'})
        return
    body = b'J.A.R.V.I.S.: access token required. Open the address printed at start (it ends in ?token=...).'
    await send({'type': 'http.response.start', 'status': 401,
                'headers': [(b'content-type', b'text/plain; charset=utf-8'),
                            (b'content-length', str(len(body)).encode()),
                            (b'www-authenticate', b'Bearer')]})
    await send({'type': 'http.response.body', 'body': body})


def _with_cookie(send: Any, token: str) -> Any:
    async def send_with_cookie(message: dict) -> None:
        if message['type'] == 'http.response.start':
            headers = list(message.get('headers') or [])
            headers.append((b'set-cookie', f'{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict'.encode()))
            message = {**message, 'headers': headers}
        await send(message)
    return send_with_cookie
