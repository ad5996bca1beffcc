"""NVML query layer for NVIDIA GPUs (the official ``nvidia-ml-py`` package, module ``pynvml``).

NVML is initialised once and shut down at exit. Every field is read on its own: a driver that
refuses one field (fan speed answers NotSupported on datacenter GPUs) leaves that field ``None``
("n/a") while the others still show. No library, no driver or no GPU gives no readings and a
status that says why — never a crash and never a fake 0.

GPU memory per process comes from the compute and graphics process lists. Their calls are versioned
(``_v3``, ``_v2``, then the first one), and an older driver or binding lacks the newer ones: the newest that
exists is found once and kept, as nvitop does.
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

# the versions of nvmlDeviceGet{Compute,Graphics}RunningProcesses, newest first
_PROCESS_CALL_SUFFIXES = ('_v3', '_v2', '')


class NvmlGpuReader:
    """Reads every NVIDIA GPU through NVML. Blocking: call it off the event loop."""

    def __init__(self, nvml: ModuleType | Any | None = None) -> None:
        self._nvml = nvml  # injectable for tests; pynvml by default
        self._handles: list[Any] = []
        self._names: list[str | None] = []
        self._initialised = False
        self._started = False
        self._lock = threading.Lock()
        self._process_call_suffix: dict[str, str] = {}  # 'Compute' / 'Graphics' -> the version that works
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

    def process_memory(self) -> dict[int, int | None] | None:
        """GPU memory per process id, in bytes, summed over every GPU (``None`` for a process whose memory the
        driver does not tell, e.g. under WDDM). ``None`` when there is no GPU or the driver refuses the lists."""
        if not self._started:
            self.start()
        usage: dict[int, int | None] = {}
        listed = False
        for handle in self._handles:
            on_device: dict[int, int | None] = {}
            for kind in ('Compute', 'Graphics'):
                processes = self._running_processes(kind, handle)
                if processes is None:
                    continue
                listed = True
                for process in processes:
                    pid, used = int(process.pid), _as_bytes(getattr(process, 'usedGpuMemory', None))
                    # a process with a compute and a graphics context is listed twice for the same memory
                    on_device[pid] = _larger(on_device[pid], used) if pid in on_device else used
            for pid, used in on_device.items():
                if pid not in usage:
                    usage[pid] = used
                else:  # on several GPUs: the sum, or n/a when one of them does not tell
                    before = usage[pid]
                    usage[pid] = None if before is None or used is None else before + used
        return usage if listed else None

    def _running_processes(self, kind: str, handle: Any) -> list[Any] | None:
        nvml = self._nvml
        known = self._process_call_suffix.get(kind)
        for suffix in (known,) if known is not None else _PROCESS_CALL_SUFFIXES:
            call = getattr(nvml, f'nvmlDeviceGet{kind}RunningProcesses{suffix}', None)
            if call is None:  # an older binding
                continue
            try:
                processes = list(call(handle))
            except Exception as error:  # NotSupported, NoPermission (another user's processes), ...
                if _function_missing(nvml, error):  # an older driver: try the previous version
                    continue
                return None
            self._process_call_suffix[kind] = suffix
            return processes
        return None

    def shutdown(self) -> None:
        with self._lock:
            if self._initialised:
                try:
                    self._nvml.nvmlShutdown()
                except Exception as error:
                    log.debug('nvmlShutdown failed: %s', error)
                self._initialised = False
            self._handles = []
            self._process_call_suffix = {}
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


def _function_missing(nvml: Any, error: Exception) -> bool:
    missing = getattr(nvml, 'NVMLError_FunctionNotFound', None)
    return isinstance(missing, type) and isinstance(error, missing)


def _as_bytes(value: Any) -> int | None:
    return int(value) if value is not None else None


def _larger(first: int | None, second: int | None) -> int | None:
    if first is None or second is None:
        return first if second is None else second
    return max(first, second)


def _as_float(value: Any) -> float | None:
    return float(value) if value is not None else None


def _milli(value: Any) -> float | None:
    return float(value) / 1000.0 if value is not None else None
