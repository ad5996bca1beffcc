"""Every error under /api/ (and /v1, /mcp) is JSON {"error": "<a sentence that says what to do>"} with the
right status; pages get a short readable page instead."""
from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import httpx
import pytest
import websockets
from fastapi import FastAPI, HTTPException, Query
from websockets.exceptions import InvalidStatus

from jarvis.api.errors import error, install_error_handlers

from .helpers.server import AppServer


def assert_json_error(response: httpx.Response, status: int, *words: str) -> str:
    assert response.status_code == status, (response.request.method, response.request.url, response.text[:300])
    assert response.headers['content-type'] == 'application/json', response.headers
    body = response.json()
    assert list(body) == ['error'] and isinstance(body['error'], str), body
    message = body['error']
    assert message[0].isupper() and message.endswith('.'), f'not one sentence: {message!r}'
    for word in words:
        assert word.lower() in message.lower(), message
    return message


@pytest.fixture(scope='module')
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    with AppServer(tmp_path_factory.mktemp('errors')) as server:
        yield server


def test_unknown_routes_and_wrong_methods_answer_json(app: AppServer) -> None:
    with httpx.Client(base_url=app.url, timeout=30) as client:
        assert_json_error(client.get('/api/nope'), 404, '/api/nope', 'README')
        assert_json_error(client.post('/api/nope', json={}), 404, 'POST /api/nope')
        assert_json_error(client.get('/api/v1/models'), 404, '/api/v1/models')
        # /v1/ speaks OpenAI's error shape (tests/test_openai_api.py); /mcp is the MCP server (tests/test_mcp.py)
        wrong = client.get('/api/chat')
        assert_json_error(wrong, 405, 'GET', 'POST')
        assert wrong.headers['allow'] == 'POST'
        assert_json_error(client.delete('/api/plugins'), 405, 'DELETE', 'GET')
        assert_json_error(client.put('/api/chat', json={'message': 'hi'}), 405, 'PUT', 'POST')
        # what held before stays JSON
        assert_json_error(client.get('/api/chat/history?limit=abc'), 422, 'limit')
        assert_json_error(client.post('/api/chat', content=b'{', headers={'Content-Type': 'application/json'}),
                          400, 'JSON')
        # pages are not API: an unknown page is the app's own page, not JSON
        page = client.get('/no-such-page')
        assert page.headers['content-type'].startswith('text/html')
        assert client.get('/apiary').headers['content-type'].startswith('text/html')


async def test_errors_from_the_handlers_themselves_are_json() -> None:
    # a bare app with only the handlers, so that each kind of failure can be provoked on purpose
    app = FastAPI()
    install_error_handlers(app)

    @app.get('/api/boom')
    async def boom() -> None:
        raise RuntimeError('a bug')

    @app.get('/api/teapot')
    async def teapot() -> None:
        raise HTTPException(418, 'I am a teapot; ask for coffee elsewhere.')

    @app.get('/api/bare')
    async def bare() -> None:
        raise HTTPException(409)

    @app.get('/api/numbers')
    async def numbers(n: int = Query(..., ge=1)) -> int:
        return n

    @app.get('/api/direct')
    async def direct() -> object:
        return error(429, 'Too many requests; wait a second and try again.')

    @app.get('/page/boom')
    async def page_boom() -> None:
        raise RuntimeError('a bug in a page')

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                 base_url='http://127.0.0.1') as client:
        assert_json_error(await client.get('/api/boom'), 500, 'server', 'log')
        assert_json_error(await client.get('/api/teapot'), 418, 'teapot')
        assert_json_error(await client.get('/api/bare'), 409, 'conflict')
        assert_json_error(await client.get('/api/numbers?n=0'), 422, 'parameter n', 'greater than')
        assert_json_error(await client.get('/api/numbers'), 422, 'parameter n', 'required')
        assert_json_error(await client.get('/api/direct'), 429, 'wait')
        assert_json_error(await client.get('/api/missing'), 404, '/api/missing')
        page = await client.get('/page/boom')
        assert page.status_code == 500 and page.headers.get('content-type') != 'application/json'  # the framework's


def test_in_token_mode_401_is_json_for_the_api_and_a_page_that_says_how_to_get_in(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with AppServer(tmp_path / 'data', host='0.0.0.0', args=['--no-default-model', '--token', 'open-sesame']) as app:
        with httpx.Client(base_url=app.url, timeout=30) as client:
            message = assert_json_error(client.get('/api/system/status'), 401, 'token')
            assert re.search(r'\?token=|Authorization', message)
            assert client.get('/api/system/status').headers['www-authenticate'] == 'Bearer'
            assert_json_error(client.post('/api/chat', json={'message': 'hi'}), 401, 'token')
            assert_json_error(client.get('/api/nope'), 401, 'token')  # the token comes before anything else
            page = client.get('/chat')
            assert page.status_code == 401 and page.headers['content-type'].startswith('text/html')
            assert 'access token required' in page.text and '?token=' in page.text

        async def socket_refused() -> None:
            with pytest.raises(InvalidStatus) as refused:
                async with websockets.connect(app.url.replace('http', 'ws') + '/api/events'):
                    pass
            assert refused.value.response.status_code in (401, 403)

        asyncio.run(socket_refused())
