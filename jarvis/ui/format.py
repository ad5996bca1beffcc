"""How numbers read in the UI. ``None`` always reads "n/a": a missing reading is never a 0."""
from __future__ import annotations

import time

from ..events import ModelLoaded
from ..models.base import MemoryNeed
from ..units import format_bytes, format_duration

NA = 'n/a'


def percent(value: float | None) -> str:
    return NA if value is None else f'{value:.0f}%'


def process_cpu(value: float | None) -> str:
    """A process's CPU, % of one core: a decimal below 10 %, where most processes are."""
    if value is None:
        return NA
    return f'{value:.1f}%' if value < 10 else f'{value:.0f}%'


def gpu_memory(value: int | None) -> str:
    """A process's GPU memory: nothing when it holds none."""
    if value is None:
        return NA
    return bytes_(value) if value else ''


def bytes_(value: float | None) -> str:
    if value is None:
        return NA
    return format_bytes(value)


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


def fraction(value: float | None) -> float:
    """A percentage as a progress bar's 0..1 (an empty bar when there is no reading)."""
    return 0.0 if value is None else max(0.0, min(1.0, value / 100))


def clock(timestamp: float) -> str:
    return time.strftime('%H:%M:%S', time.localtime(timestamp))


def model_caption(model: ModelLoaded | None, none: str = 'No model loaded') -> str:
    """The chat's model in one line: "Model: gemma-3-270m-q4_k_m" while it is loaded, "Loading
    gemma-3-270m-q4_k_m…", "Model: gemma-3-270m-q4_k_m (loads on first use)" while it waits for the
    next message; ``none`` while there is none."""
    if model is None:
        return none
    if model.model:
        return f'Model: {model.model}'
    if model.standby:
        return f'Loading {model.standby}…' if model.loading else f'Model: {model.standby} (loads on first use)'
    return none


def no_chat_model(model: ModelLoaded | None) -> bool:
    """No model is loaded and none loads by itself: the chat can only answer through plugins."""
    return model is None or not (model.model or model.standby)


def keep_alive(seconds: int) -> str:
    """A keep-alive setting in words ("10 min", "1 h", "forever")."""
    if seconds < 0:
        return 'forever'
    if seconds == 0:
        return 'unload after each answer'
    if seconds % 3600 == 0:
        return f'{seconds // 3600} h'
    if seconds % 60 == 0:
        return f'{seconds // 60} min'
    return f'{seconds} s'


def memory_need(need: MemoryNeed | None) -> str:
    """A model's memory verdict in one line (the manager's sentence); nothing when its size is unknown."""
    return '' if need is None else need.describe()


def free_memory(ram_free: int | None, vram_free: int | None) -> str:
    vram = f', {bytes_(vram_free)} VRAM' if vram_free is not None else ' (no GPU)'
    return f'Free now: {bytes_(ram_free)} RAM{vram}'


def date_time(timestamp: float | None, none: str = '') -> str:
    """"2026-11-25 14:03:12" in local time; ``none`` when there is no time (an alert still firing)."""
    return none if timestamp is None else time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(timestamp))


def duration(seconds: float | None) -> str:
    return NA if seconds is None else format_duration(seconds)


def relative_time(timestamp: float, now: float | None = None) -> str:
    """How long ago, in a list of conversations: "just now", "5 min ago", "3 h ago", else the date."""
    seconds = (time.time() if now is None else now) - timestamp
    if seconds < 60:
        return 'just now'
    if seconds < 3600:
        return f'{int(seconds // 60)} min ago'
    if seconds < 86400:
        return f'{int(seconds // 3600)} h ago'
    return time.strftime('%Y-%m-%d', time.localtime(timestamp))


def message_stamp(timestamp: float, now: float | None = None) -> str:
    """A message's time: the time of day today, with the date on other days."""
    local = time.localtime(timestamp)
    same_day = time.localtime(time.time() if now is None else now)[:3] == local[:3]
    return time.strftime('%H:%M' if same_day else '%Y-%m-%d %H:%M', local)

