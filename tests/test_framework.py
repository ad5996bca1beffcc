"""The guard on jarvis/framework.py: an upgrade of NiceGUI, uvicorn or pywebview that breaks one of
the private parts the app relies on fails here, by name, instead of somewhere in a window."""
from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from jarvis import framework

from .helpers.server import AppServer

PACKAGE = Path(framework.__file__).parent


def test_every_private_part_the_app_relies_on_is_still_there() -> None:
    assert framework.problems() == []


@pytest.fixture
def calm_uvicorn() -> Iterator[None]:
    original_loop = uvicorn.Server.main_loop
    had_flag = 'should_exit' in vars(uvicorn.Server)
    framework.calm_server_loop()
    try:
        yield
    finally:
        uvicorn.Server.main_loop = original_loop  # type: ignore[method-assign]
        if not had_flag:
            del uvicorn.Server.should_exit


def test_the_calm_server_loop_replaces_uvicorns_own(calm_uvicorn: None) -> None:
    assert uvicorn.Server.main_loop is framework._calm_main_loop  # pylint: disable=protected-access


async def test_the_calm_server_stops_as_soon_as_it_is_asked_not_at_its_next_tick(
        calm_uvicorn: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A signal handler or another thread sets should_exit: the server wakes for it, though it ticks
    rarely (here: once an hour; without the wake the server would not stop within the test's minute)."""
    monkeypatch.setattr(framework, 'SERVER_TICK_S', 3600.0)

    async def plain_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope['type'] == 'lifespan':
            while (await receive())['type'] != 'lifespan.shutdown':
                await send({'type': 'lifespan.startup.complete'})
            await send({'type': 'lifespan.shutdown.complete'})

    server = uvicorn.Server(uvicorn.Config(plain_app, host='127.0.0.1', port=0, log_level='warning'))
    # serve without uvicorn's own signal handlers (this is not the main thread's only server)
    monkeypatch.setattr(server, 'capture_signals', contextlib.nullcontext)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)  # the loop is waiting for its (hour-long) tick now
    threading.Thread(target=setattr, args=(server, 'should_exit', True)).start()  # as a signal handler would
    await asyncio.wait_for(serving, timeout=60)
    assert server.should_exit is True


async def test_an_idle_window_outbox_does_not_wake_every_second() -> None:
    """NiceGUI's outbox waits for work with a one-second timeout only to look whether it should stop
    (its stop() wakes it itself); quiet_windows() lengthens that wait."""
    from nicegui import outbox

    original = outbox.asyncio
    try:
        framework.quiet_windows()
        work = asyncio.Event()
        asyncio.get_running_loop().call_later(1.5, work.set)
        # the very call the outbox makes: it now waits past one second, for the work that comes
        await outbox.asyncio.wait_for(work.wait(), timeout=1.0)
        assert work.is_set()
        assert outbox.asyncio.sleep is asyncio.sleep, 'everything else is asyncio itself'
    finally:
        outbox.asyncio = original


def test_nicegui_prunes_once_a_minute_and_other_timers_keep_their_interval() -> None:
    from nicegui.app.app import prune_tab_storage
    from nicegui.client import Client
    from nicegui.slot import Slot

    asked: list[tuple[float, Any]] = []
    timer = framework._CalmPruneTimers(lambda interval, callback, **_: asked.append((interval, callback)))  # pylint: disable=protected-access
    for callback in (Client.prune_instances, Slot.prune_stacks, prune_tab_storage):
        timer(10, callback)
    timer(10, print)
    timer(5, Client.prune_instances)
    assert [interval for interval, _ in asked] == [framework.NICEGUI_PRUNE_INTERVAL_S] * 3 + [10, 5]


def test_the_windows_sockets_ping_rarely(tmp_path: Path) -> None:
    with AppServer(tmp_path / 'data') as app:
        handshake = httpx.get(app.url + '/_nicegui_ws/socket.io/?EIO=4&transport=polling')
    assert handshake.status_code == 200
    opened = json.loads(handshake.text[1:])  # an Engine.IO "open" packet: 0{...}
    assert opened['pingInterval'] == framework.SOCKET_PING_INTERVAL_S * 1000
    assert opened['pingTimeout'] == framework.SOCKET_PING_TIMEOUT_S * 1000


def test_no_other_module_touches_private_parts_of_the_frameworks() -> None:
    """Private attributes of NiceGUI elements and of uvicorn are used in jarvis/framework.py only."""
    offenders = []
    for path in PACKAGE.rglob('*.py'):
        if path.name == 'framework.py':
            continue
        tree = ast.parse(path.read_text(encoding='utf-8'))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ('_props', '_handle_content_change', 'main_loop',
                                                                  'sub_pages_router', '_classes', '_style'):
                offenders.append(f'{path.relative_to(PACKAGE)}:{node.lineno} .{node.attr}')
            if isinstance(node, ast.FunctionDef) and node.name == '_handle_content_change':
                offenders.append(f'{path.relative_to(PACKAGE)}:{node.lineno} overrides _handle_content_change')
    for path in PACKAGE.rglob('*.js'):
        if 'did_handshake' in path.read_text(encoding='utf-8'):
            offenders.append(f'{path.relative_to(PACKAGE)} reads window.did_handshake (pass framework.HANDSHAKE_FLAG)')
    assert offenders == []


async def test_a_window_that_does_not_answer_in_time_is_no_error_of_the_app(caplog: pytest.LogCaptureFixture) -> None:
    from nicegui.javascript_request import JavaScriptRequest  # what a page's unanswered request raises

    with pytest.raises(TimeoutError) as raised:
        await JavaScriptRequest('never-answered', timeout=0.01)
    assert framework.is_window_timeout(raised.value), 'NiceGUI changed the message of its timeout'
    assert not framework.is_window_timeout(TimeoutError('the database is locked'))
    framework.quiet_window_timeouts()
    with caplog.at_level(logging.DEBUG):
        logging.getLogger('nicegui').error('background task failed', exc_info=raised.value)
        logging.getLogger('nicegui').error('another failure', exc_info=RuntimeError('real'))
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == ['another failure']
    assert any('did not answer in time' in r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG)
