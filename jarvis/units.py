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
