"""A virtual X display (Xvfb) of its own for a test, optionally with a system tray host (trayer), and what a
user does there: close a window as a window manager does, click the tray icon."""
from __future__ import annotations

import os
import select
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

XVFB = shutil.which('Xvfb')
TRAYER = shutil.which('trayer')  # Debian's trayer: an XEmbed system tray that runs without a desktop


@contextmanager
def virtual_display() -> Iterator[str]:
    """A display of its own: Xvfb picks a free number itself (``-displayfd``, safe when other test runs start
    displays at the same time) and writes it once it accepts connections (a client started earlier, such
    as trayer, could fail to open it). ``-noreset``: Xvfb would otherwise reset whenever its last client
    disconnects (a test's short look at the display), refusing whoever connects meanwhile."""
    assert XVFB is not None
    read_end, write_end = os.pipe()
    xvfb = subprocess.Popen([XVFB, '-displayfd', str(write_end), '-noreset', '-screen', '0', '1400x1000x24', '-nolisten', 'tcp'],
                            pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 30)
        number = os.read(read_end, 64).decode().strip() if ready else ''
        if not number:
            raise RuntimeError('Xvfb did not start a display within 30 s')
        yield f':{number}'
    finally:
        os.close(read_end)
        xvfb.terminate()
        xvfb.wait()


@contextmanager
def tray_host(display: str) -> Iterator[subprocess.Popen]:
    assert TRAYER is not None
    host = subprocess.Popen([TRAYER, '--edge', 'top', '--widthtype', 'pixel', '--width', '200'],
                            env={'DISPLAY': display, 'PATH': '/usr/bin:/bin'},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield host
    finally:
        host.terminate()
        host.wait()


# --- acting on the display as its user would ---------------------------------------------------

def _name_of(window: Any) -> str:
    name = window.get_wm_name()
    return name.decode(errors='replace') if isinstance(name, bytes) else (name or '')


def _is_tray_icon(window: Any) -> bool:
    wm_class = window.get_wm_class()
    return bool(wm_class) and wm_class[0].endswith('SystemTrayIcon')  # pystray's "<name>SystemTrayIcon"


def top_level_window(connection: Any, title: str) -> Any | None:
    """The application window whose title contains ``title`` (not the tray icon, whose tooltip is its name)."""
    for window in connection.screen().root.query_tree().children:
        if title in _name_of(window) and not _is_tray_icon(window):
            return window
    return None


def send_close(display: str, title: str) -> bool:
    """Ask the window to close as a window manager's close button (or Alt+F4) does: WM_DELETE_WINDOW.
    False when there is no such window."""
    from Xlib import X, protocol  # pylint: disable=import-outside-toplevel
    from Xlib import display as xdisplay  # pylint: disable=import-outside-toplevel

    connection = xdisplay.Display(display)
    try:
        window = top_level_window(connection, title)
        if window is None:
            return False
        event = protocol.event.ClientMessage(window=window, client_type=connection.intern_atom('WM_PROTOCOLS'),
                                             data=(32, [connection.intern_atom('WM_DELETE_WINDOW'), X.CurrentTime,
                                                        0, 0, 0]))
        window.send_event(event)
        connection.flush()
        return True
    finally:
        connection.close()


def window_exists(display: str, title: str) -> bool:
    """Whether the application window is there at all, shown or hidden."""
    from Xlib import display as xdisplay  # pylint: disable=import-outside-toplevel

    connection = xdisplay.Display(display)
    try:
        return top_level_window(connection, title) is not None
    finally:
        connection.close()


def window_is_shown(display: str, title: str) -> bool:
    """Whether the application window is on the screen (mapped); a window hidden to the tray is not."""
    from Xlib import X  # pylint: disable=import-outside-toplevel
    from Xlib import display as xdisplay  # pylint: disable=import-outside-toplevel

    connection = xdisplay.Display(display)
    try:
        window = top_level_window(connection, title)
        return window is not None and window.get_attributes().map_state == X.IsViewable
    finally:
        connection.close()


def _tray_icon(connection: Any, name: str) -> Any | None:
    pending = [connection.screen().root]
    while pending:
        window = pending.pop()
        wm_class = window.get_wm_class()
        if wm_class and wm_class[0] == f'{name}SystemTrayIcon':
            return window
        pending.extend(window.query_tree().children)
    return None


def click_tray_icon(display: str, name: str) -> bool:
    """Click the middle of the tray icon of the app ``name`` (pystray's icon name) with the X server's
    test extension, as a mouse does; False while the icon is not docked in the tray."""
    from Xlib import X  # pylint: disable=import-outside-toplevel
    from Xlib import display as xdisplay  # pylint: disable=import-outside-toplevel
    from Xlib.ext import xtest  # pylint: disable=import-outside-toplevel

    connection = xdisplay.Display(display)
    try:
        root = connection.screen().root
        window = _tray_icon(connection, name)
        if window is None:
            return False
        geometry = window.get_geometry()
        if (window.query_tree().parent == root or geometry.width < 2
                or window.get_attributes().map_state != X.IsViewable):
            return False  # not docked yet (the tray reparents, sizes and shows it)
        origin = root.translate_coords(window, 0, 0)  # the icon's corner, in screen coordinates
        xtest.fake_input(connection, X.MotionNotify, x=origin.x + geometry.width // 2,
                         y=origin.y + geometry.height // 2)
        xtest.fake_input(connection, X.ButtonPress, 1)
        xtest.fake_input(connection, X.ButtonRelease, 1)
        connection.sync()
        return True
    finally:
        connection.close()
