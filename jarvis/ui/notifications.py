"""Toasts for one window. Every view notifies through here, so the target window is explicit.

They appear at the top, narrower than the window (the ``jarvis-toast`` style), so that they never cover
the chat's input or the button that was just used (the composer and most buttons are lower down, and
the header keeps its corners, where its buttons are).
"""
from __future__ import annotations

from typing import Any

from nicegui import Client, ui

PLACEMENT: dict[str, Any] = {'position': 'top', 'classes': 'jarvis-toast'}


def notify(client: Client, message: str, *, type: str = 'info', **options: Any) -> None:  # noqa: A002
    if client.is_deleted:
        return
    with client:
        ui.notify(message, type=type, **{**PLACEMENT, **options})
