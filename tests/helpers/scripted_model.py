"""A stand-in model for UI tests that need an exact answer (the real model's text varies).

It implements the same ``ChatModel`` protocol as the real backends, streams its script piece
by piece with a delay, and stops when cancelled.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from jarvis.models.base import ChatTurn, GenerationOptions, ModelInfo


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
