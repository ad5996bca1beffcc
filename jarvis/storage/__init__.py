"""SQLite storage: one database file in the user's data directory."""
from .database import Database
from .settings_store import SettingsStore
from .startup import MovedAside, StorageError, describe_storage_error, open_database, prepare_folders

__all__ = ['Database', 'MovedAside', 'SettingsStore', 'StorageError', 'describe_storage_error', 'open_database', 'prepare_folders']
