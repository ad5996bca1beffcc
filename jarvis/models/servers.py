"""The OpenAI-compatible servers the user added: their names and addresses (in the settings table) and their
API keys (in a file of their own that only the user can read, never in the settings table).

A server is added once (``add``) and its models are then listed with the others; the model manager
asks this registry for a server's address and key. Nothing here logs or returns a key: ``Server``
says only whether one is set.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import stat
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..storage import SettingsStore
from .base import ModelError

log = logging.getLogger(__name__)

SERVERS_KEY = 'models.servers'
KEYS_FILE = 'server-keys.json'
MAX_SERVERS = 32
MAX_URL_CHARS = 500
MAX_KEY_CHARS = 4096
NAME_PATTERN = r'^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$'
_NAME = re.compile(NAME_PATTERN)
_NAME_CHARS = re.compile(r'[^A-Za-z0-9._-]')  # what a name made from a host name must not hold
# a pasted endpoint instead of the API's base: "http://host:8000/v1/chat/completions" means "http://host:8000/v1"
_ENDPOINTS = ('/chat/completions', '/completions', '/models')


class ServerConfigError(ModelError):
    """A server cannot be added as given (its address, name or key); the message says what to change."""


class ServerNotFound(ModelError):
    """No server has that name."""


class TooManyServers(ServerConfigError):
    """The list of servers is full."""


class KeyStoreError(ModelError):
    """The keys file could not be written; nothing was changed."""


@dataclass(frozen=True, slots=True)
class Server:
    name: str
    url: str  # the API's base: <url>/models and <url>/chat/completions
    has_key: bool = False


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """A server as the Models view and ``GET /api/models/servers`` show it: whether it answers, and its models."""

    name: str
    url: str
    has_key: bool
    error: str = ''  # why it cannot be used now; '' when it answered
    models: tuple[str, ...] = field(default_factory=tuple)

    @property
    def reachable(self) -> bool:
        return not self.error

    def to_dict(self) -> dict[str, Any]:
        return {'name': self.name, 'url': self.url, 'api_key_set': self.has_key, 'reachable': self.reachable,
                'error': self.error, 'models': list(self.models)}


def normalize_url(url: object) -> str:
    """The API's base URL from what the user typed; raises ServerConfigError when it cannot be one.

    ``http(s)://host[:port][/path]`` without credentials, query or fragment. No path means the usual
    ``/v1``; a pasted endpoint (``.../v1/chat/completions``) means its base.
    """
    if not isinstance(url, str) or not url.strip():
        raise ServerConfigError('Give the server\'s address, for example http://127.0.0.1:8000/v1.')
    url = url.strip()
    shown = url[:80]
    if len(url) > MAX_URL_CHARS:
        raise ServerConfigError(f'That address is too long ({len(url)} characters, at most {MAX_URL_CHARS}).')
    if any(not c.isprintable() or c.isspace() for c in url):
        raise ServerConfigError(f'{shown!r} is not an address (it holds spaces or control characters).')
    try:
        split = urllib.parse.urlsplit(url)
        port = split.port
    except ValueError:
        raise ServerConfigError(f'{shown!r} is not an address with a valid host and port.') from None
    if split.scheme.lower() not in ('http', 'https'):
        raise ServerConfigError(f'{shown!r} must start with http:// or https://.')
    if split.username is not None or split.password is not None:
        raise ServerConfigError('Give the address without a user name or password in it; put an API key in '
                                'the key field instead.')
    if split.query or split.fragment or url.endswith(('?', '#')):
        raise ServerConfigError(f'{shown!r} must be a plain address, without "?" or "#" parts.')
    host = split.hostname or ''
    if not host:
        raise ServerConfigError(f'{shown!r} has no host name.')
    if ':' in host:
        host = f'[{host}]'
    path = split.path.rstrip('/')
    for endpoint in _ENDPOINTS:
        if path.endswith(endpoint):
            path = path[:-len(endpoint)]
            break
    path = path or '/v1'
    return f'{split.scheme.lower()}://{host}' + (f':{port}' if port is not None else '') + path


def validate_server_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ServerConfigError('A server\'s name is 1 to 40 letters, digits, ".", "_" or "-", starting with a letter '
                                'or a digit.')
    return name


def validate_key(api_key: object) -> str | None:
    """The key, or None for no key; raises ServerConfigError for one that no HTTP header can carry."""
    if api_key is None:
        return None
    if not isinstance(api_key, str):
        raise ServerConfigError('The API key must be text.')
    api_key = api_key.strip()
    if not api_key:
        return None
    if len(api_key) > MAX_KEY_CHARS:
        raise ServerConfigError(f'That API key is too long (at most {MAX_KEY_CHARS} characters).')
    if not api_key.isascii() or any(not c.isprintable() or c.isspace() for c in api_key):
        raise ServerConfigError('An API key is printable ASCII without spaces.')
    return api_key


def _name_from(url: str, taken: set[str]) -> str:
    """A name for a server the user did not name: its host ("gpu-box", "127.0.0.1"), made unique."""
    host = urllib.parse.urlsplit(url).hostname or 'server'
    base = _NAME_CHARS.sub('-', host).strip('-._')[:36] or 'server'
    if not base[0].isalnum():
        base = f's{base}'[:36]
    name, number = base, 2
    while name in taken:
        name, number = f'{base}-{number}', number + 1
    return name


class ServerRegistry:
    """The servers the user added, persisted; their keys in ``keys_path`` (mode 0600)."""

    def __init__(self, store: SettingsStore, keys_path: Path) -> None:
        self.store = store
        self.keys_path = keys_path
        self._servers: dict[str, str] | None = None  # name -> url, in the order added; None until read
        self._keys: dict[str, str] = {}
        self._lock = asyncio.Lock()

    async def servers(self) -> list[Server]:
        await self._ensure_loaded()
        assert self._servers is not None
        return [Server(name, url, name in self._keys) for name, url in self._servers.items()]

    async def get(self, name: str) -> Server:
        await self._ensure_loaded()
        assert self._servers is not None
        if name not in self._servers:
            raise ServerNotFound(f'There is no server called "{str(name)[:40]}": add it in Models.')
        return Server(name, self._servers[name], name in self._keys)

    async def api_key(self, name: str) -> str | None:
        await self._ensure_loaded()
        return self._keys.get(name)

    async def add(self, url: object, api_key: object = None, name: object = None) -> tuple[Server, bool]:
        """Add a server, or replace the one of that name (its address and key); returns it and whether it
        replaced one. The key is written to the keys file before the server is listed."""
        url = normalize_url(url)
        api_key = validate_key(api_key)
        async with self._lock:
            await self._ensure_loaded_locked()
            assert self._servers is not None
            name = validate_server_name(name) if name is not None and str(name).strip() else \
                _name_from(url, set(self._servers))
            replaced = name in self._servers
            if not replaced and len(self._servers) >= MAX_SERVERS:
                raise TooManyServers(f'There are {MAX_SERVERS} servers already: remove one first.')
            keys = dict(self._keys)
            if api_key:
                keys[name] = api_key
            else:
                keys.pop(name, None)
            if keys != self._keys:
                await self._write(keys)
            self._servers = {**self._servers, name: url}
            await self._save()
        log.info('server %s %s at %s', name, 'replaced' if replaced else 'added', url)
        return Server(name, url, bool(api_key)), replaced

    async def remove(self, name: str) -> Server:
        async with self._lock:
            await self._ensure_loaded_locked()
            assert self._servers is not None
            if name not in self._servers:
                raise ServerNotFound(f'There is no server called "{str(name)[:40]}".')
            server = Server(name, self._servers[name], name in self._keys)
            self._servers = {n: u for n, u in self._servers.items() if n != name}
            await self._save()  # first: a key without its server is harmless, a server without its key is not
            if name in self._keys:
                await self._write({n: k for n, k in self._keys.items() if n != name})
        log.info('server %s removed', name)
        return server

    async def _write(self, keys: dict[str, str]) -> None:
        try:
            await asyncio.to_thread(_write_keys, self.keys_path, keys)
        except OSError as error:
            raise KeyStoreError(f'The API keys could not be written to {self.keys_path} '
                                f'({error.strerror or type(error).__name__}): make the data folder writable.') from None
        self._keys = keys

    async def _save(self) -> None:
        assert self._servers is not None
        await self.store.set(SERVERS_KEY, [{'name': n, 'url': u} for n, u in self._servers.items()])

    async def _ensure_loaded(self) -> None:
        if self._servers is None:
            async with self._lock:
                await self._ensure_loaded_locked()

    async def _ensure_loaded_locked(self) -> None:
        if self._servers is not None:
            return
        servers: dict[str, str] = {}
        saved = self.store.get(SERVERS_KEY) or []
        for entry in saved if isinstance(saved, list) else []:
            try:
                servers[validate_server_name(entry.get('name'))] = normalize_url(entry.get('url'))
            except (ServerConfigError, AttributeError):
                log.warning('ignoring a saved server that is not valid: %r', str(entry)[:200])
        keys = await asyncio.to_thread(_read_keys, self.keys_path)
        self._keys = {name: key for name, key in keys.items() if name in servers}
        self._servers = servers


def _read_keys(path: Path) -> dict[str, str]:
    """The keys file, made private again if someone widened its mode; {} when there is none or it is unreadable."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning('%s could be read by others (mode %o); making it private (0600)', path.name, mode)
            os.chmod(path, 0o600)
        data = json.loads(path.read_text(encoding='utf-8'))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        log.warning('the API keys in %s could not be read (%s); servers that need one are refused until it is '
                    'added again', path, type(error).__name__)
        return {}
    keys = data.get('keys') if isinstance(data, dict) else None
    if not isinstance(keys, dict):
        return {}
    return {name: key for name, key in keys.items() if isinstance(name, str) and isinstance(key, str)}


def _write_keys(path: Path, keys: dict[str, str]) -> None:
    """Write the keys next to the file and rename: created 0600 from the start, never readable by others even
    for a moment, and never half written."""
    partial = path.with_name(path.name + '.partial')
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as file:
            if hasattr(os, 'fchmod'):  # not on Windows, where the mode bits mean little
                os.fchmod(file.fileno(), 0o600)  # whatever the umask
            json.dump({'version': 1, 'keys': keys}, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
