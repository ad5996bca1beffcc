"""A process that runs the app's process monitor and nothing else, for benchmarks/processes.py.

    python -m benchmarks.scan_worker --mode scan|idle [--scanner procfs|psutil] [--interval 5]

``scan``: one demand at the Processes panel's interval, as a window that shows the panel takes it.
``idle``: the same event loop and hub without a demand (the baseline). Prints ``ready`` once running, then
every few seconds ``report <monotonic s> <CPU s of this process> <scans> <processes in the last scan>``.
The CPU time is the process's own clock (CLOCK_PROCESS_CPUTIME_ID, all threads, nanoseconds): the
kernel's per-process tick counts that psutil reads are too coarse for a few milliseconds a scan. Runs
until it is ended (SIGTERM).
"""
from __future__ import annotations

import argparse
import asyncio
import time

from jarvis.hub import Hub
from jarvis.metrics.process_scan import ProcfsScanner, PsutilScanner
from jarvis.metrics.processes import PANEL_INTERVAL_S, ProcessMonitor

REPORT_EVERY_S = 5.0


async def main(mode: str, scanner_name: str, interval: float) -> None:
    scanner = ProcfsScanner() if scanner_name == 'procfs' else PsutilScanner()
    monitor = ProcessMonitor(Hub(), scanner=scanner)
    await monitor.start()
    if mode == 'scan':
        monitor.demand(interval, name='benchmark')
    print('ready', flush=True)
    while True:
        latest = monitor.latest()
        print(f'report {time.monotonic():.6f} {time.process_time():.6f} {monitor.scans_taken} '
              f'{latest.count if latest else 0}', flush=True)
        await asyncio.sleep(REPORT_EVERY_S)


if __name__ == '__main__':
    parser = argparse.ArgumentParser()
    parser.add_argument('--mode', choices=('scan', 'idle'), required=True)
    parser.add_argument('--scanner', choices=('procfs', 'psutil'), default='procfs')
    parser.add_argument('--interval', type=float, default=PANEL_INTERVAL_S)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.mode, arguments.scanner, arguments.interval))
