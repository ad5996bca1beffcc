"""The processes of the machine: scanned on a cadence of their own, and only while something needs them.

Whoever needs the process list (a window that shows the Processes panel, the history recorder, later an
alert rule on processes) takes a ``Demand`` with the interval it wants. The monitor scans at the shortest
interval among the active demands, publishes each scan on the hub as a ``processes`` event, and does not
scan at all while no demand is active. A script's question (``current()``) takes a scan of its own when
the last one is stale.

CPU % is per process and of one core (200 % = two cores busy), averaged since the previous scan: a scan
reads cumulative CPU time, so a rate needs two of them. The very first scan looks twice, a quarter of a
second apart.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, NamedTuple

from ..events import Payload
from ..hub import Hub
from .gpu import NvmlGpuReader
from .process_scan import ProcessRecord, ProcessScanner, default_scanner, memory_total
from .waiting import wait_or_timeout

log = logging.getLogger(__name__)

PROCESSES = 'processes'  # the hub event's wire name
# what a window that shows the Processes panel asks for: a scan every 5 s, or less often where a scan costs
# more than the budget below allows
PANEL_INTERVAL_S = 5.0
# The scans may cost at most 0.1 % of one core: 0.08 % for the scans themselves (their worker thread's CPU
# time), the rest for waking up to run them. A scan of 400 processes costs 8-15 ms on the 2-core benchmark
# machine when the previous one was seconds ago (the kernel's and the CPU's caches are cold by then): there
# the panel refreshes every 10-19 s; on a machine where a scan costs 4 ms, every 5 s.
SCAN_CORE_SHARE = 0.0008
MAX_SCAN_INTERVAL_S = 30.0  # however much a scan costs, a panel in view refreshes at least this often
PAUSED_LOOK_S = 60.0
MIN_CPU_WINDOW_S = 0.25  # a CPU % over a shorter window is mostly noise
# a script's question is answered from the last scan while it is this fresh
FRESH_S = PANEL_INTERVAL_S * 1.5

SORTS: tuple[str, ...] = ('cpu', 'memory', 'gpu_memory')
SORTABLE = frozenset((*SORTS, 'pid', 'name', 'user', 'memory_percent'))


class ProcessInfo(NamedTuple):
    """One process. ``None`` reads "n/a": no GPU memory without a GPU or where the driver does not tell;
    0 GPU memory means the process holds none. A tuple: a scan makes hundreds of them."""

    pid: int
    name: str
    user: str
    cpu: float | None  # percent of one core, since the previous scan
    memory: int  # resident bytes
    memory_percent: float | None  # of the machine's RAM
    gpu_memory: int | None  # bytes, on every GPU together
    cpu_time: float  # user + system seconds since it started
    started: float  # Unix seconds; with the pid it names the process across scans

    def to_dict(self) -> dict[str, Any]:
        data = self._asdict()
        for name in ('cpu', 'memory_percent'):  # kept exact while ranking, rounded for the wire
            if data[name] is not None:
                data[name] = round(data[name], 2)
        data['cpu_time'] = round(self.cpu_time, 2)
        return data


@dataclass(frozen=True, slots=True)
class ProcessSnapshot(Payload):
    """One scan: the processes (all of them, or the top ones of ``sort``) and how to read them."""

    event_type: ClassVar[str] = PROCESSES
    processes: list[ProcessInfo]
    count: int  # processes on the machine (also when ``processes`` holds only the top ones)
    timestamp: float = field(default_factory=time.time)
    cpu_window_s: float | None = None  # what CPU % is averaged over
    memory_total: int = 0
    gpu_status: str = 'n/a'  # 'ok', or why GPU memory per process reads "n/a"
    sort: str | None = None  # set on a ranked snapshot

    @property
    def has_gpu_memory(self) -> bool:
        return self.gpu_status == 'ok'

    def ranked(self, sort: str, limit: int) -> ProcessSnapshot:
        """The ``limit`` processes that use the most of ``sort``."""
        return replace(self, processes=rank(self.processes, sort)[:max(0, limit)], sort=sort)

    def to_dict(self) -> dict[str, Any]:
        # asdict() deep-copies; a scan holds hundreds of rows
        data = {name: getattr(self, name) for name in
                ('count', 'timestamp', 'cpu_window_s', 'memory_total', 'gpu_status', 'sort')}
        data['processes'] = [p.to_dict() for p in self.processes]
        return data


def rank(processes: list[ProcessInfo], sort: str, *, descending: bool = True) -> list[ProcessInfo]:
    """Sorted by one field, n/a last; ties by pid, so that equal rows keep their places between scans."""
    if sort not in SORTABLE:
        raise ValueError(f'cannot sort processes by {sort!r}')

    def value(process: ProcessInfo) -> Any:
        found = getattr(process, sort)
        return found.casefold() if isinstance(found, str) else found

    by_pid = sorted(processes, key=lambda p: p.pid)
    known = [p for p in by_pid if getattr(p, sort) is not None]
    known.sort(key=value, reverse=descending)  # stable, also reversed: ties stay in pid order
    return known + [p for p in by_pid if getattr(p, sort) is None]


class Demand:
    """A need for the process list at an interval. It counts while ``active()`` says so (a window whose
    socket is gone does not), and ends with ``release()`` or once ``ended()`` says so (its view is gone)."""

    def __init__(self, monitor: ProcessMonitor, interval: float, name: str,
                 active: Callable[[], bool] | None, ended: Callable[[], bool] | None) -> None:
        self.interval = interval
        self.name = name
        self._monitor = monitor
        self._active = active
        self._ended = ended
        self.released = False

    @property
    def is_ended(self) -> bool:
        return self.released or (self._ended is not None and bool(self._ended()))

    @property
    def is_active(self) -> bool:
        return not self.is_ended and (self._active is None or bool(self._active()))

    def changed(self) -> None:
        """Say that ``active()`` may have changed (a window's socket came back), so that scans resume at once."""
        self._monitor._wake()  # pylint: disable=protected-access

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._monitor._wake()  # pylint: disable=protected-access


class ProcessMonitor:
    """Scans the processes off the event loop while a demand is active, and publishes each scan."""

    def __init__(self, hub: Hub, *, gpus: NvmlGpuReader | None = None, scanner: ProcessScanner | None = None,
                 clock: Callable[[], float] = time.time, core_share: float | None = SCAN_CORE_SHARE) -> None:
        self.hub = hub
        self.gpus = gpus
        self.core_share = core_share  # None: scan as often as asked, whatever it costs
        self.scanner = scanner or default_scanner()
        self.clock = clock
        self.scans_taken = 0
        self._demands: list[Demand] = []
        self._latest: ProcessSnapshot | None = None
        # the previous scan's CPU times, by (pid, start time), and when it was taken (monotonic)
        self._baseline: dict[tuple[int, float], float] | None = None
        self._baseline_at = 0.0
        self._last_scan_at: float | None = None
        self._memory_total: int | None = None
        self.scan_cost_s: float | None = None  # CPU seconds of one scan (a moving average)
        self._lock = asyncio.Lock()  # the loop and a script may ask at the same time
        self._changed: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    # --- who needs it ---------------------------------------------------------------------------

    def demand(self, interval: float, *, name: str, active: Callable[[], bool] | None = None,
               ended: Callable[[], bool] | None = None) -> Demand:
        """Ask for scans at least every ``interval`` seconds until the demand is released or ends."""
        if interval <= 0:
            raise ValueError('the interval must be positive')
        demand = Demand(self, interval, name, active, ended)
        self._demands.append(demand)
        self._wake()
        return demand

    def demands(self) -> list[Demand]:
        """The demands that still count (for diagnostics and tests)."""
        return [d for d in self._demands if d.is_active]

    def wanted_interval(self) -> float | None:
        """The shortest interval among the active demands; None while nothing needs a scan."""
        self._demands = [d for d in self._demands if not d.is_ended]
        active = [d.interval for d in self._demands if d.is_active]
        return min(active) if active else None

    def scan_interval(self, wanted: float) -> float:
        """How often to scan for demands that want ``wanted``: as asked, or less often where a scan costs more
        than ``core_share`` of a core at that rate (up to ``MAX_SCAN_INTERVAL_S``)."""
        if self.scan_cost_s is None or not self.core_share:
            return wanted
        return max(wanted, min(self.scan_cost_s / self.core_share, MAX_SCAN_INTERVAL_S))

    # --- reading --------------------------------------------------------------------------------

    def latest(self) -> ProcessSnapshot | None:
        return self._latest

    async def current(self) -> ProcessSnapshot:
        """The last scan while it is fresh, else a new one (for a script asking between scans)."""
        latest = self._latest
        if latest is not None and self.clock() - latest.timestamp <= FRESH_S:
            return latest
        return await self.scan_once()

    async def scan_once(self) -> ProcessSnapshot:
        """Scan now (off the loop) and publish the result."""
        async with self._lock:
            snapshot = await asyncio.to_thread(self._scan)
            self._latest = snapshot
            self.scans_taken += 1
            self._last_scan_at = time.monotonic()
        self.hub.publish(snapshot)
        return snapshot

    # --- the cadence ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._changed = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(), name='process-monitor')

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        assert self._changed is not None
        while True:
            self._changed.clear()  # anything that changes the demands from here on wakes the wait below
            interval = self.wanted_interval()
            if interval is None:
                # nobody asks: sleep until a demand comes or a paused one says it counts again (Demand.changed());
                # a paused one is also looked at once a minute, in case its owner does not say so
                await self._wait(PAUSED_LOOK_S if self._demands else None)
                continue
            interval = self.scan_interval(interval)
            wait = 0.0 if self._last_scan_at is None else self._last_scan_at + interval - time.monotonic()
            if wait > 0:
                await self._wait(wait)
                continue
            try:
                await self.scan_once()
            except Exception:  # a bad scan must not end the monitoring
                log.exception('processes: the scan failed')
                await asyncio.sleep(interval)

    async def _wait(self, timeout: float | None) -> None:
        assert self._changed is not None
        await wait_or_timeout(self._changed.wait(), timeout)

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()

    # --- one scan (in a worker thread) ----------------------------------------------------------

    def _scan(self) -> ProcessSnapshot:
        if self._memory_total is None:
            self._memory_total = memory_total()
        if self._baseline is None:  # a first look: CPU % needs a second one
            self._remember(self.scanner.scan(), time.monotonic())
        wait = MIN_CPU_WINDOW_S - (time.monotonic() - self._baseline_at)
        if wait > 0:
            time.sleep(wait)
        cpu_before = time.thread_time()
        records = self.scanner.scan()
        now = time.monotonic()
        wall = self.clock()
        elapsed = now - self._baseline_at
        gpu_memory, gpu_status = self._gpu_memory()
        total = self._memory_total
        # this loop runs once per process and scan: no rounding here (the wire form rounds), names bound locally
        before_of = (self._baseline or {}).get
        gpu_of = gpu_memory.get if gpu_memory is not None else None
        per_second = 100.0 / elapsed
        memory_share = 100.0 / total if total else None
        processes: list[ProcessInfo] = []
        append = processes.append
        for pid, name, user, cpu_time, memory, started in records:
            before = before_of((pid, started))
            if before is not None:
                cpu = (cpu_time - before) * per_second
            else:  # started since the previous scan: all its CPU time falls in its own, shorter life
                cpu = cpu_time * 100.0 / min(elapsed, max(wall - started, MIN_CPU_WINDOW_S))
            append(ProcessInfo(pid, name, user, cpu if cpu > 0.0 else 0.0, memory,
                               memory * memory_share if memory_share is not None else None,
                               gpu_of(pid, 0) if gpu_of is not None else None, cpu_time, started))
        self._remember(records, now)
        self._note_cost(time.thread_time() - cpu_before)
        return ProcessSnapshot(processes=processes, count=len(processes), timestamp=wall,
                               cpu_window_s=round(elapsed, 3), memory_total=total or 0, gpu_status=gpu_status)

    def _note_cost(self, cpu_s: float) -> None:
        # a moving average: one scan slowed down by a busy moment does not halve the panel's rate for long
        self.scan_cost_s = cpu_s if self.scan_cost_s is None else 0.7 * self.scan_cost_s + 0.3 * cpu_s

    def _remember(self, records: list[ProcessRecord], at: float) -> None:
        self._baseline = {(r.pid, r.started): r.cpu_time for r in records}
        self._baseline_at = at

    def _gpu_memory(self) -> tuple[dict[int, int | None] | None, str]:
        if self.gpus is None:
            return None, 'n/a'
        try:
            usage = self.gpus.process_memory()
        except Exception as error:  # the reader maps NVML's errors; anything else must not end the scan
            log.debug('processes: GPU memory per process failed', exc_info=True)
            return None, f'NVML error ({error})'
        if usage is not None:
            return usage, 'ok'
        if not self.gpus.available:
            return None, self.gpus.status
        return None, 'the driver does not list the processes on the GPU'
