"""A stand-in model for UI tests that need an exact answer (the real model's text varies).

It implements the same ``ChatModel`` protocol as the real backends, streams its script piece
by piece with a delay, and stops when cancelled.
"""
from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from jarvis.models.base import ChatTurn, GenerationOptions, ModelInfo, ToolCall, ToolSpec


class ScriptedModel:
    source = 'local'

    def __init__(self, pieces: list[str], *, delay: float = 0.01, name: str = 'scripted',
                 fail_after: int | None = None) -> None:
        self.pieces = pieces
        self.delay = delay
        self.name = name
        self.context_length = 2048
        self.details: dict[str, Any] = {}
        self.fail_after = fail_after
        self.prompts: list[list[ChatTurn]] = []
        self.generated = 0

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(name=self.name, source='local')

    def stream_chat(self, turns: list[ChatTurn], options: GenerationOptions,
                    cancel: threading.Event) -> Iterator[str]:
        self.prompts.append(turns)
        for index, piece in enumerate(self.pieces):
            if cancel.is_set():
                return
            if self.fail_after is not None and index >= self.fail_after:
                raise RuntimeError('the model ran out of memory')
            time.sleep(self.delay)
            self.generated += 1
            yield piece

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)

    def close(self) -> None:
        pass


class ScriptedToolModel(ScriptedModel):
    """A stand-in model that calls tools (``supports_tools``): offered tools, it asks for ``call`` (the last
    turn not being a tool's result, unless ``keep_calling``); given results, it answers ``answer(results)``
    (the results of the last round of calls), piece by piece."""

    supports_tools = True

    def __init__(self, call: ToolCall, answer: Callable[[list[str]], str] | None = None, *,
                 keep_calling: bool = False, **kwargs: Any) -> None:
        super().__init__([], **kwargs)
        self.call = call
        self.keep_calling = keep_calling  # call again after each result, for as long as tools are offered
        self.answer = answer or (lambda results: 'The tools said: ' + ' | '.join(results))
        self.offered: list[list[str]] = []  # the tools' names, per request

    def stream_chat_with_tools(self, turns: list[ChatTurn], tools: list[ToolSpec], options: GenerationOptions,
                               cancel: threading.Event) -> Iterator[str | ToolCall]:
        self.prompts.append(turns)
        self.offered.append([tool.name for tool in tools])
        if tools and (self.keep_calling or turns[-1].role != 'tool'):
            time.sleep(self.delay)
            yield self.call
            return
        results = []
        for turn in reversed(turns):
            if turn.role != 'tool':
                break
            results.insert(0, turn.content)
        for piece in re.findall(r'\S+\s*', self.answer(results)):
            if cancel.is_set():
                return
            time.sleep(self.delay)
            yield piece
