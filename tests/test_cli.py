"""The jarvis command: help, the browser fallback without a display, and its flags."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

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
        assert 'no display' in lines[0] and f'http://127.0.0.1:{app.port}/' in lines[0]
        assert httpx.get(app.url + '/').status_code == 200


def test_sigterm_stops_the_app_cleanly_with_exit_code_0(tmp_path: Path) -> None:
    app = AppServer(tmp_path / 'data').start()
    assert app.stop() == 0, app.output()
    assert 'Traceback' not in app.output()
    assert not (tmp_path / 'data' / 'jarvis.db-wal').exists(), 'the database was closed'
