"""The plugin API: a small class with a name, the phrases it handles and an async ``handle``.

A third party ships one through the entry-point group ``jarvis.plugins``::

    [project.entry-points."jarvis.plugins"]
    dice = "jarvis_dice:DicePlugin"
"""
from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ..config import Settings
    from ..events import SystemMetrics
    from ..hub import Hub
    from ..storage import Database


@dataclass
class PluginContext:
    """What a plugin may use. Everything a plugin needs from the app comes through here."""

    hub: Hub
    db: Database
    settings: Settings
    language: str = 'en'  # 'de' or 'en', guessed from the message
    conversation_id: str = ''
    plugin_settings: dict[str, Any] = field(default_factory=dict)
    now: Callable[[], datetime] = datetime.now

    def latest_metrics(self) -> SystemMetrics | None:
        from .. import events  # pylint: disable=import-outside-toplevel
        event = self.hub.latest(events.SYSTEM_METRICS)
        return event.data if event is not None else None  # type: ignore[return-value]

    def notify_all_windows(self, message: str, level: str = 'info') -> None:
        from ..events import Notification  # pylint: disable=import-outside-toplevel
        self.hub.publish(Notification(message=message, level=level))  # type: ignore[arg-type]


class Plugin(ABC):
    """Subclass this. ``patterns`` are regular expressions (case-insensitive) in German and English;
    the first enabled plugin with a matching pattern gets the message. ``handle`` returns the reply,
    or ``None`` to pass the message on to the next plugin or the model."""

    name: ClassVar[str] = ''
    description: ClassVar[str] = ''
    version: ClassVar[str] = '1.0.0'
    patterns: ClassVar[list[str]] = []
    settings: ClassVar[dict[str, Any]] = {}  # optional settings and their defaults
    timeout: ClassVar[float | None] = None  # seconds; None: the app's default (10 s)

    def __init__(self) -> None:
        self._compiled = [re.compile(p, re.IGNORECASE | re.UNICODE) for p in self.patterns]

    def match(self, message: str) -> re.Match[str] | None:
        for pattern in self._compiled:
            if (found := pattern.search(message)) is not None:
                return found
        return None

    @abstractmethod
    async def handle(self, message: str, context: PluginContext) -> str | None:
        """The reply to ``message``, or None to let the next plugin or the model answer."""

    async def start(self, context: PluginContext) -> None:
        """Called once when the app starts (e.g. to schedule pending reminders)."""

    async def stop(self) -> None:
        """Called once when the app stops."""
