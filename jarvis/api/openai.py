"""The OpenAI-compatible API: ``GET /v1/models`` and ``POST /v1/chat/completions``, plain and streamed as
server-sent events, for any client of OpenAI's chat API (the ``openai`` package, Open WebUI, editors).

The handlers only translate: OpenAI's request to a ``CompletionRequest`` of ``jarvis.assistant.completions``,
its steps to OpenAI's objects, its typed errors to OpenAI's error shape. The access rules are those of
/api/ (``jarvis.web_guard``: the access token is the API key, ``Authorization: Bearer``).
"""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse, StreamingResponse

from ..assistant.completions import (
    CompletionError,
    CompletionRequest,
    Completions,
    ContextTooLong,
    Finished,
    InvalidCompletion,
    Message,
    ModelEntry,
    ModelUnavailable,
    Started,
    UnknownModel,
)
from ..text import mark_lone_surrogates
from ..web_guard import openai_error_payload
from .errors import openai_error
from .openai_schemas import ChatCompletionMessage, ChatCompletionRequest, part_texts

# OpenAI's clients retry some statuses on their own (409, 5xx); a completion that failed here fails the
# same way again (a model that does not fit, a deleted conversation), and a retry would load it again
NO_RETRY = {'x-should-retry': 'false'}


def add_routes(router: APIRouter, completions: Completions) -> None:
    @router.get('/v1/models', tags=['openai'])
    async def list_models() -> dict:
        """The models in OpenAI's list shape: ``jarvis`` (the whole assistant) and every model that can be loaded."""
        return {'object': 'list', 'data': [_model(entry) for entry in await completions.list_models()]}

    @router.get('/v1/models/{model_id:path}', tags=['openai'])
    async def get_model(model_id: str = Path(min_length=1, max_length=300)) -> Any:
        try:
            return _model(await completions.find_model(mark_lone_surrogates(model_id)))
        except UnknownModel as problem:
            return _error(problem, param='model')

    @router.post('/v1/chat/completions', tags=['openai'])
    async def chat_completions(body: ChatCompletionRequest) -> Any:
        """A chat completion in OpenAI's shape; with ``"stream": true`` as server-sent events
        (``data: {chunk}`` lines, then ``data: [DONE]``)."""
        try:
            request = _completion_request(body)
        except InvalidCompletion as problem:
            return _error(problem, param=problem.param)
        steps = completions.complete(request)
        try:
            first = await anext(steps)  # the answer is under way, or the request fails with a status
            assert isinstance(first, Started)
        except CompletionError as problem:
            await steps.aclose()
            return _error(problem)
        reply = _Reply(body.model)
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(_server_sent_events(steps, reply, include_usage), media_type='text/event-stream',
                                     headers={'Cache-Control': 'no-cache', 'X-Accel-Buffering': 'no'})
        try:
            async for step in steps:
                if isinstance(step, Finished):
                    return reply.completion(step)
        except CompletionError as problem:
            return _error(problem)
        finally:
            await steps.aclose()
        raise RuntimeError('the completion ended without its last step')  # a bug: answered as a 500


def _completion_request(body: ChatCompletionRequest) -> CompletionRequest:
    return CompletionRequest(model=body.model, messages=[_message(m, i) for i, m in enumerate(body.messages)],
                             max_tokens=body.answer_limit(), temperature=body.temperature,
                             stop=body.stop_sequences())


def _message(message: ChatCompletionMessage, index: int) -> Message:
    if message.role == 'tool':
        raise InvalidCompletion('Tool messages cannot be answered here: J.A.R.V.I.S. calls no tools.',
                                f'messages.{index}.role')
    content = message.content
    if content is None:
        text = ''
    elif isinstance(content, str):
        text = content
    else:
        texts = part_texts(content)
        if texts is None:
            raise InvalidCompletion('Only text can be answered here: send the content as text (no images or '
                                    'audio).', f'messages.{index}.content')
        text = '\n'.join(texts)
    role = 'system' if message.role == 'developer' else message.role
    return Message(role, mark_lone_surrogates(text))  # type: ignore[arg-type]


def _model(entry: ModelEntry) -> dict[str, Any]:
    return {'id': entry.id, 'object': 'model', 'created': entry.created, 'owned_by': entry.owned_by}


def _error(problem: CompletionError, param: str | None = None) -> JSONResponse:
    message = str(problem)
    if isinstance(problem, UnknownModel):
        response = openai_error(404, message, code='model_not_found', param='model')
    elif isinstance(problem, ContextTooLong):
        response = openai_error(400, message, code='context_length_exceeded', param=problem.param)
    elif isinstance(problem, InvalidCompletion):
        response = openai_error(400, message, param=param or problem.param)
    elif isinstance(problem, ModelUnavailable):
        response = openai_error(503, message, code='model_unavailable')
    else:  # e.g. the conversation was deleted while the answer was written
        response = openai_error(409, message, code='conflict')
    response.headers.update(NO_RETRY)
    return response


class _Reply:
    """OpenAI's objects for one completion: the same id and time in every chunk."""

    def __init__(self, model: str) -> None:
        self.id = f'chatcmpl-{uuid.uuid4().hex}'
        self.created = int(time.time())
        self.model = model

    def completion(self, finished: Finished) -> dict[str, Any]:
        return {'id': self.id, 'object': 'chat.completion', 'created': self.created, 'model': self.model,
                'system_fingerprint': None,
                'choices': [{'index': 0, 'message': {'role': 'assistant', 'content': finished.text, 'refusal': None},
                             'logprobs': None, 'finish_reason': finished.finish_reason}],
                'usage': _usage(finished)}

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {'id': self.id, 'object': 'chat.completion.chunk', 'created': self.created, 'model': self.model,
                'system_fingerprint': None,
                'choices': [{'index': 0, 'delta': delta, 'logprobs': None, 'finish_reason': finish_reason}]}

    def usage_chunk(self, finished: Finished) -> dict[str, Any]:
        return {'id': self.id, 'object': 'chat.completion.chunk', 'created': self.created, 'model': self.model,
                'system_fingerprint': None, 'choices': [], 'usage': _usage(finished)}


def _usage(finished: Finished) -> dict[str, int]:
    usage = finished.usage
    return {'prompt_tokens': usage.prompt_tokens, 'completion_tokens': usage.completion_tokens,
            'total_tokens': usage.total_tokens}


async def _server_sent_events(steps: AsyncGenerator[Any, None], reply: _Reply, include_usage: bool) -> AsyncIterator[str]:
    """The steps as OpenAI's chunks. A failure once the stream began can only be told in the stream: an
    ``error`` object, which OpenAI's clients raise as their own APIError. When the client leaves, the
    stream is closed here, and closing it stops the answer."""
    try:
        yield _event(reply.chunk({'role': 'assistant', 'content': ''}))
        async for step in steps:
            if isinstance(step, str):
                yield _event(reply.chunk({'content': step}))
            elif isinstance(step, Finished):
                yield _event(reply.chunk({}, step.finish_reason))
                if include_usage:
                    yield _event(reply.usage_chunk(step))
        yield 'data: [DONE]\n\n'
    except CompletionError as problem:
        status = 503 if isinstance(problem, ModelUnavailable) else 409
        yield _event(openai_error_payload(status, str(problem)))
    finally:
        await steps.aclose()


def _event(data: dict[str, Any]) -> str:
    return f'data: {json.dumps(data)}\n\n'  # ASCII: nothing in an answer can break the stream's encoding
