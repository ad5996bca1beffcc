"""Errors of the routes for scripts (/api/, /v1/, /mcp): always JSON ``{"error": "<one sentence that says
what to do>"}`` with the right status, whatever raised them: the router (unknown route, wrong method),
validation, a route's own ``HTTPException`` or a bug. Under /v1/ the same sentence comes in OpenAI's shape,
``{"error": {"message", "type", "param", "code"}}``, and a request that does not fit the schema is a 400
as OpenAI answers it. Pages keep NiceGUI's own error pages."""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..web_guard import error_payload, is_api_path, is_openai_path, openai_error_payload

log = logging.getLogger(__name__)

Handler = Callable[[Request, Exception], Awaitable[Response]]
# what FastAPI says when json.loads itself fails (invalid UTF-8, a RecursionError on deep nesting)
_FASTAPI_UNREADABLE_BODY = 'There was an error parsing the body'

_PREVIOUS = '_jarvis_previous'  # where a handler installed here keeps the one it wraps for pages


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({'error': message}, status_code=status, headers=headers)


def error_at(path: str, status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An error in the shape the clients of ``path`` read (OpenAI's under /v1/)."""
    return JSONResponse(error_payload(path, status, message), status_code=status, headers=headers)


def openai_error(status: int, message: str, *, type_: str | None = None, code: str | None = None,
                 param: str | None = None) -> JSONResponse:
    """An error of a /v1/ route, with OpenAI's type, code and param where one applies."""
    return JSONResponse(openai_error_payload(status, message, type_=type_, code=code, param=param),
                        status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    """JSON errors for the API paths; for every other path the handler that was there (NiceGUI's pages)."""
    _wrap(app, 404, _api_http_error)  # NiceGUI renders its page for unknown paths under this key
    _wrap(app, StarletteHTTPException, _api_http_error)
    _wrap(app, RequestValidationError, _api_validation_error)
    _wrap(app, Exception, _api_server_error)


def _wrap(app: FastAPI, key: int | type[Exception], api_handler: Handler) -> None:
    previous = app.exception_handlers.get(key)
    previous = getattr(previous, _PREVIOUS, previous)  # installed before (tests build the app again and again)

    async def handler(request: Request, problem: Exception) -> Response:
        if is_api_path(request.url.path):
            return await api_handler(request, problem)
        if previous is not None:
            return await previous(request, problem)
        return await _framework_default(request, problem)

    setattr(handler, _PREVIOUS, previous)
    app.add_exception_handler(key, handler)


async def _framework_default(request: Request, problem: Exception) -> Response:
    if isinstance(problem, RequestValidationError):
        return await request_validation_exception_handler(request, problem)
    if isinstance(problem, StarletteHTTPException):
        return await http_exception_handler(request, problem)
    raise problem  # Starlette answers a plain 500


async def _api_http_error(request: Request, problem: Exception) -> Response:
    assert isinstance(problem, StarletteHTTPException)
    status = problem.status_code
    method, path = request.method, request.url.path
    allow = (problem.headers or {}).get('Allow', '')
    phrase = _phrase(status)
    if status == 400 and problem.detail == _FASTAPI_UNREADABLE_BODY:
        message = ('The body could not be read as JSON (it is not UTF-8, or nested too deeply); send a JSON '
                   f'object such as {_example(path)}.')
    elif problem.detail and problem.detail != phrase:  # the route's own words
        message = _sentence(str(problem.detail))
    elif status == 404:
        message = f'There is no route {method} {path}; the README lists the routes.'
    elif status == 405:
        message = f'The route {path} does not take {method}; send {allow or "another method"} instead.'
    else:
        message = f'{phrase} (HTTP {status}).'
    return error_at(path, status, message, headers=problem.headers)


# pydantic's error types in the words of a person who reads the answer
_PLAIN_WORDS = {
    'missing': 'is required',
    'string_type': 'must be text',
    'bool_type': 'must be true or false',
    'int_type': 'must be a whole number',
    'int_parsing': 'must be a whole number',
    'dict_type': 'must be an object',
    'literal_error': None,  # pydantic's own words name the allowed values
}


async def _api_validation_error(request: Request, problem: Exception) -> Response:
    """Bad parameters or fields as one readable sentence."""
    assert isinstance(problem, RequestValidationError)
    items = problem.errors()
    path = request.url.path
    if any(item.get('type') == 'json_invalid' for item in items):
        return error_at(path, 400, f'The body is not valid JSON; send a JSON object such as {_example(path)}.')
    if any(tuple(item.get('loc', ())) == ('body',) and item.get('type') in ('model_attributes_type', 'dict_type')
           for item in items):
        return error_at(path, 400, f'The body must be a JSON object such as {_example(path)}.')
    where_words = {'query': 'parameter', 'path': 'path part', 'body': 'field', 'header': 'header', 'cookie': 'cookie'}
    parts = []
    for item in items:
        location = [str(part) for part in item.get('loc', ())]
        kind = where_words.get(location[0], 'value') if location else 'value'
        name = '.'.join(location[1:])
        plain = _PLAIN_WORDS.get(str(item.get('type')))
        if plain and name:
            parts.append(f'the {kind} {name} {plain}')
            continue
        text = str(item.get('msg', 'not valid'))
        if not text[1:2].isupper():  # "Field required" reads "field required"; "JSON ..." stays
            text = text[:1].lower() + text[1:]
        parts.append(f'the {kind} {name} is not valid: {text}' if name else f'the request body is not valid: {text}')
    message = _sentence('; '.join(parts) or 'the request is not valid')
    if is_openai_path(path):  # OpenAI answers a request that breaks its schema with 400 and names the field
        first = [str(part) for part in items[0].get('loc', ())[1:]] if items else []
        return openai_error(400, message, param='.'.join(first) or None)
    return error(422, message)


async def _api_server_error(request: Request, problem: Exception) -> Response:
    # Starlette logs the traceback after this answer is sent
    return error_at(request.url.path, 500, 'Something went wrong on the server (the log says what); try again, '
                                           'and report it if it happens again.')


def _example(path: str) -> str:
    """A body the route at ``path`` takes, for the sentence that says what to send."""
    if is_openai_path(path):
        return '{"model": "jarvis", "messages": [{"role": "user", "content": "What time is it?"}]}'
    return '{"message": "What time is it?"}'


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return 'Error'


def _sentence(text: str) -> str:
    text = text.strip() or 'The request failed'
    text = text[:1].upper() + text[1:]
    return text if text.endswith(('.', '!', '?')) else text + '.'
