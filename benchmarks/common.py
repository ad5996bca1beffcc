"""What every benchmark shares: the processes it starts (and always ends), statistics over
repetitions, the CPU time and memory of a process tree, and a description of the machine."""
from __future__ import annotations

import datetime as _dt
import importlib.metadata
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

# one definition for the tests and the benchmarks: free ports, headless Chromium and polling waits
from tests.helpers.browser import CHROMEDRIVER, CHROMIUM, quit_chromium, start_chromium, wait_for  # noqa: F401
from tests.helpers.server import free_port  # noqa: F401

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
HOST = '127.0.0.1'


# --- small helpers ------------------------------------------------------------------------------

def log(message: str) -> None:
    print(f'[{time.strftime("%H:%M:%S")}] {message}', flush=True)


def wait_http(url: str, process: subprocess.Popen | None = None, timeout: float = 60.0,
              interval: float = 0.05, log_path: Path | None = None) -> float:
    """Poll ``url`` until it answers 200; return the monotonic time at which it did."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f'{process.args[0]} exited with {process.returncode} before serving {url}'
                                   + (f':\n{tail(log_path)}' if log_path else ''))
            try:
                if client.get(url).status_code == 200:
                    return time.monotonic()
            except httpx.HTTPError:
                pass
            time.sleep(interval)
    raise TimeoutError(f'{url} did not answer 200 within {timeout} s' + (f':\n{tail(log_path)}' if log_path else ''))


def tail(path: Path | None, lines: int = 30) -> str:
    if path is None:
        return ''
    try:
        return '\n'.join(path.read_text(errors='replace').splitlines()[-lines:])
    except OSError:
        return ''


def jarvis_command() -> list[str]:
    """The ``jarvis`` console script of this interpreter's environment (as a user starts it)."""
    script = Path(sys.executable).parent / 'jarvis'
    return [str(script)] if script.exists() else [sys.executable, '-m', 'jarvis']


def glances_command() -> list[str]:
    script = Path(sys.executable).parent / 'glances'
    if script.exists():
        return [str(script)]
    found = shutil.which('glances')
    if found:
        return [found]
    raise RuntimeError("glances is not installed: pip install -e '.[bench]'")


def glances_args(port: int, *, process_list: bool = True, refresh: float = 2.0) -> list[str]:
    """``glances -w`` on the loopback interface at the given refresh, without network look-ups.

    Glances reads its configuration as a pip install ships it (``<prefix>/share/doc/glances``).
    Without the process list: in Glances 4.5.8, ``--disable-process`` only hides it in the terminal
    UI; the web server still computes it and sends it in /api/4/all. Disabling the plugins that
    gather it (processcount, which feeds processlist, and programlist) really switches it off."""
    args = [*glances_command(), '-w', '-B', HOST, '-p', str(port), '-t', f'{refresh:g}',
            '--disable-check-update', '--disable-autodiscover']
    if not process_list:
        args += ['--disable-process', '--disable-plugin', 'processcount,processlist,programlist']
    return args


# --- processes: everything started here is ended here, on success, error or Ctrl+C --------------

class Processes:
    """Starts child processes in their own process group and ends every one of them."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen] = []
        self._logs: dict[int, Any] = {}
        self._drivers: list[Any] = []

    def popen(self, command: Sequence[str], *, env: dict[str, str] | None = None,
              log_path: Path | None = None, cwd: Path | None = None) -> subprocess.Popen:
        full_env = {**os.environ, 'PYTHONUNBUFFERED': '1', **(env or {})}
        output: Any = subprocess.DEVNULL
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            output = open(log_path, 'ab')  # noqa: SIM115  # closed in stop()
        process = subprocess.Popen(list(command), stdout=output, stderr=subprocess.STDOUT, env=full_env,
                                   cwd=str(cwd) if cwd else None, start_new_session=True)
        self._procs.append(process)
        if log_path is not None:
            self._logs[process.pid] = output
        return process

    def stop(self, process: subprocess.Popen, timeout: float = 15.0) -> int | None:
        """SIGTERM to the process group, then SIGKILL to whatever is left of it."""
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait(5)
        _signal_group(process.pid, signal.SIGKILL)  # stragglers in its group (it led the group)
        if process in self._procs:
            self._procs.remove(process)
        handle = self._logs.pop(process.pid, None)
        if handle is not None:
            handle.close()
        return process.returncode

    def add_driver(self, driver: Any) -> Any:
        self._drivers.append(driver)
        return driver

    def quit_driver(self, driver: Any) -> None:
        if driver in self._drivers:
            self._drivers.remove(driver)
        quit_chromium(driver)

    def cleanup(self) -> None:
        for driver in list(self._drivers):
            try:
                self.quit_driver(driver)
            except Exception:  # pylint: disable=broad-except
                pass
        for process in list(self._procs):
            try:
                self.stop(process, timeout=10)
            except Exception:  # pylint: disable=broad-except
                pass


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# --- process tree: CPU time and memory -----------------------------------------------------------

def tree_cpu_seconds(root: psutil.Process) -> float:
    """user+system of a process and all its descendants, including the reaped ones' (children_*)."""
    total = 0.0
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return math.nan
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def tree_rss(root: psutil.Process) -> int:
    total = 0
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue
    return total


@dataclass
class TreeUsage:
    seconds: float
    cpu_s: float
    rss_samples: list[int] = field(default_factory=list)
    processes: int = 1

    @property
    def cpu_s_per_min(self) -> float:
        return self.cpu_s / self.seconds * 60.0

    @property
    def core_percent(self) -> float:
        return self.cpu_s / self.seconds * 100.0


def measure_tree(pid: int, seconds: float, sample_every: float = 1.0) -> TreeUsage:
    """CPU time used by the tree over ``seconds`` and its RSS sampled every ``sample_every``."""
    root = psutil.Process(pid)
    rss: list[int] = []
    started = time.monotonic()
    cpu_start = tree_cpu_seconds(root)
    rss.append(tree_rss(root))
    deadline = started + seconds
    while (now := time.monotonic()) < deadline:
        time.sleep(min(sample_every, deadline - now))
        rss.append(tree_rss(root))
    cpu_end = tree_cpu_seconds(root)
    elapsed = time.monotonic() - started
    try:
        count = 1 + len(root.children(recursive=True))
    except psutil.Error:
        count = 0
    return TreeUsage(seconds=elapsed, cpu_s=cpu_end - cpu_start, rss_samples=rss, processes=count)


# --- statistics ---------------------------------------------------------------------------------

def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between the closest ranks."""
    ordered = sorted(v for v in values if v is not None and not math.isnan(v))
    if not ordered:
        return math.nan
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Iterable[float]) -> dict[str, float | int]:
    data = [v for v in values if v is not None and not math.isnan(v)]
    if not data:
        return {'n': 0}
    return {
        'n': len(data),
        'p50': percentile(data, 50),
        'p10': percentile(data, 10),
        'p90': percentile(data, 90),
        'p25': percentile(data, 25),
        'p75': percentile(data, 75),
        'min': min(data),
        'max': max(data),
        'mean': sum(data) / len(data),
        'values': data if len(data) <= 50 else None,
    }


def target(value: float | None, op: str, limit: float) -> dict[str, Any]:
    """A target from the issue: ``value op limit`` (``<`` , ``<=`` or ``>=``); met is None when unmeasured."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        met = None
    elif op == '<=':
        met = value <= limit
    elif op == '>=':
        met = value >= limit
    else:
        met = value < limit
    return {'value': value, 'op': op, 'limit': limit, 'met': met}


def ratio(numerator: float | None, denominator: float | None) -> float:
    if numerator is None or denominator is None or not denominator or math.isnan(numerator) or math.isnan(denominator):
        return math.nan
    return numerator / denominator


# --- the machine --------------------------------------------------------------------------------

def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _os_name() -> str:
    try:
        release = platform.freedesktop_os_release()
        return f'{release.get("PRETTY_NAME", "Linux")} (kernel {platform.release()})'
    except (OSError, AttributeError):
        return platform.platform()


def _chromium_version() -> str | None:
    if CHROMIUM is None:
        return None
    try:
        output = subprocess.run([CHROMIUM, '--version'], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return output.stdout.strip() or None


def source_state() -> dict[str, Any]:
    """The commit measured, and the files that differ from it (the app runs from the working tree)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(['git', *args], cwd=REPO, capture_output=True, text=True, timeout=20,
                                  check=False).stdout.rstrip()
        except (OSError, subprocess.TimeoutExpired):
            return ''
    changed = [line[3:] for line in git('status', '--porcelain').splitlines() if line[3:] and
               not line[3:].startswith('benchmarks/')]
    return {'commit': git('rev-parse', '--short', 'HEAD').strip() or None, 'changed_files': changed}


def modified_since(timestamp: float) -> list[str]:
    """Files of the app (jarvis/, assets/) written after ``timestamp``: the code under test changed mid-run."""
    found = []
    for folder in ('jarvis', 'assets'):
        for path in (REPO / folder).rglob('*'):
            try:
                if path.is_file() and '__pycache__' not in path.parts and path.stat().st_mtime > timestamp:
                    found.append(str(path.relative_to(REPO)))
            except OSError:
                continue
    return sorted(found)


def machine_info() -> dict[str, Any]:
    memory = psutil.virtual_memory()
    return {
        'date': _dt.datetime.now().astimezone().isoformat(timespec='seconds'),
        'cpu_model': _cpu_model(),
        'logical_cores': psutil.cpu_count(logical=True),
        'physical_cores': psutil.cpu_count(logical=False),
        'ram_gib': round(memory.total / 2**30, 1),
        'os': _os_name(),
        'python': platform.python_version(),
        'load_average_at_start': [round(v, 2) for v in os.getloadavg()],
        'versions': {name: _version(name) for name in (
            'jarvis-desktop', 'nicegui', 'glances', 'llama_cpp_python', 'psutil', 'fastapi', 'uvicorn',
            'websockets', 'selenium')},
        'chromium': _chromium_version(),
        'source': source_state(),
    }
