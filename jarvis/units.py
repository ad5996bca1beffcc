"""Units a person reads, shared by the views and the plugins that put numbers into words."""
from __future__ import annotations

BINARY_UNITS = ('B', 'KiB', 'MiB', 'GiB', 'TiB')


def binary_size(value: float) -> tuple[float, str]:
    """Bytes as an amount in the largest binary unit below 1024 of it (what the System view shows)."""
    amount = float(value)
    for unit in BINARY_UNITS[:-1]:
        if abs(amount) < 1024:
            return amount, unit
        amount /= 1024
    return amount, BINARY_UNITS[-1]


def format_bytes(value: float) -> str:
    """"512 B", "1.5 GiB": the way sizes read everywhere in the app."""
    amount, unit = binary_size(value)
    return f'{amount:.0f} {unit}' if unit == 'B' else f'{amount:.1f} {unit}'


def format_duration(seconds: float) -> str:
    """"45 s", "2 min", "1 h 30 min", "2 d": a span of time the way it reads everywhere in the app."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f'{whole} s'
    minutes, rest = divmod(whole, 60)
    if minutes < 60:
        return f'{minutes} min' if not rest else f'{minutes} min {rest} s'
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f'{hours} h' if not minutes else f'{hours} h {minutes} min'
    days, hours = divmod(hours, 24)
    return f'{days} d' if not hours else f'{days} d {hours} h'
