"""Smoke test of the native window: pywebview's Qt backend under Xvfb."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .helpers.browser import STRICT, wait_for
from .helpers.server import AppServer

pytestmark = [
    pytest.mark.native,
    pytest.mark.skipif(shutil.which('Xvfb') is None and not STRICT, reason='needs Xvfb (Debian: apt-get install xvfb; .ci/run does)'),
]


@pytest.fixture
def display() -> Iterator[str]:
    number = next(n for n in range(90, 200) if not Path(f'/tmp/.X11-unix/X{n}').exists()
                  and not Path(f'/tmp/.X{n}-lock').exists())
    xvfb = subprocess.Popen(['Xvfb', f':{number}', '-screen', '0', '1400x1000x24', '-nolisten', 'tcp'],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not Path(f'/tmp/.X11-unix/X{number}').exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f':{number}'
    xvfb.terminate()
    xvfb.wait()


def close_window(display: str, title: str) -> bool:
    """Ask the window to close as a window manager's close button does (WM_DELETE_WINDOW)."""
    from Xlib import X, protocol  # pylint: disable=import-outside-toplevel
    from Xlib import display as xdisplay

    connection = xdisplay.Display(display)
    try:
        delete = connection.intern_atom('WM_DELETE_WINDOW')
        protocols = connection.intern_atom('WM_PROTOCOLS')
        pending = [connection.screen().root]
        while pending:
            window = pending.pop()
            name = window.get_wm_name()
            if isinstance(name, bytes):
                name = name.decode(errors='replace')
            if name and title in name:
                event = protocol.event.ClientMessage(window=window, client_type=protocols,
                                                     data=(32, [delete, X.CurrentTime, 0, 0, 0]))
                window.send_event(event)
                connection.flush()
                return True
            pending.extend(window.query_tree().children)
        return False
    finally:
        connection.close()


def close_and_wait(process: subprocess.Popen, display: str, title: str = 'J.A.R.V.I.S.', attempts: int = 3) -> int:
    """Close the window and wait for the app to exit. Qt under Xvfb now and then leaves a
    WM_DELETE_WINDOW unanswered; a user clicks the close button again, and so does this."""
    for attempt in range(attempts):
        if not close_window(display, title):
            assert attempt > 0, 'no window with the app title'
            break  # the window is gone: the app is on its way out
        try:
            return process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            continue
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        raise AssertionError(f'the app did not exit after {attempts} close requests') from None


class NativeApp(AppServer):
    def command(self) -> list[str]:  # no --no-open: the native window, on a port we choose
        return [*super().command()[:3], '--port', str(self.port), '--data-dir', str(self.data_dir),
                '--no-default-model']


def test_native_window_opens_loads_the_page_and_closes_cleanly(tmp_path: Path, display: str) -> None:
    env = {'DISPLAY': display}
    env.pop('WAYLAND_DISPLAY', None)
    app = NativeApp(tmp_path / 'data', env=env)
    assert app.command()[1:3] == ['-m', 'jarvis'] and '--no-open' not in app.command()
    os.environ.pop('WAYLAND_DISPLAY', None)
    app.start(timeout=90)
    try:
        # the page in the window connected its socket: the hub counts it as a viewer
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if httpx.get(app.url + '/api/hub/stats').json()['viewers'] >= 1:
                break
            time.sleep(0.25)
        assert httpx.get(app.url + '/api/hub/stats').json()['viewers'] >= 1, app.output()
        assert 'no native window' not in app.output()
        addresses = [line for line in app.output().splitlines() if 'J.A.R.V.I.S. is at' in line]
        assert addresses == [f'jarvis: J.A.R.V.I.S. is at http://127.0.0.1:{app.port}/'], app.output()
        # Xvfb alone has no tray: the app says so once, and closing the window quits (below)
        assert 'no tray icon (the desktop has no system tray): closing the window quits the app' in app.output()
        assert not [line for line in app.output().splitlines() if line.startswith('js:') or 'qt.' in line], \
            'Qt and its Chromium stay quiet'

        # a second start (a second click on the icon) brings this window to the front and exits 0
        second = subprocess.run([sys.executable, '-m', 'jarvis', '--data-dir', str(app.data_dir), '--no-default-model'],
                                capture_output=True, text=True, timeout=60, env=app.environment(), check=False)
        assert second.returncode == 0, second.stderr
        assert 'its window is in front now' in second.stderr
        wait_for(lambda: httpx.get(app.url + '/api/hub/stats').json()['visible'] == 1, timeout=30,
                 message='the window in front is visible')
        screenshot = tmp_path / 'native-window.png'
        if shutil.which('import'):
            subprocess.run(['import', '-display', display, '-window', 'root', str(screenshot)], check=False)

        assert app.process is not None
        assert close_and_wait(app.process, display) == 0, app.output()
        assert 'Traceback' not in app.output(), app.output()
    finally:
        app.stop()
