"""The MCP server at /mcp, with the official MCP SDK's own clients against the real app: the tools are listed
with descriptions and schemas, the metrics tool gives numbers, notes and reminders are read through the
plugins' records, ask_jarvis is the whole assistant; the access token guards it like the other routes."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp import Client, ClientSession
from mcp.client.streamable_http import streamable_http_client

from .helpers.server import AppServer

TOOLS = {'system_metrics', 'top_processes', 'machine_history', 'alerts_overview', 'why_slow', 'model_fit', 'list_notes',
         'list_reminders', 'ask_jarvis'}
TOKEN = 'mcp secret'


@pytest.fixture(scope='module')
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    with AppServer(tmp_path_factory.mktemp('mcp')) as server:
        yield server


def chat(app: AppServer, message: str) -> dict:
    response = httpx.post(app.url + '/api/chat', json={'message': message}, timeout=60)
    response.raise_for_status()
    return response.json()


async def test_a_client_session_lists_the_tools_and_reads_the_metrics(app: AppServer) -> None:
    # the lower-level way a desktop client connects: the streamable HTTP transport and the initialize handshake
    async with streamable_http_client(app.url + '/mcp') as (read, write), ClientSession(read, write) as session:
        initialized = await session.initialize()
        assert initialized.server_info.name == 'J.A.R.V.I.S.'
        assert 'system_metrics' in (initialized.instructions or '')
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        assert set(tools) == TOOLS
        for tool in tools.values():
            assert len(tool.description or '') > 40, tool.name
            assert tool.input_schema['type'] == 'object'
        ask = tools['ask_jarvis'].input_schema
        assert ask['required'] == ['message'] and ask['properties']['message']['type'] == 'string'
        assert 'plugins' in ask['properties']['message']['description']
        assert all(tools[name].annotations.read_only_hint
                   for name in ('system_metrics', 'top_processes', 'machine_history', 'alerts_overview', 'list_notes',
                                'list_reminders'))
        assert tools['ask_jarvis'].annotations.read_only_hint is False

        result = await session.call_tool('system_metrics', {})
        processes = await session.call_tool('top_processes', {'sort': 'memory', 'limit': 3})
        history = await session.call_tool('machine_history', {'range': '5m', 'busy_at': time.time()})
        bad_range = await session.call_tool('machine_history', {'range': '2y'})
        alerts = await session.call_tool('alerts_overview', {'log_limit': 5})
        too_many = await session.call_tool('alerts_overview', {'log_limit': 5000})
    assert not processes.is_error and not history.is_error and bad_range.is_error
    ranked = processes.structured_content['processes']
    assert 1 <= len(ranked) <= 3 and ranked == sorted(ranked, key=lambda p: p['memory'], reverse=True)
    assert ranked[0]['memory'] > 0 and all(p['name'] and p['pid'] > 0 for p in ranked), 'real processes'
    points = history.structured_content['points']
    assert points and all(0 <= point['cpu'] <= 100 for point in points), 'the samples since the app started'
    assert isinstance(history.structured_content['busy_processes'], list)
    assert not alerts.is_error and too_many.is_error
    overview = alerts.structured_content
    assert isinstance(overview, dict) and overview['log'] == [] and isinstance(overview['firing'], list)
    rules = {rule['id']: rule for rule in overview['rules']}
    assert (rules['cpu-high']['metric'], rules['cpu-high']['threshold'], rules['cpu-high']['duration_s']) == \
        ('cpu', 90, 120), 'the default rules, as the Alerts view shows them'
    assert not result.is_error
    metrics = result.structured_content
    assert isinstance(metrics, dict)
    assert 0 <= metrics['cpu'] <= 100 and 0 < metrics['memory'] <= 100 and 0 <= metrics['disk'] <= 100
    assert metrics['cpu_count'] >= 1 and len(metrics['cpu_per_core']) == metrics['cpu_count']
    assert metrics['memory_total'] > metrics['memory_used'] > 0
    assert abs(metrics['timestamp'] - time.time()) < 600  # a sample of now, not of another day


async def test_notes_and_pending_reminders_are_read_as_the_chat_numbers_them(app: AppServer) -> None:
    chat(app, 'note: buy milk')
    chat(app, 'note: call Pepper')
    chat(app, 'remind me in 2 hours to stretch')
    chat(app, 'set a timer for 10 minutes')
    async with Client(app.url + '/mcp') as client:
        notes = (await client.call_tool('list_notes', {})).structured_content
        reminders = (await client.call_tool('list_reminders', {})).structured_content
    assert [(n['number'], n['text']) for n in notes['notes']] == [(1, 'buy milk'), (2, 'call Pepper')]
    assert [(r['number'], r['text']) for r in reminders['reminders']] == [(1, 'Timer (10 minutes)'), (2, 'stretch')]
    assert 0 < reminders['reminders'][0]['due_at'] - time.time() <= 600
    # the numbers are the chat's: deleting note 1 in the chat leaves "call Pepper" as note 1
    assert chat(app, 'delete note 1')['text'].startswith('Deleted note 1')
    async with Client(app.url + '/mcp', mode='legacy') as client:
        notes = (await client.call_tool('list_notes', {})).structured_content
    assert [(n['number'], n['text']) for n in notes['notes']] == [(1, 'call Pepper')]


async def test_ask_jarvis_is_the_whole_assistant(app: AppServer) -> None:
    async with Client(app.url + '/mcp') as client:
        answer = await client.call_tool('ask_jarvis', {'message': 'what is 2+2'})
        no_model = await client.call_tool('ask_jarvis', {'message': 'Tell me a story.'})
        too_long = await client.call_tool('ask_jarvis', {'message': 'x' * 32_001})
        empty = await client.call_tool('ask_jarvis', {'message': ''})
    assert not answer.is_error
    assert answer.structured_content == {'answer': '2 + 2 = 4', 'source': 'Calculator', 'status': 'done'}
    assert no_model.structured_content['source'] == 'J.A.R.V.I.S.'  # no model loaded: it says what to do
    assert 'No model is loaded' in no_model.structured_content['answer']
    assert too_long.is_error and 'too long' in too_long.content[0].text
    assert empty.is_error
    # the same pipeline as the chat: every window shows the question and the answer
    history = httpx.get(app.url + '/api/chat/history', params={'limit': 50}, timeout=30).json()
    assert ['what is 2+2', '2 + 2 = 4'] == [m['text'] for m in history][-4:-2]


def test_the_mcp_route_follows_the_apps_access_rules(tmp_path: Path) -> None:
    with AppServer(tmp_path / 'data', host='0.0.0.0', args=['--no-default-model', '--token', TOKEN]) as app:
        body = {'jsonrpc': '2.0', 'id': 1, 'method': 'tools/list'}
        refused = httpx.post(app.url + '/mcp', json=body, timeout=30)
        assert refused.status_code == 401 and 'token' in refused.json()['error']
        foreign = httpx.post(app.url + '/mcp', json=body, timeout=30,
                             headers={'Authorization': f'Bearer {TOKEN}', 'Origin': 'http://evil.example'})
        assert foreign.status_code == 403
        as_text = httpx.post(app.url + '/mcp', content='{}', timeout=30,
                             headers={'Authorization': f'Bearer {TOKEN}', 'Content-Type': 'text/plain'})
        assert as_text.status_code == 415

        async def with_token() -> dict:
            http = httpx2.AsyncClient(headers={'Authorization': f'Bearer {TOKEN}'}, timeout=60)
            async with http, Client(streamable_http_client(app.url + '/mcp', http_client=http)) as client:
                return (await client.call_tool('system_metrics', {})).structured_content

        assert asyncio.run(with_token())['memory_total'] > 0


def test_the_sdk_is_imported_with_the_first_request_not_at_start() -> None:
    # about 25 MiB and seconds on two cores that a user who never connects an MCP client does not pay
    code = 'import sys, jarvis.app; print(sorted(m for m in sys.modules if m == "mcp" or m.startswith("mcp.")))'
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == '[]'
