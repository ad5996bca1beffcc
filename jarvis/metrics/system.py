"""CPU, memory, disk and network readings through psutil. Blocking: call off the event loop."""
from __future__ import annotations

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
        return int(psutil.virtual_memory().available)
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
        memory = psutil.virtual_memory()
        swap = psutil.swap_memory()
        disk = psutil.disk_usage(self.disk_path)
        sent_rate, recv_rate = self._net_rates()
        return SystemReading(
            cpu=float(cpu),
            cpu_per_core=[float(c) for c in per_core],
            cpu_count=len(per_core),
            memory=float(memory.percent),
            memory_used=int(memory.total - memory.available),
            memory_total=int(memory.total),
            swap_used=int(swap.used),
            swap_total=int(swap.total),
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
        counters = psutil.net_io_counters()
        return time.monotonic(), int(counters.bytes_sent), int(counters.bytes_recv)
