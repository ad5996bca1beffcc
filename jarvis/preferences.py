"""The user's preferences for how the app looks and behaves; views read and change them only through here."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .events import Payload, ThemeChanged
from .hub import Hub
from .storage import SettingsStore

DARK_MODE_KEY = 'ui.dark_mode'
CLOSE_TO_TRAY_KEY = 'desktop.close_to_tray'
CLOSE_TO_TRAY = 'close_to_tray'  # the hub event of a change


@dataclass(frozen=True, slots=True)
class CloseToTrayChanged(Payload):
    """Closing the native window hides it to the tray (``enabled``) or quits the app: the window's process
    and every window's switch follow a change at once."""

    event_type: ClassVar[str] = CLOSE_TO_TRAY
    enabled: bool


class Preferences:
    def __init__(self, store: SettingsStore, hub: Hub | None = None) -> None:
        self._store = store
        self._hub = hub  # every window follows a change at once

    @property
    def dark_mode(self) -> bool:
        return bool(self._store.get(DARK_MODE_KEY, True))

    async def set_dark_mode(self, dark: bool) -> None:
        """Persist the choice and tell every window (``theme`` event)."""
        await self._store.set(DARK_MODE_KEY, bool(dark))
        if self._hub is not None:
            self._hub.publish(ThemeChanged(dark=bool(dark)))

    @property
    def close_to_tray(self) -> bool:
        """Whether closing the native window hides it to the tray (where a tray icon runs) instead of quitting.

        Off by default: closing has always quit the app, and a window that silently keeps running after its
        close button was pressed surprises whoever did not choose it (on many Linux desktops a tray icon is
        easy to miss)."""
        return bool(self._store.get(CLOSE_TO_TRAY_KEY, False))

    async def set_close_to_tray(self, enabled: bool) -> None:
        """Persist the choice and tell the native window and every open window (``close_to_tray`` event)."""
        await self._store.set(CLOSE_TO_TRAY_KEY, bool(enabled))
        if self._hub is not None:
            self._hub.publish(CloseToTrayChanged(enabled=bool(enabled)))
