"""Closing the native window can hide it (to the tray): the decision, made in the window's process.

pywebview cancels a close only when a ``closing`` handler returns False at once, in the window's own
process (Qt asks it inside closeEvent); the app hears of window events only afterwards, over a pipe. So
the app shares two flags with the window's process when it starts it (``jarvis.window_process``):
"closing hides" (the Close to tray preference, where a tray icon runs) and "quitting" (the app closes its
own window: the tray's Quit, a failed start; that close must go through whatever the preference says).

Standard library only: ``jarvis.cli`` makes the guard before it imports the app.
"""
from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any

CLOSED_TO_TRAY = 'jarvis_closed_to_tray'  # the window event the app receives when a close was turned into hiding


class CloseGuard:
    """The flags shared by the app and the window's process, and the handlers that use them there."""

    def __init__(self) -> None:
        # events of the spawn context: they are handed to the window's process as it is spawned
        context = multiprocessing.get_context('spawn')
        self._hides = context.Event()
        self._quitting = context.Event()

    # --- in the app ---
    def hide_on_close(self, hides: bool) -> None:
        """From now on, closing the window hides it (True) or lets it close, which quits the app (False)."""
        if hides:
            self._hides.set()
        else:
            self._hides.clear()

    @property
    def hides(self) -> bool:
        return self._hides.is_set()

    # --- in the window's process ---
    def on_closing(self, hidden_instead: Callable[[], None]) -> bool | None:
        """pywebview's 'closing' handler: False cancels the close (and ``hidden_instead`` tells the app,
        which hides the window); None lets it close."""
        if self._hides.is_set() and not self._quitting.is_set():
            hidden_instead()
            return False
        return None

    def attach(self, window: Any, send: Callable[[str], None]) -> None:
        """Hook the handler onto pywebview's window (``WindowProcess(on_window=guard.attach)``). The app
        closes its window with ``destroy`` (NiceGUI's ``app.shutdown``): that close is marked as quitting
        first (the window's process calls the window's methods by name)."""
        destroy = window.destroy

        def destroy_and_quit() -> None:
            self._quitting.set()
            destroy()

        window.destroy = destroy_and_quit
        window.events.closing += lambda: self.on_closing(lambda: send(CLOSED_TO_TRAY))
