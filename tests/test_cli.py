"""The jarvis command: help, the browser fallback without a display, and its flags."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from jarvis.addresses import reachable_address
from jarvis.cli import build_parser

from .helpers.server import AppServer


def test_help_explains_every_mode() -> None:
    output = subprocess.run([sys.executable, '-m', 'jarvis', '--help'], capture_output=True, text=True,
                            check=True, timeout=60).stdout
    for flag in ('--browser', '--no-open', '--host', '--port', '--token', '--insecure', '--data-dir',
                 '--allow-origin', '--allow-host'):
        assert flag in output
    assert 'native window' in output


def test_parser_defaults() -> None:
    args = build_parser().parse_args([])
    assert (args.browser, args.no_open, args.host, args.port) == (False, False, '127.0.0.1', None)
    assert build_parser().parse_args(['--browser']).browser


class NoDisplayApp(AppServer):
    def command(self) -> list[str]:  # plain `jarvis` (native) with no display to open a window on
        return [sys.executable, '-m', 'jarvis', '--port', str(self.port), '--data-dir', str(self.data_dir),
                '--no-default-model']


def test_without_a_display_it_says_why_and_serves_in_the_browser(tmp_path: Path) -> None:
    # BROWSER=true: the "default browser" is a no-op command, so nothing opens during the test
    app = NoDisplayApp(tmp_path / 'data', env={'DISPLAY': '', 'WAYLAND_DISPLAY': '', 'BROWSER': 'true'})
    with app:
        lines = [line for line in app.output().splitlines() if 'no native window' in line]
        assert len(lines) == 1, app.output()
        assert 'no display' in lines[0] and 'browser mode' in lines[0]
        assert address_lines(app) == [f'jarvis: J.A.R.V.I.S. is at http://127.0.0.1:{app.port}/'], app.output()
        assert httpx.get(app.url + '/').status_code == 200


def test_sigterm_stops_the_app_cleanly_with_exit_code_0(tmp_path: Path) -> None:
    app = AppServer(tmp_path / 'data').start()
    assert app.stop() == 0, app.output()
    assert 'Traceback' not in app.output()
    assert not (tmp_path / 'data' / 'jarvis.db-wal').exists(), 'the database was closed'


def address_lines(app: AppServer) -> list[str]:
    return [line for line in app.output().splitlines() if 'J.A.R.V.I.S. is at' in line]


def test_headless_prints_the_address_once(tmp_path: Path) -> None:
    with AppServer(tmp_path / 'data') as app:  # --no-open
        assert address_lines(app) == [f'jarvis: J.A.R.V.I.S. is at http://127.0.0.1:{app.port}/'], app.output()
        assert 'warning' not in app.output().lower()


class BrowserApp(AppServer):
    def command(self) -> list[str]:
        return [sys.executable, '-m', 'jarvis', '--browser', '--port', str(self.port), '--data-dir',
                str(self.data_dir), '--no-default-model']


def test_browser_mode_prints_the_address_once(tmp_path: Path) -> None:
    with BrowserApp(tmp_path / 'data', env={'BROWSER': 'true'}) as app:  # the "browser" opens nothing
        assert address_lines(app) == [f'jarvis: J.A.R.V.I.S. is at http://127.0.0.1:{app.port}/'], app.output()


def test_a_network_bind_prints_the_address_other_machines_reach_with_the_token(tmp_path: Path) -> None:
    with AppServer(tmp_path / 'data', host='0.0.0.0', args=['--no-default-model', '--token', 'a b&c']) as app:
        expected_host = reachable_address() or '127.0.0.1'  # loopback only on a machine without a network
        assert address_lines(app) == [f'jarvis: J.A.R.V.I.S. is at http://{expected_host}:{app.port}/?token=a%20b%26c'], \
            app.output()
        if expected_host != '127.0.0.1':
            answer = httpx.get(f'http://{expected_host}:{app.port}/api/hub/stats', headers={'X-Jarvis-Token': 'a b&c'})
            assert answer.status_code == 200, 'the printed address reaches the app'


def test_insecure_warns(tmp_path: Path) -> None:
    with AppServer(tmp_path / 'data', host='0.0.0.0', args=['--no-default-model', '--insecure']) as app:
        warnings = [line for line in app.output().splitlines() if 'warning' in line and '--insecure' in line]
        assert len(warnings) == 1, app.output()
        assert 'with no token' in warnings[0] and 'anyone' in warnings[0]
        assert len(address_lines(app)) == 1
