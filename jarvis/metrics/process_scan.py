"""Reading every process of the machine: one pass over the process table. Blocking: call off the event loop.

The Linux fast path reads ``/proc/<pid>/stat`` once per process (name, CPU ticks, start time, resident
pages) and stats the process's folder only for a process it has not seen before (its owner). That is
what keeps a scan of a few hundred processes at a few milliseconds; ``psutil.process_iter`` with the
same attributes opens several files per process and costs about ten times as much (measured on the
2-core benchmark machine). Other platforms use psutil.
"""
from __future__ import annotations

import os
import pwd
import sys
from pathlib import Path
from typing import NamedTuple, Protocol

import psutil

# the kernel keeps a process's name ("comm") to 15 bytes; a longer one is read from its command line
_COMM_LIMIT = 15


class ProcessRecord(NamedTuple):
    """One process as read: cumulative counters only (a rate needs two scans). A tuple: a scan makes hundreds."""

    pid: int
    name: str
    user: str
    cpu_time: float  # user + system seconds since the process started
    memory: int  # resident bytes
    started: float  # start time, Unix seconds: with the pid, it identifies the process across scans


class ProcessScanner(Protocol):
    def scan(self) -> list[ProcessRecord]:
        """Every process that can be read now (those that end while it reads are left out)."""
        ...


class ProcfsScanner:
    """Linux: ``/proc/<pid>/stat``, one read per process."""

    def __init__(self, proc: str | Path = '/proc') -> None:
        self.proc = str(proc)
        self._ticks = float(os.sysconf('SC_CLK_TCK'))
        self._page_size = os.sysconf('SC_PAGE_SIZE')
        self._boot_time = psutil.boot_time()
        # a process keeps its pid, start time, owner and name from one scan to the next (nearly always):
        # stat and decode those once per process, not once per scan; an exec() changes the kernel's name
        # (and may change the owner), so a new name is looked up again
        self._known: dict[tuple[str, bytes], tuple[bytes, str, str, float, int]] = {}
        self._users: dict[int, str] = {}

    @staticmethod
    def available(proc: str | Path = '/proc') -> bool:
        return sys.platform.startswith('linux') and os.path.exists(os.path.join(str(proc), 'self', 'stat'))

    def scan(self) -> list[ProcessRecord]:
        # the loop runs once per process and scan: names are bound locally and nothing is computed twice
        records: list[ProcessRecord] = []
        append = records.append
        known = self._known
        seen: dict[tuple[str, bytes], tuple[bytes, str, str, float, int]] = {}
        os_open, os_read, os_close, read_only = os.open, os.read, os.close, os.O_RDONLY
        ticks, page_size, prefix = self._ticks, self._page_size, self.proc + '/'
        try:
            entries = os.listdir(self.proc)
        except OSError:
            return records
        for entry in entries:
            if not entry.isdigit():
                continue
            try:
                fd = os_open(prefix + entry + '/stat', read_only)
            except OSError:  # it ended between listdir and open, or it is hidden from us
                continue
            try:
                data = os_read(fd, 1024)
            except OSError:
                continue
            finally:
                os_close(fd)
            # "pid (name) state ppid ..."; the name may hold spaces and parentheses: it ends at the last ")"
            close = data.rfind(b')')
            fields = data[close + 2:].split(b' ', 22)
            if len(fields) < 22:
                continue
            key = (entry, fields[19])  # the pid and the start time in ticks
            comm = data[data.find(b'(') + 1:close]
            identity = known.get(key)
            if identity is None or identity[0] != comm:
                identity = self._identify(entry, comm, fields[19])
                if identity is None:
                    continue
            seen[key] = identity
            append(ProcessRecord(identity[4], identity[1], identity[2],
                                 (int(fields[11]) + int(fields[12])) / ticks, int(fields[21]) * page_size,
                                 identity[3]))
        self._known = seen  # forget the processes that ended
        return records

    def _identify(self, entry: str, comm: bytes, start_ticks: bytes) -> tuple[bytes, str, str, float, int] | None:
        """What stays the same while the process runs the same program: its name, owner, start time and pid."""
        try:
            uid = os.stat(f'{self.proc}/{entry}').st_uid
        except OSError:
            return None
        name = comm.decode(errors='replace')
        if len(comm) >= _COMM_LIMIT:
            name = self._long_name(entry, name)
        return comm, name, self._user(uid), self._boot_time + int(start_ticks) / self._ticks, int(entry)

    def _long_name(self, entry: str, comm: str) -> str:
        """The program's full name when the kernel cut it short (as psutil's ``name()`` does)."""
        try:
            with open(f'{self.proc}/{entry}/cmdline', 'rb') as file:
                first = file.read(4096).split(b'\0', 1)[0]
        except OSError:
            return comm
        program = os.path.basename(first.decode(errors='replace'))
        return program if program.startswith(comm) else comm

    def _user(self, uid: int) -> str:
        user = self._users.get(uid)
        if user is None:
            try:
                user = pwd.getpwuid(uid).pw_name
            except KeyError:  # a uid without a name (a container's user)
                user = str(uid)
            self._users[uid] = user
        return user


class PsutilScanner:
    """Every other platform: psutil, one ``process_iter`` with the attributes needed."""

    ATTRIBUTES = ['pid', 'name', 'username', 'cpu_times', 'memory_info', 'create_time']

    def scan(self) -> list[ProcessRecord]:
        records = []
        for process in psutil.process_iter(self.ATTRIBUTES):
            info = process.info
            times, memory = info.get('cpu_times'), info.get('memory_info')
            if times is None or memory is None:  # access denied: nothing to rank it by
                continue
            records.append(ProcessRecord(
                pid=int(info['pid']),
                name=info.get('name') or '?',
                user=info.get('username') or '',
                cpu_time=float(times.user + times.system),
                memory=int(memory.rss),
                started=float(info.get('create_time') or 0.0),
            ))
        return records


def default_scanner() -> ProcessScanner:
    return ProcfsScanner() if ProcfsScanner.available() else PsutilScanner()


def memory_total() -> int:
    return int(psutil.virtual_memory().total)

