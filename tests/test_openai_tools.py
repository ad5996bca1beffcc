"""Tool calling in the OpenAI format (jarvis/models/openai_tools.py): the tools array, the messages, the calls
read back whole and from streamed deltas; against a local server scripted like a tool-calling model, with the
app's real machine tools reading a real CPU burner, and against llama-cpp-python's own OpenAI-compatible
server with the Gemma GGUF, whose chatml-function-calling format constrains the call to the tool's schema."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jarvis.alerts import AlertManager
from jarvis.assistant.tools import Tool, machine_tools, run_tool
from jarvis.hub import Hub
from jarvis.metrics import SystemMonitor
from jarvis.models.base import ChatTurn, ToolCall, ToolSpec
from jarvis.models.default_model import default_model_path
from jarvis.models.openai_tools import (
    StreamedToolCalls,
    chat_request,
    forced_choice,
    openai_messages,
    parse_tool_calls,
    sse_chunks,
    stream_pieces,
    tool_definitions,
)
from jarvis.storage import SettingsStore
from jarvis.storage.database import Database

from .helpers.fake_openai import FakeOpenAI
from .helpers.server import free_port
from .test_processes import start_burner, stop

SPEC = ToolSpec('top_processes', 'The busiest processes.',
                {'type': 'object', 'properties': {'limit': {'type': 'integer'}}})


def chunk(delta: dict[str, Any], finish: str | None = None, index: int = 0) -> dict[str, Any]:
    return {'object': 'chat.completion.chunk', 'choices': [{'index': index, 'delta': delta, 'finish_reason': finish}]}


# --- the pure functions ---------------------------------------------------------------------------------

def test_the_tools_array_and_the_messages_are_openais() -> None:
    assert tool_definitions([SPEC]) == [{'type': 'function', 'function': {
        'name': 'top_processes', 'description': 'The busiest processes.', 'parameters': SPEC.parameters}}]
    call = ToolCall('top_processes', {'limit': 3}, 'call_1')
    turns = [ChatTurn('system', 'Be brief.'), ChatTurn('user', 'Who burns my CPU?'),
             ChatTurn('assistant', '', tool_calls=(call, ToolCall('system_metrics'))),
             ChatTurn('tool', '{"processes": []}', tool_call_id='call_1', tool_name='top_processes')]
    assert openai_messages(turns) == [
        {'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Who burns my CPU?'},
        {'role': 'assistant', 'content': None, 'tool_calls': [
            {'id': 'call_1', 'type': 'function', 'function': {'name': 'top_processes', 'arguments': '{"limit": 3}'}},
            {'id': 'call_1', 'type': 'function', 'function': {'name': 'system_metrics', 'arguments': '{}'}}]},
        {'role': 'tool', 'tool_call_id': 'call_1', 'content': '{"processes": []}'}]
    body = chat_request('m', turns[:2], [SPEC], tool_choice=forced_choice('top_processes'))
    assert body['tools'][0]['function']['name'] == 'top_processes' and body['stream'] is True
    assert body['tool_choice'] == {'type': 'function', 'function': {'name': 'top_processes'}}
    assert 'tools' not in chat_request('m', turns[:2]) and 'tool_choice' not in chat_request('m', turns[:2])


def test_streamed_deltas_make_whole_calls() -> None:
    calls = StreamedToolCalls()
    pieces = [
        chunk({'role': 'assistant', 'content': 'Let me look. '}),
        chunk({'tool_calls': [{'index': 0, 'id': 'call_a', 'type': 'function',
                               'function': {'name': 'top_processes', 'arguments': ''}}]}),
        chunk({'tool_calls': [{'index': 1, 'id': 'call_b', 'type': 'function',
                               'function': {'name': 'system_metrics', 'arguments': '{}'}}]}),
        chunk({'tool_calls': [{'index': 0, 'function': {'arguments': '{"sort": "cp'}}]}),
        chunk({'tool_calls': [{'index': 0, 'function': {'arguments': 'u", "limit": 3}'}}]}),
        chunk({}, finish='tool_calls'),
    ]
    text = ''.join(calls.add(piece) for piece in pieces)
    assert text == 'Let me look. ' and calls.finish_reason == 'tool_calls'
    assert calls.calls() == [ToolCall('top_processes', {'sort': 'cpu', 'limit': 3}, 'call_a'),
                             ToolCall('system_metrics', {}, 'call_b')]

    broken = StreamedToolCalls()
    broken.add(chunk({'tool_calls': [{'index': 0, 'id': 'x', 'function': {'name': 'f', 'arguments': '{"a": '}}]}))
    [call] = broken.calls()
    assert call.name == 'f' and call.arguments == {} and 'not valid JSON' in call.problem

    lines = ['', ': keep-alive', f'data: {json.dumps(pieces[0])}', 'data: [DONE]', f'data: {json.dumps(pieces[1])}']
    assert list(sse_chunks(lines)) == [pieces[0]], 'nothing after [DONE]'
    assert list(stream_pieces(pieces)) == ['Let me look. ', *calls.calls()]


def test_whole_answers_are_read_too() -> None:
    message = {'role': 'assistant', 'content': None, 'tool_calls': [
        {'id': 'c1', 'type': 'function', 'function': {'name': 'top_processes', 'arguments': '{"limit": 2}'}},
        {'id': 'c2', 'type': 'function', 'function': {'name': 'alerts_overview', 'arguments': '[1]'}}]}
    first, second = parse_tool_calls(message)
    assert first == ToolCall('top_processes', {'limit': 2}, 'c1')
    assert second.problem == 'The arguments must be a JSON object.'
    assert parse_tool_calls({'role': 'assistant', 'content': 'hi'}) == []


# --- against a server, with the real machine tools ---------------------------------------------------------

@pytest.fixture
async def tools(tmp_path: Path) -> AsyncIterator[list[Tool]]:
    hub, db = Hub(), Database(tmp_path / 'jarvis.db')
    store = SettingsStore(db)
    await db.run(store.load)
    system = SystemMonitor(hub, db, interval=0.2, calm_interval=0.2)
    await system.start()
    try:
        yield machine_tools(system, AlertManager(hub, db, store))
    finally:
        await system.stop()
        db.close()


@pytest.fixture
def burner() -> Iterator[subprocess.Popen]:
    process = start_burner('openai-burner')
    yield process
    stop(process)


async def busy(tools: list[Tool], pid: int) -> None:
    top = next(tool for tool in tools if tool.name == 'top_processes')

    async def burning() -> bool:
        scan = await top.function(sort='cpu', limit=100)
        return any(p['pid'] == pid and (p['cpu'] or 0) > 10 for p in scan['processes'])

    deadline = time.monotonic() + 30
    while not await burning():
        assert time.monotonic() < deadline, 'the burner never showed as busy'
        await asyncio.sleep(0.5)


def streamed(client: httpx.Client, url: str, body: dict[str, Any]) -> list[str | ToolCall]:
    with client.stream('POST', url + '/v1/chat/completions', json=body) as response:
        assert response.status_code == 200, response.read()
        return list(stream_pieces(sse_chunks(response.iter_lines())))


async def test_a_streamed_call_runs_the_real_tool_and_the_model_answers_from_its_result(
        tools: list[Tool], burner: subprocess.Popen) -> None:
    await busy(tools, burner.pid)
    specs = [tool.spec for tool in tools]
    turns = [ChatTurn('user', 'What is using my CPU right now?')]
    with FakeOpenAI() as server, httpx.Client(timeout=30) as client:
        server.tool_call = {'name': 'top_processes', 'arguments': {'sort': 'cpu', 'limit': 20}}
        server.answer_from_tools = lambda results: 'Busiest: ' + ', '.join(
            f'{p["name"]} (pid {p["pid"]})' for p in json.loads(results[-1]['content'])['processes'])
        pieces = streamed(client, server.url, chat_request('stand-in', turns, specs))
        [call] = [piece for piece in pieces if isinstance(piece, ToolCall)]
        assert call == ToolCall('top_processes', {'sort': 'cpu', 'limit': 20}, 'call_stand_in_1')
        result = await run_tool(call, tools)
        assert result.ok
        turns += [ChatTurn('assistant', '', tool_calls=(call,)),
                  ChatTurn('tool', result.content, tool_call_id=call.id, tool_name=call.name)]
        answer = ''.join(p for p in streamed(client, server.url, chat_request('stand-in', turns, specs))
                         if isinstance(p, str))
        # the same call, whole (not streamed)
        whole = client.post(server.url + '/v1/chat/completions',
                            json=chat_request('stand-in', turns[:1], specs, stream=False)).json()
    offered = {tool['function']['name'] for tool in server.bodies[0]['tools']}
    assert offered == {'system_metrics', 'top_processes', 'machine_history', 'alerts_overview'}
    sent = server.bodies[1]['messages']
    assert sent[1]['tool_calls'][0]['function']['arguments'] == '{"sort": "cpu", "limit": 20}'
    assert sent[2]['role'] == 'tool' and sent[2]['tool_call_id'] == 'call_stand_in_1'
    [row] = [p for p in json.loads(sent[2]['content'])['processes'] if p['pid'] == burner.pid]
    assert row['name'] == 'openai-burner' and row['cpu'] > 10, 'the real scan went back to the model'
    assert f'openai-burner (pid {burner.pid})' in answer
    assert parse_tool_calls(whole['choices'][0]['message']) == [call]


# --- against llama-cpp-python's OpenAI-compatible server -------------------------------------------------

@pytest.fixture(scope='module')
def llama_server(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp('llama-server') / 'server.log'  # a file: llama.cpp's log would fill a pipe
    with log.open('wb') as output:
        process = subprocess.Popen(
            [sys.executable, '-m', 'llama_cpp.server', '--model', str(default_model_path(models_dir)),
             '--chat_format', 'chatml-function-calling', '--host', '127.0.0.1', '--port', str(port),
             '--n_ctx', '2048'], stdout=output, stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}'
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, f'llama_cpp.server ended: {log.read_text(errors="replace")[-2000:]}'
            try:
                if httpx.get(url + '/v1/models', timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, 'llama_cpp.server did not start'
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.model
async def test_llama_cpp_servers_forced_call_is_read_whole_and_streamed(llama_server: str,
                                                                        tools: list[Tool]) -> None:
    specs = [tool.spec for tool in tools]
    body = chat_request('gemma', [ChatTurn('user', 'What is using my CPU right now?')], specs,
                        tool_choice=forced_choice('top_processes'), stream=False)
    body['temperature'] = 0.0
    with httpx.Client(timeout=300) as client:
        whole = client.post(llama_server + '/v1/chat/completions', json=body)
        assert whole.status_code == 200, whole.text
        [call] = parse_tool_calls(whole.json()['choices'][0]['message'])
        pieces = streamed(client, llama_server, {**body, 'stream': True})
    assert call.name == 'top_processes' and not call.problem, call
    assert call.id and isinstance(call.arguments, dict)
    assert call.arguments.get('sort', 'cpu') in ('cpu', 'memory', 'gpu_memory'), 'the grammar holds to the enum'
    [streamed_call] = [piece for piece in pieces if isinstance(piece, ToolCall)]
    assert streamed_call.name == 'top_processes' and not streamed_call.problem
    assert streamed_call.arguments == call.arguments, 'the deltas put together give the same call'
    # the app's checks apply to what the model wrote: the grammar keeps the types, not the ranges
    result = await run_tool(call, tools)
    assert result.ok or result.content.startswith('Invalid arguments: limit')
