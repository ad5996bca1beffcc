"""How numbers read in the UI. ``None`` always reads "n/a": a missing reading is never a 0."""
from __future__ import annotations

from ..events import ModelLoaded
from ..models.base import MemoryNeed

NA = 'n/a'


def percent(value: float | None) -> str:
    return NA if value is None else f'{value:.0f}%'


def bytes_(value: float | None) -> str:
    if value is None:
        return NA
    size = float(value)
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if abs(size) < 1024 or unit == 'TiB':
            return f'{size:.0f} {unit}' if unit == 'B' else f'{size:.1f} {unit}'
        size /= 1024
    return f'{size:.1f} TiB'


def used_of(used: float | None, total: float | None) -> str:
    if used is None or total is None:
        return NA
    return f'{bytes_(used)} / {bytes_(total)}'


def rate(value: float | None) -> str:
    return NA if value is None else f'{bytes_(value)}/s'


def temperature(value: float | None) -> str:
    return NA if value is None else f'{value:.0f} °C'


def watts(value: float | None, limit: float | None = None) -> str:
    if value is None:
        return NA
    return f'{value:.0f} W' if limit is None else f'{value:.0f} / {limit:.0f} W'


def level_color(value: float | None) -> str:
    """Green below 50 %, amber below 75 %, red above; grey when there is no reading."""
    if value is None:
        return 'grey'
    if value < 50:
        return 'positive'
    if value < 75:
        return 'warning'
    return 'negative'


def model_caption(model: ModelLoaded | None, none: str = 'No model loaded') -> str:
    """The active model in one line ("Model: gemma-3-270m-q4_k_m"); ``none`` while there is none."""
    name = model.model if model is not None else None
    return f'Model: {name}' if name else none


def memory_need(need: MemoryNeed | None) -> str:
    """A model's memory verdict in one line; nothing when its size is unknown."""
    if need is None:
        return ''
    vram = f', {bytes_(need.vram_free_bytes)} VRAM' if need.vram_free_bytes is not None else ''
    verdict = 'fits' if need.fits else 'does not fit'
    return f'Needs about {bytes_(need.needed_bytes)}; free: {bytes_(need.ram_free_bytes)} RAM{vram} ({verdict})'


def free_memory(ram_free: int | None, vram_free: int | None) -> str:
    vram = f', {bytes_(vram_free)} VRAM' if vram_free is not None else ' (no GPU)'
    return f'Free now: {bytes_(ram_free)} RAM{vram}'
