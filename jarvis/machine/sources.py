"""What the machine's questions read: small, read-only views of the monitor, the alerts, the models and the chat.

Services builds one ``MachineSources`` from its parts; the plugins get it through their context (with every
call carried over to the app's loop), a tool layer can use it as it is. Nothing here can change the machine.
"""
from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..alerts.store import AlertLogEntry
    from ..events import Alert, ChatMessage, SystemMetrics
    from ..metrics.history_store import HistoryRange, RecordedProcess
    from ..metrics.processes import ProcessSnapshot
    from ..models.manager import ModelCatalog

AsyncCall = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class MachineSources:
    """Each field an async function of one part of the app; ``clock`` is the time the questions ask about."""

    current: Callable[[], Awaitable[SystemMetrics]]  # a fresh reading (taken now while no window is open)
    top_processes: Callable[[str, int], Awaitable[ProcessSnapshot]]  # sort ('cpu', 'memory', 'gpu_memory'), limit
    history: Callable[[float, float, int], Awaitable[HistoryRange]]  # start, end, max_points
    busy_processes: Callable[[float, float], Awaitable[list[RecordedProcess]]]  # start, end
    alert_log: Callable[[int], Awaitable[list[AlertLogEntry]]]  # newest first
    active_alerts: Callable[[], Awaitable[list[Alert]]]
    model_catalog: Callable[[], Awaitable[ModelCatalog]]
    recent_answers: Callable[[int], Awaitable[list[ChatMessage]]]  # the latest chat messages, oldest first
    clock: Callable[[], float] = field(default=time.time)

    def carried(self, carry: Callable[[AsyncCall], AsyncCall]) -> MachineSources:
        """The same sources with each async call wrapped by ``carry`` (e.g. run on the app's own loop)."""
        return replace(self, **{f.name: carry(getattr(self, f.name)) for f in fields(self) if f.name != 'clock'})
