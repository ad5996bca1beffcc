"""Storage at start: the data folders and the database, opened so that every failure is one sentence
that says what to do, and a damaged database never stops the app nor disappears.

A damaged database (garbage, truncated, pages that fail ``PRAGMA quick_check``) is moved aside, with
its ``-wal`` and ``-shm`` files, to ``jarvis.db.corrupt-<YYYYmmdd-HHMMSS>``; a fresh one is started with
every row that can still be read (``salvage``), and the moved file stays for ``sqlite3 ... .recover``.
Everything else that stops storage (a read-only or full disk, a file where a folder belongs, a lock
held by another program) is a ``StorageError``.
"""
from __future__ import annotations

import errno
import logging
import os
import shlex
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from .database import Database, is_damage
from .salvage import salvage

log = logging.getLogger(__name__)

# A start writes this much as a probe: a disk too full for it could not keep the first conversation.
PROBE_BYTES = 256 * 1024
PROBE_NAME = '.jarvis-write-probe'
MOVED_ASIDE_INFIX = '.corrupt-'
# the files that belong to a database (WAL, its index, a rollback journal) and move with it
COMPANION_SUFFIXES = ('-wal', '-shm', '-journal')

_DATA_DIR_HINT = 'or start with --data-dir (or JARVIS_DATA_DIR) pointing at another folder'


class StorageError(Exception):
    """Storage cannot be used; the message is one sentence that says what to do."""


@dataclass(frozen=True)
class MovedAside:
    """A damaged database that was moved aside at start; a fresh one took its place with what could be read."""

    database: Path
    moved_to: Path
    reason: str
    copied: dict[str, int] = field(default_factory=dict)  # rows per table copied into the fresh database

    def notice(self) -> str:
        if any(self.copied.values()):
            counts = ', '.join(f'{count} {table}' for table, count in self.copied.items() if count)
            kept = f'copied into it what could still be read ({counts})'
        else:
            kept = 'nothing could be read from the damaged file'
        return (f'The database was damaged ({self.reason}) and was moved aside to {self.moved_to}. '
                f'J.A.R.V.I.S. started a fresh one and {kept}. The damaged file stays where it is: '
                f'"sqlite3 {shlex.quote(str(self.moved_to))} .recover" (where the sqlite3 shell has .recover) '
                f'may get back more.')


@dataclass(frozen=True)
class OpenedStorage:
    db: Database
    moved_aside: MovedAside | None = None


def prepare_folders(data_dir: Path, *others: Path) -> None:
    """Create the data folder (and e.g. the models folder) and make sure the data folder takes writes."""
    _make_folder(data_dir)
    probe = data_dir / f'{PROBE_NAME}-{os.getpid()}'
    try:
        with open(probe, 'wb') as file:
            file.write(bytes(PROBE_BYTES))
    except OSError as error:
        raise StorageError(_describe_os_error(error, data_dir)) from error
    finally:
        try:
            probe.unlink(missing_ok=True)
        except OSError:
            log.debug('could not remove the write probe %s', probe, exc_info=True)
    for folder in others:
        _make_folder(folder)


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StorageError(_describe_os_error(error, folder)) from error


def open_database(path: Path) -> OpenedStorage:
    """Open (create, check, migrate) the database; move a damaged one aside and start a fresh one."""
    try:
        return OpenedStorage(Database(path))
    except sqlite3.Error as error:
        if not is_damage(error):
            raise StorageError(_describe_sqlite_error(error, path)) from error
        reason = _one_line(str(error))
        log.debug('the database %s is damaged', path, exc_info=True)
    except OSError as error:
        raise StorageError(_describe_os_error(error, path)) from error
    moved_to = _move_aside(path)
    try:
        fresh = Database(path)
    except sqlite3.Error as error:
        raise StorageError(_describe_sqlite_error(error, path)) from error
    try:
        copied = salvage(moved_to, fresh)
    except Exception:  # what could not be copied stays in the moved file; the fresh start goes on
        log.warning('copying from the damaged database failed', exc_info=True)
        copied = {}
    moved = MovedAside(path, moved_to, reason, copied)
    log.warning('%s', moved.notice())
    return OpenedStorage(fresh, moved)


def _move_aside(path: Path) -> Path:
    stamp = time.strftime('%Y%m%d-%H%M%S')
    target = path.with_name(f'{path.name}{MOVED_ASIDE_INFIX}{stamp}')
    number = 1
    while any(_present(_with_suffix(target, s)) for s in ('', *COMPANION_SUFFIXES)):
        number += 1  # two damaged starts within a second: never overwrite what was moved aside before
        target = path.with_name(f'{path.name}{MOVED_ASIDE_INFIX}{stamp}-{number}')
    try:
        # the WAL first: a database file without its WAL would lose the last committed transactions
        for suffix in (*COMPANION_SUFFIXES, ''):
            source = _with_suffix(path, suffix)
            if _present(source):
                source.rename(_with_suffix(target, suffix))
    except OSError as error:
        raise StorageError(f'The database {path} is damaged and could not be moved aside '
                           f'({error.strerror or error}): move it away by hand and start again.') from error
    return target


def _one_line(text: str, limit: int = 200) -> str:
    """SQLite's reports span lines (quick_check's list of pages): one short line for a notice."""
    line = ' '.join(text.split())
    return line if len(line) <= limit else line[:limit - 1] + '…'


def _present(path: Path) -> bool:
    return path.is_symlink() or path.exists()  # a link to nowhere moves too, instead of being written through


def _with_suffix(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _describe_os_error(error: OSError, path: Path) -> str:
    if error.errno in (errno.EEXIST, errno.ENOTDIR):
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), path)
        return f'{blocker} is a file, not a folder: move it away {_DATA_DIR_HINT}.'
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f'The disk that holds {path} is full: free some space, {_DATA_DIR_HINT} on another disk.'
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (f'J.A.R.V.I.S. cannot write to {path} ({error.strerror}): make it writable, '
                f'{_DATA_DIR_HINT}.')
    return f'J.A.R.V.I.S. cannot use {path} ({error.strerror or error}): check it, {_DATA_DIR_HINT}.'


# SQLite's primary result codes (https://www.sqlite.org/rescode.html) that name a cause the user can act on
_SQLITE_PERM, _SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY = 3, 5, 6, 8
_SQLITE_IOERR, _SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_AUTH = 10, 13, 14, 23


def _describe_sqlite_error(error: sqlite3.Error, path: Path) -> str:
    code = (getattr(error, 'sqlite_errorcode', None) or 0) & 0xFF
    detail = _one_line(str(error))
    if path.is_dir():
        return f'{path} is a folder, not a database: move it away {_DATA_DIR_HINT}.'
    if code == _SQLITE_FULL:
        return f'The disk that holds {path} is full: free some space, {_DATA_DIR_HINT} on another disk.'
    if code in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return (f'The database {path} is locked by another program ({detail}): close it '
                f'(or the other J.A.R.V.I.S.) and start again.')
    if code in (_SQLITE_READONLY, _SQLITE_CANTOPEN, _SQLITE_PERM, _SQLITE_AUTH):
        return (f'J.A.R.V.I.S. cannot write to the database {path} ({detail}): make the file and its folder '
                f'writable, {_DATA_DIR_HINT}.')
    if code == _SQLITE_IOERR:
        return f'The disk failed while reading or writing {path} ({detail}): check the disk, {_DATA_DIR_HINT}.'
    if is_damage(error):
        return (f'The database {path} is damaged ({detail}): quit J.A.R.V.I.S. and move it away (a fresh one is '
                f'then started), or recover it with sqlite3\'s .recover.')
    return (f'The database {path} cannot be used ({detail}): it may belong to another program or miss a table. '
            f'Move it away (a fresh one is then started) {_DATA_DIR_HINT}.')


def describe_storage_error(error: BaseException, path: Path) -> str | None:
    """One sentence that says what to do about a disk or database error met while using ``path``,
    or None when the error is not about storage."""
    if isinstance(error, sqlite3.Error):
        return _describe_sqlite_error(error, path)
    if isinstance(error, OSError):
        return _describe_os_error(error, path)
    return None
