"""The native window's side of the hub: what the app asks of the window, and what the window tells the page.

- ``WindowRequest`` events (a second start of the app, the tray icon) show, hide or close the window.
- The window's own minimise/restore and hide/show reach its page as a DOM event, so that the page
  reports itself hidden (see ``jarvis/ui/live.py``): a minimised window gets no per-tick updates and the
  sampler goes calm, whatever the web engine says about the page's visibility.
- Closing the window (its close button, Alt+F4) hides it to the tray instead of quitting where the user
  chose so and a tray icon runs to bring it back (``closing_hides``); the decision itself is made in the
  window's process (``jarvis.close_guard``), this side hides the window and tells its page.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from . import events, framework
from .close_guard import CLOSED_TO_TRAY
from .events import Event, WindowRequest
from .hub import Hub
from .ui.live import NATIVE_VISIBILITY_EVENT

log = logging.getLogger(__name__)


def closing_hides(close_to_tray: bool, tray_running: bool) -> bool:
    """Whether closing the native window hides it instead of quitting: only where the user chose so and a
    tray icon runs, the one way back to a hidden window. Without a tray, closing quits, as it always did."""
    return close_to_tray and tray_running


def visibility_script(state: str) -> str:
    return f"document.dispatchEvent(new CustomEvent('{NATIVE_VISIBILITY_EVENT}', {{detail: '{state}'}}))"


class NativeWindow:
    def __init__(self, hub: Hub, base_url: str, new_conversation: Callable[[], Awaitable[Any]] | None = None) -> None:
        self.hub = hub
        self.base_url = base_url  # where the window's pages are served
        self.new_conversation = new_conversation
        self.hidden = False  # hidden (to the tray) or minimised

    def start(self) -> None:
        self.hub.subscribe(self._on_request, name='native window', types=[events.WINDOW_REQUEST])
        framework.on_native_event('minimized', lambda: self._tell_page('hidden'))
        framework.on_native_event('restored', lambda: self._tell_page('visible'))
        framework.on_native_event('shown', lambda: self._tell_page('visible'))
        framework.on_native_event(CLOSED_TO_TRAY, self._closed_to_tray)

    async def _on_request(self, event: Event) -> None:
        request = event.data
        assert isinstance(request, WindowRequest)
        window = framework.native_window()
        if window is None:
            return
        if request.action == 'show' or (request.action == 'toggle' and self.hidden):
            await self.show(window)
        elif request.action in ('hide', 'toggle'):
            await self.hide(window)
        elif request.action == 'new_conversation':
            if self.new_conversation is not None:
                await self.new_conversation()  # the newest conversation: the Chat view opens on it
            await self.show(window)
            window.load_url(f'{self.base_url}/chat')
        elif request.action == 'quit':
            framework.quit_app()

    async def _closed_to_tray(self) -> None:
        """The window's process turned a close into this: hide the window (the tray's Show brings it back)."""
        if (window := framework.native_window()) is not None:
            await self.hide(window)

    async def hide(self, window: Any) -> None:
        window.hide()
        await self._tell_page('hidden')

    async def show(self, window: Any) -> None:
        window.show()
        window.restore()
        # pywebview has no "activate": staying on top for a moment brings the window to the front
        window.set_always_on_top(True)
        window.set_always_on_top(False)
        await self._tell_page('visible')

    async def _tell_page(self, state: str) -> None:
        self.hidden = state == 'hidden'
        window = framework.native_window()
        if window is None:
            return
        try:
            await window.evaluate_js(visibility_script(state))
        except Exception:  # the page may be loading; it reports its own state when it connects
            log.debug('could not tell the page it is %s', state, exc_info=True)


_attached: NativeWindow | None = None


def attach(hub: Hub, base_url: str, new_conversation: Callable[[], Awaitable[Any]] | None = None) -> NativeWindow:
    """Connect the native window to the hub (once, at startup, on the event loop)."""
    global _attached  # pylint: disable=global-statement
    if _attached is None:
        _attached = NativeWindow(hub, base_url, new_conversation)
        _attached.start()
    return _attached
