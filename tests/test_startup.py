"""A fast start: the native window's process opens beside the app's imports and imports only pywebview and
Qt; the machine's first sample is out when the start is done, so the first page shows it."""
from __future__ import annotations

import http.server
import json
import queue
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from jarvis import events
from jarvis.config import Settings
from jarvis.hub import Hub
from jarvis.metrics import MetricsSampler, NvmlGpuReader
from jarvis.services import Services
from jarvis.window_process import WindowProcess, WindowSpec

from .conftest import simulate
from .helpers.browser import STRICT, wait_for
from .helpers.server import free_port
from .helpers.window_hooks import HEAVY, leave_a_waiting_thread, report_modules
from .test_metrics import FakeNvml
from .test_native_window import display  # noqa: F401  # pylint: disable=unused-import  # the Xvfb fixture


def test_the_command_starts_the_window_without_importing_the_app() -> None:
    """``jarvis`` starts the window's process before it imports the app: what it needs for that is light."""
    code = ('import sys, jarvis.cli, jarvis.window_process; '
            f'print(__import__("json").dumps([m for m in {HEAVY + ("webview", "PyQt6")!r} if m in sys.modules]))')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(result.stdout) == []


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802  # the name http.server calls
        body = b'<!DOCTYPE html><title>the app</title><p>served'
        self.send_response(200)
        self.send_header('Content-Type', 'text/html')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def late_server() -> Iterator[tuple[int, threading.Event]]:
    """A port where a server starts listening only when asked (as the app's does while it imports)."""
    port = free_port()
    start = threading.Event()
    servers: list[http.server.ThreadingHTTPServer] = []

    def serve() -> None:
        start.wait()
        server = http.server.ThreadingHTTPServer(('127.0.0.1', port), _Page)
        servers.append(server)
        server.serve_forever(poll_interval=0.1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port, start
    start.set()
    wait_for(lambda: bool(servers), timeout=10, message='the server did not start')
    servers[0].shutdown()
    servers[0].server_close()


def _current_url(window: WindowProcess) -> str | None:
    window.method_queue.put(('get_current_url', (), {}))
    try:
        return window.response_queue.get(timeout=5)
    except queue.Empty:  # pywebview answered None (nothing loaded yet): the window process sends nothing
        return None


@pytest.mark.native
@pytest.mark.skipif(shutil.which('Xvfb') is None and not STRICT, reason='needs Xvfb (Debian: apt-get install xvfb)')
def test_the_window_opens_before_the_server_answers_and_then_loads_its_page(
        display: str, late_server: tuple[int, threading.Event], monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv('DISPLAY', display)
    monkeypatch.delenv('WAYLAND_DISPLAY', raising=False)
    monkeypatch.setenv('QTWEBENGINE_CHROMIUM_FLAGS', '--no-sandbox')
    port, start_server = late_server
    url = f'http://127.0.0.1:{port}/'
    window = WindowProcess(WindowSpec(url=url, title='startup test', size=(640, 480), min_size=(320, 240), gui='qt'),
                           on_window=report_modules)
    try:
        assert window.result(timeout=60) is None, 'the window should be up while nothing listens yet'
        assert window.event_receiver.poll(30)
        assert window.event_receiver.recv() == {'type': 'modules', 'args': {'imported': []}}, \
            'the window process imports pywebview and Qt only'
        assert _current_url(window) != url
        start_server.set()  # the app's server answers at last: the window, retrying, loads its page
        wait_for(lambda: _current_url(window) == url, timeout=30, interval=0.2, message='the page was never loaded')
    finally:
        window.method_queue.put(('destroy', (), {}))
        window.process.join(timeout=15)
        window.stop()
    assert window.process.exitcode is not None


@pytest.mark.native
@pytest.mark.skipif(shutil.which('Xvfb') is None and not STRICT, reason='needs Xvfb (Debian: apt-get install xvfb)')
def test_the_window_process_ends_with_its_window_despite_a_waiting_thread(
        display: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """pywebview can leave a thread that waits for ever (a page load overtaken by a quick quit): the window's
    process must still end when its window closes, not outlive the app."""
    monkeypatch.setenv('DISPLAY', display)
    monkeypatch.delenv('WAYLAND_DISPLAY', raising=False)
    monkeypatch.setenv('QTWEBENGINE_CHROMIUM_FLAGS', '--no-sandbox')
    window = WindowProcess(WindowSpec(url='http://127.0.0.1:9/', title='exit test', size=(640, 480),
                                      min_size=(320, 240), gui='qt'), on_window=leave_a_waiting_thread)
    try:
        assert window.result(timeout=60) is None
        window.method_queue.put(('destroy', (), {}))
        window.process.join(timeout=30)
        assert window.process.exitcode == 0
    finally:
        window.stop()


def test_a_window_that_cannot_start_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('DISPLAY', ':9999')  # no X server there: Qt aborts
    monkeypatch.delenv('WAYLAND_DISPLAY', raising=False)
    monkeypatch.delenv('QT_LOGGING_RULES', raising=False)
    window = WindowProcess(WindowSpec(url='http://127.0.0.1:9/', title='startup test', size=(640, 480),
                                      min_size=(320, 240), gui='qt'))
    reason = window.result(timeout=60)
    assert reason is not None and 'Qt' in reason, reason
    assert not window.process.is_alive()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_changes(metrics_interval=3600.0)  # one sample at start, then none for an hour


async def test_the_first_sample_is_out_when_the_start_is_done(settings: Settings) -> None:
    services = Services(settings)
    try:
        await services.start()
        latest = services.hub.latest(events.SYSTEM_METRICS)
        assert latest is not None, 'the first page would wait for a tick to show values'
        assert services.sampler.samples_taken == 1
    finally:
        await services.stop()


async def test_the_first_page_shows_the_first_sample_at_once(settings: Settings) -> None:
    async with simulate(settings) as harness:
        user = harness.new_user()
        await user.open('/')
        # no waiting: the value is in the page as it is built
        assert user.find(marker='cpu-value').elements.pop().text.endswith('%')
        assert harness.services.sampler.samples_taken == 1, 'the page needed no sample of its own'


def test_the_app_imports_no_http_client_before_it_serves(tmp_path: Path) -> None:
    """httpx (with the console libraries it pulls in) and a connection pool cost about 0.15 s here: the app, built
    and started (its plugins and its chat too), has not imported it; Ollama, remote servers and the Wikipedia
    plugin import it on first use, off the loop."""
    code = f"""if True:
        import asyncio, json, pathlib, sys
        from jarvis.app import create_app
        from jarvis.config import Settings
        services, _root = create_app(Settings(data_dir=pathlib.Path({str(tmp_path)!r}), load_default_model=False))
        async def main():
            await services.start()
            try:
                await services.model_ready()
                print(json.dumps([m for m in ("httpx", "httpcore", "rich") if m in sys.modules]))
            finally:
                await services.stop()
        asyncio.run(main())
    """
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_the_first_cpu_reading_is_taken_when_the_sampler_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CPU % needs two readings some time apart: the first is taken as the app is built, so that the first
    sample, which the first page shows, need not wait for the second."""
    from jarvis.metrics import system  # pylint: disable=import-outside-toplevel
    clock = [1000.0]
    waits: list[float] = []
    monkeypatch.setattr(system.time, 'monotonic', lambda: clock[0])
    monkeypatch.setattr(system.time, 'sleep', waits.append)
    sampler = MetricsSampler(Hub(), gpus=NvmlGpuReader(FakeNvml()))
    clock[0] += 1.0  # the rest of the start
    sampler._read()  # pylint: disable=protected-access
    assert waits == []
    fresh = MetricsSampler(Hub(), gpus=NvmlGpuReader(FakeNvml()))
    fresh._read()  # pylint: disable=protected-access  # read at once: it waits out the reading's window
    assert waits and waits[0] == pytest.approx(system.MIN_CPU_WINDOW_S)


async def test_the_first_page_waits_for_no_chart_script(settings: Settings) -> None:
    """ECharts is the page's largest script: the history chart is added once the window is live."""
    async with simulate(settings) as harness:
        client = await harness.new_user().open('/')
        page = (await harness.http().get('/')).text
        assert 'echart.js' not in page  # the chart's component script (the import map names every library)
        assert any(type(e).__name__ == 'EChart' for e in client.elements.values()), 'live: the chart is there'
