"""A request body is read only up to the limit (2 MiB): an announced larger one is refused before it is
sent, a streamed (chunked) one as soon as it passes the limit, and the server's memory stays put."""
from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from jarvis.web_guard import MAX_BODY_BYTES

from .helpers.raw_http import request_head
from .helpers.server import AppServer

MiB = 2**20


@pytest.fixture(scope='module')
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    with AppServer(tmp_path_factory.mktemp('limits')) as server:
        yield server


class PeakRss:
    """The highest resident memory of a process while in the block: the kernel's own high-water mark
    where there is one (Linux), else psutil sampled every few milliseconds."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def _high_water_mark(self) -> int | None:
        try:
            status = Path(f'/proc/{self.pid}/status').read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
        return None

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.002)

    def __enter__(self) -> PeakRss:
        self.before = self._high_water_mark() or self.process.memory_info().rss
        if sys.platform != 'linux':
            self._sampler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._sampler.is_alive():
            self._sampler.join()
        self.peak = max(self.peak, self._high_water_mark() or 0)

    @property
    def growth(self) -> int:
        return self.peak - self.before


def test_a_streamed_body_is_refused_once_it_passes_the_limit(app: AppServer) -> None:
    assert app.process is not None
    sent = 0

    def body() -> Iterator[bytes]:  # no length known in advance: httpx sends it chunked
        nonlocal sent
        chunk = b'{"message": "' + b'1' * (MiB - 14)
        for _ in range(64):
            sent += len(chunk)
            yield chunk

    httpx.get(app.url + '/api/hub/stats')  # the server has settled after its start
    with PeakRss(app.process.pid) as rss:
        response = httpx.post(app.url + '/api/chat', content=body(), timeout=60,
                              headers={'Content-Type': 'application/json'})
    assert response.status_code == 413
    assert response.headers['content-type'] == 'application/json'
    assert 'too large' in response.json()['error'] and '2 MiB' in response.json()['error']
    assert rss.growth < 24 * MiB, f'the server grew by {rss.growth / MiB:.0f} MiB while refusing a 64 MiB body'
    assert httpx.post(app.url + '/api/chat', json={'message': 'what is 3*3'}, timeout=30).json()['text'] == '3 * 3 = 9'


@pytest.mark.parametrize('path', ['/api/chat', '/api/plugins/settings', '/v1/chat/completions',
                                  '/_nicegui_ws/socket.io/?EIO=4&transport=polling'])
def test_an_announced_body_over_the_limit_is_refused_before_it_is_sent(app: AppServer, path: str) -> None:
    # the request announces 1000 MiB and sends none of it: the answer must come without waiting for it
    status, headers, rest = request_head(app.port, 'POST', path, {
        'Host': f'127.0.0.1:{app.port}', 'Content-Type': 'application/json', 'Content-Length': str(1000 * MiB)})
    assert status == 413, path
    if not path.startswith('/_nicegui'):
        assert headers['content-type'] == 'application/json'
        error = json.loads(rest)['error']
        # under /v1/ in OpenAI's shape, which OpenAI's clients read
        assert 'too large' in (error['message'] if path.startswith('/v1/') else error)


def test_a_body_at_the_limit_still_goes_through(app: AppServer) -> None:
    padding = MAX_BODY_BYTES - len(json.dumps({'message': 'what is 4*4', 'pad': ''}))
    body = json.dumps({'message': 'what is 4*4', 'pad': ' ' * padding}).encode()
    assert len(body) == MAX_BODY_BYTES
    response = httpx.post(app.url + '/api/chat', content=body, headers={'Content-Type': 'application/json'}, timeout=30)
    assert response.status_code == 200 and response.json()['text'] == '4 * 4 = 16'
    response = httpx.post(app.url + '/api/chat', content=body + b' ', headers={'Content-Type': 'application/json'})
    assert response.status_code == 413
