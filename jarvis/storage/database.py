"""A small, thread-safe SQLite wrapper.

One way in from the event loop: ``await db.run(function, *args)`` runs a blocking function (which
calls ``execute``/``query``/``query_one``) in a worker thread, so that disk I/O never blocks the loop
and a function's statements run together.
"""
from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar('T')

# Each entry migrates the schema one version up; append, never edit, so old databases follow.
MIGRATIONS: list[str] = [
    '''
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    ''',
    '''
    CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE messages (
        id TEXT PRIMARY KEY,
        conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        text TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at REAL NOT NULL,
        source TEXT NOT NULL DEFAULT '',
        model TEXT NOT NULL DEFAULT '',
        first_token_s REAL,
        tokens_per_s REAL,
        tokens INTEGER
    );
    CREATE INDEX messages_by_conversation ON messages(conversation_id, created_at);
    ''',
    '''
    CREATE TABLE notes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        text TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE reminders (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        text TEXT NOT NULL,
        due_at REAL NOT NULL,
        created_at REAL NOT NULL,
        fired INTEGER NOT NULL DEFAULT 0
    );
    ''',
    # alert rules (jarvis/alerts) and the log of the alerts they fired: start, end and peak
    '''
    CREATE TABLE alert_rules (
        id TEXT PRIMARY KEY,
        metric TEXT NOT NULL,
        threshold REAL NOT NULL,
        duration_s REAL NOT NULL,
        cooldown_s REAL NOT NULL,
        severity TEXT NOT NULL,
        enabled INTEGER NOT NULL,
        position INTEGER NOT NULL
    );
    CREATE TABLE alert_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        rule_id TEXT NOT NULL,
        metric TEXT NOT NULL,
        severity TEXT NOT NULL,
        threshold REAL NOT NULL,
        started_at REAL NOT NULL,
        ended_at REAL,
        peak REAL NOT NULL,
        last_seen_at REAL NOT NULL,
        resolution TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX alert_log_by_start ON alert_log(started_at);
    ''',
    # Chat: branches (edits and regenerations), pins and full-text search. ``messages`` is rebuilt so
    # that its rowid becomes an explicit INTEGER PRIMARY KEY (``seq``): the search index refers to
    # rows by that number, and only an explicit one is guaranteed to survive a VACUUM. ``parent_id``
    # is the message a message follows ('' for a first message, NULL where it is not known yet:
    # ConversationStore.repair() links those in time order); ``head_id`` is the last message of the
    # branch a conversation shows.
    '''
    CREATE TABLE messages_v2 (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        parent_id TEXT,
        role TEXT NOT NULL,
        text TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at REAL NOT NULL,
        source TEXT NOT NULL DEFAULT '',
        model TEXT NOT NULL DEFAULT '',
        first_token_s REAL,
        tokens_per_s REAL,
        tokens INTEGER
    );
    INSERT INTO messages_v2(id, conversation_id, role, text, status, created_at, source, model, first_token_s,
                            tokens_per_s, tokens)
        SELECT id, conversation_id, role, text, status, created_at, source, model, first_token_s, tokens_per_s,
               tokens FROM messages ORDER BY created_at, rowid;
    DROP TABLE messages;
    ALTER TABLE messages_v2 RENAME TO messages;
    CREATE INDEX messages_by_conversation ON messages(conversation_id, created_at);
    CREATE INDEX messages_by_parent ON messages(conversation_id, parent_id);
    ALTER TABLE conversations ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE conversations ADD COLUMN head_id TEXT;
    CREATE VIRTUAL TABLE message_search USING fts5(
        text, content='messages', content_rowid='seq', tokenize='unicode61 remove_diacritics 2');
    INSERT INTO message_search(message_search) VALUES ('rebuild');
    CREATE TRIGGER message_search_insert AFTER INSERT ON messages BEGIN
        INSERT INTO message_search(rowid, text) VALUES (new.seq, new.text);
    END;
    CREATE TRIGGER message_search_delete AFTER DELETE ON messages BEGIN
        INSERT INTO message_search(message_search, rowid, text) VALUES ('delete', old.seq, old.text);
    END;
    CREATE TRIGGER message_search_update AFTER UPDATE OF text ON messages BEGIN
        INSERT INTO message_search(message_search, rowid, text) VALUES ('delete', old.seq, old.text);
        INSERT INTO message_search(rowid, text) VALUES (new.seq, new.text);
    END;
    ''',
    # the machine's history (jarvis/metrics/history_store.py): every sample of the last hour, one row per
    # minute (means and maxima) and the busiest processes of each minute for 30 days. Tables with rowids, so
    # that storage/salvage.py can copy them out of a damaged file.
    '''
    CREATE TABLE history_samples (
        t REAL PRIMARY KEY,
        cpu REAL NOT NULL,
        memory REAL NOT NULL,
        disk REAL NOT NULL,
        gpu REAL,
        gpu_memory REAL,
        gpu_temperature REAL
    );
    CREATE TABLE history_minutes (
        t INTEGER PRIMARY KEY,
        samples INTEGER NOT NULL,
        cpu REAL NOT NULL,
        cpu_max REAL NOT NULL,
        memory REAL NOT NULL,
        memory_max REAL NOT NULL,
        disk REAL NOT NULL,
        disk_max REAL NOT NULL,
        gpu_samples INTEGER NOT NULL DEFAULT 0,
        gpu REAL,
        gpu_max REAL,
        gpu_memory_samples INTEGER NOT NULL DEFAULT 0,
        gpu_memory REAL,
        gpu_memory_max REAL,
        gpu_temperature_samples INTEGER NOT NULL DEFAULT 0,
        gpu_temperature REAL,
        gpu_temperature_max REAL
    );
    CREATE TABLE history_processes (
        id INTEGER PRIMARY KEY,
        pid INTEGER NOT NULL,
        name TEXT NOT NULL,
        username TEXT NOT NULL,
        cpu INTEGER,
        memory INTEGER NOT NULL,
        gpu_memory INTEGER
    );
    ''',
    # a conversation's own system prompt and model (NULL: the defaults from the settings)
    '''
    ALTER TABLE conversations ADD COLUMN system_prompt TEXT;
    ALTER TABLE conversations ADD COLUMN model TEXT;
    ''',
    # the tools a model called for an answer (JSON list of {name, arguments, ok}); '' for none
    '''
    ALTER TABLE messages ADD COLUMN tools TEXT NOT NULL DEFAULT ''
    ''',
]


class DamagedDatabase(sqlite3.DatabaseError):
    """The file is not a readable SQLite database: garbage, truncated, or pages that fail ``quick_check``."""


# SQLite's primary result codes for a damaged file (the extended codes keep them in the low byte)
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26


def is_damage(error: BaseException) -> bool:
    """Whether an error says that the database file itself is damaged (rather than locked, read-only, ...)."""
    if isinstance(error, DamagedDatabase):
        return True
    code = getattr(error, 'sqlite_errorcode', None)
    return isinstance(error, sqlite3.DatabaseError) and code is not None and code & 0xFF in (
        _SQLITE_CORRUPT, _SQLITE_NOTADB)


def read_only_uri(path: Path) -> str:
    """An SQLite URI that opens ``path`` read-only (it never writes to the file, nor checkpoints its WAL)."""
    return f'{path.absolute().as_uri()}?mode=ro'


def quick_check(path: Path) -> None:
    """Raise ``DamagedDatabase`` (or another ``sqlite3.DatabaseError``) when the file is damaged.

    ``PRAGMA quick_check`` reads every page once (milliseconds for a typical history), so damaged pages
    are found at start instead of when a conversation that lives on them is opened. It runs on a
    read-only connection: closing a read-write one would first copy the WAL into the damaged file,
    and the file is to be kept exactly as it was found."""
    connection = sqlite3.connect(read_only_uri(path), uri=True)
    try:
        problems = [row[0] for row in connection.execute('PRAGMA quick_check(3)').fetchall()]
    finally:
        connection.close()
    if problems != ['ok']:
        raise DamagedDatabase('; '.join(problems))


class Database:
    """One connection, opened, checked and migrated at once: a file that cannot serve the app fails here,
    at start, with ``sqlite3.Error`` (``DamagedDatabase`` or ``is_damage()`` for a damaged file), and not
    in the middle of a conversation."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if str(path) != ':memory:':
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists():
                quick_check(self.path)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        try:
            self._conn.row_factory = sqlite3.Row
            self._conn.execute('PRAGMA foreign_keys = ON')
            # WAL keeps every committed message through a crash or kill of the app.
            self._conn.execute('PRAGMA journal_mode = WAL')
            self._conn.execute('PRAGMA synchronous = NORMAL')
            self._migrate()
            # a database that opens but cannot be written (a read-only file, another program's lock)
            # would lose the first message: find out now
            self._conn.execute('BEGIN IMMEDIATE')
            self._conn.execute('ROLLBACK')
        except BaseException:
            self._conn.close()
            raise

    def _migrate(self) -> None:
        with self._lock:
            version = self._conn.execute('PRAGMA user_version').fetchone()[0]
            for index, script in enumerate(MIGRATIONS[version:], start=version + 1):
                self._conn.executescript(f'BEGIN; {script}; PRAGMA user_version = {index}; COMMIT;')
                log.debug('database migrated to version %d', index)

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._conn.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._lock:
            self._conn.execute('BEGIN')
            try:
                self._conn.executemany(sql, rows)
                self._conn.execute('COMMIT')
            except BaseException:
                self._conn.execute('ROLLBACK')
                raise

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def query_one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Row | None:
        with self._lock:
            return self._conn.execute(sql, params).fetchone()

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run a blocking database function in a worker thread."""
        return await asyncio.to_thread(function, *args)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
