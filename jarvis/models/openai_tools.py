"""Tool calling in the OpenAI chat format, as pure functions: the ``tools`` array a request offers, the
messages that carry calls and results, and the calls read back from an answer, whole or streamed.

Pure on purpose: any client of an OpenAI-compatible server (``/v1/chat/completions``) builds its request
and reads its answer with these, whatever it sends them with. Ollama's ``/api/chat`` takes the same
``tools`` array (``tool_definitions``); only its messages differ (arguments as an object, not a string).
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .base import ChatTurn, GenerationOptions, ToolCall, ToolSpec

MAX_ARGUMENT_CHARS = 100_000  # a model that streams arguments without end is cut off here


def tool_definitions(tools: Iterable[ToolSpec]) -> list[dict[str, Any]]:
    """The ``tools`` array of a chat request: ``{"type": "function", "function": {name, description,
    parameters}}`` per tool."""
    return [{'type': 'function', 'function': {'name': tool.name, 'description': tool.description,
                                              'parameters': tool.parameters}} for tool in tools]


def forced_choice(name: str) -> dict[str, Any]:
    """A ``tool_choice`` that makes the model call this one function."""
    return {'type': 'function', 'function': {'name': name}}


def call_id(call: ToolCall, index: int) -> str:
    """The call's id, or one made from its place when the model gave none (a result needs one)."""
    return call.id or f'call_{index}'


def openai_messages(turns: Iterable[ChatTurn]) -> list[dict[str, Any]]:
    """Chat turns as OpenAI messages: an assistant turn's calls with their arguments as a JSON string, a
    tool turn as ``{"role": "tool", "tool_call_id", "content"}``."""
    messages: list[dict[str, Any]] = []
    for turn in turns:
        if turn.role == 'assistant' and turn.tool_calls:
            messages.append({'role': 'assistant', 'content': turn.content or None, 'tool_calls': [
                {'id': call_id(call, index), 'type': 'function',
                 'function': {'name': call.name, 'arguments': json.dumps(call.arguments)}}
                for index, call in enumerate(turn.tool_calls)]})
        elif turn.role == 'tool':
            messages.append({'role': 'tool', 'tool_call_id': turn.tool_call_id, 'content': turn.content})
        else:
            messages.append({'role': turn.role, 'content': turn.content})
    return messages


def chat_request(model: str, turns: Iterable[ChatTurn], tools: Iterable[ToolSpec] = (),
                 options: GenerationOptions | None = None, *, stream: bool = True,
                 tool_choice: str | dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON body of a ``POST /v1/chat/completions`` with the tools offered (none: a plain chat)."""
    options = options or GenerationOptions()
    body: dict[str, Any] = {'model': model, 'messages': openai_messages(turns), 'stream': stream,
                            'max_tokens': options.max_tokens, 'temperature': options.temperature}
    definitions = tool_definitions(tools)
    if definitions:
        body['tools'] = definitions
        if tool_choice is not None:
            body['tool_choice'] = tool_choice
    return body


def sse_chunks(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The JSON chunks of a streamed answer (server-sent events: ``data: {...}`` lines, ``data: [DONE]`` at
    the end); other lines (comments, blank lines, event names) are skipped, a line that is not JSON too."""
    for line in lines:
        if not line.startswith('data:'):
            continue
        data = line[5:].strip()
        if data == '[DONE]':
            return
        try:
            chunk = json.loads(data)
        except ValueError:
            continue
        if isinstance(chunk, dict):
            if isinstance(chunk.get('error'), dict | str):  # a server that fails after the stream began
                error = chunk['error']
                raise ValueError(error.get('message', str(error)) if isinstance(error, dict) else error)
            yield chunk


def stream_pieces(chunks: Iterable[dict[str, Any]]) -> Iterator[str | ToolCall]:
    """The text pieces of a streamed answer as they come, then the calls it asked for (``ToolCall``s): what
    ``ToolModel.stream_chat_with_tools`` yields, for a model behind an OpenAI-compatible server."""
    calls = StreamedToolCalls()
    for chunk in chunks:
        text = calls.add(chunk)
        if text:
            yield text
    yield from calls.calls()


def read_arguments(name: str, raw: Any, id_: str = '') -> ToolCall:
    """A call from its name and arguments as the model gave them: a JSON string (OpenAI) or an object
    (Ollama). Arguments that are not a JSON object make a call with a ``problem`` instead."""
    if raw is None or raw == '':
        return ToolCall(name, {}, id_)
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return ToolCall(name, {}, id_, problem=f'The arguments are not valid JSON: {raw[:200]!r}')
    if not isinstance(raw, dict):
        return ToolCall(name, {}, id_, problem='The arguments must be a JSON object.')
    return ToolCall(name, raw, id_)


def parse_tool_calls(message: dict[str, Any]) -> list[ToolCall]:
    """The calls of a whole (not streamed) answer's message: ``choices[0].message``."""
    calls = []
    for entry in message.get('tool_calls') or []:
        if not isinstance(entry, dict):
            continue
        function = entry.get('function') or {}
        name = function.get('name')
        if isinstance(name, str) and name:
            calls.append(read_arguments(name, function.get('arguments'), str(entry.get('id') or '')))
    return calls


@dataclass
class _PartialCall:
    id: str = ''
    name: str = ''
    arguments: list[str] = field(default_factory=list)
    size: int = 0


class StreamedToolCalls:
    """Puts together the calls of a streamed answer. The first delta of a call brings its ``index``, ``id``
    and ``function.name``; the following ones bring pieces of ``function.arguments`` under the same index.

    ``add(chunk)`` takes each ``chat.completion.chunk`` and returns the text it brings ('' when none);
    ``calls()`` gives the complete calls once the stream has ended.
    """

    def __init__(self) -> None:
        self._calls: dict[int, _PartialCall] = {}
        self.finish_reason: str | None = None

    def add(self, chunk: dict[str, Any]) -> str:
        text = ''
        for choice in chunk.get('choices') or []:
            if not isinstance(choice, dict) or choice.get('index', 0) != 0:
                continue  # only the first choice is read (n=1)
            delta = choice.get('delta') or {}
            if isinstance(delta.get('content'), str):
                text += delta['content']
            for entry in delta.get('tool_calls') or []:
                self._add_delta(entry)
            if choice.get('finish_reason'):
                self.finish_reason = choice['finish_reason']
        return text

    def _add_delta(self, entry: Any) -> None:
        if not isinstance(entry, dict):
            return
        index = entry.get('index')
        if not isinstance(index, int):  # some servers leave the index out when there is one call
            index = max(self._calls, default=0) if not entry.get('id') else len(self._calls)
        partial = self._calls.setdefault(index, _PartialCall())
        if isinstance(entry.get('id'), str) and entry['id']:
            partial.id = entry['id']
        function = entry.get('function') or {}
        if isinstance(function.get('name'), str) and function['name'] and not partial.name:
            partial.name = function['name']
        piece = function.get('arguments')
        if isinstance(piece, dict):  # a whole object at once (some servers)
            piece = json.dumps(piece)
        if isinstance(piece, str) and piece and partial.size < MAX_ARGUMENT_CHARS:
            partial.arguments.append(piece)
            partial.size += len(piece)

    def calls(self) -> list[ToolCall]:
        calls = []
        for index in sorted(self._calls):
            partial = self._calls[index]
            if not partial.name:
                continue
            if partial.size >= MAX_ARGUMENT_CHARS:
                calls.append(ToolCall(partial.name, {}, partial.id, problem='The arguments are too long.'))
            else:
                calls.append(read_arguments(partial.name, ''.join(partial.arguments), partial.id))
        return calls
