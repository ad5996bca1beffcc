"""The one module that relies on NiceGUI's, pywebview's and uvicorn's private parts.

Everything else uses their public APIs. Each shim names the version it was checked against;
``problems()`` says what no longer holds, and ``tests/test_framework.py`` fails loudly on it,
so an upgrade has this one file to review.

Checked against NiceGUI 3.18.0, uvicorn 0.54.0, pywebview 6.2.1 and pystray 0.19.5.
"""
from __future__ import annotations

import asyncio
import importlib.util
import inspect
import logging
import threading
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
from nicegui import app, context, ui

if TYPE_CHECKING:
    from .window_process import WindowProcess

log = logging.getLogger(__name__)

# --- NiceGUI: the window's socket ---------------------------------------------------------------

# nicegui.js sets this global once the server has accepted the window's socket.io handshake;
# before that the socket may be open but the server does not know the window yet.
HANDSHAKE_FLAG = 'did_handshake'


# --- NiceGUI: the sub-pages router of the current window -----------------------------------------

def current_path() -> str:
    """The path the current window shows (``/chat``), as ``ui.sub_pages`` routes it."""
    return context.client.sub_pages_router.current_path


def on_path_changed(callback: Callable[[str], Any]) -> None:
    """Call ``callback(path)`` whenever the current window moves to another sub page."""
    context.client.sub_pages_router.on_path_changed(callback)


# --- pywebview through NiceGUI: the native window -----------------------------------------------

def adopt_native_window(window: WindowProcess) -> None:
    """Let NiceGUI use the window that ``jarvis.window_process`` opened (instead of starting its own in
    ``ui.run(native=True)``): ``app.native.main_window`` calls it, ``app.native.on`` hears its events, and
    closing it quits the app, all as in NiceGUI's native mode. Call before ``ui.run(native=False)``."""
    from nicegui import core  # pylint: disable=import-outside-toplevel
    from nicegui.native import native  # pylint: disable=import-outside-toplevel
    from nicegui.native.event_manager import event_manager  # pylint: disable=import-outside-toplevel

    native.method_queue = window.method_queue
    native.response_queue = window.response_queue
    native.event_receiver = window.event_receiver
    app.native.main_window = native.WindowProxy()
    event_manager.start()

    def quit_when_closed() -> None:  # as NiceGUI's native mode does: the window closed, the app ends
        window.process.join()
        if app.is_stopping or app.is_stopped or _server_stops():
            return  # the app is quitting already (SIGTERM, the tray's Quit) and closed its window itself
        try:
            core.stop_and_exit()
        except Exception:  # pylint: disable=broad-except  # a stop that began meanwhile finishes the exit
            log.debug('the app was stopping already when its window closed', exc_info=True)

    threading.Thread(target=quit_when_closed, name='native window watch', daemon=True).start()


def _server_stops() -> bool:
    from nicegui.server import Server  # pylint: disable=import-outside-toplevel
    server = getattr(Server, 'instance', None)
    return bool(server is not None and server.should_exit)


def native_window() -> Any | None:
    """The native window (a proxy to pywebview's window in the window's process), None in browser mode."""
    return app.native.main_window


def on_native_event(event_type: str, handler: Callable[[], Any]) -> None:
    """Call ``handler()`` on one of pywebview's window events ('minimized', 'restored', 'shown', ...)."""
    app.native.on(event_type, lambda _event: handler())


def quit_app() -> None:
    """Quit as closing the window does: the server stops cleanly, then the process ends."""
    app.shutdown()


async def save_file(data: bytes, filename: str, media_type: str) -> Path | None:
    """A download in a browser; a save dialog in the native window, which has no downloads.

    Returns the path written in the native window, None in a browser or when the dialog was cancelled.
    """
    from nicegui import ui  # pylint: disable=import-outside-toplevel

    window: Any = app.native.main_window
    if window is None:
        ui.download.content(data, filename, media_type)
        return None
    import webview  # pylint: disable=import-outside-toplevel
    paths = await window.create_file_dialog(webview.FileDialog.SAVE, save_filename=filename)
    if not paths:
        return None
    path = Path(paths if isinstance(paths, str) else paths[0])
    await asyncio.to_thread(path.write_bytes, data)
    return path


# --- pystray: an X11 tray icon that takes clicks -----------------------------------------------
# pystray's X11 backend (an XEmbed icon, where no StatusNotifier host is found) has a handler for button
# presses but never asks the X server for them: its window selects only Exposure and StructureNotify
# events, so a click on the icon reaches the tray, not pystray, and does nothing (pystray issue #151).
# The icon has no menu there: its click (the default entry, Show / hide) is the only way back to a window
# hidden to the tray.

def clickable_tray_icon(icon: Any) -> None:
    """Make a click on pystray's X11 icon run its default entry. Call after making the icon, before
    ``icon.run()`` starts its thread (the X connection is not to be shared between threads)."""
    if type(icon).__module__ != 'pystray._xorg':
        return  # the other backends take clicks themselves
    from Xlib import X  # pylint: disable=import-outside-toplevel

    window = icon._window  # pylint: disable=protected-access
    mask = window.get_attributes().your_event_mask
    window.change_attributes(event_mask=mask | X.ButtonPressMask)
    icon._display.flush()  # pylint: disable=protected-access


# --- uvicorn: a calmer server heartbeat ---------------------------------------------------------
# uvicorn's server loop wakes ten times a second to see whether it should stop. On an idle app that
# polling was most of the CPU it used (measured: about 0.09 CPU-seconds per minute of the app's 0.25).
# The calm loop wakes once a minute, and at once when something asks the server to stop: the
# ``should_exit`` flag (set by uvicorn's signal handler, NiceGUI's shutdown, the window closing) wakes
# it, so quitting is as quick as before. What uvicorn does on a tick stays: the exit check, and the
# Date header, which is now up to a minute old (uvicorn hands each connection the header of its start
# anyway, and no client of this app reads it).
# (Measured with the only window hidden: a tick of 1 s cost about 0.05 CPU-s per minute; every wake-up
# of an idle process costs 2-5 ms of CPU on the 2-core benchmark machine.)

SERVER_TICK_S = 60.0
_UVICORN_TICK_S = 0.1  # what uvicorn's on_tick() counts in
_WAKE = '_jarvis_wake_main_loop'
_EXIT = '_jarvis_should_exit'


class _WakingExitFlag:
    """``uvicorn.Server.should_exit``, which also wakes the calm loop when it is set (from a signal
    handler, another thread or the loop itself)."""

    def __get__(self, server: Any, owner: type | None = None) -> Any:
        if server is None:
            return self
        return server.__dict__.get(_EXIT, False)

    def __set__(self, server: Any, value: bool) -> None:
        server.__dict__[_EXIT] = value
        wake = server.__dict__.get(_WAKE)
        if value and wake is not None:
            wake()


async def _calm_main_loop(self: uvicorn.Server) -> None:
    loop = asyncio.get_running_loop()
    asked_to_stop = asyncio.Event()

    def wake() -> None:
        try:
            loop.call_soon_threadsafe(asked_to_stop.set)
        except RuntimeError:  # the loop is closed: nothing is left to wake
            pass

    self.__dict__[_WAKE] = wake
    step = round(SERVER_TICK_S / _UVICORN_TICK_S)  # on_tick() refreshes the Date header when counter % 10 == 0
    counter = 0
    try:
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + step) % 864000
            try:
                await asyncio.wait_for(asked_to_stop.wait(), SERVER_TICK_S)
            except asyncio.TimeoutError:
                pass
            should_exit = await self.on_tick(counter)
    finally:
        self.__dict__.pop(_WAKE, None)


def calm_server_loop() -> None:
    """Use the calmer loop for every uvicorn server in this process (NiceGUI's included)."""
    if not callable(getattr(uvicorn.Server, 'on_tick', None)):
        log.warning('uvicorn has no on_tick(); keeping its own server loop')
        return
    uvicorn.Server.should_exit = _WakingExitFlag()  # type: ignore[assignment,method-assign]
    uvicorn.Server.main_loop = _calm_main_loop  # type: ignore[method-assign]


# --- NiceGUI: quiet windows ---------------------------------------------------------------------
# Heartbeats run for every connected window, hidden ones too, and wake the app far more often than
# anything it does itself; each wake-up of an idle process costs CPU of its own (2-5 ms on the 2-core
# benchmark machine), whatever little it then does:
# - each window's outbox waits for something to send with a one-second timeout, only to look whether
#   it should stop; ``Outbox.stop()`` wakes it itself, so a long timeout loses nothing;
# - NiceGUI sets the socket's ping interval and timeout to 4 s and 2 s. On a desktop a closed window
#   closes its socket at once; only a vanished one (a remote browser whose network went away) waits
#   for the ping: it is noticed within 80 s. 50 s stays under the 60 s that proxies such as nginx
#   allow an idle connection by default. Engine.IO's service task looks at the sockets every
#   ping timeout, so that one is long too;
# - every page acknowledges the messages it received every 3 s (``ack()`` in nicegui.js), so that the
#   app can drop them from the window's catch-up history; that history also drops messages by age
#   (ping interval + ping timeout + reconnect timeout), so acknowledging every 30 s loses nothing;
# - NiceGUI prunes its clients, slot stacks and tab storage every 10 s: once a minute does the same.
# (Measured with the only window hidden, together with the calm server loop: 0.03-0.04 instead of
# 0.13-0.17 CPU-s per minute.)

OUTBOX_IDLE_WAKE_S = 600.0
SOCKET_PING_INTERVAL_S = 50.0
SOCKET_PING_TIMEOUT_S = 30.0
ACK_EVERY = 10  # of nicegui.js's 3-second ack() calls, one acknowledges: every 30 s
NICEGUI_PRUNE_INTERVAL_S = 60.0
_NICEGUI_PRUNE_DEFAULT_S = 10  # what App.start() asks of app.timer() for its three pruning timers

# runs once nicegui.js and the page's module scripts have run (they define ack() and start its interval)
_CALM_ACK_JS = f"""<script>
document.addEventListener('DOMContentLoaded', () => {{
  const acknowledge = window.ack;
  if (typeof acknowledge !== 'function') return;
  let calls = 0;
  window.ack = () => {{ if (++calls % {ACK_EVERY} === 0) acknowledge(); }};
}});
</script>"""


class _OutboxAsyncio:
    """``asyncio`` as NiceGUI's outbox module sees it: the same, but its idle wait is a long one."""

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    @staticmethod
    async def wait_for(awaitable: Any, timeout: float | None) -> Any:
        return await asyncio.wait_for(awaitable, OUTBOX_IDLE_WAKE_S if timeout == 1.0 else timeout)


class _CalmPruneTimers:
    """``app.timer`` while NiceGUI starts: its own pruning timers run once a minute, anything else as asked."""

    def __init__(self, timer: Any) -> None:
        self.timer = timer

    def __call__(self, interval: float, callback: Callable[..., Any], **kwargs: Any) -> Any:
        if interval == _NICEGUI_PRUNE_DEFAULT_S and _is_nicegui_pruning(callback):
            interval = NICEGUI_PRUNE_INTERVAL_S
        return self.timer(interval, callback, **kwargs)


def _nicegui_pruning() -> tuple[Callable[..., Any], ...]:
    from nicegui.app.app import prune_tab_storage  # pylint: disable=import-outside-toplevel
    from nicegui.client import Client  # pylint: disable=import-outside-toplevel
    from nicegui.slot import Slot  # pylint: disable=import-outside-toplevel
    return Client.prune_instances, Slot.prune_stacks, prune_tab_storage


def _is_nicegui_pruning(callback: Callable[..., Any]) -> bool:
    return callback in _nicegui_pruning()


def quiet_windows() -> None:
    """Calm the outboxes and the pruning now, the socket pings at startup (NiceGUI sets its own there
    first), and every page's acknowledgements."""
    from nicegui import outbox  # pylint: disable=import-outside-toplevel
    outbox.asyncio = _OutboxAsyncio()  # type: ignore[assignment]
    if not isinstance(app.__dict__.get('timer'), _CalmPruneTimers):
        app.timer = _CalmPruneTimers(type(app).timer)  # type: ignore[method-assign]
    app.on_startup(_calm_socket_pings)
    from nicegui import Client  # pylint: disable=import-outside-toplevel
    if _CALM_ACK_JS not in Client.shared_head_html:
        ui.add_head_html(_CALM_ACK_JS, shared=True)


def _calm_socket_pings() -> None:
    from nicegui.nicegui import sio  # pylint: disable=import-outside-toplevel
    sio.eio.ping_interval = SOCKET_PING_INTERVAL_S
    sio.eio.ping_timeout = SOCKET_PING_TIMEOUT_S


# --- the guard ----------------------------------------------------------------------------------

# the message of NiceGUI's TimeoutError when a page does not answer a JavaScript request in time
WINDOW_TIMEOUT = 'JavaScript did not respond'


def is_window_timeout(error: BaseException | None) -> bool:
    """A window that did not answer a request in time: closed meanwhile, or too busy. Nothing the app
    did wrong (a window that connects and closes at once leaves the drawer's state request unanswered)."""
    return isinstance(error, TimeoutError) and str(error).startswith(WINDOW_TIMEOUT)


class _WindowTimeouts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and is_window_timeout(record.exc_info[1]):
            log.debug('a window did not answer in time: %s', record.exc_info[1])
            return False
        return True


def quiet_window_timeouts() -> None:
    """NiceGUI logs every exception of a background task as an error, a window's timeout too: that one
    goes to the debug log."""
    nicegui_log = logging.getLogger('nicegui')
    if not any(isinstance(f, _WindowTimeouts) for f in nicegui_log.filters):
        nicegui_log.addFilter(_WindowTimeouts())


def _quiet_window_problems() -> list[str]:
    from nicegui import nicegui as nicegui_module  # pylint: disable=import-outside-toplevel
    from nicegui import outbox  # pylint: disable=import-outside-toplevel

    found = []
    loop_source = inspect.getsource(outbox.Outbox.loop)
    if 'asyncio.wait_for(self._enqueue_event.wait(), timeout=1.0)' not in loop_source:
        found.append("NiceGUI's Outbox.loop no longer waits with asyncio.wait_for(..., timeout=1.0)")
    if '_set_enqueue_event()' not in inspect.getsource(outbox.Outbox.stop):
        found.append("NiceGUI's Outbox.stop() no longer wakes the loop itself")
    if not hasattr(getattr(nicegui_module, 'sio', None), 'eio'):
        found.append('nicegui.nicegui.sio.eio is gone')
    elif 'sio.eio.ping_interval' not in inspect.getsource(nicegui_module._startup):  # pylint: disable=protected-access
        found.append('NiceGUI no longer sets the ping interval at startup (where quiet_windows overrides it)')
    if 'setInterval(() => ack(), 3000)' not in _nicegui_js():
        found.append("nicegui.js no longer acknowledges messages with setInterval(() => ack(), 3000)")
    from nicegui.app.app import App  # pylint: disable=import-outside-toplevel
    start_source = inspect.getsource(App.start)
    for name in ('Client.prune_instances', 'Slot.prune_stacks', 'prune_tab_storage'):
        if f'self.timer({_NICEGUI_PRUNE_DEFAULT_S}, {name})' not in start_source:
            found.append(f'NiceGUI App.start() no longer starts self.timer({_NICEGUI_PRUNE_DEFAULT_S}, {name})')
    return found


def _nicegui_js() -> str:
    return files('nicegui').joinpath('static', 'nicegui.js').read_text(encoding='utf-8')


def problems() -> list[str]:
    """What this module relies on and no longer finds (empty when all holds)."""
    found: list[str] = []
    from nicegui.client import Client  # pylint: disable=import-outside-toplevel
    from nicegui.sub_pages_router import SubPagesRouter  # pylint: disable=import-outside-toplevel

    if 'sub_pages_router' not in inspect.getsource(Client.__init__):
        found.append('nicegui.Client no longer sets sub_pages_router')
    if 'self.current_path =' not in inspect.getsource(SubPagesRouter):
        found.append('nicegui SubPagesRouter no longer keeps current_path')
    if not callable(getattr(SubPagesRouter, 'on_path_changed', None)):
        found.append('nicegui SubPagesRouter has no on_path_changed()')
    nicegui_js = _nicegui_js()
    if f'window.{HANDSHAKE_FLAG} = true' not in nicegui_js.replace('  ', ' '):
        found.append(f'nicegui.js no longer sets window.{HANDSHAKE_FLAG}')
    found.extend(_native_window_problems())
    if not hasattr(app.native, 'main_window'):
        found.append('app.native has no main_window')
    if not callable(getattr(app.native, 'on', None)):
        found.append('app.native has no on() for window events')
    on_tick = getattr(uvicorn.Server, 'on_tick', None)
    if not callable(on_tick) or list(inspect.signature(on_tick).parameters) != ['self', 'counter']:
        found.append('uvicorn.Server.on_tick(counter) changed')
    if not inspect.iscoroutinefunction(getattr(uvicorn.Server, 'main_loop', None)):
        found.append('uvicorn.Server.main_loop is not a coroutine function')
    if 'self.main_loop()' not in inspect.getsource(uvicorn.Server._serve):  # pylint: disable=protected-access
        found.append('uvicorn.Server._serve no longer calls self.main_loop()')
    if 'should_exit' not in uvicorn.Server.handle_exit.__code__.co_names:
        found.append('uvicorn.Server.handle_exit no longer sets should_exit')
    found.extend(_quiet_window_problems())
    try:
        import webview  # pylint: disable=import-outside-toplevel
    except ImportError:
        pass  # no native window in this installation: nothing of pywebview's is used
    else:
        if not hasattr(getattr(webview, 'FileDialog', None), 'SAVE'):
            found.append('pywebview has no FileDialog.SAVE')
        found.extend(_close_guard_problems(webview))
    found.extend(_tray_icon_problems())
    return found


def _tray_icon_problems() -> list[str]:
    """What ``clickable_tray_icon`` relies on in pystray's X11 backend."""
    spec = importlib.util.find_spec('pystray')
    if spec is None or not spec.submodule_search_locations:
        return []  # no tray icon in this installation
    # read, not imported: importing pystray connects to the display
    source = (Path(next(iter(spec.submodule_search_locations))) / '_xorg.py').read_text(encoding='utf-8')
    found = []
    if 'self._window = self._create_window()' not in source or 'self._display = Xlib.display.Display()' not in source:
        found.append("pystray's X11 icon no longer keeps its window and display as _window and _display")
    if 'Xlib.X.ButtonPress: self._on_button_press' not in source:
        found.append("pystray's X11 icon no longer handles button presses (a click would do nothing)")
    return found


def _close_guard_problems(webview: Any) -> list[str]:
    """What ``jarvis.close_guard`` relies on in pywebview (it runs in the window's process)."""
    found: list[str] = []
    window_init = inspect.getsource(webview.Window.__init__)
    if 'self.events.closing = Event(self, True)' not in window_init:
        found.append("pywebview's closing event is no longer run at once (its handlers could not cancel a close)")
    if not callable(getattr(webview.Window, 'destroy', None)):
        found.append('pywebview Window has no destroy()')
    qt_backend = files('webview').joinpath('platforms', 'qt.py').read_text(encoding='utf-8')  # read, not imported
    if 'should_cancel = self.pywebview_window.events.closing.set()' not in qt_backend:
        found.append("pywebview's Qt window no longer asks the closing handlers before it closes")
    return found


def _native_window_problems() -> list[str]:
    """What ``adopt_native_window`` and ``jarvis.window_process`` rely on in NiceGUI's native mode."""
    found: list[str] = []
    from nicegui import core  # pylint: disable=import-outside-toplevel
    from nicegui.native import native, native_mode  # pylint: disable=import-outside-toplevel
    from nicegui.native.event_manager import event_manager  # pylint: disable=import-outside-toplevel

    for name in ('method_queue', 'response_queue', 'event_receiver'):
        if not hasattr(native, name):
            found.append(f'nicegui.native.native has no {name}')
    if not callable(getattr(event_manager, 'start', None)):
        found.append('nicegui has no native event_manager.start()')
    if not callable(getattr(core, 'stop_and_exit', None)):
        found.append('nicegui.core has no stop_and_exit()')
    from nicegui.server import Server  # pylint: disable=import-outside-toplevel
    if 'instance' not in getattr(Server, '__annotations__', {}):
        found.append('nicegui.server.Server no longer keeps its instance (the window watch reads should_exit there)')
    proxy = getattr(native, 'WindowProxy', None)
    send = getattr(proxy, '_send', None)
    if send is None or 'method_queue.put((name, args, kwargs))' not in inspect.getsource(send):
        found.append("NiceGUI's WindowProxy no longer sends (name, args, kwargs) on the method queue")
    # the calls the window's process answers itself and the events it sends, as NiceGUI's own window process
    opener = inspect.getsource(native_mode)
    for name in ('signal_server_shutdown', 'get_always_on_top', 'set_always_on_top', 'get_position', 'get_size'):
        if f"'{name}'" not in opener:
            found.append(f"NiceGUI's window process no longer handles {name} itself")
    if "event_sender.send({'type': event_type, 'args': kwargs})" not in opener:
        found.append("NiceGUI's window process sends its events in another shape")
    return found
