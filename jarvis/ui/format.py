"""How numbers read in the UI. ``None`` always reads "n/a": a missing reading is never a 0."""
from __future__ import annotations

import time

from ..units import binary_size

NA = 'n/a'


def percent(value: float | None) -> str:
    return NA if value is None else f'{value:.0f}%'


def bytes_(value: float | None) -> str:
    if value is None:
        return NA
    amount, unit = binary_size(value)
    return f'{amount:.0f} {unit}' if unit == 'B' else f'{amount:.1f} {unit}'


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
