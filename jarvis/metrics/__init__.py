"""System metrics: psutil for CPU, memory, disk, network and processes; NVML for NVIDIA GPUs; the history."""
from .gpu import NvmlGpuReader
from .history import HistoryRangeError, HistoryRecorder
from .monitor import SystemMonitor
from .processes import ProcessMonitor, ProcessSnapshot
from .sampler import MetricsSampler
from .system import PsutilReader

__all__ = ['HistoryRangeError', 'HistoryRecorder', 'MetricsSampler', 'NvmlGpuReader', 'ProcessMonitor',
           'ProcessSnapshot', 'PsutilReader', 'SystemMonitor']
