"""Safe exposure, the rules: loopback by default; any other interface needs an access token; which
origins and host names the user allowed. No web framework here: ``jarvis --help`` stays fast, and
``jarvis.web_guard`` enforces these rules on every request and socket.

With a token set, every HTTP request and WebSocket (pages, NiceGUI's socket, /api/) must carry it:
as ``?token=...`` (the first page load, which then sets a cookie), as a cookie, as
``Authorization: Bearer ...`` or as ``X-Jarvis-Token``.
"""
from __future__ import annotations

import ipaddress
import re
import secrets
from urllib.parse import quote, unquote, urlsplit

COOKIE = 'jarvis_token'


class FlagError(ValueError):
    """A flag's value that the app cannot start with; the message is the line to print."""


def is_loopback(host: str) -> bool:
    if host == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host.strip('[]')).is_loopback
    except ValueError:
        return False


def resolve_access(host: str, token: str | None, *, insecure: bool) -> str | None:
    """The token to require, or None; raise FlagError (a ValueError) when serving would be unsafe."""
    if insecure:
        return None
    if token is not None and not token.strip():
        if is_loopback(host):
            return None
        raise FlagError(f'serving on {host} needs an access token; give one with --token, '
                        'or pass --insecure to serve without one')
    if token:
        token = token.strip()
        if not token.isprintable():
            raise FlagError('the access token must be printable characters (no tabs, line breaks or other '
                            'control characters); give another one with --token or JARVIS_TOKEN')
        return token
    if is_loopback(host):
        return None
    return secrets.token_urlsafe(24)


# --- the token in a cookie and in a URL ----------------------------------------------------------------
# A cookie value may not hold spaces, semicolons, commas, quotes or non-ASCII, so any printable token
# travels percent-encoded (UTF-8) in the cookie and in the printed address, and is decoded on arrival.

def encode_token(token: str) -> str:
    return quote(token, safe='')


def token_candidates(given: str) -> tuple[str, ...]:
    """What a token as received may stand for: itself, and its percent-decoded form."""
    try:
        decoded = unquote(given, errors='strict')
    except UnicodeDecodeError:  # a percent escape that is not UTF-8: only the value as it came
        return (given,)
    return (given,) if decoded == given else (given, decoded)


def cookie_value(cookie_header: str, name: str = COOKIE) -> str | None:
    """One cookie's value, read leniently: a malformed cookie of another app on the same host (cookies
    are shared by every port of 127.0.0.1) must not hide ours, as it would with ``SimpleCookie``."""
    for part in cookie_header.split(';'):
        key, sep, value = part.strip().partition('=')
        if sep and key.strip() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value
    return None


# --- allowed origins and host names ---------------------------------------------------------------------

Origin = tuple[str, str, int]  # scheme, host (lower case, IPv6 without brackets), port
DEFAULT_PORTS = {'http': 80, 'https': 443}
_NAME = re.compile(r'^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$')


def parse_origin(value: str) -> Origin | None:
    """A serialized origin as browsers send it (``scheme://host[:port]``, nothing after), or None."""
    if not value or any(c.isspace() for c in value):
        return None
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or parts.path or parts.query or parts.fragment \
            or parts.username is not None or parts.password is not None or value.endswith(':'):
        return None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


def parse_allowed_origin(value: str) -> Origin:
    """A value of ``--allow-origin`` (a trailing slash is tolerated), or FlagError saying what is wrong."""
    text = value.strip()
    if text in ('*', 'null'):
        raise FlagError(f'--allow-origin takes one origin such as http://localhost:5173, not {text!r}: '
                        'allowing every page (or sandboxed ones) would let any web site act for you')
    if not re.match(r'^https?://', text, re.IGNORECASE):
        raise FlagError(f'--allow-origin {value!r}: write an origin as http://host:port or https://host:port')
    origin = parse_origin(text[:-1] if text.endswith('/') else text)
    if origin is None:
        raise FlagError(f'--allow-origin {value!r}: an origin is scheme, host and port only (no path, query '
                        'or user), like http://localhost:5173')
    return origin


def parse_allowed_host(value: str) -> str:
    """A value of ``--allow-host``: a host name or an IP address, without scheme or port."""
    text = value.strip().lower()
    if text.startswith('[') and text.endswith(']'):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        pass
    if not _NAME.match(text) or text.replace('.', '').isdigit():
        raise FlagError(f'--allow-host {value!r}: give a name (like jarvis.lan) or an IP address, '
                        'without http:// and without a port')
    return text.rstrip('.')


def split_list(value: str | None) -> list[str]:
    """An environment variable's list: separated by commas or spaces."""
    return [item for item in re.split(r'[,\s]+', value or '') if item]
