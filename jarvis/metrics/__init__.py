"""System metrics: psutil for CPU, memory, disk and network; NVML for NVIDIA GPUs."""
from .gpu import NvmlGpuReader
from .sampler import MetricsSampler
from .system import PsutilReader

__all__ = ['MetricsSampler', 'NvmlGpuReader', 'PsutilReader']
