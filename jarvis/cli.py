"""The ``jarvis`` command: a native window by default, the same app in a browser on request."""
from __future__ import annotations

import argparse
import importlib.util
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .addresses import address_line, app_url, insecure_warning
from .close_guard import CloseGuard
from .config import DEFAULT_HOST, DEFAULT_PORT, Settings
from .console import say
from .single_instance import AlreadyRunning, InstanceInfo, InstanceLock, Mode, hand_over

if TYPE_CHECKING:
    from .window_process import WindowProcess

log = logging.getLogger('jarvis')

PROBE_FLAG = '--probe-native-window'
WINDOW_TITLE = 'J.A.R.V.I.S.'
# Qt's warnings and the page's console are not the app's lines (a quiet console); a QT_LOGGING_RULES the
# user set wins, and --log-level DEBUG shows them
QUIET_QT_RULES = '*.debug=false;*.info=false;*.warning=false;js=false;qt.qpa.*=false'
_instance_lock: InstanceLock | None = None


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
    desktop = parser.add_argument_group('desktop integration (Linux, XDG)')
    desktop.add_argument('--install-desktop-entry', action='store_true',
                         help='add J.A.R.V.I.S. with its icon to the desktop\'s applications ($XDG_DATA_HOME), then exit')
    desktop.add_argument('--uninstall-desktop-entry', action='store_true',
                         help='remove that entry, its icon and the autostart entry, then exit')
    desktop.add_argument('--autostart', choices=['on', 'off'],
                         help='start J.A.R.V.I.S. with the desktop session or not ($XDG_CONFIG_HOME/autostart; '
                              'off unless turned on), then exit')
    parser.add_argument('--version', action='version', version=f'J.A.R.V.I.S. Desktop {__version__}')
    parser.add_argument(PROBE_FLAG, action='store_true', help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    multiprocessing.freeze_support()
    args = build_parser().parse_args(argv)
    if args.probe_native_window:
        return _probe_native_window()
    if args.install_desktop_entry or args.uninstall_desktop_entry or args.autostart:
        return _desktop_integration(args)
    logging.basicConfig(level=args.log_level, format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    if args.log_level != 'DEBUG':  # a quiet console: libraries' lines about each request are not the app's
        for chatty in ('httpx', 'httpcore'):
            logging.getLogger(chatty).setLevel(logging.WARNING)

    from .security import (  # pylint: disable=import-outside-toplevel
        FlagError,
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
        say(f'jarvis: {error}')
        return 2

    native = not (args.browser or args.no_open)
    settings = Settings(host=args.host, port=args.port or DEFAULT_PORT, access_token=token,
                        allowed_origins=allowed_origins, allowed_hosts=allowed_hosts,
                        load_default_model=not args.no_default_model)
    if args.data_dir is not None:
        settings = settings.with_changes(data_dir=args.data_dir.expanduser().resolve())

    # one app per data folder: a second start shows the running one and ends here
    global _instance_lock  # pylint: disable=global-statement  # held (open) until the process ends
    _instance_lock = InstanceLock(settings.data_dir)
    try:
        _instance_lock.acquire()
    except AlreadyRunning as running:
        return _hand_over(running, settings, open_browser=not args.no_open)
    except OSError as error:  # the data folder cannot be written: the start below says so in its words
        log.debug('no instance lock in %s: %s', settings.data_dir, error)
        _instance_lock = None

    # the native window's process starts first: it opens the window (pywebview and Qt only) while this
    # process imports the app, and loads the page as soon as the server answers
    window: WindowProcess | None = None
    close_guard: CloseGuard | None = None
    port = args.port or settings.port
    if native:
        if reason := native_window_unavailable():
            say(f'jarvis: no native window ({reason}); serving in browser mode instead.')
            native = False
        else:
            port = args.port or _free_port(args.host)
            close_guard = CloseGuard()  # the window's process starts with it: closing can hide the window
            window = _open_window(args.host, port, quiet=args.log_level != 'DEBUG', close_guard=close_guard)
    # NiceGUI keeps app.storage in ./.nicegui (the working directory, e.g. a bundle's folder) unless
    # NICEGUI_STORAGE_PATH says otherwise; it reads the variable once, when nicegui is imported (next line)
    os.environ.setdefault('NICEGUI_STORAGE_PATH', str(settings.data_dir / 'nicegui'))
    from .app import run  # pylint: disable=import-outside-toplevel  # keeps --help fast
    from .services import StartupError  # pylint: disable=import-outside-toplevel
    if window is not None and (reason := window.result()):
        say(f'jarvis: no native window ({reason}); serving in browser mode instead.')
        native, window, close_guard = False, None, None
        port = args.port or settings.port
    settings = settings.with_changes(port=port)
    if _instance_lock is not None:
        mode: Mode = 'native' if native else 'headless' if args.no_open else 'browser'
        try:
            _instance_lock.record(InstanceInfo(pid=os.getpid(), host=args.host, port=port, mode=mode, token=token))
        except OSError as error:  # a full disk: the lock still holds; the start says what is wrong below
            log.debug('could not record this instance in %s: %s', _instance_lock.path, error)

    def announce() -> None:
        """What the user needs once the app has started: the address (every mode)."""
        if args.insecure and not is_loopback(args.host):
            say(insecure_warning(args.host, port))
        if token and not is_loopback(args.host):
            say(f'jarvis: access token: {token}')  # for scripts (X-Jarvis-Token)
        say(address_line(args.host, port, token if not is_loopback(args.host) else None))

    # uvicorn shuts down cleanly on SIGTERM and then raises the signal again; this handler turns
    # that into a normal exit (code 0), as closing the window or Ctrl+C does
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        return run(settings, native=native, show=not args.no_open, native_port=port, announce=announce,
                   window=window, close_guard=close_guard)
    except StartupError as error:  # the port, the data folder or the database cannot be used: say what to do
        log.debug('the start failed', exc_info=True)
        say(f'jarvis: {error}')
        return 1
    except Exception as error:  # anything else that stops the start: one line here, the details at DEBUG
        log.debug('the start failed', exc_info=True)
        say(f'jarvis: J.A.R.V.I.S. could not start ({type(error).__name__}: {error}); start it with '
            f'--log-level DEBUG to see where.')
        return 1
    finally:
        if _instance_lock is not None:  # a clean exit leaves an empty lock (the OS frees it on any exit)
            _instance_lock.release()


def _desktop_integration(args: argparse.Namespace) -> int:
    from . import desktop_entry  # pylint: disable=import-outside-toplevel
    if not sys.platform.startswith('linux'):
        say('jarvis: desktop entries and autostart are for Linux desktops (XDG) only.')
        return 2
    try:
        if args.uninstall_desktop_entry:
            removed = desktop_entry.uninstall()
            print('jarvis: removed ' + (', '.join(map(str, removed)) if removed else 'nothing (none was installed)'))
        if args.install_desktop_entry:
            written = desktop_entry.install()
            print('jarvis: installed ' + ', '.join(map(str, written)))
        if args.autostart:
            path = desktop_entry.set_autostart(args.autostart == 'on')
            print(f'jarvis: J.A.R.V.I.S. starts with the session ({path})' if args.autostart == 'on'
                  else 'jarvis: J.A.R.V.I.S. no longer starts with the session')
    except OSError as error:
        say(f'jarvis: could not write the desktop entry ({error.strerror or error}: {error.filename}).')
        return 1
    return 0


def native_window_unavailable() -> str | None:
    """Why a native window cannot open here, as far as a quick look tells (no display, no GUI backend), or
    None. Whether Qt really starts, the window's own process finds out (``WindowProcess.result``)."""
    if importlib.util.find_spec('webview') is None:
        return 'pywebview is not installed'
    if sys.platform.startswith('linux'):
        if not (os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY')):
            return 'no display: neither DISPLAY nor WAYLAND_DISPLAY is set'
        if importlib.util.find_spec('PyQt6') is None and importlib.util.find_spec('gi') is None:
            return 'no GUI backend for pywebview: install pywebview[qt]'
    return None


def _open_window(host: str, port: int, *, quiet: bool, close_guard: CloseGuard | None = None) -> WindowProcess:
    """Start the native window's process (it shows the app once the server at ``port`` answers)."""
    from .window_process import WindowProcess, WindowSpec  # pylint: disable=import-outside-toplevel
    qt = sys.platform.startswith('linux') and importlib.util.find_spec('PyQt6') is not None
    rules = None
    if qt:
        _prepare_qt(quiet=quiet)
        # Qt's warnings are quieted once the window is up: until then they say why Qt could not start
        rules = QUIET_QT_RULES if quiet and 'QT_LOGGING_RULES' not in os.environ else None
    local = {'': '127.0.0.1', '0.0.0.0': '127.0.0.1', '::': '[::1]'}.get(host, f'[{host}]' if ':' in host else host)
    return WindowProcess(WindowSpec(
        url=f'http://{local}:{port}/', title=WINDOW_TITLE, size=(1280, 860), min_size=(720, 560),
        gui='qt' if qt else None, quiet_rules=rules), on_window=close_guard.attach if close_guard else None)


def _probe_native_window() -> int:
    from PyQt6 import QtWebEngineWidgets  # noqa: F401  # pylint: disable=import-outside-toplevel,unused-import
    from PyQt6.QtWidgets import QApplication  # pylint: disable=import-outside-toplevel
    application = QApplication([sys.argv[0]])
    application.quit()
    return 0


def _prepare_qt(env: dict[str, str] | os._Environ = os.environ, *, quiet: bool = True) -> None:
    flags = env.get('QTWEBENGINE_CHROMIUM_FLAGS', '')
    # Qt's Chromium refuses to run as root without its sandbox switched off.
    if hasattr(os, 'geteuid') and os.geteuid() == 0 and '--no-sandbox' not in flags:
        flags = f'{flags} --no-sandbox'
    if quiet and '--log-level' not in flags:
        # a quiet console: Chromium's own errors (Vulkan, D-Bus, GPU) are not the app's; --log-level DEBUG
        # shows them again. A value the user set wins. (Qt's warnings: QUIET_QT_RULES.)
        flags = f'{flags} --log-level=3'
    env['QTWEBENGINE_CHROMIUM_FLAGS'] = flags.strip()


def _free_port(host: str) -> int:
    """A port the native window's server can listen on (the OS picks one that is free now)."""
    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host if host not in ('', '0.0.0.0', '::') else ('::' if ':' in host else '0.0.0.0'), 0))
        return int(sock.getsockname()[1])


def _hand_over(running: AlreadyRunning, settings: Settings, *, open_browser: bool) -> int:
    """Show the app that already uses this data folder, and end this start (exit code 0)."""
    info = running.info or _wait_for_record(settings)
    answer = hand_over(info) if info is not None else None
    if info is None or answer is None:
        who = f' (pid {info.pid})' if info is not None else ''
        say(f'jarvis: another J.A.R.V.I.S.{who} uses {settings.data_dir} but does not answer: close it, or '
            f'start with --data-dir and another folder.')
        return 1
    url = app_url(info.host, info.port, info.token)
    if info.mode == 'native':
        say(f'jarvis: J.A.R.V.I.S. is already running (pid {info.pid}); its window is in front now.')
    elif info.mode == 'browser' and open_browser:
        import webbrowser  # pylint: disable=import-outside-toplevel
        webbrowser.open(url)
        say(f'jarvis: J.A.R.V.I.S. is already running (pid {info.pid}); opened it in the browser.')
    else:
        say(f'jarvis: J.A.R.V.I.S. is already running (pid {info.pid}).')
    say(f'jarvis: J.A.R.V.I.S. is at {url}')
    return 0


def _wait_for_record(settings: Settings, timeout: float = 30.0) -> InstanceInfo | None:
    """The running app takes its lock first and writes where it serves a moment later."""
    from .single_instance import LOCK_NAME, read_info  # pylint: disable=import-outside-toplevel
    deadline = time.monotonic() + timeout
    path = settings.data_dir / LOCK_NAME
    while time.monotonic() < deadline:
        try:
            if (info := read_info(path.read_text(encoding='utf-8'))) is not None:
                return info
        except OSError:
            pass
        probe = InstanceLock(settings.data_dir)
        try:
            probe.acquire()
        except AlreadyRunning:
            time.sleep(0.2)
            continue
        probe.release()  # nobody holds it any more
        return None
    return None


if __name__ == '__main__':
    sys.exit(main())
