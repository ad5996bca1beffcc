"""The small interface between the chat and a model: a streaming generate that can be cancelled."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from .fit import MemoryNeed

Role = Literal['system', 'user', 'assistant']


@dataclass(frozen=True, slots=True)
class ChatTurn:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class GenerationOptions:
    max_tokens: int = 512
    temperature: float = 0.7
    stop: tuple[str, ...] = ()  # sequences that end the answer (a remote server stops at them itself)


class ModelError(Exception):
    """A model failed in a way the user should read about (shown as an error bubble)."""


class ModelLoadError(ModelError):
    """The model that a message needs could not be loaded; the text says why and what to do."""


@runtime_checkable
class ChatModel(Protocol):
    """A loaded model. ``stream_chat`` blocks: the assistant calls it in a worker thread.

    It yields text pieces as they are generated and stops computing soon after ``cancel`` is set.
    """

    name: str
    source: str  # 'local', 'ollama' or 'server:<name>' (an OpenAI-compatible server)
    context_length: int
    details: dict[str, Any]

    def stream_chat(self, turns: list[ChatTurn], options: GenerationOptions,
                    cancel: threading.Event) -> Iterator[str]: ...

    def count_tokens(self, text: str) -> int: ...

    def close(self) -> None: ...


# standby: not loaded, but the chat's model: the next message loads it
ModelState = Literal['available', 'standby', 'loading', 'loaded', 'error']


@dataclass(frozen=True)
class ModelInfo:
    """A model the app can use, as the manager lists it (a snapshot: the manager makes a new one on change)."""

    name: str
    source: str  # 'local', 'ollama' or 'server:<name>' (a model on an OpenAI-compatible server)
    size_bytes: int | None = None
    quantization: str | None = None
    parameters: str | None = None
    context_length: int | None = None
    state: ModelState = 'available'
    error: str = ''
    path: str | None = None
    family: str | None = None
    memory: MemoryNeed | None = None  # None: the size is unknown
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f'{self.source}:{self.name}'

    def to_dict(self) -> dict[str, Any]:
        return {'name': self.name, 'source': self.source, 'size_bytes': self.size_bytes,
                'quantization': self.quantization, 'parameters': self.parameters,
                'context_length': self.context_length, 'family': self.family, 'state': self.state,
                'error': self.error, 'memory': self.memory.to_dict() if self.memory else None}
