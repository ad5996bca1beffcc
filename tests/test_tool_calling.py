"""Tool calling through the chat pipeline, against the real app and a local server speaking Ollama's chat
protocol with tool calls (tests/helpers/fake_ollama.py): the model asks for a tool, the app runs it on the
real machine and feeds the result back, the model answers from it, and the chat shows which tool ran.
A model that does not declare tools keeps the route of before: the plugins first."""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mcp import Client

from .helpers.browser import wait_for
from .helpers.fake_ollama import FakeModel, FakeOllama
from .helpers.fake_openai import PLAIN_REPLY, FakeOpenAI
from .helpers.server import AppServer
from .test_processes import start_burner, stop

TOOL_MODEL = 'caller:latest'
PLAIN_MODEL = 'plain:latest'
MACHINE_TOOLS = {'system_metrics', 'top_processes', 'machine_history', 'alerts_overview', 'why_slow', 'model_fit'}


@pytest.fixture(scope='module')
def ollama() -> Iterator[FakeOllama]:
    with FakeOllama([FakeModel(TOOL_MODEL, capabilities=('completion', 'tools')), FakeModel(PLAIN_MODEL)]) as server:
        yield server


@pytest.fixture(scope='module')
def app(tmp_path_factory: pytest.TempPathFactory, ollama: FakeOllama) -> Iterator[AppServer]:
    with AppServer(tmp_path_factory.mktemp('tools'), env={'OLLAMA_HOST': ollama.url}) as server:
        yield server


@pytest.fixture
def fake(ollama: FakeOllama) -> Iterator[FakeOllama]:
    yield ollama
    ollama.tool_call = None
    ollama.chat_bodies.clear()


def load(app: AppServer, model: str) -> None:
    response = httpx.post(app.url + '/api/models/load', json={'model': model, 'source': 'ollama'}, timeout=30)
    assert response.status_code == 200, response.text


def chat(app: AppServer, message: str) -> dict[str, Any]:
    response = httpx.post(app.url + '/api/chat', json={'message': message}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def offered(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {tool['function']['name']: tool for tool in body.get('tools') or []}


def tool_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [message for message in body['messages'] if message['role'] == 'tool']


def busiest(results: list[dict[str, Any]]) -> str:
    """The scripted model's answer: every process the tool named, with its pid and CPU share."""
    processes = json.loads(results[-1]['content'])['processes']
    return 'Busiest now: ' + ', '.join(f'{p["name"]} (pid {p["pid"]}, {p["cpu"]:.0f}% CPU)' for p in processes)


def test_a_tool_model_reads_the_real_busiest_process_and_the_chat_shows_the_tool(
        app: AppServer, fake: FakeOllama) -> None:
    burner = start_burner('tool-burner')
    try:
        def burning() -> bool:  # two scans apart, so that its share of a core is known
            scan = httpx.get(app.url + '/api/system/processes', params={'sort': 'cpu', 'limit': 50}, timeout=30).json()
            return any(p['pid'] == burner.pid and (p['cpu'] or 0) > 10 for p in scan['processes'])

        wait_for(burning, timeout=30, message='the burner never showed as busy')
        load(app, TOOL_MODEL)
        fake.tool_call = {'name': 'top_processes', 'arguments': {'sort': 'cpu', 'limit': 20}}
        fake.answer_from_tools = busiest
        answer = chat(app, 'What is using my CPU right now?')
    finally:
        stop(burner)
        fake.answer_from_tools = FakeOllama().answer_from_tools

    asked, answered = fake.chat_bodies[-2:]
    tools = offered(asked)
    assert MACHINE_TOOLS <= set(tools) and 'plugin_calculator' in tools
    assert tools['top_processes']['type'] == 'function'
    schema = tools['top_processes']['function']['parameters']
    assert schema['type'] == 'object' and schema['properties']['sort']['enum'] == ['cpu', 'memory', 'gpu_memory']
    assert 'processes' in tools['top_processes']['function']['description']
    assert tools['plugin_calculator']['function']['parameters']['required'] == ['request']
    # the call went back to the model with the real scan: the burner, its pid and its share of a core
    [call] = [m for m in answered['messages'] if m.get('tool_calls')]
    assert call['tool_calls'][0]['function'] == {'name': 'top_processes', 'arguments': {'sort': 'cpu', 'limit': 20}}
    [result] = tool_messages(answered)
    assert result['tool_name'] == 'top_processes'
    scan = json.loads(result['content'])
    [row] = [p for p in scan['processes'] if p['pid'] == burner.pid]
    assert row['name'] == 'tool-burner' and row['cpu'] > 10
    assert len(scan['processes']) == 20
    # the answer is the model's, made from that result, and it says which tool ran
    assert f'tool-burner (pid {burner.pid}' in answer['text']
    assert answer['source'] == TOOL_MODEL and answer['status'] == 'done'
    assert answer['tools'] == [{'name': 'top_processes', 'arguments': 'top_processes(sort=cpu, limit=20)', 'ok': True}]
    history = httpx.get(app.url + '/api/chat/history', params={'limit': 1}, timeout=30).json()
    assert history[-1]['tools'] == answer['tools'], 'kept with the message'


def test_plugins_are_tools_run_with_their_switch(app: AppServer, fake: FakeOllama) -> None:
    load(app, TOOL_MODEL)
    fake.tool_call = {'name': 'plugin_calculator', 'arguments': {'request': 'what is 6*7'}}
    answer = chat(app, 'what is 6*7')  # a tool model decides: the Calculator answers as its tool
    assert answer['source'] == TOOL_MODEL
    ran = json.loads(tool_messages(fake.chat_bodies[-1])[0]['content'])
    assert ran['plugin'] == 'Calculator' and ran['answer'].endswith('= 42')
    assert '42' in answer['text'] and answer['tools'][0]['name'] == 'plugin_calculator'

    switched = httpx.post(app.url + '/api/plugins/toggle', json={'plugin': 'Calculator', 'enabled': False},
                          timeout=30)
    assert switched.status_code == 200, switched.text
    try:
        answer = chat(app, 'what is 6*7')
    finally:
        httpx.post(app.url + '/api/plugins/toggle', json={'plugin': 'Calculator', 'enabled': True}, timeout=30)
    assert 'plugin_calculator' not in offered(fake.chat_bodies[-2]), 'a plugin switched off is not offered'
    [refused] = tool_messages(fake.chat_bodies[-1])
    assert 'no tool called "plugin_calculator"' in refused['content']
    assert answer['status'] == 'done' and answer['tools'][0]['ok'] is False


def test_a_failing_tool_gives_the_model_an_error_and_the_chat_an_answer(app: AppServer, fake: FakeOllama) -> None:
    load(app, TOOL_MODEL)
    fake.tool_call = {'name': 'machine_history', 'arguments': {'range': '2y'}}
    answer = chat(app, 'How busy was the CPU over the last two years?')
    [result] = tool_messages(fake.chat_bodies[-1])
    assert result['content'].startswith('Invalid arguments: range:')
    assert answer['status'] == 'done' and 'machine_history said: Invalid arguments' in answer['text']
    assert answer['tools'] == [{'name': 'machine_history', 'arguments': 'machine_history(range=2y)', 'ok': False}]


def test_a_model_without_tools_keeps_the_plugins_first(app: AppServer, fake: FakeOllama) -> None:
    load(app, PLAIN_MODEL)
    fake.tool_call = {'name': 'top_processes', 'arguments': {}}
    answer = chat(app, 'what is 2+2')
    assert answer['source'] == 'Calculator' and answer['tools'] == []
    answer = chat(app, 'Tell me a story.')
    assert answer['source'] == PLAIN_MODEL and answer['tools'] == []
    assert 'tools' not in fake.chat_bodies[-1], 'no tools offered to a model that did not declare them'


async def test_the_mcp_tools_and_the_chats_tools_are_the_same(app: AppServer, fake: FakeOllama) -> None:
    load(app, TOOL_MODEL)
    chat(app, 'Hello?')
    tools = offered(fake.chat_bodies[-1])
    async with Client(app.url + '/mcp') as client:
        mcp = {tool.name: tool for tool in (await client.list_tools()).tools}
    for name in MACHINE_TOOLS:
        function = tools[name]['function']
        assert mcp[name].description == function['description']
        assert mcp[name].input_schema['properties'].keys() == function['parameters']['properties'].keys()


# --- a model on an OpenAI-compatible server (the remote engines) -------------------------------------------

def test_a_model_on_an_openai_compatible_server_calls_tools_too(app: AppServer) -> None:
    burner = start_burner('server-burner')
    try:
        with FakeOpenAI() as openai_server:
            added = httpx.post(app.url + '/api/models/servers', json={'url': openai_server.url, 'name': 'standin'},
                               timeout=30)
            assert added.status_code == 200, added.text
            response = httpx.post(app.url + '/api/models/load',
                                  json={'model': 'stand-in', 'source': 'server:standin'}, timeout=30)
            assert response.status_code == 200, response.text
            openai_server.tool_call = {'name': 'top_processes', 'arguments': {'sort': 'cpu', 'limit': 20}}
            openai_server.answer_from_tools = lambda results: 'Busiest: ' + ', '.join(
                f'{p["name"]} (pid {p["pid"]})' for p in json.loads(results[-1]['content'])['processes'])

            def burning() -> bool:
                scan = httpx.get(app.url + '/api/system/processes', params={'sort': 'cpu', 'limit': 50},
                                 timeout=30).json()
                return any(p['pid'] == burner.pid and (p['cpu'] or 0) > 10 for p in scan['processes'])

            wait_for(burning, timeout=30, message='the burner never showed as busy')
            answer = chat(app, 'What is using my CPU right now?')
            assert MACHINE_TOOLS <= set(offered(openai_server.bodies[-2]))
            [result] = tool_messages(openai_server.bodies[-1])
            assert any(p['pid'] == burner.pid for p in json.loads(result['content'])['processes'])
            assert f'server-burner (pid {burner.pid})' in answer['text'] and answer['status'] == 'done'
            assert answer['tools'][0]['name'] == 'top_processes'

            # a server that refuses tools is asked again without them, and from then on not offered them
            openai_server.refuse_tools = True
            count = len(openai_server.bodies)
            plain = chat(app, 'hello there')
            assert plain['status'] == 'done' and plain['text'] == PLAIN_REPLY and not plain.get('tools')
            assert [bool(body.get('tools')) for body in openai_server.bodies[count:]] == [True, False]
            chat(app, 'and again')
            assert not openai_server.bodies[-1].get('tools')
    finally:
        stop(burner)
        httpx.request('DELETE', app.url + '/api/models/servers/standin', timeout=30)


def test_the_model_fit_and_the_diagnosis_are_tools_too(app: AppServer, fake: FakeOllama) -> None:
    load(app, TOOL_MODEL)
    fake.tool_call = {'name': 'model_fit', 'arguments': {'params_b': 7}}
    answer = chat(app, 'Can I run a 7B model?')
    [result] = tool_messages(fake.chat_bodies[-1])
    fit = json.loads(result['content'])
    assert (fit['params_b'], fit['quantization']) == (7.0, 'Q4_K_M') and fit['needed_bytes'] > 4 * 10**9
    assert fit['ram_free_bytes'] > 0 and fit['holders'], 'the live free memory and who holds it'
    assert answer['tools'][0]['name'] == 'model_fit' and answer['tools'][0]['ok']

    fake.tool_call = {'name': 'model_fit', 'arguments': {'params_b': -1}}
    refused = chat(app, 'Can I run a model with minus one billion parameters?')
    assert not refused['tools'][0]['ok'] and refused['status'] == 'done', 'a bad call is a result, the chat answers'

    fake.tool_call = {'name': 'why_slow', 'arguments': {}}
    chat(app, 'Why is my computer slow?')
    [result] = tool_messages(fake.chat_bodies[-1])
    assert {'findings', 'metrics'} <= set(json.loads(result['content']))
