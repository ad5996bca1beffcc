"""The machine's history in SQLite: what is kept, how it is merged, written, pruned and read back.

Three tiers, each with a retention of its own and pruned on its own:

* ``history_samples``: every recorded sample, for the last hour;
* ``history_minutes``: one row per minute with the mean and the maximum of each series, for 30 days;
* ``history_processes``: the busiest processes of each minute (by CPU, by memory, by GPU memory), for 30 days.
  It is the largest by far (up to 15 rows a minute), so its rows are kept small: the row id says the minute
  and the row's place in it (``minute * 64 + place``, in time order without an index of its own) and CPU is
  kept in tenths of a percent (an integer of one or two bytes instead of an 8-byte float).

Everything here is blocking: the recorder calls it through ``Database.run``.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..events import SystemMetrics
from ..storage.database import Database

SAMPLES_RETENTION_S = 3600.0
MINUTES_RETENTION_S = 30 * 86400.0
PROCESSES_RETENTION_S = 30 * 86400.0

# the series of the history; the GPU ones are n/a (NULL) on a machine without a readable GPU
FIELDS: tuple[str, ...] = ('cpu', 'memory', 'disk', 'gpu', 'gpu_memory', 'gpu_temperature')
_ALWAYS = frozenset(('cpu', 'memory', 'disk'))


@dataclass(frozen=True, slots=True)
class HistorySample:
    """One sample as recorded: percentages, and the hottest GPU's temperature in °C."""

    t: float
    cpu: float
    memory: float
    disk: float
    gpu: float | None = None  # mean utilisation of the GPUs
    gpu_memory: float | None = None  # percent of all GPU memory in use
    gpu_temperature: float | None = None

    @classmethod
    def from_metrics(cls, metrics: SystemMetrics) -> HistorySample:
        readable = [g for g in metrics.gpus if g.memory_used is not None and g.memory_total]
        total = sum(g.memory_total or 0 for g in readable)
        temperatures = [g.temperature for g in metrics.gpus if g.temperature is not None]
        return cls(
            t=float(metrics.timestamp),
            cpu=float(metrics.cpu),
            memory=float(metrics.memory),
            disk=float(metrics.disk),
            gpu=metrics.gpu,
            gpu_memory=round(sum(g.memory_used or 0 for g in readable) / total * 100.0, 2) if total else None,
            gpu_temperature=max(temperatures) if temperatures else None,
        )

    def values(self) -> tuple[float | None, ...]:
        return tuple(getattr(self, name) for name in FIELDS)


class Aggregate:
    """Means and maxima, series by series; a missing (n/a) value is left out of that series only."""

    __slots__ = ('t', 'count', 'sums', 'weights', 'maxima')

    def __init__(self, t: float) -> None:
        self.t = t
        self.count = 0  # what was added: samples for a minute, minutes or samples for a chart's point
        self.sums = [0.0] * len(FIELDS)
        self.weights = [0] * len(FIELDS)
        self.maxima: list[float | None] = [None] * len(FIELDS)

    def add(self, values: Sequence[float | None], maxima: Sequence[float | None] | None = None,
            weight: int = 1) -> None:
        self.count += weight
        for index, value in enumerate(values):
            if value is None:
                continue
            self.sums[index] += value * weight
            self.weights[index] += weight
            peak = value if maxima is None or maxima[index] is None else maxima[index]
            current = self.maxima[index]
            self.maxima[index] = peak if current is None or peak > current else current  # type: ignore[operator]

    def mean(self, index: int) -> float | None:
        weight = self.weights[index]
        return self.sums[index] / weight if weight else None


@dataclass(frozen=True, slots=True)
class RecordedProcess:
    """One of the busiest processes of a minute: CPU % of one core averaged over about that minute."""

    t: int  # the minute, Unix seconds
    pid: int
    name: str
    user: str
    cpu: float | None
    memory: int
    gpu_memory: int | None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}  # type: ignore[attr-defined]


@dataclass
class HistoryBatch:
    """What one flush writes: the samples since the last one, the minutes that ended, their processes."""

    samples: list[HistorySample] = field(default_factory=list)
    minutes: list[Aggregate] = field(default_factory=list)
    processes: list[RecordedProcess] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.samples or self.minutes or self.processes)


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One point of a chart: the mean of each series over ``t`` .. ``t + step`` and its maximum."""

    t: float
    means: tuple[float | None, ...]
    maxima: tuple[float | None, ...]

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {'t': round(self.t, 3)}
        for index, name in enumerate(FIELDS):
            data[name] = _round(self.means[index])
            data[f'{name}_max'] = _round(self.maxima[index])
        return data

    def value(self, name: str) -> float | None:
        return self.means[FIELDS.index(name)]


@dataclass(frozen=True, slots=True)
class HistoryRange:
    """Points of one time range, oldest first. ``tier`` says where they come from ("samples": the last hour's
    samples, "minutes": the minute means); ``step_s`` is the width of each point (None: one per sample)."""

    start: float
    end: float
    tier: str
    step_s: float | None
    points: list[HistoryPoint]

    def to_dict(self) -> dict[str, Any]:
        return {'from': self.start, 'to': self.end, 'tier': self.tier, 'step_s': self.step_s,
                'series': list(FIELDS), 'points': [p.to_dict() for p in self.points]}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


# --- writing -------------------------------------------------------------------------------------

_MINUTE_COLUMNS = ['t', 'samples']
for _name in FIELDS:
    if _name not in _ALWAYS:
        _MINUTE_COLUMNS.append(f'{_name}_samples')
    _MINUTE_COLUMNS += [_name, f'{_name}_max']


def _merge_sql() -> str:
    """A minute that is already there (the app stopped and started again within it) is merged, weighted by
    the samples each part holds; in an UPDATE's SET, SQLite reads every column as it was before."""
    updates = []
    for name in FIELDS:
        weight = 'samples' if name in _ALWAYS else f'{name}_samples'
        new = f'excluded.{name}'
        updates.append(
            f'{name} = CASE WHEN {weight} + excluded.{weight} = 0 THEN NULL ELSE '
            f'(coalesce({name}, 0) * {weight} + coalesce({new}, 0) * excluded.{weight}) '
            f'/ ({weight} + excluded.{weight}) END')
        updates.append(f'{name}_max = max(coalesce({name}_max, excluded.{name}_max), '
                       f'coalesce(excluded.{name}_max, {name}_max))')
        if name not in _ALWAYS:
            updates.append(f'{weight} = {weight} + excluded.{weight}')
    updates.append('samples = samples + excluded.samples')
    columns = ', '.join(_MINUTE_COLUMNS)
    marks = ', '.join('?' for _ in _MINUTE_COLUMNS)
    return (f'INSERT INTO history_minutes ({columns}) VALUES ({marks}) '
            f'ON CONFLICT(t) DO UPDATE SET {", ".join(updates)}')


_INSERT_MINUTE = _merge_sql()
_INSERT_SAMPLE = (f'INSERT OR REPLACE INTO history_samples (t, {", ".join(FIELDS)}) '
                  f'VALUES ({", ".join("?" for _ in range(len(FIELDS) + 1))})')
_INSERT_PROCESS = ('INSERT OR REPLACE INTO history_processes (id, pid, name, username, cpu, memory, gpu_memory) '
                   'VALUES (?, ?, ?, ?, ?, ?, ?)')
PROCESS_PLACES = 64  # rows a minute can hold in history_processes


def _process_id(minute: float, place: int = 0) -> int:
    return int(minute // 60) * PROCESS_PLACES + place


def _minute_row(minute: Aggregate) -> tuple:
    row: list[Any] = [int(minute.t), minute.count]
    for index, name in enumerate(FIELDS):
        mean = minute.mean(index)
        if name in _ALWAYS:
            if mean is None:  # cannot happen for a recorded sample; a minute without one is not written
                raise ValueError(f'a minute without {name}')
        else:
            row.append(minute.weights[index])
        row += [mean, minute.maxima[index]]
    return tuple(row)


def write(db: Database, batch: HistoryBatch, now: float) -> None:
    """Write one batch (a transaction per table), then prune each tier to its retention."""
    if batch.samples:
        db.executemany(_INSERT_SAMPLE, [(s.t, *s.values()) for s in batch.samples])
    minutes = [m for m in batch.minutes if m.count]
    if minutes:
        db.executemany(_INSERT_MINUTE, [_minute_row(m) for m in minutes])
    if batch.processes:
        # a minute's processes are written once; a minute written again (the app stopped within it and
        # started again) keeps the later scan
        rows = []
        by_minute: dict[int, list[RecordedProcess]] = {}
        for process in batch.processes:
            by_minute.setdefault(process.t, []).append(process)
        for minute, processes in sorted(by_minute.items()):
            db.execute('DELETE FROM history_processes WHERE id >= ? AND id < ?',
                       (_process_id(minute), _process_id(minute + 60)))
            rows += [(_process_id(minute, place), p.pid, p.name, p.user,
                      None if p.cpu is None else round(p.cpu * 10), p.memory, p.gpu_memory)
                     for place, p in enumerate(processes[:PROCESS_PLACES])]
        db.executemany(_INSERT_PROCESS, rows)
    prune(db, now)


def prune(db: Database, now: float) -> None:
    """Each tier loses what is older than its own retention (a range delete on its primary key)."""
    db.execute('DELETE FROM history_samples WHERE t < ?', (now - SAMPLES_RETENTION_S,))
    db.execute('DELETE FROM history_minutes WHERE t < ?', (now - MINUTES_RETENTION_S,))
    # the minutes that begin before the cutoff
    db.execute('DELETE FROM history_processes WHERE id < ?',
               (math.ceil((now - PROCESSES_RETENTION_S) / 60) * PROCESS_PLACES,))


# --- reading -------------------------------------------------------------------------------------

def read_samples(db: Database, start: float, end: float) -> list[HistorySample]:
    rows = db.query(f'SELECT t, {", ".join(FIELDS)} FROM history_samples WHERE t >= ? AND t <= ? ORDER BY t',
                    (start, end))
    return [HistorySample(*tuple(row)) for row in rows]


def read_minutes(db: Database, start: float, end: float, step: float) -> list[Aggregate]:
    """The minutes from ``start`` to ``end`` in buckets of ``step`` seconds (a multiple of 60): each bucket's
    mean is the mean of its minutes' means (every minute weighs the same), its maximum theirs."""
    origin = math.floor(start / 60.0) * 60
    sums = ', '.join(f'sum({name}), count({name}), max({name}_max)' for name in FIELDS)
    rows = db.query(
        f'SELECT CAST((t - ?) / ? AS INTEGER) AS bucket, count(*), {sums} FROM history_minutes '
        'WHERE t >= ? AND t <= ? GROUP BY bucket ORDER BY bucket',
        (origin, step, origin, end))
    buckets = []
    for row in rows:
        bucket = Aggregate(origin + row[0] * step)
        bucket.count = row[1]
        for index in range(len(FIELDS)):
            total, count, peak = row[2 + 3 * index: 5 + 3 * index]
            bucket.sums[index] = total or 0.0
            bucket.weights[index] = count
            bucket.maxima[index] = peak
        buckets.append(bucket)
    return buckets


def minute_values(minute: Aggregate) -> tuple[tuple[float | None, ...], tuple[float | None, ...]]:
    """A recorded minute as a chart bucket takes it: its means and its maxima."""
    return tuple(minute.mean(i) for i in range(len(FIELDS))), tuple(minute.maxima)


def read_processes(db: Database, start: float, end: float) -> list[RecordedProcess]:
    """The processes recorded for the minutes from ``start`` to ``end`` (both minutes included)."""
    rows = db.query('SELECT id, pid, name, username, cpu, memory, gpu_memory FROM history_processes '
                    'WHERE id >= ? AND id < ? ORDER BY id', (_process_id(start), _process_id(end + 60)))
    return [RecordedProcess(t=row[0] // PROCESS_PLACES * 60, pid=row[1], name=row[2], user=row[3],
                            cpu=None if row[4] is None else row[4] / 10, memory=row[5], gpu_memory=row[6])
            for row in rows]


def bucket_samples(samples: Iterable[HistorySample], origin: float, step: float) -> list[Aggregate]:
    buckets: dict[int, Aggregate] = {}
    for sample in samples:
        index = int((sample.t - origin) // step)
        bucket = buckets.get(index)
        if bucket is None:
            bucket = buckets[index] = Aggregate(origin + index * step)
        bucket.add(sample.values())
    return [buckets[i] for i in sorted(buckets)]


def to_point(bucket: Aggregate) -> HistoryPoint:
    return HistoryPoint(bucket.t, tuple(bucket.mean(i) for i in range(len(FIELDS))), tuple(bucket.maxima))
