"""Request bodies of the OpenAI-compatible routes (/v1/), as OpenAI's chat API defines them.

Options of OpenAI's API that have no meaning here (``top_p``, ``seed``, ``user``, ``tools``...) are
accepted and not used, so that the clients that send them by default keep working.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool

from ..text import has_lone_surrogate

MAX_STOP_SEQUENCES = 4  # as OpenAI allows
MAX_STOP_CHARS = 500



def _valid_unicode(value: Any) -> Any:
    # refused before pydantic's own rules: such an id could not be echoed in an answer as UTF-8
    if isinstance(value, str) and has_lone_surrogate(value):
        raise ValueError('must be valid Unicode text (it holds a lone surrogate)')
    return value


StopSequence = Annotated[str, Field(min_length=1, max_length=MAX_STOP_CHARS)]


class ContentPart(BaseModel):
    """One part of a message's content; only text parts can be answered here."""

    model_config = ConfigDict(extra='allow')
    type: str = Field(examples=['text'])
    text: str | None = None


class ChatCompletionMessage(BaseModel):
    model_config = ConfigDict(extra='ignore')
    role: Literal['system', 'developer', 'user', 'assistant', 'tool'] = Field(examples=['user'])
    content: str | list[ContentPart] | None = Field(None, examples=['What time is it?'])
    name: str | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra='ignore')
    include_usage: StrictBool | None = None


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra='ignore')
    model: Annotated[str, Field(min_length=1, max_length=300), BeforeValidator(_valid_unicode)] = Field(
        description='"jarvis" for the whole assistant (plugins first, then the active model; the answer shows '
                    'in every window), or the id of a model from GET /v1/models to ask that model directly.',
        examples=['jarvis'])
    messages: list[ChatCompletionMessage] = Field(
        min_length=1, max_length=10_000,
        description='For "jarvis" the last message, the user\'s, is sent (its conversation keeps the history); '
                    'a model addressed directly gets all of them as its prompt.')
    stream: StrictBool | None = Field(False, description='Stream the answer as server-sent events.')
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1, le=8192, description='At most this many tokens in the answer.')
    max_completion_tokens: int | None = Field(None, ge=1, le=8192, description='The same as max_tokens.')
    temperature: float | None = Field(None, ge=0, le=2)
    stop: StopSequence | Annotated[list[StopSequence], Field(max_length=MAX_STOP_SEQUENCES)] | None = Field(
        None, description='The answer ends before the first of these (up to 4).')
    n: int | None = Field(None, ge=1, le=1, description='One answer per request.')

    def stop_sequences(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def answer_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


def part_texts(content: Any) -> list[str] | None:
    """The texts of a message's content parts, or None when a part is not text (an image, audio)."""
    texts = []
    for part in content:
        if part.type != 'text' or part.text is None:
            return None
        texts.append(part.text)
    return texts
