"""CPU, memory, disk and network readings through psutil. Blocking: call off the event loop.

On Linux, memory, swap and the network counters come from one read of ``/proc/meminfo`` and one of
``/proc/net/dev`` (the same fields psutil reads there): psutil's ``virtual_memory()`` and
``swap_memory()`` read ``/proc/meminfo`` twice and ``/proc/vmstat`` once, and parse far more than a
sample needs; on this machine that was about a third of each sample's cost (the sampler runs even while
no window is open). Anywhere else, or when a field is missing, psutil reads them.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

# cpu_percent() without an interval compares with the previous call; a reading taken too soon
# after it is mostly noise, so the reader waits (in its worker thread) until this much has passed.
MIN_CPU_WINDOW_S = 0.2


@dataclass(frozen=True, slots=True)
class SystemReading:
    cpu: float
    cpu_per_core: list[float]
    cpu_count: int
    memory: float
    memory_used: int
    memory_total: int
    swap_used: int
    swap_total: int
    disk: float
    disk_path: str
    disk_used: int
    disk_total: int
    net_sent_per_s: float | None
    net_recv_per_s: float | None


def free_memory_bytes() -> int | None:
    """The RAM that can be given to a new process now, without swapping (None: it cannot be read)."""
    try:
        return memory_and_swap()[1]
    except (OSError, RuntimeError):
        return None


class PsutilReader:
    def __init__(self, disk_path: str | Path | None = None) -> None:
        self.disk_path = str(disk_path or Path.home())
        self._last_cpu_call = 0.0
        self._last_net: tuple[float, int, int] | None = None
        self._primed = False

    def prime(self) -> None:
        """Take the first cpu_percent reading, which psutil defines as meaningless, and discard it."""
        psutil.cpu_percent(interval=None, percpu=True)
        self._last_cpu_call = time.monotonic()
        self._last_net = self._net_counters()
        self._primed = True

    def read(self) -> SystemReading:
        if not self._primed:
            self.prime()
        wait = MIN_CPU_WINDOW_S - (time.monotonic() - self._last_cpu_call)
        if wait > 0:
            time.sleep(wait)
        per_core = psutil.cpu_percent(interval=None, percpu=True)  # one read of /proc/stat for both
        cpu = sum(per_core) / len(per_core) if per_core else 0.0
        self._last_cpu_call = time.monotonic()
        memory_total, memory_available, swap_total, swap_free = memory_and_swap()
        disk = psutil.disk_usage(self.disk_path)
        sent_rate, recv_rate = self._net_rates()
        return SystemReading(
            cpu=float(cpu),
            cpu_per_core=[float(c) for c in per_core],
            cpu_count=len(per_core),
            memory=round((memory_total - memory_available) / memory_total * 100.0, 1) if memory_total else 0.0,
            memory_used=memory_total - memory_available,
            memory_total=memory_total,
            swap_used=swap_total - swap_free,
            swap_total=swap_total,
            disk=float(disk.percent),
            disk_path=self.disk_path,
            disk_used=int(disk.used),
            disk_total=int(disk.total),
            net_sent_per_s=sent_rate,
            net_recv_per_s=recv_rate,
        )

    def _net_rates(self) -> tuple[float | None, float | None]:
        now = self._net_counters()
        previous, self._last_net = self._last_net, now
        if previous is None or now[0] <= previous[0]:
            return None, None
        elapsed = now[0] - previous[0]
        return max(0.0, (now[1] - previous[1]) / elapsed), max(0.0, (now[2] - previous[2]) / elapsed)

    @staticmethod
    def _net_counters() -> tuple[float, int, int]:
        sent, received = network_bytes()
        return time.monotonic(), sent, received


_LINUX = sys.platform.startswith('linux')
_MEMINFO_FIELDS = (b'MemTotal:', b'MemAvailable:', b'SwapTotal:', b'SwapFree:')


def memory_and_swap(meminfo: str = '/proc/meminfo') -> tuple[int, int, int, int]:
    """(memory total, memory available, swap total, swap free) in bytes."""
    if _LINUX:
        try:
            with open(meminfo, 'rb') as file:
                text = file.read()
        except OSError:
            text = b''
        values: dict[bytes, int] = {}
        for line in text.splitlines():
            name, _, rest = line.partition(b' ')
            if name in _MEMINFO_FIELDS:
                values[name] = int(rest.split()[0]) * 1024  # the kernel writes kB (KiB)
        if len(values) == len(_MEMINFO_FIELDS):
            return (values[b'MemTotal:'], values[b'MemAvailable:'], values[b'SwapTotal:'], values[b'SwapFree:'])
    memory, swap = psutil.virtual_memory(), psutil.swap_memory()
    return int(memory.total), int(memory.available), int(swap.total), int(swap.free)


def network_bytes(net_dev: str = '/proc/net/dev') -> tuple[int, int]:
    """(bytes sent, bytes received) by every interface since boot, as psutil.net_io_counters() sums them."""
    if _LINUX:
        try:
            with open(net_dev, 'rb') as file:
                lines = file.read().splitlines()[2:]  # two header lines
            sent = received = 0
            for line in lines:
                fields = line.partition(b':')[2].split()
                received += int(fields[0])
                sent += int(fields[8])
            return sent, received
        except (OSError, IndexError, ValueError):
            pass
    counters = psutil.net_io_counters()
    return int(counters.bytes_sent), int(counters.bytes_recv)
