"""Typed hub events.

Every payload is a dataclass that serialises to plain JSON. The field names of the original
design (``system_metrics`` {cpu, memory, disk, gpu}, ``chat_message`` {role, text},
``model_loaded`` {model}, ``plugin_toggled`` {plugin, enabled}) are kept so that anything
written against it still reads them; extra fields are additions, never renames.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Literal

# Event type names, as they appear on the wire.
SYSTEM_METRICS = 'system_metrics'
CHAT_MESSAGE = 'chat_message'
MODEL_LOADED = 'model_loaded'
MODEL_STATUS = 'model_status'
PLUGIN_TOGGLED = 'plugin_toggled'
PLUGIN_SETTINGS = 'plugin_settings'
NOTIFICATION = 'notification'
CONVERSATIONS_CHANGED = 'conversations_changed'
PULL_PROGRESS = 'pull_progress'
ALERT = 'alert'
ALERT_RULES = 'alert_rules'
THEME = 'theme'
WINDOW_REQUEST = 'window_request'


class Payload:
    """Base class of every event payload: a dataclass with a wire name."""

    event_type: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]


@dataclass(frozen=True, slots=True)
class GpuReading(Payload):
    """One GPU. ``None`` in any field means the driver could not tell ("n/a")."""

    event_type: ClassVar[str] = 'gpu'
    index: int
    name: str | None
    utilization: float | None  # percent
    memory_used: int | None  # bytes
    memory_total: int | None  # bytes
    temperature: float | None  # degrees Celsius
    power: float | None  # watts
    power_limit: float | None  # watts
    fan: float | None  # percent


@dataclass(frozen=True, slots=True)
class SystemMetrics(Payload):
    """One sample of the machine. ``gpu`` is ``None`` when no GPU can be read."""

    event_type: ClassVar[str] = SYSTEM_METRICS
    cpu: float
    memory: float
    disk: float
    gpu: float | None
    timestamp: float = field(default_factory=time.time)
    cpu_per_core: list[float] = field(default_factory=list)
    cpu_count: int = 0
    memory_used: int = 0
    memory_total: int = 0
    swap_used: int = 0
    swap_total: int = 0
    disk_path: str = ''
    disk_used: int = 0
    disk_total: int = 0
    net_sent_per_s: float | None = None  # bytes/s; None on the first sample
    net_recv_per_s: float | None = None
    gpus: list[GpuReading] = field(default_factory=list)
    gpu_status: str = 'n/a'  # 'ok', or why there is no GPU reading


ChatRole = Literal['user', 'assistant', 'system']
ChatStatus = Literal['streaming', 'done', 'stopped', 'error']


@dataclass(frozen=True, slots=True)
class ChatMessage(Payload):
    """A chat message, or the latest state of one that is still streaming.

    While an answer streams, the same ``id`` is published again with the text so far;
    ``status`` says whether it is complete.
    """

    event_type: ClassVar[str] = CHAT_MESSAGE
    role: ChatRole
    text: str
    id: str = ''
    conversation_id: str = ''
    status: ChatStatus = 'done'
    created_at: float = field(default_factory=time.time)
    source: str = ''  # the model's or plugin's name for assistant messages
    model: str = ''
    first_token_s: float | None = None
    tokens_per_s: float | None = None
    tokens: int | None = None
    # the message this one follows ('' for a conversation's first): an edit or a regeneration is a
    # message with the same parent as the one it is an alternative to
    parent_id: str = ''
    # the tools a model called for this answer, in order: {name, arguments (a short label), ok}
    tools: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ModelLoaded(Payload):
    """The chat's model: the one loaded, or while none is, the one that loads with the next message."""

    event_type: ClassVar[str] = MODEL_LOADED
    model: str | None  # None once the active model was unloaded
    source: str = ''
    details: dict[str, Any] = field(default_factory=dict)
    # while no model is loaded: the model that the next message loads (the last one used, else the
    # default), '' when none loads by itself; ``loading`` while it is being loaded
    standby: str = ''
    standby_source: str = ''
    loading: bool = False


@dataclass(frozen=True, slots=True)
class ModelStatus(Payload):
    """A model's state changed (loading, error, ...): the Models views follow it."""

    event_type: ClassVar[str] = MODEL_STATUS
    model: str
    source: str
    state: str
    error: str = ''


@dataclass(frozen=True, slots=True)
class PluginToggled(Payload):
    event_type: ClassVar[str] = PLUGIN_TOGGLED
    plugin: str
    enabled: bool
    state: str = ''
    error: str = ''


@dataclass(frozen=True, slots=True)
class PluginSettingsChanged(Payload):
    """A plugin's settings changed: every Plugins view shows the values now in effect."""

    event_type: ClassVar[str] = PLUGIN_SETTINGS
    plugin: str
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Notification(Payload):
    """A message for every open window (a reminder that fired, a finished download, ...)."""

    event_type: ClassVar[str] = NOTIFICATION
    message: str
    level: Literal['info', 'positive', 'warning', 'negative'] = 'info'


@dataclass(frozen=True, slots=True)
class ConversationsChanged(Payload):
    """A conversation changed. ``action``: ``created``, ``renamed``, ``pinned``, ``deleted``, ``updated`` (a new
    message), or ``branch`` (it now shows another alternative of a message: windows showing it reload it)."""

    event_type: ClassVar[str] = CONVERSATIONS_CHANGED
    conversation_id: str = ''
    action: str = ''


@dataclass(frozen=True, slots=True)
class PullProgress(Payload):
    """Progress of an Ollama pull."""

    event_type: ClassVar[str] = PULL_PROGRESS
    model: str
    status: str
    completed: int | None = None
    total: int | None = None
    done: bool = False
    error: str = ''


AlertState = Literal['firing', 'resolved']


@dataclass(frozen=True, slots=True)
class Alert(Payload):
    """An alert rule's condition began to hold long enough (``firing``) or no longer holds (``resolved``).

    ``value`` is the reading that fired or ended it (``None`` when the metric could no longer be read),
    ``peak`` the highest reading while it held; ``ended_at`` is ``None`` while it fires. ``summary`` and
    ``message`` say it in words, the same in every window, script and desktop notification.
    """

    event_type: ClassVar[str] = ALERT
    rule_id: str
    metric: str
    severity: Literal['warning', 'critical']
    state: AlertState
    threshold: float
    value: float | None
    peak: float
    started_at: float
    ended_at: float | None = None
    log_id: int | None = None
    summary: str = ''
    message: str = ''
    resolution: str = ''  # why it ended: 'cleared', 'no reading', 'rule changed', 'app stopped'


@dataclass(frozen=True, slots=True)
class AlertRulesChanged(Payload):
    """An alert rule was saved or removed (in any window or through the API)."""

    event_type: ClassVar[str] = ALERT_RULES
    rule_id: str
    action: Literal['saved', 'removed']


@dataclass(frozen=True, slots=True)
class ThemeChanged(Payload):
    """The light/dark choice changed (in any window): every window follows at once."""

    event_type: ClassVar[str] = THEME
    dark: bool


WindowAction = Literal['show', 'hide', 'toggle', 'new_conversation', 'quit']


@dataclass(frozen=True, slots=True)
class WindowRequest(Payload):
    """Something outside the windows asks the app's native window to act: a second start of the app
    (``show``) or the tray icon's menu."""

    event_type: ClassVar[str] = WINDOW_REQUEST
    action: WindowAction


@dataclass(frozen=True)
class Event:
    """What the hub fans out: a typed payload with its wire name and time."""

    type: str
    data: Payload
    timestamp: float

    def to_json_dict(self) -> dict[str, Any]:
        return {'type': self.type, 'data': self.data.to_dict(), 'timestamp': self.timestamp}

    @cached_property
    def json(self) -> str:
        """The wire form, encoded once however many clients receive it."""
        return json.dumps(self.to_json_dict())
