"""SQLite storage: one database file in the user's data directory."""
from .database import Database
from .settings_store import SettingsStore

__all__ = ['Database', 'SettingsStore']
