"""Closing the native window hides it to the tray (a preference) where a tray icon runs; everywhere else,
and whenever the app itself quits, closing quits. Under Xvfb, with trayer as the tray host, the real app in
its own process; the window is closed as a window manager closes it (WM_DELETE_WINDOW, what its close button
and Alt+F4 send) and the tray icon clicked with the X server's test extension."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By

from jarvis.close_guard import CLOSED_TO_TRAY, CloseGuard
from jarvis.native_window import closing_hides
from jarvis.preferences import CLOSE_TO_TRAY_KEY
from jarvis.storage import SettingsStore, open_database

from .helpers.browser import STRICT, needs_chromium, wait_for
from .helpers.display import (
    TRAYER,
    XVFB,
    click_tray_icon,
    send_close,
    tray_host,
    virtual_display,
    window_exists,
    window_is_shown,
)
from .helpers.server import AppServer, free_port

TITLE = 'J.A.R.V.I.S.'
needs_xvfb = pytest.mark.skipif(XVFB is None and not STRICT,
                                reason='needs Xvfb (Debian: apt-get install xvfb; .ci/run does)')
needs_trayer = pytest.mark.skipif(TRAYER is None and not STRICT,
                                  reason='needs a tray host (Debian: apt-get install trayer; .ci/run does)')
HIDES = 'closing the window hides it to the tray'
QUITS = 'closing the window quits the app'


# --- the decision ------------------------------------------------------------------------------

def test_closing_hides_only_where_chosen_and_a_tray_icon_runs() -> None:
    assert closing_hides(close_to_tray=True, tray_running=True)
    assert not closing_hides(close_to_tray=False, tray_running=True)
    assert not closing_hides(close_to_tray=True, tray_running=False), 'nothing could bring the window back'
    assert not closing_hides(close_to_tray=False, tray_running=False)


def test_the_window_process_cancels_a_close_only_while_closing_hides() -> None:
    """pywebview's own window object and closing event (no GUI runs here): the guard's handler returns
    False, which makes pywebview cancel the close, only while closing hides, and then tells the app. (The
    app's own close, which always goes through, needs a running window: the last test below.)"""
    import webview  # pylint: disable=import-outside-toplevel

    guard = CloseGuard()
    window = webview.create_window('guarded', html='<p>guarded</p>')
    try:
        told: list[str] = []
        guard.attach(window, told.append)
        assert window.events.closing.set() is False, 'closes (the app quits) until closing hides'
        assert told == []
        guard.hide_on_close(True)
        assert guard.hides
        assert window.events.closing.set() is True, 'pywebview cancels the close'
        assert told == [CLOSED_TO_TRAY], 'and the app is told, to hide the window'
        guard.hide_on_close(False)
        assert window.events.closing.set() is False
        assert told == [CLOSED_TO_TRAY]
    finally:
        webview.windows.remove(window)


# --- the real app ------------------------------------------------------------------------------

class NativeApp(AppServer):
    def command(self) -> list[str]:  # the native window, on a port we choose
        return [sys.executable, '-m', 'jarvis', '--port', str(self.port), '--data-dir', str(self.data_dir),
                '--no-default-model']


@pytest.fixture
def display() -> Iterator[str]:
    with virtual_display() as name:
        yield name


def stats(app: AppServer) -> dict:
    return httpx.get(app.url + '/api/hub/stats', timeout=10).json()


def start_native(data_dir: Path, display: str, *, close_to_tray: bool | None = None) -> NativeApp:
    """The app with its native window in front; ``close_to_tray`` chosen in an earlier run, if given."""
    if close_to_tray is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        store = SettingsStore(open_database(data_dir / 'jarvis.db').db)
        store.set_blocking(CLOSE_TO_TRAY_KEY, close_to_tray)
    app = NativeApp(data_dir, env={'DISPLAY': display})
    os.environ.pop('WAYLAND_DISPLAY', None)
    app.start(timeout=90)
    wait_for(lambda: stats(app)['visible'] == 1, timeout=90, message='the native window never showed its page')
    return app


def close_until(app: NativeApp, display: str, done: Callable[[], object], message: str, attempts: int = 3) -> None:
    """Close the window as a window manager does until ``done()``. Qt under Xvfb now and then leaves a
    WM_DELETE_WINDOW unanswered; a user clicks the close button again, and so does this."""
    for _ in range(attempts):
        assert send_close(display, TITLE), 'no window with the app title'
        try:
            wait_for(done, timeout=15)
            return
        except TimeoutError:
            continue
    raise AssertionError(f'{message}:\n{app.output()}')


def exited(app: NativeApp) -> bool:
    assert app.process is not None
    return app.process.poll() is not None


def choose_close_to_tray(browser, app: NativeApp, enabled: bool) -> None:  # type: ignore[no-untyped-def]
    """Flip the switch in a browser window of the same app (the native window's page shows the same one),
    then leave that page, so that the native window is the only one."""
    browser.get(app.url + '/')
    switch = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, '[data-testid="close-to-tray"]'), timeout=30)
    assert switch.get_attribute('aria-checked') == str(not enabled).lower()
    switch.click()
    wait_for(lambda: (HIDES if enabled else QUITS) in app.output(), timeout=15,
             message=f'the window process was not told: {app.output()}')
    browser.get('about:blank')
    wait_for(lambda: stats(app)['viewers'] == 1, message='the browser page is gone')


@pytest.mark.native
@needs_xvfb
@needs_trayer
@needs_chromium
def test_closing_hides_the_window_to_the_tray_when_chosen_and_the_tray_brings_it_back(
        tmp_path: Path, display: str, browser) -> None:  # type: ignore[no-untyped-def]
    with tray_host(display):
        app = start_native(tmp_path / 'data', display)
        try:
            assert 'no tray icon' not in app.output()
            choose_close_to_tray(browser, app, True)

            close_until(app, display, lambda: stats(app)['visible'] == 0, 'closing did not hide the window')
            assert not window_is_shown(display, TITLE), 'the window is off the screen'
            time.sleep(3)  # had the close gone through, the app would be gone by now
            assert not exited(app), f'closing quit the app:\n{app.output()}'
            assert stats(app)['viewers'] == 1, 'its page stays connected, told it is hidden (no per-tick updates)'

            wait_for(lambda: click_tray_icon(display, 'jarvis-desktop'), timeout=30, message='no tray icon to click')
            wait_for(lambda: stats(app)['visible'] == 1, timeout=30, message='the tray icon did not show the window')
            assert window_is_shown(display, TITLE)

            choose_close_to_tray(browser, app, False)  # closing quits again, as before
            close_until(app, display, lambda: exited(app), 'closing did not quit the app')
            assert app.process is not None and app.process.returncode == 0, app.output()
            assert 'Traceback' not in app.output(), app.output()
        finally:
            app.stop()


@pytest.mark.native
@needs_xvfb
@needs_trayer
def test_the_app_quits_on_sigterm_while_its_window_is_hidden_to_the_tray(tmp_path: Path, display: str) -> None:
    with tray_host(display):
        app = start_native(tmp_path / 'data', display, close_to_tray=True)  # chosen in an earlier run
        try:
            wait_for(lambda: HIDES in app.output(), timeout=30, message=app.output())
            close_until(app, display, lambda: stats(app)['visible'] == 0, 'closing did not hide the window')
            assert not exited(app)
        finally:
            code = app.stop(timeout=30)  # SIGTERM, as the session's end or `kill` sends it
        assert code == 0, app.output()
        assert 'Traceback' not in app.output(), app.output()
        wait_for(lambda: not window_exists(display, TITLE), timeout=15, message='the window stays after the app')


@pytest.mark.native
@needs_xvfb
def test_without_a_tray_closing_quits_even_when_close_to_tray_was_chosen(tmp_path: Path, display: str) -> None:
    app = start_native(tmp_path / 'data', display, close_to_tray=True)
    try:
        assert 'no tray icon (the desktop has no system tray): closing the window quits the app' in app.output()
        assert HIDES not in app.output()
        close_until(app, display, lambda: exited(app), 'closing did not quit the app')
        assert app.process is not None and app.process.returncode == 0, app.output()
    finally:
        app.stop()


@pytest.mark.native
@needs_xvfb
def test_the_apps_own_quit_closes_a_window_whose_close_would_hide_it(tmp_path: Path, display: str) -> None:
    """The tray's Quit (``framework.quit_app``: NiceGUI destroys the window, then stops the server) is never
    turned into hiding: a bare native window with the guard on, closing hides it; quitting ends it."""
    port = free_port()
    script = Path(__file__).parent / 'helpers' / 'guarded_window.py'
    log = tmp_path / 'guarded.log'
    env = {**os.environ, 'DISPLAY': display, 'PYTHONUNBUFFERED': '1'}
    env.pop('PYTEST_CURRENT_TEST', None)  # NiceGUI would take the program for its own test server
    if os.geteuid() == 0:  # Qt's Chromium refuses to run as root with its sandbox (jarvis.cli says so too)
        env['QTWEBENGINE_CHROMIUM_FLAGS'] = '--no-sandbox'
    with open(log, 'wb') as output:
        process = subprocess.Popen([sys.executable, str(script), str(port)], stdout=output, stderr=subprocess.STDOUT,
                                   env=env)
    url = f'http://127.0.0.1:{port}'
    try:
        try:
            wait_for(lambda: process.poll() is not None or window_is_shown(display, 'Guarded window'), timeout=90)
        except TimeoutError:
            pass
        assert process.poll() is None and window_is_shown(display, 'Guarded window'), \
            f'no window: {log.read_text(errors="replace")}'
        for _ in range(3):  # Qt under Xvfb now and then leaves a WM_DELETE_WINDOW unanswered
            assert send_close(display, 'Guarded window')
            try:
                wait_for(lambda: httpx.get(url + '/closes-hidden').json()['count'] >= 1, timeout=15)
                break
            except TimeoutError:
                continue
        wait_for(lambda: not window_is_shown(display, 'Guarded window'), timeout=15, message='the window stays')
        assert process.poll() is None, 'closing hid the window and the program runs on'

        httpx.post(url + '/quit', json={})
        assert process.wait(timeout=60) == 0, log.read_text(errors='replace')
        output = log.read_text(errors='replace')
        assert 'the app quits' in output and 'the window process still runs' not in output, output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
