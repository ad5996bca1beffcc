"""Copying what can still be read from a damaged database into a fresh one.

Each table is read in rowid order until a damaged page stops the scan, then from the other end back
to the damage, as the sqlite3 shell's ``.dump`` does: only the rows on damaged pages stay behind.
Rows whose values do not have the types the schema promises (a damaged page can read as rows of
garbage) are left out. ``sqlite3 ... .recover`` can go further (it reads pages one by one), but the
shell most Linux distributions ship lacks it, and Windows has no shell at all.
"""
from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

from .database import Database, read_only_uri

log = logging.getLogger(__name__)

_TEXT, _REAL, _INT = (str,), (float, int), (int,)
Kinds = tuple[type, ...]

# The tables of the current schema, parents before children: each column's types and whether it may be NULL.
TABLES: dict[str, dict[str, tuple[Kinds, bool]]] = {
    'settings': {'key': (_TEXT, False), 'value': (_TEXT, False)},
    'conversations': {'id': (_TEXT, False), 'title': (_TEXT, False), 'created_at': (_REAL, False),
                      'updated_at': (_REAL, False), 'pinned': (_INT, False), 'head_id': (_TEXT, True)},
    'messages': {'id': (_TEXT, False), 'conversation_id': (_TEXT, False), 'parent_id': (_TEXT, True),
                 'role': (_TEXT, False),
                 'text': (_TEXT, False), 'status': (_TEXT, False), 'created_at': (_REAL, False),
                 'source': (_TEXT, False), 'model': (_TEXT, False), 'first_token_s': (_REAL, True),
                 'tokens_per_s': (_REAL, True), 'tokens': (_INT, True)},
    'notes': {'id': (_INT, False), 'text': (_TEXT, False), 'created_at': (_REAL, False)},
    'reminders': {'id': (_INT, False), 'text': (_TEXT, False), 'due_at': (_REAL, False),
                  'created_at': (_REAL, False), 'fired': (_INT, False)},
    'alert_rules': {'id': (_TEXT, False), 'metric': (_TEXT, False), 'threshold': (_REAL, False),
                    'duration_s': (_REAL, False), 'cooldown_s': (_REAL, False), 'severity': (_TEXT, False),
                    'enabled': (_INT, False), 'position': (_INT, False)},
    'alert_log': {'id': (_INT, False), 'rule_id': (_TEXT, False), 'metric': (_TEXT, False),
                  'severity': (_TEXT, False), 'threshold': (_REAL, False), 'started_at': (_REAL, False),
                  'ended_at': (_REAL, True), 'peak': (_REAL, False), 'last_seen_at': (_REAL, False),
                  'resolution': (_TEXT, False)},
    # the machine's history (jarvis/metrics/history_store.py)
    'history_samples': {'t': (_REAL, False), 'cpu': (_REAL, False), 'memory': (_REAL, False),
                        'disk': (_REAL, False), 'gpu': (_REAL, True), 'gpu_memory': (_REAL, True),
                        'gpu_temperature': (_REAL, True)},
    'history_minutes': {'t': (_INT, False), 'samples': (_INT, False),
                        **{f'{name}{suffix}': (_REAL, False) for name in ('cpu', 'memory', 'disk')
                           for suffix in ('', '_max')},
                        **{column: kind for name in ('gpu', 'gpu_memory', 'gpu_temperature')
                           for column, kind in ((f'{name}_samples', (_INT, False)), (name, (_REAL, True)),
                                                (f'{name}_max', (_REAL, True)))}},
    'history_processes': {'id': (_INT, False), 'pid': (_INT, False), 'name': (_TEXT, False),
                          'username': (_TEXT, False), 'cpu': (_INT, True), 'memory': (_INT, False),
                          'gpu_memory': (_INT, True)},
}
RECOVERED_TITLE = 'Recovered conversation'
SCAN_BATCH = 500


def salvage(damaged: Path, target: Database) -> dict[str, int]:
    """Copy every readable, well-typed row of ``damaged`` into ``target`` (a fresh database);
    returns how many rows each table got."""
    copied = dict.fromkeys(TABLES, 0)
    try:  # read only: the damaged file stays as it is
        source = sqlite3.connect(read_only_uri(damaged), uri=True)
    except sqlite3.Error:
        log.debug('the damaged database %s cannot be opened at all', damaged, exc_info=True)
        return copied
    try:
        for table, all_columns in TABLES.items():
            # a database from before a column was added lacks it: the fresh one's default fills it in
            present = _columns_of(source, table, all_columns)
            columns = {name: kinds for name, kinds in all_columns.items() if name in present}
            rows = [row for row in _readable_rows(source, table, list(columns)) if _well_typed(row, columns)]
            if table == 'settings':
                rows = [row for row in rows if _is_json(row[1])]
            if table == 'messages':
                _add_missing_conversations(target, rows, list(columns))
            copied[table] = _insert(target, table, list(columns), rows)
    finally:
        source.close()
    return copied


def _columns_of(source: sqlite3.Connection, table: str, expected: dict[str, tuple[Kinds, bool]]) -> set[str]:
    """The columns ``table`` has in the damaged file (all the expected ones when its schema cannot be read)."""
    try:
        found = {row[1] for row in source.execute(f'PRAGMA table_info({table})')}  # names from TABLES only
    except sqlite3.DatabaseError:
        return set(expected)
    return found or set(expected)


def _readable_rows(source: sqlite3.Connection, table: str, columns: list[str]) -> list[tuple]:
    """The rows of one table, by rowid from both ends, without those on damaged pages."""
    select = f'SELECT rowid, {", ".join(columns)} FROM {table}'  # names from TABLES only, never input
    rows: dict[int, tuple] = {}
    if not _scan(source, select, rows, ascending=True):
        _scan(source, select, rows, ascending=False)  # from the other end back to the damage
    return list(rows.values())


def _scan(source: sqlite3.Connection, select: str, rows: dict[int, tuple], *, ascending: bool) -> bool:
    """Add rows in rowid order (or the reverse) until the end (True) or a damaged page (False).

    Rows come in batches with LIMIT; once a batch meets the damage, one row at a time up to it. Without
    LIMIT, sqlite3 would step past a row to the damaged page before handing that row over, and lose it."""
    compare, order = ('>', 'ASC') if ascending else ('<', 'DESC')
    bound: int | None = None
    size = SCAN_BATCH
    while True:
        where, params = (f' WHERE rowid {compare} ?', (bound,)) if bound is not None else ('', ())
        try:
            batch = source.execute(f'{select}{where} ORDER BY rowid {order} LIMIT ?', (*params, size)).fetchall()
        except sqlite3.DatabaseError:
            log.debug('reading stopped at a damaged page (%s)', select, exc_info=True)
            if size == 1:
                return False
            size = 1
            continue
        if not batch:
            return True
        for rowid, *values in batch:
            if bound is not None and (rowid <= bound if ascending else rowid >= bound):
                return False  # out of order: damaged pages that still parse; going on could loop forever
            rows[rowid] = tuple(values)
            bound = rowid


def _well_typed(row: tuple, columns: dict[str, tuple[Kinds, bool]]) -> bool:
    return all((value is None and nullable) or (isinstance(value, kinds) and not isinstance(value, bool))
               for value, (kinds, nullable) in zip(row, columns.values(), strict=True))


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _add_missing_conversations(target: Database, messages: list[tuple], columns: list[str]) -> None:
    """Messages whose conversation was on a damaged page get a conversation of their own, so none is lost."""
    known = {row['id'] for row in target.query('SELECT id FROM conversations')}
    spans: dict[str, list[float]] = {}
    conversation_at, created_at_at = columns.index('conversation_id'), columns.index('created_at')
    for message in messages:
        conversation_id, created_at = message[conversation_at], float(message[created_at_at])
        if conversation_id not in known:
            span = spans.setdefault(conversation_id, [created_at, created_at])
            span[0], span[1] = min(span[0], created_at), max(span[1], created_at)
    _insert(target, 'conversations', ['id', 'title', 'created_at', 'updated_at'],
            [(conversation_id, RECOVERED_TITLE, first, last) for conversation_id, (first, last) in spans.items()])


def _insert(target: Database, table: str, columns: list[str], rows: list[tuple]) -> int:
    if not rows:
        return 0
    sql = f'INSERT OR IGNORE INTO {table}({", ".join(columns)}) VALUES({", ".join("?" * len(columns))})'
    count = _count(target, table)
    target.executemany(sql, rows)
    return _count(target, table) - count


def _count(db: Database, table: str) -> int:
    row = db.query_one(f'SELECT COUNT(*) FROM {table}')
    return int(row[0]) if row is not None else 0
