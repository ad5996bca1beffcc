"""NVML query layer for NVIDIA GPUs (the official ``nvidia-ml-py`` package, module ``pynvml``).

NVML is initialised once and shut down at exit. Every field is read on its own: a driver that
refuses one field (fan speed answers NotSupported on datacenter GPUs) leaves that field ``None``
("n/a") while the others still show. No library, no driver or no GPU gives no readings and a
status that says why — never a crash and never a fake 0.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

from ..events import GpuReading

log = logging.getLogger(__name__)

T = TypeVar('T')


class NvmlGpuReader:
    """Reads every NVIDIA GPU through NVML. Blocking: call it off the event loop."""

    def __init__(self, nvml: ModuleType | Any | None = None) -> None:
        self._nvml = nvml  # injectable for tests; pynvml by default
        self._handles: list[Any] = []
        self._names: list[str | None] = []
        self._initialised = False
        self._started = False
        self._lock = threading.Lock()
        self.status = 'not started'

    @property
    def available(self) -> bool:
        return bool(self._handles)

    def start(self) -> None:
        """Initialise NVML once; remember why when it cannot be used."""
        with self._lock:
            if self._started:
                return
            self._started = True
            if self._nvml is None:
                try:
                    import pynvml  # pylint: disable=import-outside-toplevel
                except ImportError:
                    self.status = 'NVML library not installed'
                    return
                self._nvml = pynvml
            nvml = self._nvml
            try:
                nvml.nvmlInit()
            except Exception as error:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
                self.status = f'no NVIDIA driver ({_describe(error)})'
                log.info('GPU monitoring off: %s', self.status)
                return
            self._initialised = True
            try:
                count = nvml.nvmlDeviceGetCount()
                self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            except Exception as error:
                self.status = f'NVML error ({_describe(error)})'
                self._handles = []
                return
            self._names = [self._field(lambda h=h: _text(nvml.nvmlDeviceGetName(h))) for h in self._handles]
            self.status = 'ok' if self._handles else 'no NVIDIA GPU'

    def read(self) -> list[GpuReading]:
        """One reading per GPU; any field the driver refuses is ``None``."""
        if not self._started:
            self.start()
        nvml = self._nvml
        readings = []
        for index, handle in enumerate(self._handles):
            utilization = self._field(lambda: nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            memory = self._memory(handle)
            readings.append(GpuReading(
                index=index,
                name=self._names[index] if index < len(self._names) else None,
                utilization=float(utilization) if utilization is not None else None,
                memory_used=int(memory.used) if memory is not None else None,
                memory_total=int(memory.total) if memory is not None else None,
                temperature=_as_float(self._field(
                    lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))),
                power=_milli(self._field(lambda: nvml.nvmlDeviceGetPowerUsage(handle))),
                power_limit=_milli(self._field(lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(handle))),
                fan=_as_float(self._field(lambda: nvml.nvmlDeviceGetFanSpeed(handle))),
            ))
        return readings

    def shutdown(self) -> None:
        with self._lock:
            if self._initialised:
                try:
                    self._nvml.nvmlShutdown()
                except Exception as error:
                    log.debug('nvmlShutdown failed: %s', error)
                self._initialised = False
            self._handles = []
            self._started = False
            self.status = 'stopped'

    def _memory(self, handle: Any) -> Any | None:
        # The v2 struct matches nvidia-smi; the default one also counts memory the driver reserves.
        nvml = self._nvml
        version = getattr(nvml, 'nvmlMemory_v2', None)
        if version is not None:
            memory = self._field(lambda: nvml.nvmlDeviceGetMemoryInfo(handle, version=version))
            if memory is not None:
                return memory
        return self._field(lambda: nvml.nvmlDeviceGetMemoryInfo(handle))

    @staticmethod
    def _field(read: Callable[[], T]) -> T | None:
        try:
            return read()
        except Exception:  # NVMLError_NotSupported, NoPermission, GpuIsLost, an old driver's TypeError ...
            return None


def _describe(error: Exception) -> str:
    return str(error) or type(error).__name__


def _text(value: str | bytes) -> str:
    return value.decode(errors='replace') if isinstance(value, bytes) else str(value)


def _as_float(value: Any) -> float | None:
    return float(value) if value is not None else None


def _milli(value: Any) -> float | None:
    return float(value) / 1000.0 if value is not None else None
