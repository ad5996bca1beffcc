"""Names for elements that tests look for: a NiceGUI marker for simulated users and a
``data-testid`` attribute for a real browser."""
from __future__ import annotations

from typing import TypeVar

from nicegui import ui

E = TypeVar('E', bound=ui.element)


def mark(element: E, name: str) -> E:
    element.mark(name)
    element.props(f'data-testid={name}')
    return element
