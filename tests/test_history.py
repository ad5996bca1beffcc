"""The machine's history: tiers, batching and pruning on a simulated clock, a real SQLite file that outlives
the recorder, ranges averaged to what a chart can show, and the busiest processes of each minute."""
from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from jarvis.events import GpuReading, SystemMetrics
from jarvis.hub import Hub
from jarvis.metrics import HistoryRangeError, HistoryRecorder, SystemMonitor
from jarvis.metrics import history_store as store
from jarvis.metrics.history import MAX_POINTS, TOP_PROCESSES, HistoryBuffer
from jarvis.metrics.history_store import Aggregate, HistoryBatch, HistorySample
from jarvis.metrics.processes import ProcessInfo, ProcessSnapshot
from jarvis.storage.database import Database

from .helpers.waiting import eventually

DAY = 86400.0
# a minute boundary in the past, so that the simulated days never run into the real clock's future
T0 = math.floor((1_700_000_000.0) / 60) * 60


class Clock:
    """A simulated clock: tests move it; nothing sleeps."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def metrics(t: float, cpu: float = 10.0, memory: float = 40.0, *, gpu: float | None = None,
            gpu_memory: tuple[int, int] | None = None, temperature: float | None = None) -> SystemMetrics:
    gpus = []
    if gpu is not None or gpu_memory is not None or temperature is not None:
        used, total = gpu_memory or (None, None)
        gpus = [GpuReading(index=0, name='GPU', utilization=gpu, memory_used=used, memory_total=total,
                           temperature=temperature, power=None, power_limit=None, fan=None)]
    return SystemMetrics(cpu=cpu, memory=memory, disk=50.0, gpu=gpu, timestamp=t, gpus=gpus)


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(tmp_path / 'jarvis.db')
    yield database
    database.close()


def count(db: Database, table: str) -> int:
    return db.query_one(f'SELECT count(*) FROM {table}')[0]


async def feed(recorder: HistoryRecorder, clock: Clock, start: float, end: float, every: float, **values) -> None:
    """Samples from ``start`` to ``end`` (excluded), the clock moving with them."""
    t = start
    while t < end:
        clock.now = t
        await recorder.record(metrics(t, **values))
        t += every


async def test_samples_are_written_in_one_batch_when_their_minute_ends(db: Database) -> None:
    clock = Clock(T0)
    recorder = HistoryRecorder(db, clock=clock)
    await feed(recorder, clock, T0, T0 + 60, 2.0, cpu=30.0)
    assert (count(db, 'history_samples'), count(db, 'history_minutes'), recorder.flushes) == (0, 0, 0), \
        'nothing is written per sample'
    answer = await recorder.query(T0, T0 + 60)
    assert len(answer.points) == 30, 'the minute in progress is answered from memory'
    await feed(recorder, clock, T0 + 60, T0 + 61, 2.0, cpu=50.0)  # the next minute begins
    assert recorder.flushes == 1
    assert count(db, 'history_samples') == 31 and count(db, 'history_minutes') == 1, 'every sample so far'
    await feed(recorder, clock, T0 + 62, T0 + 120, 2.0)
    assert recorder.flushes == 1, 'one write per minute, not per sample'


async def test_a_minute_keeps_means_and_maxima_and_na_stays_na(db: Database) -> None:
    clock = Clock(T0)
    recorder = HistoryRecorder(db, clock=clock)
    for offset, cpu, gpu, temperature in ((0, 10.0, None, None), (10, 30.0, 80.0, 70.0), (20, 20.0, 40.0, None)):
        clock.now = T0 + offset
        await recorder.record(metrics(T0 + offset, cpu=cpu, gpu=gpu, gpu_memory=(1, 4) if gpu else None,
                                      temperature=temperature))
    await recorder.record(metrics(T0 + 60))
    row = db.query_one('SELECT * FROM history_minutes WHERE t = ?', (T0,))
    assert (row['samples'], row['cpu'], row['cpu_max']) == (3, 20.0, 30.0)
    assert (row['gpu_samples'], row['gpu'], row['gpu_max']) == (2, 60.0, 80.0), 'the mean of the readings there are'
    assert (row['gpu_memory'], row['gpu_temperature_samples'], row['gpu_temperature']) == (25.0, 1, 70.0)
    clock.now = T0 + 2 * 3600  # older than the samples tier: the minute means answer
    point = (await recorder.query(T0, T0 + 59)).points[0]
    assert point.value('cpu') == 20.0 and point.value('gpu') == 60.0
    no_gpu = HistoryRecorder(db, clock=Clock(T0 + 600))
    await no_gpu.record(metrics(T0 + 600))
    await no_gpu.record(metrics(T0 + 660))
    row = db.query_one('SELECT * FROM history_minutes WHERE t = ?', (T0 + 600,))
    assert (row['gpu'], row['gpu_max'], row['gpu_samples']) == (None, None, 0), 'n/a, never 0'


async def test_each_tier_is_pruned_on_its_own_on_a_simulated_clock(db: Database) -> None:
    clock = Clock(T0)
    recorder = HistoryRecorder(db, clock=clock)
    # two hours at the calm rate, with the busiest processes of each minute
    t = T0
    while t < T0 + 2 * 3600:
        clock.now = t
        if t % 60 == 50:
            recorder.buffer.add_processes(snapshot_at(t, [('busy', 1, 30.0 * (t - T0), 10)]), t // 60 * 60)
        await recorder.record(metrics(t))
        t += 10.0
    now = clock.now
    oldest_sample = db.query_one('SELECT min(t) FROM history_samples')[0]
    assert now - 3600 - 60 <= oldest_sample <= now - 3600, 'the samples tier keeps one hour (pruned once a minute)'
    assert count(db, 'history_samples') == pytest.approx(360, abs=6)
    assert count(db, 'history_minutes') == 119, 'the minutes tier keeps every minute that ended'
    assert count(db, 'history_processes') == 119
    # 30 days and an hour later, one more minute
    later = T0 + 30 * DAY + 3600
    await feed(recorder, clock, later, later + 61, 30.0)
    cutoff = later + 60 - 30 * DAY
    assert db.query_one('SELECT min(t) FROM history_minutes')[0] >= cutoff
    assert count(db, 'history_minutes') == len([m for m in range(int(T0), int(T0 + 7140), 60) if m >= cutoff]) + 2
    assert db.query_one('SELECT min(id) FROM history_processes')[0] // store.PROCESS_PLACES * 60 >= cutoff
    assert count(db, 'history_processes') == len([m for m in range(int(T0), int(T0 + 7200), 60) if m >= cutoff])
    assert count(db, 'history_samples') == 3, 'the samples of two hours ago are gone, the new ones are there'


async def test_a_minute_split_by_a_restart_is_merged(db: Database) -> None:
    clock = Clock(T0)
    first = HistoryRecorder(db, clock=clock)
    await feed(first, clock, T0, T0 + 20, 10.0, cpu=10.0)  # 2 samples
    await first.stop()  # the app quits within the minute: what is in memory is written
    assert db.query_one('SELECT samples, cpu FROM history_minutes')[0:2] == (2, 10.0)
    second = HistoryRecorder(db, clock=clock)
    await feed(second, clock, T0 + 30, T0 + 61, 10.0, cpu=40.0)  # 3 more, then the next minute
    row = db.query_one('SELECT samples, cpu, cpu_max FROM history_minutes WHERE t = ?', (T0,))
    assert tuple(row) == (5, pytest.approx(28.0), 40.0)


async def test_history_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / 'data' / 'jarvis.db'
    clock = Clock(T0 + 3 * 3600)
    first_db = Database(path)
    recorder = HistoryRecorder(first_db, clock=clock)
    await feed(recorder, clock, clock.now - 1800, clock.now + 90, 2.0, cpu=33.0)
    before = await recorder.query(clock.now - 3600, clock.now)
    await recorder.stop()
    first_db.close()

    second_db = Database(path)  # the real file, opened again
    try:
        after = await HistoryRecorder(second_db, clock=clock).query(clock.now - 3600, clock.now)
        assert after.points == before.points and len(after.points) == 945, 'every sample of the last half hour'
        older = await HistoryRecorder(second_db, clock=Clock(clock.now + 2 * 3600)).query(
            clock.now - 3600, clock.now)
        assert older.tier == 'minutes' and {p.value('cpu') for p in older.points} == {33.0}
    finally:
        second_db.close()


async def test_a_week_is_averaged_to_what_a_chart_can_show(db: Database) -> None:
    now = T0 + 8 * DAY
    minutes = []
    for index in range(int(7 * DAY / 60) + 60):
        minute = Aggregate(now - 7 * DAY - 3600 + index * 60)
        day = int((minute.t - T0) // DAY)
        minute.add(HistorySample(minute.t, cpu=10.0 * day, memory=50.0, disk=1.0).values())
        minute.add(HistorySample(minute.t, cpu=10.0 * day + 5, memory=50.0, disk=1.0).values())
        minutes.append(minute)
    await db.run(store.write, db, HistoryBatch(minutes=minutes), now)
    recorder = HistoryRecorder(db, clock=Clock(now))
    week = await recorder.query(now - 7 * DAY, now)
    assert week.tier == 'minutes' and len(week.points) <= MAX_POINTS
    assert week.step_s == 660.0, 'buckets of whole minutes'
    times = [p.t for p in week.points]
    assert times == sorted(times) and times[0] >= now - 7 * DAY - 60
    first_day = [p for p in week.points if p.t + week.step_s <= T0 + 2 * DAY]
    assert first_day and all(p.value('cpu') == 12.5 and p.maxima[0] == 15.0 for p in first_day)
    assert all(p.value('gpu') is None for p in week.points)
    assert len((await recorder.query(now - 7 * DAY, now, max_points=10)).points) <= 10
    assert (await recorder.query(now - 600, now)).tier == 'samples'


async def test_the_last_hour_comes_from_its_samples_averaged_when_many(db: Database) -> None:
    clock = Clock(T0)
    recorder = HistoryRecorder(db, clock=clock)
    await feed(recorder, clock, T0, T0 + 3600, 1.0, cpu=20.0)
    hour = await recorder.query(clock.now - 3600, clock.now, max_points=500)
    assert hour.tier == 'samples' and hour.step_s == 8.0 and len(hour.points) <= 500
    assert all(p.value('cpu') == 20.0 for p in hour.points)
    five = await recorder.query(clock.now - 300, clock.now)
    assert five.step_s is None and len(five.points) == 301, 'every sample while they fit (both ends included)'


def snapshot_at(t: float, rows: list[tuple[str, int, float, int]], *, gpu: bool = False) -> ProcessSnapshot:
    """Processes as a scan at ``t`` reports them: (name, pid, cumulative CPU seconds, memory)."""
    processes = [ProcessInfo(pid=pid, name=name, user='tony', cpu=0.0, memory=memory, memory_percent=None,
                             gpu_memory=(pid * 100 if gpu else None), cpu_time=cpu_time, started=T0 - 3600)
                 for name, pid, cpu_time, memory in rows]
    return ProcessSnapshot(processes=processes, count=len(processes), timestamp=t,
                           gpu_status='ok' if gpu else 'n/a')


def test_each_minute_keeps_its_busiest_processes_by_cpu_and_by_memory() -> None:
    buffer = HistoryBuffer()
    names = [(f'p{i}', 100 + i) for i in range(20)]
    buffer.add_processes(snapshot_at(T0, [(n, pid, 0.0, 10) for n, pid in names]), T0)
    buffer.processes.clear()
    # a minute later: p0..p4 used the most CPU, p19..p15 hold the most memory
    later = [(n, pid, 60.0 * (5 - i) if i < 5 else 0.0, 1000 * i) for i, (n, pid) in enumerate(names)]
    buffer.add_processes(snapshot_at(T0 + 60, later), T0 + 60)
    kept = {p.name: p for p in buffer.processes}
    assert set(kept) == {f'p{i}' for i in (*range(TOP_PROCESSES), *range(20 - TOP_PROCESSES, 20))}
    assert kept['p0'].cpu == 500.0, 'CPU % of one core over the minute since the previous scan'
    assert kept['p4'].cpu == 100.0 and kept['p19'].memory == 19000
    assert {p.t for p in buffer.processes} == {T0 + 60}


def test_with_a_gpu_the_processes_that_hold_its_memory_are_kept_too() -> None:
    buffer = HistoryBuffer()
    rows = [(f'p{i}', i + 1, 0.0, 0) for i in range(20)]
    buffer.add_processes(snapshot_at(T0, rows, gpu=True), T0)
    assert 20 in {p.pid for p in buffer.processes}, 'the largest GPU user, though idle'


async def test_what_was_busy_at_a_minute_is_answered_later(db: Database) -> None:
    clock = Clock(T0)
    recorder = HistoryRecorder(db, clock=clock)
    recorder.buffer.add_processes(snapshot_at(T0 + 30, [('compiler', 7, 50.0, 5 * 2**30)]), T0)
    await feed(recorder, clock, T0, T0 + 61, 30.0)
    busy = await recorder.processes_at(T0 + 45)
    assert [(p.name, p.pid, p.memory) for p in busy] == [('compiler', 7, 5 * 2**30)]
    assert await recorder.processes_at(T0 + 600) == []


def test_ranges_that_cannot_be_answered_say_why(db: Database) -> None:
    recorder = HistoryRecorder(db, clock=Clock(T0))
    assert recorder.resolve('24h') == (T0 - DAY, T0)
    assert recorder.resolve(None, None, None) == (T0 - 3600, T0), 'the last hour by default'
    assert recorder.resolve(None, T0 - 50, None) == (T0 - 50, T0)
    with pytest.raises(HistoryRangeError, match='either range or from/to'):
        recorder.resolve('1h', T0 - 10, None)
    with pytest.raises(HistoryRangeError, match='before'):
        recorder.resolve(None, T0, T0 - 1)
    with pytest.raises(HistoryRangeError, match='Unknown range'):
        recorder.resolve('2w')


async def test_the_monitor_records_what_the_hub_publishes_with_its_processes(tmp_path: Path) -> None:
    db = Database(tmp_path / 'jarvis.db')
    hub = Hub()
    system = SystemMonitor(hub, db, interval=0.05, calm_interval=0.05)
    try:
        await system.start()
        await eventually(lambda: len(system.history.buffer.samples) >= 3)
        assert system.processes.demands() == [], 'no timer of its own: the recorder scans when a minute ends'
        hub.publish(metrics(time.time(), cpu=77.0))  # any sample on the hub is recorded
        await eventually(lambda: any(s.cpu == 77.0 for s in system.history.buffer.samples)
                         or db.query_one('SELECT count(*) FROM history_samples WHERE cpu = 77.0')[0])
    finally:
        await system.stop()  # writes the minute in progress, with the processes of the last scan
    try:
        assert db.query_one('SELECT count(*) FROM history_samples WHERE cpu = 77.0')[0] == 1
        assert count(db, 'history_samples') >= 4
        assert count(db, 'history_minutes') >= 1
        names = [row['name'] for row in db.query('SELECT name FROM history_processes')]
        assert len(names) >= TOP_PROCESSES and all(names)
    finally:
        db.close()


async def test_writing_runs_off_the_event_loop(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    threads: list[int] = []
    real_write = store.write

    def recording(*args: object) -> None:
        threads.append(threading.get_ident())
        real_write(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(store, 'write', recording)
    clock = Clock(T0)
    recorder = HistoryRecorder(db, clock=clock)
    await feed(recorder, clock, T0, T0 + 61, 30.0)
    assert threads and threading.get_ident() not in threads


async def test_the_last_hour_asked_a_moment_ago_still_comes_from_the_samples(db: Database) -> None:
    clock = Clock(T0)
    recorder = HistoryRecorder(db, clock=clock)
    start, end = recorder.resolve('1h')
    clock.now += 0.2  # the request took a moment
    assert (await recorder.query(start, end)).tier == 'samples'


async def test_a_damaged_database_keeps_its_history_in_the_fresh_one(tmp_path: Path) -> None:
    from jarvis.storage.salvage import salvage

    path = tmp_path / 'old.db'
    old = Database(path)
    clock = Clock(T0)
    recorder = HistoryRecorder(old, clock=clock)
    recorder.buffer.add_processes(snapshot_at(T0 + 30, [('compiler', 7, 50.0, 2**30)], gpu=True), T0)
    await feed(recorder, clock, T0, T0 + 61, 10.0, gpu=50.0, temperature=60.0)
    old.close()
    fresh = Database(tmp_path / 'fresh.db')
    try:
        copied = salvage(path, fresh)
        assert (copied['history_samples'], copied['history_minutes'], copied['history_processes']) == (7, 1, 1)
        assert fresh.query_one('SELECT gpu, gpu_temperature_max FROM history_minutes')[0:2] == (50.0, 60.0)
    finally:
        fresh.close()


async def test_the_busiest_processes_of_a_range_of_minutes_come_from_the_file_and_from_memory(db: Database) -> None:
    from jarvis.metrics.history_store import RecordedProcess

    clock = Clock(T0 + 180)
    recorder = HistoryRecorder(db, clock=clock)
    written = [RecordedProcess(int(T0 + minute), 10 + minute // 60, f'p{minute}', 'u', 50.0, 1, None)
               for minute in (0, 60)]
    await db.run(store.write, db, HistoryBatch(processes=written), clock())
    pending = RecordedProcess(int(T0 + 120), 99, 'pending', 'u', 70.0, 1, None)
    recorder.buffer.processes.append(pending)  # its minute is not written yet
    found = await recorder.processes_between(T0 + 30, T0 + 150)
    assert [(p.t, p.name) for p in found] == [(T0, 'p0'), (T0 + 60, 'p60'), (T0 + 120, 'pending')]
    assert [p.name for p in await recorder.processes_between(T0 + 60, T0 + 61)] == ['p60']
