"""The plugin API: a small class with a name, the phrases it handles and an async ``handle``.

A third party ships one through the entry-point group ``jarvis.plugins``::

    [project.entry-points."jarvis.plugins"]
    dice = "jarvis_dice:DicePlugin"
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

# The third-party ``regex`` engine (the syntax of Python's ``re``) because it can do what ``re`` cannot:
# let go of the GIL while it matches and give up after a timeout. With ``re`` a pattern that backtracks
# for minutes holds the GIL, so not even a thread of its own would keep the app answering.
import regex

from .settings import Setting, SettingValue, declared_settings

if TYPE_CHECKING:
    from ..config import Settings
    from ..events import SystemMetrics
    from ..hub import Hub
    from ..machine import MachineSources
    from ..storage import Database

__all__ = ['PatternTimeout', 'Plugin', 'PluginContext', 'Setting', 'SettingValue', 'declared_settings']


@dataclass
class PluginContext:
    """What a plugin may use. Everything a plugin needs from the app comes through here.

    A plugin runs on an event loop of its own (see ``PluginManager``): ``hub.publish``,
    ``notify_all_windows`` and ``db`` are safe from there; wait for the app through the async
    methods below, never through ``hub.subscribe`` or ``hub.wait_for_viewers``.
    """

    hub: Hub
    db: Database
    settings: Settings
    language: str = 'en'  # 'de' or 'en', guessed from the message
    conversation_id: str = ''
    plugin_settings: dict[str, Any] = field(default_factory=dict)  # the settings in effect
    now: Callable[[], datetime] = datetime.now
    # given by the app: they run on the app's own loop, where the hub and the sampler live
    fresh_metrics: Callable[[], Awaitable[SystemMetrics]] | None = None
    window_connected: Callable[[], Awaitable[None]] | None = None
    # read-only views of the monitor (now, processes, history), the alerts, the model catalog and the chat's
    # latest answers, each call carried over to the app's loop; None where the app gives none (a bare test)
    machine: MachineSources | None = None

    def latest_metrics(self) -> SystemMetrics | None:
        """The last sample the hub saw; it may be old while no window is open."""
        from .. import events  # pylint: disable=import-outside-toplevel
        event = self.hub.latest(events.SYSTEM_METRICS)
        return event.data if event is not None else None  # type: ignore[return-value]

    async def current_metrics(self) -> SystemMetrics | None:
        """A reading of the machine from the last sampling interval, taken now when the latest is older."""
        if self.fresh_metrics is None:
            return self.latest_metrics()
        return await self.fresh_metrics()

    async def wait_for_window(self) -> None:
        """Return once at least one window (or ``/api/events`` client) is connected."""
        if self.window_connected is None:
            await self.hub.wait_for_viewers()
        else:
            await self.window_connected()

    def notify_all_windows(self, message: str, level: str = 'info') -> None:
        from ..events import Notification  # pylint: disable=import-outside-toplevel
        self.hub.publish(Notification(message=message, level=level))  # type: ignore[arg-type]


class PatternTimeout(TimeoutError):
    """A plugin's patterns took longer than its ``match_timeout`` on one message."""


class Plugin(ABC):
    """Subclass this. ``patterns`` are regular expressions (case-insensitive) in German and English;
    the first enabled plugin with a matching pattern gets the message. ``handle`` returns the reply,
    or ``None`` to pass the message on to the next plugin or the model."""

    name: ClassVar[str] = ''
    description: ClassVar[str] = ''
    version: ClassVar[str] = '1.0.0'
    patterns: ClassVar[list[str]] = []
    # optional: each a plain default (its type is checked) or a Setting with a range, choices, a description
    settings: ClassVar[dict[str, SettingValue | Setting]] = {}
    timeout: ClassVar[float | None] = None  # seconds for match + handle; None: the app's default (10 s)
    max_match_chars: ClassVar[int | None] = None  # longer messages are not offered to the plugin
    match_timeout: ClassVar[float] = 1.0  # seconds all patterns together may take on one message

    def __init__(self) -> None:
        self._compiled = [regex.compile(p, regex.IGNORECASE | regex.UNICODE) for p in self.patterns]

    def match(self, message: str) -> regex.Match[str] | None:
        """The first pattern that matches; raises PatternTimeout when the patterns take too long."""
        if self.max_match_chars is not None and len(message) > self.max_match_chars:
            return None
        deadline = time.monotonic() + self.match_timeout
        for pattern in self._compiled:
            try:  # concurrent: the GIL is let go while it matches, so the app's loop keeps running
                found = pattern.search(message, concurrent=True, timeout=max(0.001, deadline - time.monotonic()))
            except TimeoutError as error:
                raise PatternTimeout(f'its pattern {pattern.pattern[:80]!r} took more than {self.match_timeout:g} s '
                                     f'on a {len(message):,}-character message') from error
            if found is not None:
                return found
        return None

    @abstractmethod
    async def handle(self, message: str, context: PluginContext) -> str | None:
        """The reply to ``message``, or None to let the next plugin or the model answer."""

    async def start(self, context: PluginContext) -> None:
        """Called once when the app starts (e.g. to schedule pending reminders)."""

    async def stop(self) -> None:
        """Called once when the app stops."""
