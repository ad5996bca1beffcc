"""One J.A.R.V.I.S. per data folder: the first start holds a lock, a second one hands over to it.

The lock is an OS file lock (``flock`` on POSIX, ``msvcrt.locking`` on Windows) on ``instance.lock`` in the
data folder, held for the whole life of the process: the OS releases it when the process ends in any way,
a crash or a kill included, so a lock left behind by a crash is never mistaken for a running app. The file
also records where the app serves (pid, host, port, mode and, for a served token, the token: the file is
the user's own, mode 0600, in the user's own data folder), so that a second start can reach it.

A second start asks the running app to show itself through the app's own server, with its access rules
(``POST /api/app/show``), and exits 0.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Literal

log = logging.getLogger(__name__)

LOCK_NAME = 'instance.lock'
SHOW_PATH = '/api/app/show'
Mode = Literal['native', 'browser', 'headless']


@dataclass(frozen=True)
class InstanceInfo:
    pid: int
    host: str
    port: int
    mode: Mode
    token: str | None = None

    @property
    def local_url(self) -> str:
        """Where this machine reaches it (loopback answers on every bind but a specific other address)."""
        host = self.host
        if host in ('0.0.0.0', '', '::', 'localhost'):
            host = '127.0.0.1'
        elif ':' in host and not host.startswith('['):
            host = f'[{host}]'
        return f'http://{host}:{self.port}'


class AlreadyRunning(Exception):
    """Another process holds this data folder."""

    def __init__(self, info: InstanceInfo | None) -> None:
        super().__init__('another J.A.R.V.I.S. uses this data folder')
        self.info = info


class InstanceLock:
    """The lock on one data folder, held from ``acquire`` until the process ends (or ``release``)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock, or raise ``AlreadyRunning`` with what the running app recorded."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        handle = os.fdopen(descriptor, 'r+', encoding='utf-8')
        if not _try_lock(handle):
            info = _parse(handle.read())
            handle.close()
            raise AlreadyRunning(info)
        stale = _parse(handle.read())
        if stale is not None and stale.pid != os.getpid():
            import psutil  # pylint: disable=import-outside-toplevel  # jarvis.cli is imported by the window process too
            # the OS released its lock: that process ended (a crash or a kill leaves the file behind)
            alive = psutil.pid_exists(stale.pid)
            log.info('a lock left by an earlier J.A.R.V.I.S. (pid %d%s) was ignored', stale.pid,
                     ', now another program' if alive else ', no longer running')
        self._file = handle

    def record(self, info: InstanceInfo) -> None:
        """Write where this app serves, for a second start to find."""
        assert self._file is not None, 'acquire() first'
        self._file.seek(0)
        self._file.truncate()
        self._file.write(json.dumps(asdict(info)))
        self._file.flush()
        with contextlib.suppress(OSError):
            os.fsync(self._file.fileno())

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.seek(0)
                self._file.truncate()
            with contextlib.suppress(OSError):  # a full disk: a write still buffered cannot be flushed
                self._file.close()  # closing releases the OS lock (the process's end would too)
            self._file = None


def hand_over(info: InstanceInfo, *, timeout: float = 15.0) -> dict | None:
    """Ask the running app to show itself; its answer, or None when it did not answer within ``timeout``
    (it may still be starting: its lock is taken before its server listens)."""
    import httpx  # pylint: disable=import-outside-toplevel  # only a second start needs it
    import psutil  # pylint: disable=import-outside-toplevel
    headers = {'X-Jarvis-Token': info.token} if info.token else {}
    deadline = time.monotonic() + timeout
    while True:
        if not psutil.pid_exists(info.pid):
            return None
        try:
            response = httpx.post(info.local_url + SHOW_PATH, json={}, headers=headers, timeout=3)
            if response.status_code == 200:
                return response.json()
            log.debug('the running app answered %d: %s', response.status_code, response.text[:200])
        except httpx.HTTPError as error:
            log.debug('the running app does not answer yet: %s', error)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)


def read_info(handle_text: str) -> InstanceInfo | None:
    return _parse(handle_text)


def _parse(text: str) -> InstanceInfo | None:
    try:
        data = json.loads(text)
        return InstanceInfo(pid=int(data['pid']), host=str(data['host']), port=int(data['port']),
                            mode=data.get('mode', 'headless'), token=data.get('token') or None)
    except (ValueError, KeyError, TypeError):
        return None


def _try_lock(handle: IO[str]) -> bool:
    try:
        import fcntl  # pylint: disable=import-outside-toplevel
    except ImportError:  # Windows
        import msvcrt  # pylint: disable=import-outside-toplevel
        try:
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
            return True
        except OSError:
            return False
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
