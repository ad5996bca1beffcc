"""A stand-in OpenAI-compatible server for tests: a real HTTP server on 127.0.0.1 that speaks
``POST /v1/chat/completions`` with tool calls, whole or streamed (server-sent events), as OpenAI documents it.

Scripted like a tool-calling model: offered tools, with the last message not a tool's result, it calls
``tool_call`` (streamed as OpenAI streams calls: the first delta brings the index, id and name, the
following ones pieces of the arguments string); given tool results, it answers with
``answer_from_tools(results)``. Tests only: the app never imports it.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

PLAIN_REPLY = 'Hello from the stand-in server.'


def _answer_from_tools(results: list[dict[str, Any]]) -> str:
    return ' '.join(f'{result.get("tool_call_id")} said: {result.get("content")}' for result in results)


class FakeOpenAI:
    def __init__(self, model: str = 'stand-in') -> None:
        self.model = model
        self.bodies: list[dict[str, Any]] = []  # every chat request, in order
        self.tool_call: dict[str, Any] | None = None  # {name, arguments (an object)}
        self.answer_from_tools: Callable[[list[dict[str, Any]]], str] = _answer_from_tools
        self.argument_piece = 7  # characters of the arguments string per streamed delta
        self.refuse_tools = False  # answer a request with tools with 400, as a server without tool support may
        self._app = Starlette(routes=[Route('/v1/chat/completions', self._chat, methods=['POST']),
                                      Route('/v1/models', self._models, methods=['GET'])])
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._socket is not None, 'the server is not started'
        return f'http://127.0.0.1:{self._socket.getsockname()[1]}'

    def __enter__(self) -> FakeOpenAI:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(('127.0.0.1', 0))
        self._server = uvicorn.Server(uvicorn.Config(self._app, log_level='warning', access_log=False,
                                                     lifespan='off'))
        self._thread = threading.Thread(target=self._server.run, kwargs={'sockets': [self._socket]},
                                        name='fake-openai', daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError('the fake OpenAI server did not start')
            time.sleep(0.01)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()

    async def _models(self, request: Request) -> Response:
        return JSONResponse({'object': 'list', 'data': [{'id': self.model, 'object': 'model', 'owned_by': 'test'}]})

    async def _chat(self, request: Request) -> Response:
        body = json.loads(await request.body())
        self.bodies.append(body)
        messages = body.get('messages') or []
        stream = bool(body.get('stream'))
        if body.get('tools') and self.refuse_tools:
            return JSONResponse({'error': {'message': 'tools are not supported by this server', 'type':
                                           'invalid_request_error', 'param': 'tools', 'code': None}}, status_code=400)
        if body.get('tools') and self.tool_call is not None and messages and messages[-1].get('role') != 'tool':
            if stream:
                return StreamingResponse(self._events(self._call_deltas()), media_type='text/event-stream')
            return JSONResponse(self._whole(None, [self._call()], 'tool_calls'))
        results = []
        for message in reversed(messages):
            if message.get('role') != 'tool':
                break
            results.insert(0, message)
        text = self.answer_from_tools(results) if results else PLAIN_REPLY
        if stream:
            return StreamingResponse(self._events(self._text_deltas(text)), media_type='text/event-stream')
        return JSONResponse(self._whole(text, None, 'stop'))

    def _call(self) -> dict[str, Any]:
        assert self.tool_call is not None
        return {'id': 'call_stand_in_1', 'type': 'function',
                'function': {'name': self.tool_call['name'], 'arguments': json.dumps(self.tool_call['arguments'])}}

    def _call_deltas(self) -> list[dict[str, Any]]:
        call = self._call()
        arguments = call['function']['arguments']
        deltas: list[dict[str, Any]] = [{'role': 'assistant', 'content': None}, {'tool_calls': [
            {'index': 0, 'id': call['id'], 'type': 'function',
             'function': {'name': call['function']['name'], 'arguments': ''}}]}]
        for start in range(0, len(arguments), self.argument_piece):
            piece = arguments[start:start + self.argument_piece]
            deltas.append({'tool_calls': [{'index': 0, 'function': {'arguments': piece}}]})
        return [*deltas, {'finish': 'tool_calls'}]

    @staticmethod
    def _text_deltas(text: str) -> list[dict[str, Any]]:
        words = text.split(' ')
        return [{'role': 'assistant', 'content': ''},
                *({'content': word + (' ' if i < len(words) - 1 else '')} for i, word in enumerate(words)),
                {'finish': 'stop'}]

    async def _events(self, deltas: list[dict[str, Any]]) -> AsyncIterator[bytes]:
        for delta in deltas:
            finish = delta.pop('finish', None)
            chunk = {'id': 'chatcmpl-stand-in', 'object': 'chat.completion.chunk', 'created': int(time.time()),
                     'model': self.model, 'choices': [{'index': 0, 'delta': delta, 'finish_reason': finish}]}
            yield f'data: {json.dumps(chunk)}\n\n'.encode()
        yield b'data: [DONE]\n\n'

    def _whole(self, text: str | None, calls: list[dict[str, Any]] | None, finish: str) -> dict[str, Any]:
        message: dict[str, Any] = {'role': 'assistant', 'content': text}
        if calls:
            message['tool_calls'] = calls
        return {'id': 'chatcmpl-stand-in', 'object': 'chat.completion', 'created': int(time.time()),
                'model': self.model, 'choices': [{'index': 0, 'message': message, 'finish_reason': finish}],
                'usage': {'prompt_tokens': 1, 'completion_tokens': 1, 'total_tokens': 2}}
