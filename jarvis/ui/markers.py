"""Names for elements that tests look for: a NiceGUI marker for simulated users and a
``data-testid`` attribute for a real browser."""
from __future__ import annotations

from typing import TypeVar

from nicegui import ui

E = TypeVar('E', bound=ui.element)


def mark(element: E, name: str, *more: str) -> E:
    """``name`` is the element's NiceGUI marker and its ``data-testid``; ``more`` are further markers."""
    name = token(name)
    element.mark(name, *map(token, more))
    element.props(f'data-testid="{name}"')
    return element


def token(name: str) -> str:
    """A marker is one word: spaces become dashes ("plugin-switch:Time and date" -> "...Time-and-date")."""
    return '-'.join(name.split())
