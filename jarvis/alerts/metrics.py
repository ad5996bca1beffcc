"""What an alert rule can watch, and how each is read from a ``system_metrics`` sample.

A reading is ``None`` when the sample cannot tell (no GPU, a field the driver refuses, no swap): a
rule never fires on it. The GPU metrics take the highest reading of any GPU, so that one hot or full
card is enough.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..events import GpuReading, SystemMetrics

PERCENT = '%'
CELSIUS = '°C'


@dataclass(frozen=True)
class WatchedMetric:
    name: str  # as rules and the API name it
    label: str  # as a person reads it
    unit: str
    low: float  # the range a threshold may take
    high: float
    read: Callable[[SystemMetrics], float | None]

    def format(self, value: float | None) -> str:
        """"97 %", "92.5 %", "86 °C" (a tenth at most, as the readings are taken); "n/a" when there is none."""
        if value is None:
            return 'n/a'
        number = f'{value:.1f}'.removesuffix('.0')
        return f'{"0" if number == "-0" else number} {self.unit}'

    def to_dict(self) -> dict[str, Any]:
        return {'name': self.name, 'label': self.label, 'unit': self.unit, 'min': self.low, 'max': self.high}


def _share(used: float | None, total: float | None) -> float | None:
    if used is None or not total:
        return None
    return 100.0 * used / total


def _highest(gpus: list[GpuReading], read: Callable[[GpuReading], float | None]) -> float | None:
    values = [value for value in map(read, gpus) if value is not None]
    return max(values) if values else None


METRICS: dict[str, WatchedMetric] = {metric.name: metric for metric in (
    WatchedMetric('cpu', 'CPU', PERCENT, 0, 100, lambda m: m.cpu),
    WatchedMetric('memory', 'Memory', PERCENT, 0, 100, lambda m: m.memory),
    WatchedMetric('swap', 'Swap', PERCENT, 0, 100, lambda m: _share(m.swap_used, m.swap_total)),
    WatchedMetric('disk', 'Disk', PERCENT, 0, 100, lambda m: m.disk),
    WatchedMetric('gpu_utilization', 'GPU utilisation', PERCENT, 0, 100,
                  lambda m: _highest(m.gpus, lambda g: g.utilization)),
    WatchedMetric('gpu_memory', 'GPU memory', PERCENT, 0, 100,
                  lambda m: _highest(m.gpus, lambda g: _share(g.memory_used, g.memory_total))),
    WatchedMetric('gpu_temperature', 'GPU temperature', CELSIUS, 0, 150,
                  lambda m: _highest(m.gpus, lambda g: g.temperature)),
)}
