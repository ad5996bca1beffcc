"""The small interface between the chat and a model: a streaming generate that can be cancelled."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from .fit import MemoryNeed

Role = Literal['system', 'user', 'assistant', 'tool']


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model asks for: a tool's name and its arguments (a JSON object).

    ``problem`` is set when the model's arguments could not be read (not JSON, not an object): the call
    is not run, the model gets the problem as the tool's result.
    """

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str = ''
    problem: str = ''


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as a model is offered it: the function definition of the OpenAI and Ollama chat APIs."""

    name: str
    description: str
    parameters: dict[str, Any]  # a JSON schema of an object


@dataclass(frozen=True, slots=True)
class ChatTurn:
    role: Role
    content: str
    # an assistant turn that asked for tools; a tool turn answers one of them (its id and name)
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ''
    tool_name: str = ''


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


@runtime_checkable
class ToolModel(ChatModel, Protocol):
    """A model that can call tools (``supports_tools`` true): besides text it may ask for tool calls.

    ``stream_chat_with_tools`` blocks like ``stream_chat`` and yields text pieces and, once the model
    has said which tools it wants, one ``ToolCall`` each; the caller runs them and asks again with the
    results as ``tool`` turns.
    """

    supports_tools: bool

    def stream_chat_with_tools(self, turns: list[ChatTurn], tools: list[ToolSpec], options: GenerationOptions,
                               cancel: threading.Event) -> Iterator[str | ToolCall]: ...


def supports_tools(model: ChatModel) -> bool:
    """Whether the model takes tools: it says so, and has the method to take them."""
    return bool(getattr(model, 'supports_tools', False)) and callable(getattr(model, 'stream_chat_with_tools', None))


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
