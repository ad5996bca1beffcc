"""The recorder: every ``system_metrics`` sample goes into the machine's history, also while no window is open.

Samples are kept in memory and written in one batch when their minute ends (and at stop): the samples
themselves, the minute's means and maxima, and the busiest processes of that minute. Nothing is written
per sample. The clock is injectable, so that the tiers and their pruning can be driven through days in a
test without waiting.

``HistoryBuffer`` is the part without I/O (tested on a simulated clock); ``HistoryRecorder`` feeds it from
the hub, writes its batches off the event loop and answers questions about the past.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from .. import events
from ..events import Event, SystemMetrics
from ..hub import Hub, Subscription
from ..storage.database import Database
from . import history_store as store
from .history_store import Aggregate, HistoryBatch, HistoryRange, HistorySample, RecordedProcess
from .processes import ProcessMonitor, ProcessSnapshot, rank

log = logging.getLogger(__name__)

MINUTE_S = 60
# the busiest processes kept with each minute: this many by CPU, by memory and (with a GPU) by GPU memory
TOP_PROCESSES = 5
# the ranges of the chart and of GET /api/system/history
RANGES: dict[str, float] = {'5m': 300.0, '1h': 3600.0, '24h': 86400.0, '7d': 7 * 86400.0, '30d': 30 * 86400.0}
MAX_POINTS = 1000  # per series: what a chart can show; a wider range is averaged into buckets
SAMPLES_STEP_S = 1.0  # the smallest bucket of the samples tier
# "the last hour" asked a moment ago is still answered from the samples, not from the minute means
TIER_SLACK_S = 5.0


class HistoryRangeError(ValueError):
    """A time range that cannot be answered; the message says what to ask instead."""


@dataclass
class _ProcessBaseline:
    at: float
    cpu_times: dict[tuple[int, float], float]


class HistoryBuffer:
    """Collects samples in memory, minute by minute, and hands out what is to be written."""

    def __init__(self) -> None:
        self.samples: list[HistorySample] = []  # not yet written
        self.minute: Aggregate | None = None  # the minute in progress
        self.finished: list[Aggregate] = []  # ended, not yet written
        self.processes: list[RecordedProcess] = []
        self._baseline: _ProcessBaseline | None = None
        self._last_snapshot: float | None = None

    def add(self, sample: HistorySample) -> bool:
        """Keep one sample; True when it began a new minute (the previous one is ready to be written)."""
        self.samples.append(sample)
        minute = math.floor(sample.t / MINUTE_S) * MINUTE_S
        if self.minute is None or self.minute.t != minute:
            if self.minute is not None:
                self.finished.append(self.minute)
            self.minute = Aggregate(minute)
        self.minute.add(sample.values())
        return bool(self.finished)

    def uses_snapshot(self, snapshot: ProcessSnapshot | None) -> bool:
        """Whether a scan is new to the buffer (a minute gets the processes of a scan of its own)."""
        return snapshot is not None and snapshot.timestamp != self._last_snapshot

    def add_processes(self, snapshot: ProcessSnapshot, minute: float) -> None:
        """Keep the busiest processes of a scan for ``minute``; CPU % is averaged since the previous scan
        the buffer was given (about a minute), not over the scan's own, shorter window."""
        self._last_snapshot = snapshot.timestamp
        baseline = self._baseline
        self._baseline = _ProcessBaseline(snapshot.timestamp,
                                          {(p.pid, p.started): p.cpu_time for p in snapshot.processes})
        rows = []
        for process in snapshot.processes:
            cpu = process.cpu
            if baseline is not None and snapshot.timestamp > baseline.at:
                window = snapshot.timestamp - baseline.at
                before = baseline.cpu_times.get((process.pid, process.started))
                if before is None:  # started since: its whole life falls in the window
                    window = min(window, max(snapshot.timestamp - process.started, 1.0))
                    before = 0.0
                cpu = round(max(0.0, process.cpu_time - before) / window * 100.0, 1)
            rows.append(RecordedProcess(t=int(minute), pid=process.pid, name=process.name, user=process.user,
                                        cpu=cpu, memory=process.memory, gpu_memory=process.gpu_memory))
        chosen: dict[int, RecordedProcess] = {}
        keys = ['cpu', 'memory'] + (['gpu_memory'] if snapshot.has_gpu_memory else [])
        for key in keys:
            for row in rank(rows, key)[:TOP_PROCESSES]:  # type: ignore[arg-type]
                if key != 'gpu_memory' or row.gpu_memory:
                    chosen.setdefault(row.pid, row)
        self.processes.extend(chosen.values())

    def take(self, *, final: bool = False) -> HistoryBatch:
        """What is to be written now: every minute that ended, and with ``final`` the one in progress too."""
        minutes = self.finished
        if final and self.minute is not None:
            minutes = [*minutes, self.minute]
            self.minute = None
        batch = HistoryBatch(samples=self.samples, minutes=minutes, processes=self.processes)
        self.samples, self.finished, self.processes = [], [], []
        return batch

    def pending_samples(self) -> list[HistorySample]:
        return list(self.samples)

    def pending_minutes(self) -> list[Aggregate]:
        return [*self.finished, *([self.minute] if self.minute is not None else [])]


class HistoryRecorder:
    """Records every sample published on the hub into the database; answers ranges of the past."""

    def __init__(self, db: Database, *, processes: ProcessMonitor | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.processes = processes
        self.clock = clock
        self.buffer = HistoryBuffer()
        self.flushes = 0
        self._write_lock = asyncio.Lock()
        self._subscription: Subscription | None = None
        self._in_flight = HistoryBatch()  # being written: still answered from memory until it is

    async def start(self, hub: Hub) -> None:
        if self._subscription is None:
            self._subscription = hub.subscribe(self._on_event, name='history recorder',
                                               types=[events.SYSTEM_METRICS])

    async def stop(self) -> None:
        """Stop listening and write everything still in memory, the minute in progress included."""
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
        await self.flush(final=True)

    async def _on_event(self, event: Event) -> None:
        if isinstance(event.data, SystemMetrics):
            await self.record(event.data)

    async def record(self, metrics: SystemMetrics) -> None:
        """Keep one sample; when its minute is over, write the batch."""
        if self.buffer.add(HistorySample.from_metrics(metrics)):
            await self.flush()

    async def flush(self, *, final: bool = False) -> None:
        """Write what is ready (with ``final``: everything), with the processes of the minutes that ended."""
        async with self._write_lock:
            minutes = self.buffer.pending_minutes() if final else list(self.buffer.finished)
            if minutes:
                snapshot = await self._processes_for_minute(minutes[-1].t)
                if snapshot is not None:
                    self.buffer.add_processes(snapshot, minutes[-1].t)
            batch = self.buffer.take(final=final)
            if not batch:
                return
            self._in_flight = batch
            try:
                await self.db.run(store.write, self.db, batch, self.clock())
            except Exception:  # a full disk, a locked file: the history has a gap, the app carries on
                log.exception('history: could not write %d samples', len(batch.samples))
            else:
                self.flushes += 1
            finally:
                self._in_flight = HistoryBatch()

    async def _processes_for_minute(self, minute: float) -> ProcessSnapshot | None:
        if self.processes is None:
            return None
        snapshot = self.processes.latest()
        if snapshot is not None and snapshot.timestamp >= minute and self.buffer.uses_snapshot(snapshot):
            return snapshot  # a window's Processes panel had one scanned in this minute
        # no scan since the last minute (no window shows the Processes panel): take one now, while the sample
        # that ended the minute has the app awake anyway; its CPU % covers the whole minute
        try:
            return await self.processes.scan_once()
        except Exception:
            log.warning('history: no process list for this minute', exc_info=True)
            return None

    # --- reading --------------------------------------------------------------------------------

    def resolve(self, range_name: str | None = None, start: float | None = None,
                end: float | None = None) -> tuple[float, float]:
        """The range asked for as (from, to) in Unix seconds: a named range ending now, or from/to."""
        if range_name is not None and (start is not None or end is not None):
            raise HistoryRangeError('Give either range or from/to, not both.')
        now = self.clock()
        if range_name is not None:
            if range_name not in RANGES:
                raise HistoryRangeError(f'Unknown range {range_name!r}; use one of {", ".join(RANGES)}.')
            return now - RANGES[range_name], now
        end = now if end is None else end
        start = end - RANGES['1h'] if start is None else start
        if start >= end:
            raise HistoryRangeError('from must be before to (both in Unix seconds).')
        return start, end

    async def query(self, start: float, end: float, max_points: int = MAX_POINTS) -> HistoryRange:
        """The history from ``start`` to ``end``, oldest first, at most ``max_points`` points per series: the
        last hour from its samples, anything older from the minute means (both averaged into buckets when
        there are more than that)."""
        if max_points < 2:
            raise HistoryRangeError('max_points must be at least 2.')
        if start >= self.clock() - store.SAMPLES_RETENTION_S - TIER_SLACK_S:
            pending = [s for s in [*self._in_flight.samples, *self.buffer.pending_samples()] if start <= s.t <= end]
            return await self.db.run(_samples_range, self.db, start, end, max_points, pending)
        minutes = [*self._in_flight.minutes, *self.buffer.pending_minutes()]
        return await self.db.run(_minutes_range, self.db, start, end, max_points, minutes)

    async def processes_at(self, timestamp: float) -> list[RecordedProcess]:
        """The busiest processes of the minute that holds ``timestamp`` (what was busy at 14:05)."""
        minute = math.floor(timestamp / MINUTE_S) * MINUTE_S
        pending = [p for p in self.buffer.processes if p.t == minute]
        stored = await self.db.run(store.read_processes, self.db, minute, minute)
        return stored + [p for p in pending if p.pid not in {s.pid for s in stored}]

    async def processes_between(self, start: float, end: float) -> list[RecordedProcess]:
        """The busiest processes of every minute from ``start`` to ``end`` (both minutes included), oldest first
        ("what was busy this morning"); minutes not written yet come from memory."""
        first, last = math.floor(start / MINUTE_S) * MINUTE_S, math.floor(end / MINUTE_S) * MINUTE_S
        stored = await self.db.run(store.read_processes, self.db, first, last)
        written = {(p.t, p.pid) for p in stored}
        pending = [p for p in [*self._in_flight.processes, *self.buffer.processes]
                   if first <= p.t <= last and (p.t, p.pid) not in written]
        return sorted(stored + pending, key=lambda p: p.t)


def _samples_range(db: Database, start: float, end: float, max_points: int,
                   pending: list[HistorySample]) -> HistoryRange:
    stored = store.read_samples(db, start, end)
    newest = stored[-1].t if stored else -math.inf
    samples = stored + [s for s in pending if s.t > newest]  # pending ones are newer than any written
    if len(samples) <= max_points:
        points = [store.HistoryPoint(s.t, s.values(), s.values()) for s in samples]
        return HistoryRange(start, end, 'samples', None, points)
    step = max(SAMPLES_STEP_S, math.ceil((end - start) / max_points))
    buckets = store.bucket_samples(samples, start, step)
    return HistoryRange(start, end, 'samples', float(step), [store.to_point(b) for b in buckets])


def _minutes_range(db: Database, start: float, end: float, max_points: int,
                   pending: list[Aggregate]) -> HistoryRange:
    step = max(1, math.ceil((end - start) / max_points / MINUTE_S)) * MINUTE_S
    buckets = store.read_minutes(db, start, end, step)
    by_start = {b.t: b for b in buckets}
    origin = math.floor(start / MINUTE_S) * MINUTE_S
    for minute in (m for m in pending if origin <= m.t <= end):  # not written yet: the minute in progress, ...
        bucket_start = origin + ((minute.t - origin) // step) * step
        bucket = by_start.get(bucket_start)
        if bucket is None:
            bucket = by_start[bucket_start] = Aggregate(bucket_start)
        means, maxima = store.minute_values(minute)
        bucket.add(means, maxima)
    points = [store.to_point(by_start[t]) for t in sorted(by_start)]
    return HistoryRange(start, end, 'minutes', float(step), points)
