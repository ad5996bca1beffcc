"""Persistent key-value settings (theme, plugin toggles, the active model ...).

Everything is read once at start; reads come from memory, writes go to SQLite off the loop.
"""
from __future__ import annotations

import json
from typing import Any

from .database import Database


class SettingsStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._values: dict[str, Any] = {}

    def load(self) -> None:
        """Read every setting (blocking; call it off the loop at start)."""
        self._values = {row['key']: json.loads(row['value']) for row in self._db.query('SELECT key, value FROM settings')}

    def get(self, key: str, default: Any = None) -> Any:
        return self._values.get(key, default)

    def set_blocking(self, key: str, value: Any) -> None:
        self._values[key] = value
        self._db.execute('INSERT INTO settings(key, value) VALUES(?, ?) '
                         'ON CONFLICT(key) DO UPDATE SET value = excluded.value', (key, json.dumps(value)))

    async def set(self, key: str, value: Any) -> None:
        self._values[key] = value
        await self._db.run(self.set_blocking, key, value)
