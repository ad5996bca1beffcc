"""The tray icon, where the desktop offers a tray: show/hide the window, a new conversation, quit, and the
current CPU and GPU in its tooltip.

Built on pystray. Its menu entries only publish ``WindowRequest`` events on the hub (safe from pystray's
thread); the native window acts on them (``jarvis/native_window.py``). Where there is no tray (pystray or
Pillow not installed, no display, no tray host on the display: no owner of the XEmbed tray selection
``_NET_SYSTEM_TRAY_S<screen>``), ``unavailable()`` says why, the app logs it once and runs without one:
closing the window quits, as it always did.

On X11 without a StatusNotifier host pystray draws an XEmbed icon, which has no menu: a click on it is
the default entry (show/hide; ``framework.clickable_tray_icon`` makes pystray take the click); the other
entries are there where the desktop shows menus (GNOME's and KDE's AppIndicator support through
pystray's appindicator backend, Windows, macOS).

``running()`` says whether an icon runs: only then can closing the window hide it to the tray (a
preference, offered in the windows only then).
"""
from __future__ import annotations

import importlib.util
import logging
import os
import sys
import threading
from typing import Any

from . import events, framework
from .events import Event, SystemMetrics, WindowAction, WindowRequest
from .hub import Hub, Subscription
from .resources import asset

log = logging.getLogger(__name__)

TITLE = 'J.A.R.V.I.S.'


def unavailable() -> str | None:
    """Why no tray icon can be shown here, or None when one can."""
    for module, package in (('pystray', 'pystray'), ('PIL', 'Pillow')):
        if importlib.util.find_spec(module) is None:
            return f'{package} is not installed'
    if sys.platform.startswith('linux'):
        display = os.environ.get('DISPLAY')
        if not display:
            return 'no X display (a Wayland session without XWayland has no tray pystray can use)'
        if (reason := _no_xembed_tray(display)) is not None:
            return reason
    return None


def _no_xembed_tray(display_name: str) -> str | None:
    """None when a tray host owns the XEmbed system tray selection on the display."""
    if importlib.util.find_spec('gi') is not None:
        return None  # pystray's appindicator/GTK backends find a StatusNotifier host themselves
    try:
        from Xlib import X  # pylint: disable=import-outside-toplevel
        from Xlib import display as xdisplay  # pylint: disable=import-outside-toplevel
    except ImportError:
        return 'python-xlib is not installed'
    try:
        connection = xdisplay.Display(display_name)
    except Exception as error:  # pylint: disable=broad-except  # Xlib raises its own error types
        return f'cannot open the display {display_name} ({error})'
    try:
        selection = connection.intern_atom(f'_NET_SYSTEM_TRAY_S{connection.get_default_screen()}')
        owner = connection.get_selection_owner(selection)
        if owner == X.NONE or getattr(owner, 'id', 0) == 0:
            return 'the desktop has no system tray'
        return None
    finally:
        connection.close()


_running: set[Tray] = set()


def running() -> bool:
    """Whether a tray icon of this app runs (started and not stopped)."""
    return bool(_running)


def tooltip(metrics: SystemMetrics | None) -> str:
    if metrics is None:
        return TITLE
    gpu = 'n/a' if metrics.gpu is None else f'{metrics.gpu:.0f} %'
    return f'{TITLE} - CPU {metrics.cpu:.0f} %, GPU {gpu}'


class Tray:
    """The icon and its menu; ``start`` on the event loop, ``stop`` when the app quits."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.icon: Any = None
        self._thread: threading.Thread | None = None
        self._subscription: Subscription | None = None

    def menu(self) -> Any:
        import pystray  # pylint: disable=import-outside-toplevel
        return pystray.Menu(
            pystray.MenuItem('Show / hide', self._request('toggle'), default=True),
            pystray.MenuItem('New conversation', self._request('new_conversation')),
            pystray.Menu.SEPARATOR,
            pystray.MenuItem('Quit', self._request('quit')),
        )

    def start(self) -> None:
        import pystray  # pylint: disable=import-outside-toplevel
        from PIL import Image  # pylint: disable=import-outside-toplevel
        latest = self.hub.latest(events.SYSTEM_METRICS)
        self.icon = pystray.Icon('jarvis-desktop', Image.open(asset('icon.png')),
                                 tooltip(latest.data if latest else None), menu=self.menu())  # type: ignore[arg-type]
        framework.clickable_tray_icon(self.icon)  # on X11 a click is the only way to the default entry
        # the tooltip follows the samples, at whatever rate they come (the calm one while the window is hidden)
        self._subscription = self.hub.subscribe(self._on_metrics, name='tray', types=[events.SYSTEM_METRICS], maxsize=1)
        self._thread = threading.Thread(target=self.icon.run, name='tray', daemon=True)
        self._thread.start()
        _running.add(self)

    def stop(self) -> None:
        _running.discard(self)
        if self._subscription is not None:
            self._subscription.close()
        if self.icon is not None:
            try:
                self.icon.stop()
            except Exception:  # pylint: disable=broad-except  # the display may be gone already
                log.debug('the tray icon did not stop cleanly', exc_info=True)

    def _on_metrics(self, event: Event) -> None:
        if self.icon is not None and isinstance(event.data, SystemMetrics):
            self.icon.title = tooltip(event.data)

    def _request(self, action: WindowAction) -> Any:
        def act(_icon: Any = None, _item: Any = None) -> None:
            self.hub.publish(WindowRequest(action))
        return act
