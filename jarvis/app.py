"""Wires the domain, the HTTP API and the UI onto NiceGUI's app, and runs it."""
from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from nicegui import app, ui

from . import api, exit_deadline, framework, native_window, tray
from .config import Settings
from .console import say
from .preferences import CLOSE_TO_TRAY
from .resources import asset, assets_dir
from .services import Services, StartupError
from .ui.alerts_view import alerts_page
from .ui.chat_view import chat_page
from .ui.models_view import models_page
from .ui.plugins_view import plugins_page
from .ui.shell import View, build_root
from .ui.system_view import system_page
from .web_guard import GuardPolicy, WebGuard

if TYPE_CHECKING:
    from .close_guard import CloseGuard
    from .window_process import WindowProcess

log = logging.getLogger(__name__)

TITLE = 'J.A.R.V.I.S.'
# when asked to quit, uvicorn waits this long for open requests (a hung upload, a streaming answer
# that does not stop), then cancels them; exit_deadline ends the process if anything hangs after that
GRACEFUL_SHUTDOWN_S = 2.0


def views() -> list[View]:
    return [
        View('/', 'System', 'monitor_heart', system_page),
        View('/chat', 'Chat', 'forum', chat_page),
        View('/models', 'Models', 'psychology', models_page),
        View('/plugins', 'Plugins', 'extension', plugins_page),
        View('/alerts', 'Alerts', 'notifications_active', alerts_page),
    ]


def create_app(settings: Settings) -> tuple[Services, Callable[[], None]]:
    """Build the services and register their lifecycle, the API and the assets on NiceGUI's app.

    Returns the services and the root page function for ``ui.run``. Raises ``StartupError`` when the
    data folder or the database cannot be used.
    """
    services = Services(settings)
    framework.quiet_window_timeouts()

    async def start() -> None:
        with contextlib.suppress(StartupError):  # pages and routes learn it from wait_ready; run() quits
            await services.start()

    app.on_startup(start)
    app.on_shutdown(services.stop)
    # Host, Origin, the access token, JSON bodies and the body limit, before every route and socket
    app.add_middleware(WebGuard, policy=GuardPolicy.from_settings(settings))
    api.register(app, services)
    app.add_static_files('/assets', str(assets_dir()))
    ui.add_css(asset('styles.css').read_text(encoding='utf-8'), shared=True)  # read once, for every page
    # the views' Tailwind classes, compiled ahead of time (build/tailwind.py): NiceGUI's in-browser Tailwind
    # (ui.run(tailwind=False) turns it off) would compile them on every page load, about 0.3 s of each start
    # of the native window here. In the page itself, not linked: it is styled at its first paint
    ui.add_head_html(f'<style>{asset("tailwind.css").read_text(encoding="utf-8")}</style>', shared=True)
    return services, build_root(services, views())


def run(settings: Settings, *, native: bool, show: bool, native_port: int | None = None,
        announce: Callable[[], None] | None = None, window: WindowProcess | None = None,
        close_guard: CloseGuard | None = None) -> int:
    """Serve the app until it is closed; returns the exit code. Raises ``StartupError`` (before serving)
    when the port, the data folder or the database cannot be used. ``announce`` runs once the app has
    started (it prints the address). With ``native``, ``window`` is the native window's process, started
    before the app was imported (``jarvis.window_process``), which shows the app at ``native_port``, and
    ``close_guard`` the guard it was started with (closing can hide it to the tray)."""
    port = native_port if native else settings.port
    if port is not None:  # the native window picks a free port unless told one
        _check_port(settings.host, port)
    services, root = create_app(settings)
    if announce is not None:
        async def announce_when_ready() -> None:  # a start that fails says so instead, in its one line
            with contextlib.suppress(StartupError):
                await services.wait_ready()
                announce()
        app.on_startup(announce_when_ready)
    if native:
        assert port is not None  # the command picks the native window's port
        app.on_startup(lambda: native_window.attach(services.hub, f'http://127.0.0.1:{port}',
                                                    services.assistant.new_conversation))
        app.on_startup(lambda: _start_tray(services))
        if close_guard is not None:
            guard = close_guard
            app.on_startup(lambda: _follow_close_to_tray(services, guard))
    framework.calm_server_loop()
    framework.quiet_windows()
    app.on_startup(lambda: _quit_if_start_fails(services))
    app.on_startup(lambda: _bound_quitting(services))
    app.on_shutdown(lambda: exit_deadline.arm())  # however quitting began (the window closed, a failed start)
    if native:
        assert window is not None  # the command opens the window first
        framework.adopt_native_window(window)
    ui.run(
        root,
        title=TITLE,
        host=settings.host,
        port=port,
        native=False,  # the window is this app's own process (above), not the one NiceGUI would start
        show=show and not native,
        reload=False,
        tailwind=False,  # compiled ahead of time: see create_app
        favicon=asset('icon.png'),
        show_welcome_message=False,
        uvicorn_logging_level='warning',
        # compressing every frame costs more CPU than it saves on a local connection
        ws_per_message_deflate=False,
        # Engine.IO already pings every window's socket (framework.quiet_windows): uvicorn's own WebSocket
        # ping every 20 s would be a second heartbeat that wakes the app for nothing
        ws_ping_interval=None,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    return 1 if services.failure else 0


def _start_tray(services: Services) -> None:
    """The tray icon where the desktop has a tray; without one, closing the window quits (as always)."""
    if (reason := tray.unavailable()) is not None:
        log.info('no tray icon (%s): closing the window quits the app', reason)
        return
    icon = tray.Tray(services.hub)
    try:
        icon.start()
    except Exception as error:  # pylint: disable=broad-except  # a tray that fails must not stop the app
        log.warning('no tray icon: it could not start (%s)', error)
        return
    app.on_shutdown(icon.stop)


async def _follow_close_to_tray(services: Services, guard: CloseGuard) -> None:
    """Tell the window's process whether closing hides the window: now (the preference is read once the
    services have started; the tray has started before) and whenever the preference changes."""
    try:
        await services.wait_ready()
    except StartupError:
        return  # the app is quitting

    def follow(_event: object = None) -> None:
        hides = native_window.closing_hides(services.preferences.close_to_tray, tray.running())
        if hides != guard.hides:
            log.info('closing the window %s', 'hides it to the tray' if hides else 'quits the app')
        guard.hide_on_close(hides)

    follow()
    services.hub.subscribe(follow, name='close to tray', types=[CLOSE_TO_TRAY])


def _check_port(host: str, port: int) -> None:
    """Refuse to start, in one sentence, when the server could not listen (uvicorn would only log
    the errno after the start began)."""
    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        if os.name != 'nt':  # as uvicorn binds: TIME_WAIT is no conflict (on Windows it would allow a double bind)
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise StartupError(_describe_bind_error(error, host, port)) from error


def _describe_bind_error(error: OSError, host: str, port: int) -> str:
    if error.errno == errno.EADDRINUSE:
        return (f'Port {port} on {host} is in use (is J.A.R.V.I.S. already running?): close the program that '
                f'uses it, or start with --port and another number.')
    if error.errno == errno.EACCES:
        return f'Port {port} needs administrator rights: start with --port and a number above 1024.'
    if isinstance(error, socket.gaierror) or error.errno == errno.EADDRNOTAVAIL:
        return (f'J.A.R.V.I.S. cannot serve on {host}: it is not an address of this machine; start with '
                f'--host 127.0.0.1 (or another address of this machine).')
    return f'J.A.R.V.I.S. cannot serve on {host}:{port} ({error.strerror or error}): try another --port or --host.'


def _bound_quitting(services: Services) -> None:
    """SIGTERM arms the exit deadline and first stops the answers being generated: they are saved as
    "stopped" with their text, and the requests that wait for them end before uvicorn stops waiting."""
    loop = asyncio.get_running_loop()
    exit_deadline.on_sigterm(lambda: loop.call_soon_threadsafe(services.stop_answers))
    exit_deadline.quiet_cancelled_requests()


async def _quit_if_start_fails(services: Services) -> None:
    try:
        await services.wait_ready()
    except StartupError as error:
        say(f'jarvis: {error}')
        exit_deadline.arm(code=1)
        app.shutdown()
