"""Toasts for one window. Every view notifies through here, so the target window is explicit."""
from __future__ import annotations

from typing import Any

from nicegui import Client, ui


def notify(client: Client, message: str, *, type: str = 'info', **options: Any) -> None:  # noqa: A002
    if client.is_deleted:
        return
    with client:
        ui.notify(message, type=type, **options)
