"""The small interface between the chat and a model: a streaming generate that can be cancelled."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Role = Literal['system', 'user', 'assistant']


@dataclass(frozen=True, slots=True)
class ChatTurn:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class GenerationOptions:
    max_tokens: int = 512
    temperature: float = 0.7


class ModelError(Exception):
    """A model failed in a way the user should read about (shown as an error bubble)."""


@runtime_checkable
class ChatModel(Protocol):
    """A loaded model. ``stream_chat`` blocks: the assistant calls it in a worker thread.

    It yields text pieces as they are generated and stops computing soon after ``cancel`` is set.
    """

    name: str
    source: str  # 'local' or 'ollama'
    context_length: int
    details: dict[str, Any]

    def stream_chat(self, turns: list[ChatTurn], options: GenerationOptions,
                    cancel: threading.Event) -> Iterator[str]: ...

    def count_tokens(self, text: str) -> int: ...

    def close(self) -> None: ...


@dataclass
class ModelInfo:
    """A model the app can use, as the Models view lists it."""

    name: str
    source: Literal['local', 'ollama']
    size_bytes: int | None = None
    quantization: str | None = None
    parameters: str | None = None
    context_length: int | None = None
    state: Literal['available', 'loading', 'loaded', 'error'] = 'available'
    error: str = ''
    path: str | None = None
    family: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f'{self.source}:{self.name}'
