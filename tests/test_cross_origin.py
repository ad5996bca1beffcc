"""A web page from another origin must not read the user's chats or act for them (default mode: loopback,
no token); DNS rebinding must not reach the app under a foreign name. Scripts without an Origin keep working."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from jarvis.config import Settings
from jarvis.security import cookie_value, parse_origin
from jarvis.web_guard import GuardPolicy, split_host

from .helpers.browser import needs_chromium, wait_for
from .helpers.foreign_page import FRIENDLY_PAGE, ForeignPage
from .helpers.raw_http import request_head, websocket_handshake
from .helpers.server import AppServer, free_port

ALLOWED_ORIGIN = 'http://localhost:5173'  # given with --allow-origin
ENV_ORIGIN = 'http://tools.example:9000'  # given in JARVIS_ALLOW_ORIGINS
ALLOWED_HOST = 'jarvis.lan'  # given with --allow-host
NICEGUI_SOCKET = '/_nicegui_ws/socket.io/?EIO=4&transport=websocket'


@pytest.fixture(scope='module')
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """The real app on loopback with one allowed origin from a flag, one from the environment and an allowed name."""
    app = AppServer(tmp_path_factory.mktemp('guarded'),
                    args=['--no-default-model', '--allow-origin', ALLOWED_ORIGIN, '--allow-host', ALLOWED_HOST],
                    env={'JARVIS_ALLOW_ORIGINS': ENV_ORIGIN})
    with app:
        yield app


def calculator_enabled(app: AppServer) -> bool:
    plugins = httpx.get(app.url + '/api/plugins', timeout=30).json()
    return next(p for p in plugins if p['name'] == 'Calculator')['state'] == 'enabled'


def user_messages(app: AppServer) -> list[str]:
    history = httpx.get(app.url + '/api/chat/history?limit=1000', timeout=30).json()
    return [m['text'] for m in history if m['role'] == 'user']


# --- a real browser: the attack from another origin, and the app's own page ------------------------


@pytest.mark.browser
@needs_chromium
def test_a_page_from_another_origin_can_neither_act_nor_listen(server: AppServer, browser) -> None:  # type: ignore[no-untyped-def]
    with ForeignPage(server.port) as foreign:
        browser.get(foreign.url)
        attack = wait_for(lambda: (a := browser.execute_script('return window.attack'))['fetchesDone']
                          and 'connecting' not in a['sockets'].values() and a,
                          timeout=20, message='the foreign page did not finish its attempts')
        # a script (no Origin) chats meanwhile: a socket that had opened would receive it
        assert httpx.post(server.url + '/api/chat', json={'message': 'what is 6*7'}, timeout=30).status_code == 200
        attack = browser.execute_script('return window.attack')
    assert len(attack['fetches']) == 4, attack
    assert attack['opened'] == [], f'a socket opened for the foreign page: {attack}'
    assert attack['received'] == [], attack
    assert calculator_enabled(server), 'the foreign page switched the Calculator off'
    assert user_messages(server) == ['what is 6*7'], 'the foreign page planted a chat message'


@pytest.mark.browser
@needs_chromium
def test_the_apps_own_page_connects_by_address_and_by_localhost(server: AppServer, browser) -> None:  # type: ignore[no-untyped-def]
    def indicator() -> str:
        return browser.find_element(By.CSS_SELECTOR, '[data-testid="connection-indicator"]').text.strip()

    for number, base in ((6, server.url), (7, f'http://localhost:{server.port}')):
        browser.get(base + '/chat')
        wait_for(lambda: indicator() == 'Connected', timeout=20, message=f'the page at {base} did not connect')
        box = browser.find_element(By.CSS_SELECTOR, 'textarea[data-testid="chat-input"]')
        box.send_keys(f'what is {number}*{number}', Keys.ENTER)  # the page's own socket carries the message
        wait_for(lambda: any(e.text.endswith(str(number * number)) for e in browser.find_elements(
            By.CSS_SELECTOR, '[data-testid="bubble-assistant"] .jarvis-bubble-text')), message=f'no answer at {base}')


@pytest.mark.browser
@needs_chromium
def test_a_page_the_user_allowed_can_use_the_api(tmp_path: Path, browser) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    with ForeignPage(port, FRIENDLY_PAGE) as page, \
            AppServer(tmp_path / 'data', port=port, args=['--no-default-model', '--allow-origin', page.url]):
        browser.get(page.url)
        result = wait_for(lambda: (r := browser.execute_script('return window.result')).get('chat')
                          and r.get('plugins') and r.get('textPlain') and 'system_metrics' in r['eventTypes'] and r,
                          timeout=20, message='the allowed page did not get its answers')
    assert result['chat'] == '8 * 8 = 64', result
    assert 'Calculator' in result['plugins'], result
    assert result['textPlain'].startswith('415 '), 'even an allowed page sends JSON'
    assert result['events'] == 'open' and 'system_metrics' in result['eventTypes'], result


# --- Host: only names of this server (DNS rebinding) -------------------------------------------------


def test_only_this_servers_names_are_answered(guarded: AppServer) -> None:
    port = guarded.port
    for host in (f'127.0.0.1:{port}', f'localhost:{port}', f'[::1]:{port}', f'LocalHost:{port}', 'localhost',
                 f'{ALLOWED_HOST}:{port}', f'{ALLOWED_HOST.upper()}:{port}', '127.0.0.1'):
        status, _, _ = request_head(port, 'GET', '/api/hub/stats', {'Host': host, 'Connection': 'close'})
        assert status == 200, host
        assert websocket_handshake(port, '/api/events', host=host) == 101, host
    for host in (f'evil.example:{port}', f'localhost.evil.example:{port}', f'{ALLOWED_HOST}.evil.example:{port}',
                 f'127.0.0.1.nip.io:{port}', f'192.168.1.10:{port}', f'0.0.0.0:{port}', f'localhost:{port}:1', ''):
        status, headers, body = request_head(port, 'GET', '/api/hub/stats', {'Host': host, 'Connection': 'close'})
        assert status == 403, host
        assert headers['content-type'] == 'application/json'
        assert '--allow-host' in json.loads(body)['error'], body
        assert websocket_handshake(port, '/api/events', host=host) == 403, host
        assert websocket_handshake(port, NICEGUI_SOCKET, host=host) == 403, host
    status, headers, body = request_head(guarded.port, 'GET', '/chat',
                                         {'Host': f'evil.example:{port}', 'Connection': 'close'})
    assert status == 403 and headers['content-type'].startswith('text/html')
    assert b'--allow-host' in body and b'evil.example' in body


# --- Origin: this app's own pages, or origins the user allowed ---------------------------------------


def test_requests_from_other_origins_are_refused_and_scripts_work(guarded: AppServer) -> None:
    port, url = guarded.port, guarded.url
    toggle = {'plugin': 'Calculator', 'enabled': True}  # no change when it goes through: it is enabled
    for origin in (None, url, ALLOWED_ORIGIN, ENV_ORIGIN):
        headers = {} if origin is None else {'Origin': origin}
        response = httpx.post(url + '/api/plugins/toggle', json=toggle, headers=headers, timeout=30)
        assert response.status_code == 200, (origin, response.text)
        assert websocket_handshake(port, '/api/events', origin=origin) == 101, origin
    # the same app by its other name is the same origin as long as Host says so
    assert websocket_handshake(port, '/api/events', host=f'localhost:{port}', origin=f'http://localhost:{port}') == 101
    assert websocket_handshake(port, NICEGUI_SOCKET, origin=url) == 101

    foreign = [f'http://localhost:{free_port()}', 'http://127.0.0.1:1', f'https://127.0.0.1:{port}',
               f'http://localhost:{port}', 'http://localhost:5174', 'https://localhost:5173', 'http://evil.example',
               'null', f'http://127.0.0.1:{port}.evil.example', f'http://127.0.0.1:{port}/path', 'garbage']
    for origin in foreign:
        response = httpx.post(url + '/api/plugins/toggle', json={'plugin': 'Calculator', 'enabled': False},
                              headers={'Origin': origin}, timeout=30)
        assert response.status_code == 403, (origin, response.text)
        assert '--allow-origin' in response.json()['error']
        assert httpx.get(url + '/api/chat/history', headers={'Origin': origin}).status_code == 403, origin
        assert websocket_handshake(port, '/api/events', origin=origin) == 403, origin
        assert websocket_handshake(port, NICEGUI_SOCKET, origin=origin) == 403, origin
    assert calculator_enabled(guarded)
    # a preflight from a foreign page is refused as well, so the browser never sends the request itself
    asking = {'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type'}
    preflight = httpx.options(url + '/api/chat', headers={'Origin': foreign[0], **asking})
    assert preflight.status_code == 403 and 'access-control-allow-origin' not in preflight.headers


def test_allowed_origins_get_cors_headers_and_the_apps_own_pages_need_none(guarded: AppServer) -> None:
    url = guarded.url
    asking = {'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type'}
    preflight = httpx.options(url + '/api/chat', headers={'Origin': ALLOWED_ORIGIN, **asking})
    assert preflight.status_code == 204
    assert preflight.headers['access-control-allow-origin'] == ALLOWED_ORIGIN
    assert 'POST' in preflight.headers['access-control-allow-methods']
    assert 'content-type' in preflight.headers['access-control-allow-headers'].lower()
    answer = httpx.get(url + '/api/plugins', headers={'Origin': ENV_ORIGIN})
    assert answer.status_code == 200 and answer.headers['access-control-allow-origin'] == ENV_ORIGIN
    assert 'Origin' in answer.headers['vary']
    assert 'access-control-allow-origin' not in httpx.get(url + '/api/plugins', headers={'Origin': url}).headers
    assert 'access-control-allow-origin' not in httpx.get(url + '/api/plugins').headers


# --- content types: state-changing requests take JSON only ------------------------------------------


def test_state_changing_routes_take_json_only(guarded: AppServer) -> None:
    url = guarded.url
    body = json.dumps({'message': 'note: planted as text'})
    for content_type in ('text/plain', 'text/plain;charset=UTF-8', 'application/x-www-form-urlencoded',
                         'multipart/form-data; boundary=x', 'application/jsonx', 'text/json', None):
        headers = {} if content_type is None else {'Content-Type': content_type}
        for method in ('POST', 'PUT', 'PATCH', 'DELETE'):
            response = httpx.request(method, url + '/api/chat', content=body, headers=headers, timeout=30)
            assert response.status_code == 415, (method, content_type, response.text)
            assert 'application/json' in response.json()['error']
        # the rule goes by path prefix, so routes added later under /v1 and /mcp are covered too
        for path in ('/v1/chat/completions', '/mcp', '/mcp/messages'):
            assert httpx.post(url + path, content=body, headers=headers).status_code == 415, (path, content_type)
    assert 'note: planted as text' not in user_messages(guarded)

    for content_type in ('application/json', 'application/json; charset=utf-8', 'Application/JSON'):
        response = httpx.post(url + '/api/chat', content=json.dumps({'message': 'what is 2+3'}),
                              headers={'Content-Type': content_type}, timeout=30)
        assert response.status_code == 200 and response.json()['text'] == '2 + 3 = 5', content_type
    # a POST without a body needs no content type: `curl -X POST .../api/chat/stop` works
    assert httpx.post(url + '/api/chat/stop').status_code == 200
    assert httpx.post(url + '/api/chat/stop', headers={'Content-Type': 'text/plain'}).status_code == 415


def test_the_host_rules_on_loopback_and_on_a_network_bind(tmp_path: Path) -> None:
    loopback = GuardPolicy.from_settings(Settings(data_dir=tmp_path, allowed_hosts=('jarvis.lan',)))
    assert all(loopback.allows_host(h) for h in ('localhost', '127.0.0.1', '127.0.0.2', '::1', 'jarvis.lan'))
    assert not any(loopback.allows_host(h) for h in ('192.168.1.10', '0.0.0.0', 'evil.example', socket.gethostname()))
    network = GuardPolicy.from_settings(Settings(data_dir=tmp_path, host='0.0.0.0', access_token='t'))
    short = socket.gethostname().lower().split('.')[0]
    for host in ('localhost', '127.0.0.1', '192.168.1.10', '10.0.0.7', 'fe80::1', short, f'{short}.local',
                 socket.gethostname().lower()):
        assert network.allows_host(host), host
    for host in ('evil.example', 'jarvis.lan', f'{short}.evil.example', 'localhost.evil.example'):
        assert not network.allows_host(host), host
    bound = GuardPolicy.from_settings(Settings(data_dir=tmp_path, host='jarvis.home.arpa', access_token='t'))
    assert bound.allows_host('jarvis.home.arpa') and not bound.allows_host('evil.example')

    assert split_host('[::1]:8080') == ('::1', 8080) and split_host('LOCALHOST') == ('localhost', None)
    assert split_host('[0:0::1]') == ('::1', None)
    for bad in ('', ':80', 'a:b', 'a:0', 'a:65536', '[::1', '[::1]x', '[nope]:80', '::1', 'a:80:90', 'a:'):
        assert split_host(bad) is None, bad
    assert parse_origin('http://LOCALHOST:5173') == ('http', 'localhost', 5173)
    assert parse_origin('https://example.com') == ('https', 'example.com', 443)
    assert parse_origin('http://[::1]:8080') == ('http', '::1', 8080)
    for bad in ('null', '', 'http://', 'http://a/', 'http://a?x', 'http://u@a', 'ws://a', 'http://a:99999', 'http://a:'):
        assert parse_origin(bad) is None, bad
    # a broken cookie of another app on the same host does not hide ours
    assert cookie_value('broken="; x=1; jarvis_token=a%20b') == 'a%20b'
    assert cookie_value('other=1') is None


# --- the flags -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(('flag', 'value', 'words'), [
    ('--allow-origin', '*', 'one origin'),
    ('--allow-origin', 'localhost:5173', 'http://'),
    ('--allow-origin', 'ftp://files.example', 'http://'),
    ('--allow-origin', 'http://tools.example/app', 'no path'),
    ('--allow-host', 'http://jarvis.lan', 'a name'),
    ('--allow-host', 'jarvis.lan:8080', 'a name'),
    ('--allow-host', '*', 'a name'),
])
def test_a_bad_allow_flag_refuses_to_start_with_one_line(tmp_path: Path, flag: str, value: str, words: str) -> None:
    result = subprocess.run([sys.executable, '-m', 'jarvis', '--no-open', '--port', str(free_port()),
                             '--data-dir', str(tmp_path), flag, value],
                            capture_output=True, text=True, timeout=60, env={**os.environ, 'JARVIS_ALLOW_ORIGINS': ''})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('jarvis: ') and words in lines[0], result.stderr
