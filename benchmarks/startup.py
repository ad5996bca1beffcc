"""Benchmark 3: start-up, from launching the server to its first page ``/`` served with 200; and from
launching the app to live values in its native window (under Xvfb) and in a browser.

Subjects: ``jarvis --no-open --port P --data-dir <fresh dir> --no-default-model`` (no model), the same
without that flag, so that the default Gemma model is checked and put on standby in the background
(``JARVIS_MODELS_DIR`` points at a directory where the GGUF is already assembled, as on every start
after the first; it is loaded by the first message, not at start), and
``glances -w -B 127.0.0.1 -p P -t 2``. The clock starts right before the process is spawned and stops
when ``GET /`` answers 200 (polled every 20 ms). One discarded launch of each first, so that every
timed launch finds the files in the page cache; then the subjects take turns. The app's bytecode is written
first (``compile_bytecode``), as every start after the first finds it.

Live values (the issue's target: 2 s): ``native`` launches plain ``jarvis`` (its native window, Qt)
on an Xvfb display of its own; the clock stops when the window's page has connected and said it is
visible (``/api/hub/stats``: ``visible`` >= 1, which the page reports from its own script once it is
built, with the latest sample bound) and a sample has been published. ``browser`` launches
``jarvis --no-open`` with a headless Chromium already running; the browser opens the address as soon as
the server answers and the clock stops when the page shows a CPU value ("12.3 %").
"""
from __future__ import annotations

import compileall
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import jarvis

from .common import (
    HOST,
    Processes,
    free_port,
    glances_args,
    jarvis_command,
    log,
    ratio,
    start_chromium,
    summary,
    target,
    wait_for,
    wait_http,
)

TARGET_S = 2.0
TARGET_LIVE_S = 2.0  # launch -> live values in the native window (issue 16)


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


def compile_bytecode() -> None:
    """Every start after the first finds the app's bytecode (the first start writes it, as pip writes it when it
    installs a wheel). This process may run with PYTHONDONTWRITEBYTECODE, which its subjects inherit: then no
    start would ever write it, and each would compile the app's modules again."""
    compileall.compile_dir(Path(jarvis.__file__).parent, quiet=1)


def run(procs: Processes, *, quick: bool, repeat: int | None = None, models_dir: Path | None = None) -> dict[str, Any]:
    repeat = repeat or (3 if quick else 5)
    compile_bytecode()
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
    try:
        result['live'] = run_live(procs, quick=quick, repeat=repeat)
    except Exception as error:  # pylint: disable=broad-except  # no Chromium or no Xvfb: the rest still counts
        log(f'startup: live values not measured: {error}')
        result['live'] = {'error': str(error)}
    if 'app_with_model' in stats:
        result['ratio_app_with_model_vs_glances'] = ratio(stats['app_with_model']['p50'], stats['glances']['p50'])
        result['targets']['app_with_model_s'] = target(stats['app_with_model']['p50'], '<', TARGET_S)
    return result


def _stats(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f'http://{HOST}:{port}/api/hub/stats', timeout=1) as response:
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


def launch_native(procs: Processes, workdir: Path, display: str) -> float:
    port = free_port()
    log_path = workdir / f'native-{port}.log'
    command = [*jarvis_command(), '--port', str(port), '--data-dir', str(workdir / f'data-{port}'), '--no-default-model']
    started = time.monotonic()
    process = procs.popen(command, env={'DISPLAY': display, 'WAYLAND_DISPLAY': ''}, log_path=log_path)
    try:
        def live() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f'the app exited with {process.returncode}; see {log_path}')
            stats = _stats(port)
            return bool(stats and stats['visible'] >= 1 and stats['published'] >= 1)
        wait_for(live, timeout=120, interval=0.02, message=f'the native window never showed live values ({log_path})')
        return time.monotonic() - started
    finally:
        procs.stop(process)


def launch_browser(procs: Processes, workdir: Path, driver: Any) -> float:
    port = free_port()
    log_path = workdir / f'browser-{port}.log'
    command = [*jarvis_command(), '--no-open', '--port', str(port), '--data-dir', str(workdir / f'data-{port}'),
               '--no-default-model']
    driver.get('about:blank')
    started = time.monotonic()
    process = procs.popen(command, log_path=log_path)
    try:
        wait_http(f'http://{HOST}:{port}/api/hub/stats', process, timeout=120, interval=0.02, log_path=log_path)
        driver.get(f'http://{HOST}:{port}/')
        wait_for(lambda: str(driver.execute_script(
            'const e = document.querySelector(\'[data-testid="cpu-value"]\'); return e ? e.innerText : ""'))
            .strip().endswith('%'), timeout=60, interval=0.02, message='the page never showed a CPU value')
        return time.monotonic() - started
    finally:
        procs.stop(process)


class _Xvfb:
    def __init__(self) -> None:
        number = next(n for n in range(90, 200) if not Path(f'/tmp/.X11-unix/X{n}').exists()
                      and not Path(f'/tmp/.X{n}-lock').exists())
        self.display = f':{number}'
        self.process = subprocess.Popen(['Xvfb', self.display, '-screen', '0', '1400x1000x24', '-nolisten', 'tcp'],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: Path(f'/tmp/.X11-unix/X{number}').exists(), timeout=10, message='Xvfb did not start')

    def close(self) -> None:
        self.process.terminate()
        self.process.wait()


def run_live(procs: Processes, *, quick: bool, repeat: int | None = None) -> dict[str, Any]:
    """Launch -> live values, in the native window (when Xvfb is here) and in a browser (after ``run``, which has
    written the app's bytecode)."""
    repeat = repeat or (3 if quick else 5)
    times: dict[str, list[float]] = {'native': [], 'browser': []}
    xvfb = _Xvfb() if shutil.which('Xvfb') else None
    driver = procs.add_driver(start_chromium())
    try:
        with tempfile.TemporaryDirectory(prefix='bench-live-') as tmp:
            workdir = Path(tmp)
            if xvfb is not None:
                launch_native(procs, workdir, xvfb.display)  # warm the page cache; not counted
            launch_browser(procs, workdir, driver)
            for round_index in range(repeat):
                if xvfb is not None:
                    times['native'].append(launch_native(procs, workdir, xvfb.display))
                times['browser'].append(launch_browser(procs, workdir, driver))
                log(f'startup: round {round_index + 1}/{repeat}: live values: '
                    + ', '.join(f'{k} {v[-1]:.2f} s' for k, v in times.items() if v))
    finally:
        procs.quit_driver(driver)
        if xvfb is not None:
            xvfb.close()
    stats = {k: summary(v) for k, v in times.items() if v}
    return {
        'description': 'Launch to live values: the native window under Xvfb, a browser (headless Chromium)',
        'settings': {'repeat': repeat, 'native': xvfb is not None},
        'times_s': times,
        'stats': stats,
        'targets': {f'{k}_s': target(v['p50'], '<=', TARGET_LIVE_S) for k, v in stats.items()},
    }
