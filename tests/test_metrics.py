"""The metrics sampler against psutil, NVML without a GPU, with a picky driver, and on a real GPU."""
from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from jarvis import events
from jarvis.hub import Hub
from jarvis.metrics import MetricsSampler, NvmlGpuReader, PsutilReader

from .helpers.waiting import eventually


class NVMLError(Exception):
    pass


class FakeNvml:
    """Stands in for the pynvml module the way a driver behaves: a datacenter GPU without a fan
    and a driver that refuses the temperature. Counts init and shutdown calls."""

    NVML_TEMPERATURE_GPU = 0
    nvmlMemory_v2 = 0x2000028

    def __init__(self, refuse: set[str] | None = None, fail_init: Exception | None = None) -> None:
        self.refuse = refuse or set()
        self.fail_init = fail_init
        self.inits = 0
        self.shutdowns = 0

    def _maybe_refuse(self, name: str) -> None:
        if name in self.refuse:
            raise NVMLError(f'{name}: Not Supported')

    def nvmlInit(self) -> None:
        self.inits += 1
        if self.fail_init:
            raise self.fail_init

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> bytes:
        return b'NVIDIA H100 80GB HBM3'

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        self._maybe_refuse('utilization')
        return SimpleNamespace(gpu=40 + 20 * handle, memory=5)

    def nvmlDeviceGetMemoryInfo(self, handle: int, version: int | None = None) -> SimpleNamespace:
        if version == self.nvmlMemory_v2:  # the v2 struct leaves out what the driver reserves
            return SimpleNamespace(total=80 * 2**30, used=1 * 2**30, free=79 * 2**30)
        return SimpleNamespace(total=80 * 2**30, used=1 * 2**30 + 480 * 2**20, free=79 * 2**30)

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        self._maybe_refuse('temperature')
        return 35

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return 695_000

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: int) -> int:
        return 700_000

    def nvmlDeviceGetFanSpeed(self, handle: int) -> int:
        self._maybe_refuse('fan')
        return 30


async def test_sampler_agrees_with_psutil(tmp_path: Path) -> None:
    sampler = MetricsSampler(Hub(), gpus=NvmlGpuReader(FakeNvml(fail_init=NVMLError('Driver Not Loaded'))))
    sample = await sampler.sample_once()
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(str(Path.home()))
    assert sample.memory_total == memory.total
    assert abs(sample.memory - memory.percent) < 5
    assert sample.disk_total == disk.total
    assert abs(sample.disk - disk.percent) < 1
    assert sample.cpu_count == psutil.cpu_count() == len(sample.cpu_per_core)
    assert 0 <= sample.cpu <= 100 and all(0 <= c <= 100 for c in sample.cpu_per_core)
    assert sample.swap_total == psutil.swap_memory().total
    second = await sampler.sample_once()
    assert second.net_sent_per_s is not None and second.net_sent_per_s >= 0


async def test_cpu_reading_follows_a_real_load() -> None:
    reader = PsutilReader()
    reader.prime()
    await asyncio.sleep(0.5)
    idle = (await asyncio.to_thread(reader.read)).cpu
    busy = subprocess.Popen(['python3', '-c', 'while True: pass'])
    try:
        await asyncio.sleep(1.0)
        loaded = (await asyncio.to_thread(reader.read)).cpu
    finally:
        busy.kill()
        busy.wait()
    assert loaded > idle and loaded >= 100 / psutil.cpu_count() * 0.6


async def test_no_nvml_means_na_never_zero() -> None:
    hub = Hub()
    reader = NvmlGpuReader(FakeNvml(fail_init=NVMLError('NVML Shared Library Not Found')))
    sample = await MetricsSampler(hub, gpus=reader).sample_once()
    assert sample.gpu is None and sample.gpus == []
    assert 'no NVIDIA driver' in sample.gpu_status
    assert json.loads(json.dumps(sample.to_dict()))['gpu'] is None


def test_missing_pynvml_module_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_pynvml(name: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == 'pynvml':
            raise ImportError('No module named pynvml')
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, '__import__', no_pynvml)
    reader = NvmlGpuReader()
    assert reader.read() == []
    assert reader.status == 'NVML library not installed'


async def test_driver_refusing_single_fields_leaves_only_those_na() -> None:
    nvml = FakeNvml(refuse={'fan', 'temperature'})
    sample = await MetricsSampler(Hub(), gpus=NvmlGpuReader(nvml)).sample_once()
    assert sample.gpu_status == 'ok'
    assert [g.utilization for g in sample.gpus] == [40.0, 60.0]
    assert sample.gpu == 50.0
    first = sample.gpus[0]
    assert first.fan is None and first.temperature is None
    assert first.name == 'NVIDIA H100 80GB HBM3'
    assert first.memory_used == 2**30, 'the v2 memory struct, which matches nvidia-smi'
    assert first.power == 695.0 and first.power_limit == 700.0


async def test_all_utilisation_refused_gives_na_gpu() -> None:
    sample = await MetricsSampler(Hub(), gpus=NvmlGpuReader(FakeNvml(refuse={'utilization'}))).sample_once()
    assert sample.gpu is None and len(sample.gpus) == 2
    assert sample.gpus[0].memory_total == 80 * 2**30


async def test_nvml_initialised_once_and_shut_down_at_stop() -> None:
    nvml = FakeNvml()
    hub = Hub()
    sampler = MetricsSampler(hub, interval=0.01, gpus=NvmlGpuReader(nvml))
    await sampler.start()
    viewer = hub.subscribe(viewer=True)
    for _ in range(200):
        if sampler.samples_taken >= 3:
            break
        await asyncio.sleep(0.01)
    viewer.close()
    await sampler.stop()
    assert sampler.samples_taken >= 3
    assert (nvml.inits, nvml.shutdowns) == (1, 1)


async def test_the_sampler_is_calm_without_a_window_and_at_full_rate_with_one() -> None:
    hub = Hub()
    sampler = MetricsSampler(hub, interval=0.02, calm_interval=3600, gpus=NvmlGpuReader(FakeNvml()))
    await sampler.start()
    try:
        await eventually(lambda: sampler.samples_taken == 1)  # sampling never stops: one at start ...
        await asyncio.sleep(0.3)
        assert sampler.samples_taken == 1, '... then the calm rate (an hour here) while no window is open'
        assert sampler.current_interval() == 3600
        window = hub.subscribe(name='window')
        window.viewer = True  # the window's socket connected: the full rate at once, not after the calm wait
        await eventually(lambda: sampler.samples_taken >= 4)
        assert hub.latest(events.SYSTEM_METRICS) is not None
        window.close()  # the last window left
        await asyncio.sleep(0.1)
        taken = sampler.samples_taken
        await asyncio.sleep(0.3)
        assert sampler.samples_taken == taken, 'calm again after the last window left'
    finally:
        await sampler.stop()


async def test_samples_keep_coming_while_no_window_is_open() -> None:
    hub = Hub()
    sampler = MetricsSampler(hub, interval=0.01, calm_interval=0.05, gpus=NvmlGpuReader(FakeNvml()))
    await sampler.start()
    try:
        await eventually(lambda: sampler.samples_taken >= 4)
        assert hub.viewer_count == 0
    finally:
        await sampler.stop()


@pytest.mark.skipif(shutil.which('nvidia-smi') is None, reason='no NVIDIA GPU here: nvidia-smi is not installed')
def test_nvml_agrees_with_nvidia_smi() -> None:
    output = subprocess.run(
        ['nvidia-smi', '--query-gpu=index,name,memory.total,memory.used,temperature.gpu',
         '--format=csv,noheader,nounits'], capture_output=True, text=True, check=True, timeout=30).stdout
    rows = [[field.strip() for field in line.split(',')] for line in output.strip().splitlines()]
    reader = NvmlGpuReader()
    readings = reader.read()
    reader.shutdown()
    assert reader.status == 'stopped'
    assert len(readings) == len(rows)
    for reading, (index, name, total_mib, used_mib, temperature) in zip(readings, rows):
        assert reading.index == int(index)
        assert reading.name == name
        assert reading.memory_total is not None and abs(reading.memory_total / 2**20 - float(total_mib)) <= 1
        assert reading.memory_used is not None and abs(reading.memory_used / 2**20 - float(used_mib)) <= 64
        if temperature not in ('[N/A]', '[Not Supported]'):
            assert reading.temperature is not None and abs(reading.temperature - float(temperature)) <= 3


async def test_the_sampler_is_calm_while_every_window_is_hidden_and_samples_at_once_when_one_is_shown() -> None:
    hub = Hub()
    sampler = MetricsSampler(hub, interval=0.02, calm_interval=3600, gpus=NvmlGpuReader(FakeNvml()))
    window = hub.subscribe(name='window', viewer=True, window=True)  # connected, its page not (yet) visible
    await sampler.start()
    try:
        await eventually(lambda: sampler.samples_taken == 1)
        await asyncio.sleep(0.3)
        assert sampler.samples_taken == 1, 'a hidden window keeps the sampler calm'
        window.visible = True  # shown: a fresh sample at once, then the full rate
        await eventually(lambda: sampler.samples_taken >= 4)
        window.visible = False  # minimised
        await asyncio.sleep(0.1)
        taken = sampler.samples_taken
        await asyncio.sleep(0.3)
        assert sampler.samples_taken == taken, 'calm again while hidden'
    finally:
        window.close()
        await sampler.stop()


MEMINFO = """MemTotal:       24684084 kB
MemFree:        20000000 kB
MemAvailable:   23954608 kB
Buffers:          100000 kB
SwapTotal:       2097148 kB
SwapFree:        1048572 kB
"""

NET_DEV = """Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
  eth0: 52000     400    0    0    0     0          0         0    31000     300    0    0    0     0       0          0
"""


@pytest.mark.skipif(not psutil.LINUX, reason='the /proc fast path is Linux only')
def test_memory_swap_and_network_are_read_from_proc_as_psutil_reads_them(tmp_path: Path) -> None:
    from jarvis.metrics.system import memory_and_swap, network_bytes

    (tmp_path / 'meminfo').write_text(MEMINFO)
    (tmp_path / 'dev').write_text(NET_DEV)
    assert memory_and_swap(str(tmp_path / 'meminfo')) == (24684084 * 1024, 23954608 * 1024, 2097148 * 1024,
                                                          1048572 * 1024)
    assert network_bytes(str(tmp_path / 'dev')) == (1000 + 31000, 1000 + 52000)  # every interface, as psutil sums
    # this machine, against psutil itself (totals do not move between the two reads)
    total, _available, swap_total, _swap_free = memory_and_swap()
    assert (total, swap_total) == (psutil.virtual_memory().total, psutil.swap_memory().total)
    sent, received = network_bytes()
    counters = psutil.net_io_counters()
    assert 0 <= counters.bytes_sent - sent < 10**7 and 0 <= counters.bytes_recv - received < 10**7


def test_a_meminfo_without_the_fields_falls_back_to_psutil(tmp_path: Path) -> None:
    from jarvis.metrics.system import memory_and_swap

    (tmp_path / 'meminfo').write_text('MemTotal: 1 kB\n')
    assert memory_and_swap(str(tmp_path / 'meminfo'))[0] == psutil.virtual_memory().total
