"""HTTP and WebSocket requests written byte by byte, for headers that ordinary clients set themselves
(Host) or requests that they refuse to send (a body announced but never sent)."""
from __future__ import annotations

import base64
import os
import socket


def read_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """The status, the headers (lower-case names) and the body as far as Content-Length tells."""
    data = b''
    while b'\r\n\r\n' not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b'\r\n\r\n')
    lines = head.decode('latin-1').split('\r\n')
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(':')
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get('content-length', '0') or 0)
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest[:length] if length else rest


def request_head(port: int, method: str, path: str, headers: dict[str, str], *, timeout: float = 10.0,
                 body: bytes = b'') -> tuple[int, dict[str, str], bytes]:
    """Send one request (headers exactly as given, plus the body) and read the answer's head."""
    lines = [f'{method} {path} HTTP/1.1', *(f'{name}: {value}' for name, value in headers.items()), '', '']
    with socket.create_connection(('127.0.0.1', port), timeout=timeout) as sock:
        sock.sendall('\r\n'.join(lines).encode('latin-1') + body)
        return read_head(sock)


def websocket_handshake(port: int, path: str, *, host: str | None = None, origin: str | None = None,
                        extra: dict[str, str] | None = None) -> int:
    """The status a WebSocket handshake gets: 101 when the socket opens."""
    headers = {'Host': host if host is not None else f'127.0.0.1:{port}', 'Upgrade': 'websocket',
               'Connection': 'Upgrade', 'Sec-WebSocket-Version': '13',
               'Sec-WebSocket-Key': base64.b64encode(os.urandom(16)).decode()}
    if origin is not None:
        headers['Origin'] = origin
    headers.update(extra or {})
    return request_head(port, 'GET', path, headers)[0]
