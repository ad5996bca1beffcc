"""The ``jarvis`` command: a native window by default, the same app in a browser on request."""
from __future__ import annotations

import argparse
import importlib.util
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path

from . import __version__
from .config import DEFAULT_HOST, DEFAULT_PORT, Settings

log = logging.getLogger('jarvis')

PROBE_FLAG = '--probe-native-window'


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='jarvis',
        description='J.A.R.V.I.S. Desktop: a live system monitor, a chat with a local language model, '
                    'a model manager and plugins. Opens a native window; with --browser the same app '
                    'is served to your web browser.',
        epilog='When no native window can be opened (no display, no GUI backend), jarvis says why '
               'and serves in browser mode instead. Data (history, settings, models) lives in '
               'the user data directory unless --data-dir or JARVIS_DATA_DIR says otherwise.',
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument('--browser', action='store_true',
                      help=f'serve the app to a browser (http://{DEFAULT_HOST}:{DEFAULT_PORT}) and open it')
    mode.add_argument('--no-open', action='store_true',
                      help='serve in browser mode without opening a browser or a window (headless)')
    parser.add_argument('--host', default=DEFAULT_HOST,
                        help=f'interface to serve on (default {DEFAULT_HOST}; any other needs an access token)')
    parser.add_argument('--port', type=int, default=None,
                        help=f'port to serve on (browser mode: default {DEFAULT_PORT}; the native window '
                             'picks a free one unless told)')
    parser.add_argument('--token', default=os.environ.get('JARVIS_TOKEN'),
                        help='access token that every page and /api/ route requires (default: generated '
                             'and printed when --host is not a loopback address; env JARVIS_TOKEN)')
    parser.add_argument('--allow-origin', action='append', default=[], metavar='ORIGIN',
                        help='let web pages from this origin (like http://localhost:5173) use the app besides its '
                             'own pages; repeatable (env JARVIS_ALLOW_ORIGINS, separated by commas)')
    parser.add_argument('--allow-host', action='append', default=[], metavar='NAME',
                        help='answer to this host name too, e.g. one your network or a proxy gives this machine '
                             '(by default only localhost, loopback addresses and the --host address); repeatable '
                             '(env JARVIS_ALLOW_HOSTS)')
    parser.add_argument('--insecure', action='store_true',
                        help='serve on a non-loopback host without an access token (not recommended)')
    parser.add_argument('--data-dir', type=Path, default=None,
                        help='where history, settings and models are kept (env JARVIS_DATA_DIR)')
    parser.add_argument('--no-default-model', action='store_true',
                        help='load no model by itself: none waits for the first message (neither the last one used '
                             'nor, installing it, the default Gemma model) until one is loaded in Models')
    parser.add_argument('--log-level', default='INFO', choices=['DEBUG', 'INFO', 'WARNING', 'ERROR'])
    parser.add_argument('--version', action='version', version=f'J.A.R.V.I.S. Desktop {__version__}')
    parser.add_argument(PROBE_FLAG, action='store_true', help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    multiprocessing.freeze_support()
    args = build_parser().parse_args(argv)
    if args.probe_native_window:
        return _probe_native_window()
    logging.basicConfig(level=args.log_level, format='%(asctime)s %(levelname)s %(name)s: %(message)s')

    from .security import (  # pylint: disable=import-outside-toplevel
        FlagError,
        encode_token,
        is_loopback,
        parse_allowed_host,
        parse_allowed_origin,
        resolve_access,
        split_list,
    )
    try:
        token = resolve_access(args.host, args.token, insecure=args.insecure)
        origins = [*split_list(os.environ.get('JARVIS_ALLOW_ORIGINS')), *args.allow_origin]
        hosts = [*split_list(os.environ.get('JARVIS_ALLOW_HOSTS')), *args.allow_host]
        allowed_origins = tuple(dict.fromkeys(parse_allowed_origin(origin) for origin in origins))
        allowed_hosts = tuple(dict.fromkeys(parse_allowed_host(host) for host in hosts))
    except FlagError as error:
        print(f'jarvis: {error}', file=sys.stderr)
        return 2

    native = not (args.browser or args.no_open)
    settings = Settings(host=args.host, port=args.port or DEFAULT_PORT, access_token=token,
                        allowed_origins=allowed_origins, allowed_hosts=allowed_hosts,
                        load_default_model=not args.no_default_model)
    if args.data_dir is not None:
        settings = settings.with_changes(data_dir=args.data_dir.expanduser().resolve())

    if native and (reason := native_window_unavailable()):
        print(f'jarvis: no native window ({reason}); serving in browser mode at '
              f'http://{_display_host(args.host)}:{settings.port}/ instead.', file=sys.stderr)
        native = False
    if native:
        _prepare_qt()
    if token and not is_loopback(args.host):
        # percent-encoded in the address, so that a token with spaces, & or # pastes as one piece
        print(f'jarvis: access token: {token}\n'
              f'jarvis: open http://{_display_host(args.host)}:{settings.port}/?token={encode_token(token)}',
              file=sys.stderr)

    # NiceGUI keeps app.storage in ./.nicegui (the working directory, e.g. a bundle's folder) unless
    # NICEGUI_STORAGE_PATH says otherwise; it reads the variable once, when nicegui is imported (next line)
    os.environ.setdefault('NICEGUI_STORAGE_PATH', str(settings.data_dir / 'nicegui'))
    from .app import run  # pylint: disable=import-outside-toplevel  # keeps --help fast
    from .services import StartupError  # pylint: disable=import-outside-toplevel
    # uvicorn shuts down cleanly on SIGTERM and then raises the signal again; this handler turns
    # that into a normal exit (code 0), as closing the window or Ctrl+C does
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        return run(settings, native=native, show=not args.no_open, native_port=args.port)
    except StartupError as error:  # the port, the data folder or the database cannot be used: say what to do
        log.debug('the start failed', exc_info=True)
        print(f'jarvis: {error}', file=sys.stderr)
        return 1
    except Exception as error:  # anything else that stops the start: one line here, the details at DEBUG
        log.debug('the start failed', exc_info=True)
        print(f'jarvis: J.A.R.V.I.S. could not start ({type(error).__name__}: {error}); start it with '
              f'--log-level DEBUG to see where.', file=sys.stderr)
        return 1


def native_window_unavailable() -> str | None:
    """Why a native window cannot open here, or None when it can."""
    if importlib.util.find_spec('webview') is None:
        return 'pywebview is not installed'
    if sys.platform.startswith('linux'):
        if not (os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY')):
            return 'no display: neither DISPLAY nor WAYLAND_DISPLAY is set'
        if importlib.util.find_spec('PyQt6') is None and importlib.util.find_spec('gi') is None:
            return 'no GUI backend for pywebview: install pywebview[qt]'
        if importlib.util.find_spec('PyQt6') is not None:
            return _run_probe()
    return None


def _run_probe() -> str | None:
    """Start Qt once in a child process: a missing system library shows there, not as a crash here."""
    command = [sys.executable, PROBE_FLAG] if getattr(sys, 'frozen', False) \
        else [sys.executable, '-m', 'jarvis', PROBE_FLAG]
    env = dict(os.environ)
    _prepare_qt(env)
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f'the GUI backend did not start ({error})'
    if result.returncode != 0:
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        detail = next((line for line in lines if 'qt.qpa' in line or 'Error' in line or 'error' in line),
                      lines[-1] if lines else f'exit code {result.returncode}')
        return f'the Qt GUI backend cannot start: {detail.strip()[:200]}'
    return None


def _probe_native_window() -> int:
    from PyQt6 import QtWebEngineWidgets  # noqa: F401  # pylint: disable=import-outside-toplevel,unused-import
    from PyQt6.QtWidgets import QApplication  # pylint: disable=import-outside-toplevel
    application = QApplication([sys.argv[0]])
    application.quit()
    return 0


def _prepare_qt(env: dict[str, str] | os._Environ = os.environ) -> None:
    # Qt's Chromium refuses to run as root without its sandbox switched off.
    if hasattr(os, 'geteuid') and os.geteuid() == 0:
        flags = env.get('QTWEBENGINE_CHROMIUM_FLAGS', '')
        if '--no-sandbox' not in flags:
            env['QTWEBENGINE_CHROMIUM_FLAGS'] = f'{flags} --no-sandbox'.strip()


def _display_host(host: str) -> str:
    """The host as an address bar takes it: a wildcard bind as loopback, IPv6 in brackets."""
    if host in ('0.0.0.0', ''):
        return '127.0.0.1'
    if host == '::':
        return '[::1]'
    return f'[{host}]' if ':' in host and not host.startswith('[') else host


if __name__ == '__main__':
    sys.exit(main())
