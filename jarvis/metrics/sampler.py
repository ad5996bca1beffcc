"""Samples the machine: every 2 s while someone watches (a visible window, a connected script), at a calm
rate (every 30 s) while nobody does: no window open, or every window hidden or minimised.

Sampling never stops: the history recorder and the alerts keep working at the calm rate. Twice a minute
is enough for them (a minute's mean CPU is exact, each sample averages the CPU since the one before), and
each wake-up of an idle app costs CPU of its own.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from ..events import SystemMetrics
from ..hub import Hub
from .gpu import NvmlGpuReader
from .system import PsutilReader
from .waiting import wait_or_timeout

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 2.0
CALM_INTERVAL_S = 30.0  # while no window is visible and no /api/events client is connected
HISTORY_S = 300.0


class MetricsSampler:
    """Publishes ``system_metrics`` on the hub: every ``interval`` while someone watches (``Hub.watching_count``),
    every ``calm_interval`` while nobody does.

    Every psutil, disk and NVML call runs in a worker thread, never on the event loop, but one: the CPU's and the
    network's first counters are read as the sampler is made (one read of /proc/stat and one of /proc/net/dev).
    """

    def __init__(self, hub: Hub, *, interval: float = DEFAULT_INTERVAL_S, calm_interval: float = CALM_INTERVAL_S,
                 system: PsutilReader | None = None, gpus: NvmlGpuReader | None = None) -> None:
        self.hub = hub
        self.interval = interval
        self.calm_interval = max(interval, calm_interval)
        self.system = system or PsutilReader()
        # the CPU's first reading now (and the network's counters): its window passes while the app starts, so
        # the first sample, which the first page shows, needs no wait of its own
        self.system.prime()
        self.gpus = gpus or NvmlGpuReader()
        self._history: deque[SystemMetrics] = deque(maxlen=max(1, int(HISTORY_S / interval)))
        self.samples_taken = 0
        self._task: asyncio.Task | None = None
        self._started = False
        self._last_sample_at: float | None = None  # monotonic
        self._lock = asyncio.Lock()  # the loop and an API request may ask at the same time

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name='metrics-sampler')

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await asyncio.to_thread(self.gpus.shutdown)

    async def sample_once(self) -> SystemMetrics:
        """Read the machine (off the loop) and publish the result."""
        async with self._lock:
            if not self._started:
                await asyncio.to_thread(self._start_readers)
            metrics = await asyncio.to_thread(self._read)
            self.samples_taken += 1
            self._last_sample_at = time.monotonic()
            self._history.append(metrics)
            self.hub.publish(metrics)
            return metrics

    @property
    def recent_limit(self) -> int:
        """How many samples ``recent()`` keeps: the last five minutes."""
        return self._history.maxlen or 1

    def recent(self) -> list[SystemMetrics]:
        """The samples of the last five minutes, oldest first."""
        return list(self._history)

    def is_fresh(self, metrics: SystemMetrics | None) -> bool:
        """Whether a sample is recent enough to show as "now" (no more than one tick and a half old)."""
        return metrics is not None and time.time() - metrics.timestamp <= self.interval * 1.5

    async def current(self) -> SystemMetrics:
        """The latest sample if it is fresh, else a new one (for scripts asking between ticks)."""
        latest = self._history[-1] if self._history else None
        if latest is not None and self.is_fresh(latest):
            return latest
        return await self.sample_once()

    def current_interval(self) -> float:
        """The interval in effect: full rate while a window is visible or a script listens, the calm one otherwise."""
        return self.interval if self.hub.watching_count else self.calm_interval

    async def _run(self) -> None:
        await asyncio.to_thread(self._start_readers)
        while True:
            interval = self.current_interval()
            wait = 0.0 if self._last_sample_at is None else self._last_sample_at + interval - time.monotonic()
            if wait > 0:
                if interval > self.interval:  # calm: a window shown meanwhile gets a fresh sample at once
                    await self._wait_for_watchers(wait)
                else:
                    await asyncio.sleep(wait)
                continue
            try:
                await self.sample_once()
            except Exception:  # a bad reading must not end monitoring
                log.exception('metrics: sampling failed')
                await asyncio.sleep(interval)

    async def _wait_for_watchers(self, timeout: float) -> None:
        await wait_or_timeout(self.hub.wait_for_watchers(), timeout)

    def _start_readers(self) -> None:
        if not self._started:
            self.gpus.start()
            self._started = True

    def _read(self) -> SystemMetrics:
        system = self.system.read()
        gpus = self.gpus.read()
        utilizations = [g.utilization for g in gpus if g.utilization is not None]
        return SystemMetrics(
            cpu=round(system.cpu, 1),
            memory=round(system.memory, 1),
            disk=round(system.disk, 1),
            gpu=round(sum(utilizations) / len(utilizations), 1) if utilizations else None,
            cpu_per_core=system.cpu_per_core,
            cpu_count=system.cpu_count,
            memory_used=system.memory_used,
            memory_total=system.memory_total,
            swap_used=system.swap_used,
            swap_total=system.swap_total,
            disk_path=system.disk_path,
            disk_used=system.disk_used,
            disk_total=system.disk_total,
            net_sent_per_s=system.net_sent_per_s,
            net_recv_per_s=system.net_recv_per_s,
            gpus=gpus,
            gpu_status=self.gpus.status,
        )
