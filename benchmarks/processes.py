"""Benchmark 5: the cost of the process scan.

A few hundred processes run (``sleep`` processes started here, besides the machine's own). A small process
(benchmarks/scan_worker.py) runs the app's process monitor with one demand at the Processes panel's
interval (10 s), as a window that shows the panel does; the same process without a demand is the baseline.
Each reports its own CPU time (user+sys of all its threads, from the process's CPU clock: psutil's tick
counts are too coarse for a few milliseconds a scan) over a window after a warm-up; the scan's cost is
the difference. The psutil path (what other platforms use) is measured the same way, for comparison.
The subjects take turns, so that a change in the machine's background load hits all of them alike.
"""
from __future__ import annotations

import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from jarvis.metrics.processes import PANEL_INTERVAL_S

from .common import REPO, Processes, log, summary, tail, target, wait_for

SUBJECTS = {
    'idle': 'the monitor without a demand (baseline)',
    'procfs': 'scans at the panel\'s interval, /proc fast path (Linux)',
    'psutil': 'scans at the panel\'s interval, psutil.process_iter (other platforms)',
}
TARGET_CORE_PERCENT = 0.1  # the scan adds at most 0.1 % of one core
_REPORT = re.compile(r'^report (\S+) (\S+) (\d+) (\d+)$', re.MULTILINE)


def _report(log_path: Path) -> tuple[float, float, int, int] | None:
    """The worker's last report: (monotonic s, its CPU s, scans taken, processes in the last scan)."""
    found = _REPORT.findall(log_path.read_text(errors='replace'))
    if not found:
        return None
    wall, cpu, scans, processes = found[-1]
    return float(wall), float(cpu), int(scans), int(processes)


def measure_one(procs: Processes, subject: str, *, warmup: float, window: float, workdir: Path) -> dict[str, Any]:
    mode, scanner = ('idle', 'procfs') if subject == 'idle' else ('scan', subject)
    log_path = workdir / f'{subject}-{time.monotonic_ns()}.log'
    process = procs.popen([sys.executable, '-m', 'benchmarks.scan_worker', '--mode', mode, '--scanner', scanner],
                          log_path=log_path, cwd=REPO)
    try:
        wait_for(lambda: _report(log_path) is not None, timeout=60,
                 message=f'scan worker did not start:\n{tail(log_path)}')
        time.sleep(warmup)
        first = _report(log_path)
        time.sleep(window)
        last = _report(log_path)
        if process.poll() is not None or first is None or last is None or last[0] <= first[0]:
            raise RuntimeError(f'the scan worker stopped reporting:\n{tail(log_path)}')
        seconds, cpu_s = last[0] - first[0], last[1] - first[1]
        return {'subject': subject, 'window_s': round(seconds, 2), 'cpu_s': cpu_s,
                'cpu_s_per_min': cpu_s / seconds * 60.0, 'scans': last[2] - first[2], 'processes_scanned': last[3]}
    finally:
        procs.stop(process)


def run(procs: Processes, *, quick: bool, repeat: int | None = None, window: float | None = None,
        warmup: float | None = None, processes: int | None = None) -> dict[str, Any]:
    repeat = repeat or (1 if quick else 2)
    window = window or (30.0 if quick else 60.0)
    warmup = warmup if warmup is not None else 8.0
    extra = processes if processes is not None else 300
    log(f'processes: starting {extra} sleeping processes')
    sleepers = [procs.popen(['sleep', '3600']) for _ in range(extra)]
    runs: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix='bench-processes-') as tmp:
            for round_index in range(repeat):
                for subject in SUBJECTS:
                    log(f'processes: round {round_index + 1}/{repeat}: {subject} ({window:g} s window)')
                    result = measure_one(procs, subject, warmup=warmup, window=window, workdir=Path(tmp))
                    result['round'] = round_index
                    runs.append(result)
                    log(f'processes:   {result["cpu_s_per_min"]:.4f} CPU-s/min, {result["scans"]} scans of '
                        f'{result["processes_scanned"]} processes')
    finally:
        for sleeper in sleepers:
            procs.stop(sleeper, timeout=2)

    def paired(subject: str, key: str) -> list[float]:
        values = []
        for round_index in range(repeat):
            scan = next(r for r in runs if r['subject'] == subject and r['round'] == round_index)
            idle = next(r for r in runs if r['subject'] == 'idle' and r['round'] == round_index)
            if key == 'added':
                values.append(scan['cpu_s_per_min'] - idle['cpu_s_per_min'])
            else:  # milliseconds of CPU per scan
                added_s = scan['cpu_s'] - idle['cpu_s'] * scan['window_s'] / idle['window_s']
                values.append(added_s / scan['scans'] * 1000 if scan['scans'] else float('nan'))
        return values

    stats: dict[str, Any] = {subject: {'cpu_s_per_min': summary(r['cpu_s_per_min'] for r in runs
                                                                if r['subject'] == subject)}
                             for subject in SUBJECTS}
    for subject in ('procfs', 'psutil'):
        stats[subject]['added_cpu_s_per_min'] = summary(paired(subject, 'added'))
        stats[subject]['ms_per_scan'] = summary(paired(subject, 'per_scan'))
        stats[subject]['added_core_percent'] = summary(v / 60 * 100 for v in paired(subject, 'added'))
        # the interval the monitor kept: the panel asks for PANEL_INTERVAL_S, the scan's budget may stretch it
        stats[subject]['seconds_between_scans'] = summary(r['window_s'] / r['scans'] for r in runs
                                                          if r['subject'] == subject and r['scans'])
    scanned = max((r['processes_scanned'] for r in runs if r['subject'] == 'procfs'), default=0)
    added = stats['procfs']['added_core_percent'].get('p50')
    return {
        'description': __doc__.strip().splitlines()[0],
        'settings': {'repeat': repeat, 'window_s': window, 'warmup_s': warmup, 'extra_processes': extra,
                     'processes_scanned': scanned, 'interval_s': PANEL_INTERVAL_S, 'subjects': SUBJECTS},
        'runs': runs,
        'stats': stats,
        'targets': {'added_core_percent': target(added, '<=', TARGET_CORE_PERCENT)},
    }
