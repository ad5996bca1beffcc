"""The user's preferences for how the app looks; views read and change them only through here."""
from __future__ import annotations

from .events import ThemeChanged
from .hub import Hub
from .storage import SettingsStore

DARK_MODE_KEY = 'ui.dark_mode'


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
