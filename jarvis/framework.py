"""The one module that relies on NiceGUI's, pywebview's and uvicorn's private parts.

Everything else uses their public APIs. Each shim names the version it was checked against;
``problems()`` says what no longer holds, and ``tests/test_framework.py`` fails loudly on it,
so an upgrade has this one file to review.

Checked against NiceGUI 3.18.0, uvicorn 0.54.0 and pywebview 6.2.1.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
from nicegui import app, context

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
        core.stop_and_exit()

    threading.Thread(target=quit_when_closed, name='native window watch', daemon=True).start()


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
    try:
        import webview  # pylint: disable=import-outside-toplevel
    except ImportError:
        pass  # no native window in this installation: nothing of pywebview's is used
    else:
        if not hasattr(getattr(webview, 'FileDialog', None), 'SAVE'):
            found.append('pywebview has no FileDialog.SAVE')
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
