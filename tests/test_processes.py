"""The process scan: /proc read right (real files), CPU % of a real burner, GPU memory per process through
a fake NVML, and scans only while something needs them."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from jarvis.hub import Hub
from jarvis.metrics import NvmlGpuReader
from jarvis.metrics.process_scan import ProcessRecord, ProcfsScanner, PsutilScanner
from jarvis.metrics.processes import MAX_SCAN_INTERVAL_S, PROCESSES, ProcessInfo, ProcessMonitor, ProcessSnapshot, rank

from .helpers.waiting import eventually

needs_procfs = pytest.mark.skipif(not ProcfsScanner.available(), reason='the /proc fast path is Linux only')

BURNER = 'open("/proc/self/comm", "w").write("{name}")\nwhile True:\n    pass\n'


def start_burner(name: str = 'cpu-burner') -> subprocess.Popen:
    """A process that keeps one core busy, under a name of its own."""
    return subprocess.Popen([sys.executable, '-c', BURNER.format(name=name)])


def stop(process: subprocess.Popen) -> None:
    process.kill()
    process.wait()


# --- the Linux fast path, on real files ------------------------------------------------------------

def fake_proc(root: Path, pid: int, comm: str, *, utime: int = 150, stime: int = 50, start: int = 1000,
              rss_pages: int = 256, cmdline: bytes = b'') -> None:
    folder = root / str(pid)
    folder.mkdir(parents=True, exist_ok=True)
    fields = ['S', '1', str(pid), str(pid), '0', '-1', '4194304', '10', '0', '0', '0', str(utime), str(stime),
              '0', '0', '20', '0', '1', '0', str(start), '12345678', str(rss_pages)] + ['0'] * 30
    (folder / 'stat').write_text(f'{pid} ({comm}) ' + ' '.join(fields) + '\n')
    (folder / 'cmdline').write_bytes(cmdline)


def test_stat_lines_with_odd_names_are_read_right(tmp_path: Path) -> None:
    fake_proc(tmp_path, 101, 'a (b) c)', utime=300, stime=100, rss_pages=10)
    fake_proc(tmp_path, 102, 'plain')
    (tmp_path / 'self').mkdir()  # not a process
    (tmp_path / 'meminfo').write_text('')
    scanner = ProcfsScanner(tmp_path)
    records = {r.pid: r for r in scanner.scan()}
    assert set(records) == {101, 102}
    odd = records[101]
    ticks = os.sysconf('SC_CLK_TCK')
    assert odd.name == 'a (b) c)', 'the name ends at the last parenthesis'
    assert odd.cpu_time == pytest.approx(400 / ticks)
    assert odd.memory == 10 * os.sysconf('SC_PAGE_SIZE')
    assert odd.started == pytest.approx(psutil.boot_time() + 1000 / ticks)
    assert odd.user == psutil.Process().username(), 'the owner of the folder'


def test_a_name_cut_at_15_bytes_comes_from_the_command_line(tmp_path: Path) -> None:
    fake_proc(tmp_path, 7, 'chromium-browse', cmdline=b'/usr/lib/chromium/chromium-browser-stable\0--type=gpu\0')
    fake_proc(tmp_path, 8, 'kworker/0:1-eve', cmdline=b'')  # a kernel thread has no command line
    records = {r.pid: r for r in ProcfsScanner(tmp_path).scan()}
    assert records[7].name == 'chromium-browser-stable'
    assert records[8].name == 'kworker/0:1-eve'


def test_an_exec_gives_the_process_its_new_name(tmp_path: Path) -> None:
    fake_proc(tmp_path, 55, 'bash')
    scanner = ProcfsScanner(tmp_path)
    assert [r.name for r in scanner.scan()] == ['bash']
    fake_proc(tmp_path, 55, 'python3', utime=900)  # same pid, same start: exec() changed the program
    assert [r.name for r in scanner.scan()] == ['python3']
    (tmp_path / '55' / 'stat').unlink()  # it ended
    assert scanner.scan() == []


@needs_procfs
def test_fast_path_agrees_with_psutil() -> None:
    me = psutil.Process()
    records = {r.pid: r for r in ProcfsScanner().scan()}
    mine = records[os.getpid()]
    assert mine.name == me.name()
    assert mine.user == me.username()
    assert mine.started == pytest.approx(me.create_time(), abs=1.0)
    times = me.cpu_times()
    assert mine.cpu_time == pytest.approx(times.user + times.system, abs=0.5)
    assert mine.memory == pytest.approx(me.memory_info().rss, rel=0.2)
    assert len(records) == pytest.approx(len(psutil.pids()), abs=20)


def test_psutil_fallback_reads_this_process() -> None:
    records = {r.pid: r for r in PsutilScanner().scan()}
    mine = records[os.getpid()]
    assert isinstance(mine, ProcessRecord)
    assert mine.name == psutil.Process().name() and mine.memory > 0


@pytest.mark.parametrize('scanner', [
    pytest.param(ProcfsScanner, marks=needs_procfs, id='procfs'), pytest.param(PsutilScanner, id='psutil')])
async def test_a_burner_tops_the_cpu_ranking(scanner: type) -> None:
    burner = start_burner()
    try:
        monitor = ProcessMonitor(Hub(), scanner=scanner())
        await monitor.scan_once()  # the baseline
        await asyncio.sleep(1.0)
        snapshot = await monitor.scan_once()
    finally:
        stop(burner)
    found = next(p for p in snapshot.processes if p.pid == burner.pid)
    assert found.name == 'cpu-burner'
    assert found.cpu is not None and found.cpu >= 30, 'a busy loop on a shared two-core machine'
    assert snapshot.cpu_window_s is not None and snapshot.cpu_window_s >= 1.0
    top = snapshot.ranked('cpu', 5).processes
    assert [p.cpu for p in top] == sorted((p.cpu for p in top), reverse=True)
    assert burner.pid in [p.pid for p in snapshot.ranked('cpu', 10).processes]
    assert snapshot.count == len(snapshot.processes) > 10


async def test_the_first_scan_already_has_cpu_percent() -> None:
    snapshot = await ProcessMonitor(Hub()).scan_once()
    assert all(p.cpu is not None for p in snapshot.processes)
    assert snapshot.cpu_window_s is not None and snapshot.cpu_window_s >= 0.25


def info(pid: int, cpu: float | None, memory: int, gpu: int | None = None, name: str = 'p') -> ProcessInfo:
    return ProcessInfo(pid=pid, name=name, user='u', cpu=cpu, memory=memory, memory_percent=None, gpu_memory=gpu,
                       cpu_time=0.0, started=0.0)


def test_ranking_puts_na_last_and_keeps_ties_in_pid_order() -> None:
    rows = [info(5, 10.0, 1), info(3, None, 9), info(4, 10.0, 5), info(1, 50.0, 2)]
    assert [p.pid for p in rank(rows, 'cpu')] == [1, 4, 5, 3]
    assert [p.pid for p in rank(rows, 'memory')] == [3, 4, 1, 5]
    assert [p.pid for p in rank(rows, 'cpu', descending=False)] == [4, 5, 1, 3]
    with pytest.raises(ValueError):
        rank(rows, 'cmdline')
    snapshot = ProcessSnapshot(processes=rows, count=4)
    ranked = snapshot.ranked('cpu', 2)
    assert [p.pid for p in ranked.processes] == [1, 4] and ranked.count == 4 and ranked.sort == 'cpu'
    assert ranked.to_dict()['processes'][0] == {'pid': 1, 'name': 'p', 'user': 'u', 'cpu': 50.0, 'memory': 2,
                                                'memory_percent': None, 'gpu_memory': None, 'cpu_time': 0.0,
                                                'started': 0.0}


# --- scans only while something needs them ------------------------------------------------------

async def test_no_demand_no_scan_and_the_shortest_interval_wins() -> None:
    hub = Hub()
    monitor = ProcessMonitor(hub, core_share=None)  # scans as often as asked (the budget has a test of its own)
    published = hub.subscribe(name='test', types=[PROCESSES])
    await monitor.start()
    try:
        await asyncio.sleep(0.3)
        assert monitor.scans_taken == 0, 'nobody asks: no scan'
        slow = monitor.demand(3600, name='recorder')
        fast = monitor.demand(0.05, name='window')
        assert monitor.wanted_interval() == 0.05
        await eventually(lambda: monitor.scans_taken >= 3)
        event = await published.get()
        assert isinstance(event.data, ProcessSnapshot) and event.type == PROCESSES
        fast.release()
        assert monitor.wanted_interval() == 3600
        await asyncio.sleep(0.1)
        taken = monitor.scans_taken
        await asyncio.sleep(0.4)
        assert monitor.scans_taken == taken, 'only the hourly demand is left'
        slow.release()
        assert monitor.wanted_interval() is None
    finally:
        await monitor.stop()


async def test_scans_come_less_often_where_one_costs_more_than_the_budget_allows() -> None:
    """The budget counts the scan's own CPU time: a scan that burns 30 ms, within a budget of 1 % of a core,
    runs every 3 s at most, however often a window asks; never less often than every 30 s."""

    class Costly(PsutilScanner):
        def scan(self) -> list[ProcessRecord]:
            started = time.thread_time()
            while time.thread_time() - started < 0.03:
                pass
            return [ProcessRecord(1, 'init', 'root', 1.0, 4096, 0.0)]

    monitor = ProcessMonitor(Hub(), scanner=Costly(), core_share=0.01)
    assert monitor.scan_interval(0.05) == 0.05, 'before the first scan nothing is known: as asked'
    await monitor.scan_once()
    assert monitor.scan_cost_s is not None and monitor.scan_cost_s >= 0.03
    assert monitor.scan_interval(0.05) == pytest.approx(monitor.scan_cost_s / 0.01) and 3.0 <= monitor.scan_interval(0.05)
    assert monitor.scan_interval(60.0) == 60.0, 'a slower wish stays'
    monitor.core_share = 0.0001
    assert monitor.scan_interval(0.05) == MAX_SCAN_INTERVAL_S
    monitor.core_share = None
    assert monitor.scan_interval(0.05) == 0.05

    demand = monitor.demand(0.05, name='window')
    monitor.core_share = 0.01
    await monitor.start()
    try:
        await asyncio.sleep(1.0)
        assert monitor.scans_taken <= 2, 'the first scan at once, the next one seconds later'
    finally:
        demand.release()
        await monitor.stop()


async def test_a_paused_demand_does_not_count_and_an_ended_one_goes() -> None:
    monitor = ProcessMonitor(Hub(), core_share=None)
    state = {'connected': False, 'deleted': False}
    demand = monitor.demand(0.05, name='window', active=lambda: state['connected'], ended=lambda: state['deleted'])
    await monitor.start()
    try:
        await asyncio.sleep(0.3)
        assert monitor.scans_taken == 0, "a window whose socket is not connected does not count"
        state['connected'] = True
        demand.changed()
        await eventually(lambda: monitor.scans_taken >= 2)
        state['deleted'] = True
        assert monitor.wanted_interval() is None
        assert monitor.demands() == []
    finally:
        await monitor.stop()


async def test_a_script_gets_the_last_scan_while_it_is_fresh() -> None:
    monitor = ProcessMonitor(Hub())
    first = await monitor.current()
    assert await monitor.current() is first
    assert monitor.scans_taken == 1


async def test_scans_run_in_a_worker_thread() -> None:
    import threading

    threads: list[int] = []

    class Recording(PsutilScanner):
        def scan(self) -> list[ProcessRecord]:
            threads.append(threading.get_ident())
            return super().scan()

    await ProcessMonitor(Hub(), scanner=Recording()).scan_once()
    assert threads and threading.get_ident() not in threads


# --- GPU memory per process, through NVML -------------------------------------------------------

class NVMLError(Exception):
    pass


class NVMLError_FunctionNotFound(NVMLError):  # noqa: N801  # pynvml's name
    pass


class NVMLError_NoPermission(NVMLError):  # noqa: N801
    pass


class ProcessNvml:
    """A pynvml stand-in with two GPUs and their process lists. ``missing`` names calls the driver lacks
    (they raise FunctionNotFound, as pynvml does on an older driver); ``refuse`` makes the lists raise."""

    NVMLError_FunctionNotFound = NVMLError_FunctionNotFound
    NVML_TEMPERATURE_GPU = 0

    def __init__(self, lists: dict[tuple[int, str], list[tuple[int, int | None]]], *, missing: set[str] = frozenset(),
                 refuse: bool = False, gpus: int = 2) -> None:
        self.lists = lists
        self.missing = missing
        self.refuse = refuse
        self.gpus = gpus
        self.calls: list[str] = []
        for kind in ('Compute', 'Graphics'):
            for suffix in ('_v3', '_v2', ''):
                name = f'nvmlDeviceGet{kind}RunningProcesses{suffix}'
                setattr(self, name, self._lister(name, kind))

    def _lister(self, name: str, kind: str):  # type: ignore[no-untyped-def]
        def call(handle: int) -> list[SimpleNamespace]:
            self.calls.append(name)
            if name in self.missing:
                raise NVMLError_FunctionNotFound(name)
            if self.refuse:
                raise NVMLError_NoPermission('Insufficient Permissions')
            return [SimpleNamespace(pid=pid, usedGpuMemory=used, gpuInstanceId=0, computeInstanceId=0)
                    for pid, used in self.lists.get((handle, kind), [])]
        return call

    def nvmlInit(self) -> None:
        pass

    def nvmlShutdown(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        return self.gpus

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> str:
        return 'NVIDIA H100'


GiB = 2**30


def test_gpu_memory_per_process_from_both_lists_and_every_gpu() -> None:
    nvml = ProcessNvml({
        (0, 'Compute'): [(100, 4 * GiB), (200, 1 * GiB)],
        (0, 'Graphics'): [(200, 1 * GiB), (300, None)],  # 200 has both contexts: counted once
        (1, 'Compute'): [(100, 2 * GiB)],  # 100 is on both GPUs: summed
    })
    usage = NvmlGpuReader(nvml).process_memory()
    assert usage == {100: 6 * GiB, 200: 1 * GiB, 300: None}


def test_older_drivers_fall_back_to_the_versions_they_have() -> None:
    nvml = ProcessNvml({(0, 'Compute'): [(100, GiB)]}, gpus=1,
                       missing={'nvmlDeviceGetComputeRunningProcesses_v3', 'nvmlDeviceGetGraphicsRunningProcesses_v3'})
    reader = NvmlGpuReader(nvml)
    assert reader.process_memory() == {100: GiB}
    assert nvml.calls == ['nvmlDeviceGetComputeRunningProcesses_v3', 'nvmlDeviceGetComputeRunningProcesses_v2',
                          'nvmlDeviceGetGraphicsRunningProcesses_v3', 'nvmlDeviceGetGraphicsRunningProcesses_v2']
    nvml.calls.clear()
    reader.process_memory()
    assert nvml.calls == ['nvmlDeviceGetComputeRunningProcesses_v2', 'nvmlDeviceGetGraphicsRunningProcesses_v2'], \
        'the version that works is remembered'
    for name in list(vars(nvml)):  # a binding that only has the first, unversioned call
        if name.endswith(('_v3', '_v2')):
            delattr(nvml, name)
    assert NvmlGpuReader(nvml).process_memory() == {100: GiB}


async def test_the_panel_data_says_na_where_the_driver_refuses() -> None:
    refusing = NvmlGpuReader(ProcessNvml({}, refuse=True))
    snapshot = await ProcessMonitor(Hub(), gpus=refusing).scan_once()
    assert snapshot.gpu_status == 'the driver does not list the processes on the GPU'
    assert not snapshot.has_gpu_memory
    assert all(p.gpu_memory is None for p in snapshot.processes)


async def test_gpu_memory_shows_for_the_process_that_holds_it() -> None:
    me = os.getpid()
    snapshot = await ProcessMonitor(Hub(), gpus=NvmlGpuReader(ProcessNvml({(0, 'Compute'): [(me, 3 * GiB)]}))).scan_once()
    assert snapshot.gpu_status == 'ok'
    by_pid = {p.pid: p for p in snapshot.processes}
    assert by_pid[me].gpu_memory == 3 * GiB
    assert by_pid[1].gpu_memory == 0, 'a process on no GPU holds none (not n/a)'
    assert snapshot.ranked('gpu_memory', 1).processes[0].pid == me


async def test_no_gpu_reads_na_with_the_reason() -> None:
    class NoDriver(ProcessNvml):
        def nvmlInit(self) -> None:
            raise NVMLError('NVML Shared Library Not Found')

    snapshot = await ProcessMonitor(Hub(), gpus=NvmlGpuReader(NoDriver({}))).scan_once()
    assert snapshot.gpu_status.startswith('no NVIDIA driver')
    assert all(p.gpu_memory is None for p in snapshot.processes)
