"""Whether a model fits the memory that is free right now: in RAM, on the GPU, or split between the two
(how many layers to offload), and, when it does not fit, which processes hold the memory.

Pure value objects and arithmetic: the model manager reads the live numbers (free RAM, free GPU memory
from a fresh metrics sample, the processes from a scan) and hands them over; views and the assistant
only show the verdict.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..units import format_bytes

# what llama.cpp needs on the GPU besides the layers (its CUDA context and compute buffers): kept free
# when the layers that fit are counted, so that a proposal does not fail at load by a few megabytes
GPU_RESERVE_BYTES = 384 * 2**20
HOLDERS_NAMED = 3  # processes named when a model does not fit


@dataclass(frozen=True, slots=True)
class MemoryHolder:
    """A process that holds memory, as the process scan saw it."""

    name: str
    pid: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {'name': self.name, 'pid': self.pid, 'bytes': self.bytes}

    def describe(self, what: str = '') -> str:
        return f'{self.name} (PID {self.pid}) holds {format_bytes(self.bytes)}{what}'


@dataclass(frozen=True, slots=True)
class OffloadPlan:
    """How many of a model's layers go on the GPU so that it fits; the rest stays in RAM."""

    gpu_layers: int  # layers to offload (the "GPU layers" setting); equal to total_layers: all of them
    total_layers: int
    gpu_bytes: int
    ram_bytes: int

    @property
    def everything(self) -> bool:
        return self.gpu_layers >= self.total_layers

    def to_dict(self) -> dict[str, Any]:
        return {'gpu_layers': self.gpu_layers, 'total_layers': self.total_layers,
                'gpu_bytes': self.gpu_bytes, 'ram_bytes': self.ram_bytes}


def plan_offload(needed_bytes: int, total_layers: int | None, vram_free: int | None) -> OffloadPlan | None:
    """The most layers that fit the free GPU memory (None without a GPU reading or a layer count).

    A model's memory is shared out evenly over its layers plus one part that stays with the CPU unless
    every layer is offloaded (the embeddings and the working memory): close to how llama.cpp splits a
    model, and it never proposes more than the GPU has free.
    """
    if vram_free is None or not total_layers or total_layers < 1 or needed_bytes <= 0:
        return None
    usable = max(0, vram_free - GPU_RESERVE_BYTES)
    if needed_bytes <= usable:
        return OffloadPlan(total_layers, total_layers, needed_bytes, 0)
    per_layer = needed_bytes / (total_layers + 1)
    layers = min(total_layers, int(usable // per_layer))
    on_gpu = int(layers * per_layer)
    return OffloadPlan(layers, total_layers, on_gpu, needed_bytes - on_gpu)


@dataclass(frozen=True, slots=True)
class MemoryNeed:
    """Whether a model fits the memory free right now (the manager's verdict; views only show it)."""

    needed_bytes: int
    ram_free_bytes: int | None  # None: could not be read
    vram_free_bytes: int | None  # None: no GPU could be read
    offload: OffloadPlan | None = None  # with a GPU: the layers that fit on it
    holders: tuple[MemoryHolder, ...] = ()  # when it does not fit: the processes that hold the most RAM
    gpu_holders: tuple[MemoryHolder, ...] = ()  # ... and the most GPU memory

    @property
    def fits(self) -> bool:
        """Fits the free RAM, the free GPU memory, or the two with some layers offloaded; with no reading
        at all nothing is refused."""
        known = [free for free in (self.ram_free_bytes, self.vram_free_bytes) if free is not None]
        if not known or any(self.needed_bytes <= free for free in known):
            return True
        return self.split_fits

    @property
    def split_fits(self) -> bool:
        """Fits only with part of the model on the GPU."""
        plan = self.offload
        return (plan is not None and plan.gpu_layers > 0 and self.ram_free_bytes is not None
                and plan.ram_bytes <= self.ram_free_bytes and self.needed_bytes > self.ram_free_bytes)

    @property
    def short_bytes(self) -> int:
        """How much more memory would have to be free for the best arrangement (0 when it fits)."""
        if self.fits:
            return 0
        room = [free for free in (self.ram_free_bytes, self.vram_free_bytes) if free is not None]
        if self.offload is not None and self.ram_free_bytes is not None:
            room.append(self.ram_free_bytes + self.offload.gpu_bytes)
        return max(0, self.needed_bytes - max(room))

    def describe(self) -> str:
        """The verdict in one sentence: what is needed, what is free, and what to do or who holds it."""
        vram = f', {format_bytes(self.vram_free_bytes)} GPU memory' if self.vram_free_bytes is not None else ''
        free = f'free now: {_bytes(self.ram_free_bytes)} RAM{vram}'
        head = f'Needs about {format_bytes(self.needed_bytes)}; {free}'
        plan = self.offload
        if not self.fits:
            holders = [h.describe() for h in self.holders] + [h.describe(' of GPU memory') for h in self.gpu_holders]
            who = f'; {", ".join(holders)}' if holders else ''
            return f'{head} (does not fit: about {format_bytes(self.short_bytes)} more is needed{who}).'
        if plan is not None and plan.everything:
            return f'{head} (fits; all {plan.total_layers} layers fit on the GPU: GPU layers -1).'
        if self.split_fits and plan is not None:
            return (f'{head} (fits with {plan.gpu_layers} of {plan.total_layers} layers on the GPU: '
                    f'set GPU layers to {plan.gpu_layers}).')
        if plan is not None and plan.gpu_layers > 0:
            return f'{head} (fits; {plan.gpu_layers} of {plan.total_layers} layers would fit on the GPU).'
        return f'{head} (fits).'

    def to_dict(self) -> dict[str, Any]:
        return {'needed_bytes': self.needed_bytes, 'ram_free_bytes': self.ram_free_bytes,
                'vram_free_bytes': self.vram_free_bytes, 'fits': self.fits, 'short_bytes': self.short_bytes,
                'offload': self.offload.to_dict() if self.offload else None,
                'holders': [h.to_dict() for h in self.holders],
                'gpu_holders': [h.to_dict() for h in self.gpu_holders], 'verdict': self.describe()}


def _bytes(value: int | None) -> str:
    return 'n/a' if value is None else format_bytes(value)
