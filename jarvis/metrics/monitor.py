"""The system monitor as one domain part: live samples, the processes and the history.

The System view and the /api/system/ routes use this interface alone; it wires the sampler, the
process monitor and the history recorder together, and starts and stops them in order.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from ..events import SystemMetrics
from ..hub import Hub
from ..storage.database import Database
from .gpu import NvmlGpuReader
from .history import MAX_POINTS, RANGES, HistoryRangeError, HistoryRecorder
from .history_store import HistoryRange, RecordedProcess
from .processes import PANEL_INTERVAL_S, Demand, ProcessMonitor, ProcessSnapshot
from .sampler import CALM_INTERVAL_S, DEFAULT_INTERVAL_S, MetricsSampler

__all__ = ['RANGES', 'HistoryRangeError', 'SystemMonitor']


class SystemMonitor:
    def __init__(self, hub: Hub, db: Database, *, interval: float = DEFAULT_INTERVAL_S,
                 calm_interval: float = CALM_INTERVAL_S, clock: Callable[[], float] = time.time,
                 gpus: NvmlGpuReader | None = None) -> None:
        self.hub = hub
        self.sampler = MetricsSampler(hub, interval=interval, calm_interval=calm_interval, gpus=gpus)
        self.processes = ProcessMonitor(hub, gpus=self.sampler.gpus, clock=clock)
        self.history = HistoryRecorder(db, processes=self.processes, clock=clock)

    async def start(self) -> None:
        await self.history.start(self.hub)  # listening before the first sample is published
        await self.processes.start()
        await self.sampler.start()

    async def stop(self) -> None:
        """What is in memory is written first, with a last scan for the minute in progress (NVML is still
        there), then the scans end and the sampler shuts NVML down. A sample taken in between is not recorded."""
        await self.history.stop()
        await self.processes.stop()
        await self.sampler.stop()

    # --- now ----------------------------------------------------------------------------------

    async def current(self) -> SystemMetrics:
        return await self.sampler.current()

    def recent(self) -> list[SystemMetrics]:
        return self.sampler.recent()

    def is_fresh(self, metrics: SystemMetrics | None) -> bool:
        return self.sampler.is_fresh(metrics)

    # --- processes ----------------------------------------------------------------------------

    def watch_processes(self, *, name: str, active: Callable[[], bool] | None = None,
                        ended: Callable[[], bool] | None = None,
                        interval: float = PANEL_INTERVAL_S) -> Demand:
        """Scans published as ``processes`` events at least every ``interval`` while this demand counts."""
        return self.processes.demand(interval, name=name, active=active, ended=ended)

    def latest_processes(self) -> ProcessSnapshot | None:
        return self.processes.latest()

    async def top_processes(self, sort: str, limit: int) -> ProcessSnapshot:
        """The ``limit`` processes that use the most of ``sort`` (cpu, memory or gpu_memory), from a fresh scan."""
        return (await self.processes.current()).ranked(sort, limit)

    # --- the past -----------------------------------------------------------------------------

    async def history_range(self, range_name: str | None = None, start: float | None = None,
                            end: float | None = None, max_points: int = MAX_POINTS) -> HistoryRange:
        """A named range ending now ("1h", "7d", ...) or ``start``..``end`` in Unix seconds; raises
        ``HistoryRangeError`` for a range that cannot be answered."""
        start, end = self.history.resolve(range_name, start, end)
        return await self.history.query(start, end, max_points)

    async def busy_processes_at(self, timestamp: float) -> list[RecordedProcess]:
        return await self.history.processes_at(timestamp)

    async def busy_processes_between(self, start: float, end: float) -> list[RecordedProcess]:
        """The busiest processes recorded for each minute from ``start`` to ``end`` (Unix seconds)."""
        return await self.history.processes_between(start, end)
