"""Benchmark 3: start-up, from launching the server to its first page ``/`` served with 200.

Subjects: ``jarvis --no-open --port P --data-dir <fresh dir> --no-default-model`` (no model), the same
without that flag, so that the default Gemma model is checked and put on standby in the background
(``JARVIS_MODELS_DIR`` points at a directory where the GGUF is already assembled, as on every start
after the first; it is loaded by the first message, not at start), and
``glances -w -B 127.0.0.1 -p P -t 2``. The clock starts right before the process is spawned and stops
when ``GET /`` answers 200 (polled every 20 ms). One discarded launch of each first, so that every
timed launch finds the files in the page cache; then the subjects take turns.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from .common import HOST, Processes, free_port, glances_args, jarvis_command, log, ratio, summary, target, wait_http

TARGET_S = 2.0


def _command(subject: str, port: int, data_dir: Path) -> list[str]:
    if subject == 'glances':
        return glances_args(port)
    command = [*jarvis_command(), '--no-open', '--port', str(port), '--data-dir', str(data_dir)]
    if subject == 'app':
        command.append('--no-default-model')
    return command


def launch(procs: Processes, subject: str, workdir: Path, models_dir: Path | None) -> float:
    port = free_port()
    data_dir = workdir / f'data-{port}'
    env = {'JARVIS_MODELS_DIR': str(models_dir)} if subject == 'app_with_model' and models_dir else None
    log_path = workdir / f'{subject}-{port}.log'
    command = _command(subject, port, data_dir)
    started = time.monotonic()
    process = procs.popen(command, env=env, log_path=log_path)
    try:
        served = wait_http(f'http://{HOST}:{port}/', process, timeout=120, interval=0.02, log_path=log_path)
        return served - started
    finally:
        procs.stop(process)


def run(procs: Processes, *, quick: bool, repeat: int | None = None, models_dir: Path | None = None) -> dict[str, Any]:
    repeat = repeat or (3 if quick else 5)
    subjects = ['app', 'glances'] + (['app_with_model'] if models_dir is not None else [])
    times: dict[str, list[float]] = {s: [] for s in subjects}
    with tempfile.TemporaryDirectory(prefix='bench-startup-') as tmp:
        workdir = Path(tmp)
        for subject in subjects:
            launch(procs, subject, workdir, models_dir)  # warm the page cache; not counted
        for round_index in range(repeat):
            for subject in subjects:
                seconds = launch(procs, subject, workdir, models_dir)
                times[subject].append(seconds)
                log(f'startup: round {round_index + 1}/{repeat}: {subject}: {seconds:.2f} s')
    stats = {s: summary(v) for s, v in times.items()}
    result: dict[str, Any] = {
        'description': 'Start-up: launch to the first page / served with 200',
        'settings': {'repeat': repeat, 'subjects': subjects},
        'times_s': times,
        'stats': stats,
        'ratio_app_vs_glances': ratio(stats['app']['p50'], stats['glances']['p50']),
        'targets': {'app_s': target(stats['app']['p50'], '<', TARGET_S)},
    }
    if 'app_with_model' in stats:
        result['ratio_app_with_model_vs_glances'] = ratio(stats['app_with_model']['p50'], stats['glances']['p50'])
        result['targets']['app_with_model_s'] = target(stats['app_with_model']['p50'], '<', TARGET_S)
    return result
