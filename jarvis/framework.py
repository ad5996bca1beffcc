"""The one module that relies on NiceGUI's, pywebview's and uvicorn's private parts.

Everything else uses their public APIs. Each shim names the version it was checked against;
``problems()`` says what no longer holds, and ``tests/test_framework.py`` fails loudly on it,
so an upgrade has this one file to review.

Checked against NiceGUI 3.18.0, uvicorn 0.54.0, pywebview 6.2.1 and pystray 0.19.5.
"""
from __future__ import annotations

import asyncio
import functools
import importlib.util
import inspect
import logging
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

import uvicorn
from nicegui import app, context

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

def use_qt_backend(min_size: tuple[int, int]) -> None:
    """Make pywebview use Qt (what we ship on Linux; it would try GTK first)."""
    app.native.start_args['gui'] = 'qt'
    app.native.window_args['min_size'] = min_size


def native_window() -> Any | None:
    """The native window (a proxy to pywebview's window in the window's process), None in browser mode."""
    return app.native.main_window


def on_native_event(event_type: str, handler: Callable[[], Any]) -> None:
    """Call ``handler()`` on one of pywebview's window events ('minimized', 'restored', 'shown', ...)."""
    app.native.on(event_type, lambda _event: handler())


def quit_app() -> None:
    """Quit as closing the window does: the server stops cleanly, then the process ends."""
    app.shutdown()


# --- NiceGUI's native mode: closing the window can hide it (to the tray) --------------------------
# pywebview cancels a close only when a 'closing' handler returns False at once, in the window's own
# process (Qt asks it inside closeEvent). NiceGUI runs the window in a process of its own and forwards
# the window's events to the app asynchronously, too late for that; 'closing' it does not forward at all.
# So the decision is made in the window's process, from two flags the app shares with it when it starts
# it: "closing hides" (the preference, where a tray icon runs) and "quitting" (the app closes its own
# window: then the close must go through, whatever the preference says).
#
# NiceGUI starts that process with ``native_mode._open_window`` as its target, looked up when it starts
# it; ``guard_window_close`` puts a partial of ``_open_window_guarded`` (a module function, so it is
# pickled by name, its flags as the spawn shares them) in its place. In the window's process it hooks
# the handler onto the window as ``webview.create_window`` makes it, then runs NiceGUI's own function.

CLOSED_TO_TRAY = 'jarvis_closed_to_tray'  # the window event the app receives when a close was turned into hiding


class CloseGuard:
    """The flags shared by the app and the window's process, and the handlers that use them there."""

    def __init__(self) -> None:
        from nicegui.native import native  # pylint: disable=import-outside-toplevel
        # events of the spawn context: they are handed to the window's process as it is spawned
        self._hides = native.SPAWN_CONTEXT.Event()
        self._quitting = native.SPAWN_CONTEXT.Event()

    # in the app
    def hide_on_close(self, hides: bool) -> None:
        """From now on, closing the window hides it (True) or lets it close, which quits the app (False)."""
        if hides:
            self._hides.set()
        else:
            self._hides.clear()

    @property
    def hides(self) -> bool:
        return self._hides.is_set()

    # in the window's process
    def on_closing(self, hidden_instead: Callable[[], None]) -> bool | None:
        """pywebview's 'closing' handler: False cancels the close (and ``hidden_instead`` tells the app,
        which hides the window); None lets it close."""
        if self._hides.is_set() and not self._quitting.is_set():
            hidden_instead()
            return False
        return None

    def attach(self, window: Any, send: Callable[[str], None]) -> None:
        """Hook the handler onto pywebview's window. The app closes the window with ``destroy`` (NiceGUI's
        ``app.shutdown``: the tray's Quit, a failed start): that close is marked as quitting first."""
        destroy = window.destroy

        def destroy_and_quit() -> None:
            self._quitting.set()
            destroy()

        window.destroy = destroy_and_quit  # NiceGUI calls the window's methods by name: getattr(window, 'destroy')
        window.events.closing += lambda: self.on_closing(lambda: send(CLOSED_TO_TRAY))


def guard_window_close() -> CloseGuard:
    """Let the app decide, in the window's process, whether closing the native window hides it.
    Call before ``ui.run``: the window's process is started with the guard."""
    from nicegui.native import native_mode  # pylint: disable=import-outside-toplevel
    guard = CloseGuard()
    native_mode._open_window = functools.partial(_open_window_guarded, guard)  # pylint: disable=protected-access
    return guard


def _open_window_guarded(guard: CloseGuard, *args: Any) -> None:
    """The window's process: NiceGUI's ``_open_window(*args)``, with the guard on the window it creates."""
    import webview  # pylint: disable=import-outside-toplevel
    from nicegui.native import native_mode  # pylint: disable=import-outside-toplevel

    open_window = native_mode._open_window  # pylint: disable=protected-access  # NiceGUI's own, in this process
    event_sender = inspect.signature(open_window).bind(*args).arguments['event_sender']

    def send(event_type: str) -> None:
        try:
            event_sender.send({'type': event_type, 'args': {}})
        except OSError:  # the app is gone
            pass

    create_window = webview.create_window

    def create_guarded_window(*create_args: Any, **create_kwargs: Any) -> Any:
        window = create_window(*create_args, **create_kwargs)
        guard.attach(window, send)
        return window

    webview.create_window = create_guarded_window
    open_window(*args)


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
# polling is most of the CPU it uses (measured: about 0.09 CPU-seconds per minute of the app's
# 0.25). Waking once a second keeps everything uvicorn does on a tick (the Date header once per
# second, the exit check) and only delays shutdown by up to a second. (Once instead of twice a second:
# with no window, or the only one hidden, measured 0.045 instead of 0.070 CPU-s per minute.)

SERVER_TICK_S = 1.0
_UVICORN_TICK_S = 0.1  # what uvicorn's on_tick() counts in


async def _calm_main_loop(self: uvicorn.Server) -> None:
    step = round(SERVER_TICK_S / _UVICORN_TICK_S)  # on_tick() refreshes the Date header when counter % 10 == 0
    counter = 0
    should_exit = await self.on_tick(counter)
    while not should_exit:
        counter = (counter + step) % 864000
        await asyncio.sleep(SERVER_TICK_S)
        should_exit = await self.on_tick(counter)


def calm_server_loop() -> None:
    """Use the calmer loop for every uvicorn server in this process (NiceGUI's included)."""
    if not callable(getattr(uvicorn.Server, 'on_tick', None)):
        log.warning('uvicorn has no on_tick(); keeping its own server loop')
        return
    uvicorn.Server.main_loop = _calm_main_loop  # type: ignore[method-assign]


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
    nicegui_js = files('nicegui').joinpath('static', 'nicegui.js').read_text(encoding='utf-8')
    if f'window.{HANDSHAKE_FLAG} = true' not in nicegui_js.replace('  ', ' '):
        found.append(f'nicegui.js no longer sets window.{HANDSHAKE_FLAG}')
    if not hasattr(app.native, 'start_args') or not hasattr(app.native, 'window_args'):
        found.append('app.native has no start_args / window_args')
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
    """What ``guard_window_close`` relies on in NiceGUI's native mode and in pywebview."""
    found: list[str] = []
    from nicegui.native import native, native_mode  # pylint: disable=import-outside-toplevel

    open_window = getattr(native_mode, '_open_window', None)
    if not callable(open_window) or 'event_sender' not in inspect.signature(open_window).parameters:
        found.append('nicegui native_mode._open_window(..., event_sender, ...) changed')
    else:
        if 'webview.create_window(' not in inspect.getsource(open_window):
            found.append('nicegui native_mode._open_window no longer calls webview.create_window()')
        if "event_sender.send({'type': event_type" not in inspect.getsource(native_mode):
            found.append('nicegui native_mode no longer sends window events as {"type": ..., "args": ...}')
    if 'Process(target=_open_window' not in inspect.getsource(native_mode.activate):
        found.append('nicegui native_mode.activate no longer starts the window process with _open_window')
    if not hasattr(getattr(native, 'SPAWN_CONTEXT', None), 'Event'):
        found.append('nicegui native has no SPAWN_CONTEXT')
    if "getattr(window, method_name)" not in inspect.getsource(native_mode._start_window_method_executor):  # pylint: disable=protected-access
        found.append("nicegui no longer calls the window's methods by name (the guard's destroy would be missed)")
    window_init = inspect.getsource(webview.Window.__init__)
    if 'self.events.closing = Event(self, True)' not in window_init:
        found.append("pywebview's closing event is no longer run at once (its handlers could not cancel a close)")
    if not callable(getattr(webview.Window, 'destroy', None)):
        found.append('pywebview Window has no destroy()')
    qt_backend = files('webview').joinpath('platforms', 'qt.py').read_text(encoding='utf-8')  # read, not imported
    if 'should_cancel = self.pywebview_window.events.closing.set()' not in qt_backend:
        found.append("pywebview's Qt window no longer asks the closing handlers before it closes")
    return found
