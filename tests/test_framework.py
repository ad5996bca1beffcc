"""The guard on jarvis/framework.py: an upgrade of NiceGUI, uvicorn or pywebview that breaks one of
the private parts the app relies on fails here, by name, instead of somewhere in a window."""
from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest
import uvicorn

from jarvis import framework

PACKAGE = Path(framework.__file__).parent


def test_every_private_part_the_app_relies_on_is_still_there() -> None:
    assert framework.problems() == []


def test_the_calm_server_loop_replaces_uvicorns_own() -> None:
    original = uvicorn.Server.main_loop
    try:
        framework.calm_server_loop()
        assert uvicorn.Server.main_loop is framework._calm_main_loop  # pylint: disable=protected-access
    finally:
        uvicorn.Server.main_loop = original  # type: ignore[method-assign]


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
