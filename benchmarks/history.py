"""Benchmark 6: the machine's history, 30 days of it: the database's size and the chart's drawing time.

* Size: the app's own recorder (jarvis.metrics.history.HistoryRecorder) writes 30 simulated days into a
  fresh database, driven on a simulated clock (no waiting): a sample every 2 s as with a window open all the
  time (``--quick``: every 10 s, the rate without a window; the size differs only by the last hour's
  samples), GPU readings in every sample, and each minute the busiest processes of a scan in which the top
  CPU, memory and GPU-memory users are all different processes (the most rows a minute can get). The size
  is the database file after a checkpoint (its WAL emptied into it).
* Drawing: the app is started on that database (``jarvis --no-open``) and a headless Chromium opens the
  System view. In the page, the time runs from the click on "7 d" (or "30 d") until ECharts reports the
  chart finished drawing with that range's data (its ``finished`` event): the server's query, the transfer
  and the drawing. Between repetitions the chart goes back to "5 min".
"""
from __future__ import annotations

import asyncio
import math
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import (
    HOST,
    Processes,
    free_port,
    jarvis_command,
    log,
    start_chromium,
    summary,
    target,
    wait_for,
    wait_http,
)

TARGET_SIZE_MB = 50.0
TARGET_DRAW_MS = 300.0
DAY = 86400.0

MEASURE_JS = '''
const [label, firstFromMs, firstToMs, done] = arguments;
const element = document.querySelector('[data-testid="history-chart"]');
const chart = element && getElement(element)?.chart;
const button = [...document.querySelectorAll('[data-testid="history-range"] button')]
    .find(b => b.innerText.trim() === label);
if (!chart || !button) { done({error: 'no chart or no button ' + label}); return; }
let started = 0;
const onFinished = () => {
  const data = chart.getOption().series[0].data;
  if (data.length && data[0][0] >= firstFromMs && data[0][0] <= firstToMs) {  // the range asked for is drawn
    chart.off('finished', onFinished);
    done({ms: performance.now() - started, points: data.length});
  }
};
chart.on('finished', onFinished);
setTimeout(() => { chart.off('finished', onFinished); done({error: 'timed out'}); }, 20000);
started = performance.now();
button.click();
'''


# --- 30 simulated days ----------------------------------------------------------------------------

class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _process_names() -> list[str]:
    from jarvis.metrics.process_scan import default_scanner  # pylint: disable=import-outside-toplevel
    names = sorted({r.name for r in default_scanner().scan()})
    return names or ['process']


async def _simulate(path: Path, *, days: float, every: float, end: float) -> dict[str, Any]:
    # imported here: the other benchmarks run without loading the app's modules into this process
    from jarvis.events import GpuReading, SystemMetrics  # pylint: disable=import-outside-toplevel
    from jarvis.metrics.history import HistoryRecorder  # pylint: disable=import-outside-toplevel
    from jarvis.metrics.processes import ProcessInfo, ProcessSnapshot  # pylint: disable=import-outside-toplevel
    from jarvis.storage.database import Database  # pylint: disable=import-outside-toplevel

    rng = random.Random(12)
    names = _process_names()
    db = Database(path)
    clock = _Clock(end - days * DAY)
    recorder = HistoryRecorder(db, clock=clock)
    # 45 candidates: 15 busy on the CPU, 15 holding memory, 15 holding GPU memory, so that the three
    # top-5 lists never overlap
    cpu_time = [0.0] * 45
    pids = [1000 + i for i in range(45)]
    labels = [names[i % len(names)] for i in range(45)]
    samples = 0
    started = time.perf_counter()
    t = clock.now
    next_scan = math.floor(t / 60) * 60 + 50
    while t < end:
        clock.now = t
        if t >= next_scan:
            for index in range(15):
                cpu_time[index] += rng.uniform(0.5, 60.0)
            processes = [ProcessInfo(pid=pids[i], name=labels[i], user='user', cpu=None,
                                     memory=rng.randint(2**30, 8 * 2**30) if 15 <= i < 30 else rng.randint(1, 2**24),
                                     memory_percent=None,
                                     gpu_memory=rng.randint(2**28, 2**34) if i >= 30 else 0,
                                     cpu_time=cpu_time[i], started=end - 40 * DAY) for i in range(45)]
            recorder.buffer.add_processes(ProcessSnapshot(processes=processes, count=45, timestamp=t,
                                                          gpu_status='ok'), math.floor(t / 60) * 60)
            next_scan += 60
        gpu = GpuReading(index=0, name='GPU', utilization=rng.uniform(0, 100), memory_used=rng.randint(0, 80 * 2**30),
                         memory_total=80 * 2**30, temperature=rng.uniform(30, 85), power=None, power_limit=None, fan=None)
        await recorder.record(SystemMetrics(cpu=rng.uniform(0, 100), memory=rng.uniform(20, 90), disk=63.2,
                                            gpu=gpu.utilization, timestamp=t, gpus=[gpu]))
        samples += 1
        t += every
    await recorder.stop()
    counts = {table: db.query_one(f'SELECT count(*) FROM {table}')[0]
              for table in ('history_samples', 'history_minutes', 'history_processes')}
    db.execute('PRAGMA wal_checkpoint(TRUNCATE)')
    pages, free = db.query_one('PRAGMA page_count')[0], db.query_one('PRAGMA freelist_count')[0]
    db.close()
    wal = path.with_name(path.name + '-wal')
    return {
        'samples': samples,
        'simulated_days': days,
        'sample_every_s': every,
        'seconds_to_simulate': round(time.perf_counter() - started, 1),
        'flushes': recorder.flushes,
        'rows': counts,
        'process_rows_per_minute': counts['history_processes'] / max(1, counts['history_minutes']),
        'db_bytes': path.stat().st_size,
        'wal_bytes': wal.stat().st_size if wal.exists() else 0,
        'pages': pages,
        'free_pages': free,
    }


# --- the chart in a browser -----------------------------------------------------------------------

def _measure_draw(procs: Processes, data_dir: Path, *, repeat: int, workdir: Path) -> dict[str, list[float]]:
    port = free_port()
    url = f'http://{HOST}:{port}/'
    log_path = workdir / f'app-{port}.log'
    process = procs.popen([*jarvis_command(), '--no-open', '--port', str(port), '--data-dir', str(data_dir),
                           '--no-default-model'], log_path=log_path)
    driver = None
    times: dict[str, list[float]] = {'7d': [], '30d': []}
    points: dict[str, int] = {}
    try:
        wait_http(f'{url}api/hub/stats', process, log_path=log_path)
        driver = procs.add_driver(start_chromium())
        driver.set_script_timeout(30)
        driver.get(url)
        caption = 'return document.querySelector(\'[data-testid="history-caption"]\')?.innerText || ""'
        wait_for(lambda: (text := driver.execute_script(caption)) and text != 'Loading…', timeout=60,
                 message='the history chart never loaded')
        for round_index in range(repeat):
            for name, label, days in (('7d', '7 d', 7), ('30d', '30 d', 30)):
                now_ms = time.time() * 1000
                result = driver.execute_async_script(MEASURE_JS, label, now_ms - (days + 0.5) * DAY * 1000,
                                                     now_ms - (days - 0.5) * DAY * 1000)
                if 'error' in result:
                    raise RuntimeError(f'drawing {label}: {result["error"]}')
                times[name].append(result['ms'])
                points[name] = result['points']
                log(f'history: round {round_index + 1}/{repeat}: {label} drawn in {result["ms"]:.0f} ms '
                    f'({result["points"]} points per series)')
                now_ms = time.time() * 1000
                back = driver.execute_async_script(MEASURE_JS, '5 min', now_ms - 600_000, now_ms + 60_000)
                if 'error' in back:
                    raise RuntimeError(f'back to 5 min: {back["error"]}')
    finally:
        if driver is not None:
            procs.quit_driver(driver)
        procs.stop(process)
    return {'times_ms': times, 'points': points}


def run(procs: Processes, *, quick: bool, days: float | None = None, every: float | None = None,
        repeat: int | None = None) -> dict[str, Any]:
    days = days or 30.0
    every = every or (10.0 if quick else 2.0)
    repeat = repeat or (3 if quick else 10)
    with tempfile.TemporaryDirectory(prefix='bench-history-') as tmp:
        workdir = Path(tmp)
        data_dir = workdir / 'data'
        data_dir.mkdir()
        path = data_dir / 'jarvis.db'
        log(f'history: recording {days:g} simulated days, a sample every {every:g} s')
        size = asyncio.run(_simulate(path, days=days, every=every, end=time.time()))
        log(f'history: {size["db_bytes"] / 2**20:.1f} MiB after {size["seconds_to_simulate"]:.0f} s of simulation '
            f'({size["rows"]})')
        drawing = _measure_draw(procs, data_dir, repeat=repeat, workdir=workdir)
    size_mb = size['db_bytes'] / 1e6
    stats = {name: summary(values) for name, values in drawing['times_ms'].items()}
    return {
        'description': __doc__.strip().splitlines()[0],
        'settings': {'days': days, 'sample_every_s': every, 'repeat': repeat},
        'size': size,
        'drawing': drawing,
        'stats': stats,
        'targets': {
            'size_mb': target(size_mb, '<', TARGET_SIZE_MB),
            'draw_7d_ms': target(stats['7d'].get('p50'), '<', TARGET_DRAW_MS),
        },
    }
