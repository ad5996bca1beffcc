"""The user's preferences for how the app looks; views read and change them only through here."""
from __future__ import annotations

from .storage import SettingsStore

DARK_MODE_KEY = 'ui.dark_mode'


class Preferences:
    def __init__(self, store: SettingsStore) -> None:
        self._store = store

    @property
    def dark_mode(self) -> bool:
        return bool(self._store.get(DARK_MODE_KEY, True))

    async def set_dark_mode(self, dark: bool) -> None:
        await self._store.set(DARK_MODE_KEY, bool(dark))
