"""One app per data folder: a second start hands over to the running one and exits 0; a lock left behind
by a crash is ignored."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import websockets

from jarvis.single_instance import LOCK_NAME

from .helpers.server import OFFLINE_ENV, AppServer, free_port


def second_start(data_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'jarvis', '--no-open', '--port', str(free_port()),
                           '--data-dir', str(data_dir), '--no-default-model', *extra],
                          capture_output=True, text=True, timeout=60, env={**os.environ, **OFFLINE_ENV},
                          check=False)


async def requests_seen_while(app: AppServer, action) -> list[dict]:  # type: ignore[no-untyped-def]
    """The window requests the running app publishes while ``action`` runs (in a thread)."""
    url = f'ws://127.0.0.1:{app.port}/api/events?types=window_request'
    async with websockets.connect(url) as socket:
        result = await asyncio.to_thread(action)
        seen = []
        try:
            while True:
                seen.append(json.loads(await asyncio.wait_for(socket.recv(), 2)))
        except asyncio.TimeoutError:
            pass
    return [result, seen]


def test_a_second_start_hands_over_and_exits_0(tmp_path: Path) -> None:
    with AppServer(tmp_path / 'data') as app:
        result, seen = asyncio.run(requests_seen_while(app, lambda: second_start(tmp_path / 'data')))
        assert result.returncode == 0, result.stderr
        assert 'already running' in result.stderr
        assert f'J.A.R.V.I.S. is at http://127.0.0.1:{app.port}/' in result.stderr, 'where the running one is'
        assert [event['data'] for event in seen] == [{'action': 'show'}], 'the running app was asked to show itself'
        assert app.process is not None and app.process.poll() is None, 'the first one runs on'
    assert app.stop() == 0


def test_the_handover_follows_the_access_rules(tmp_path: Path) -> None:
    """On a network bind the running app needs its token; the second start finds it in the lock (the user's own)."""
    with AppServer(tmp_path / 'data', host='0.0.0.0', args=['--no-default-model', '--token', 'secret']) as app:
        lock = tmp_path / 'data' / LOCK_NAME
        assert lock.stat().st_mode & 0o077 == 0, 'only the user reads the lock (it holds the token)'
        result = second_start(tmp_path / 'data')
        assert result.returncode == 0, result.stderr
        assert f':{app.port}/?token=secret' in result.stderr


def test_a_stale_lock_after_a_crash_is_ignored(tmp_path: Path) -> None:
    data = tmp_path / 'data'
    crashed = AppServer(data).start()
    crashed.kill()  # SIGKILL: no cleanup; the lock file stays, with the dead pid and port
    lock = data / LOCK_NAME
    left = json.loads(lock.read_text())
    assert left['pid'] == crashed.process.pid  # type: ignore[union-attr]
    with AppServer(data) as app:  # would have handed over to (or waited for) the dead one
        assert json.loads(lock.read_text())['pid'] == app.process.pid, app.output()  # type: ignore[union-attr]
        assert 'lock left by an earlier J.A.R.V.I.S.' in app.output()
    assert app.stop() == 0
