"""Safe exposure: loopback by default; on any other interface every page, socket and route needs a token."""
from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import psutil
import pytest
import websockets
from selenium.webdriver.common.by import By
from websockets.exceptions import InvalidStatus

from jarvis.addresses import display_host
from jarvis.security import is_loopback, resolve_access

from .helpers.browser import needs_chromium, start_chromium, wait_for
from .helpers.server import AppServer, free_port


def outside_address() -> str | None:
    """An address of this machine that is not loopback (another host on the network would use it)."""
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith('127.'):
                return address.address
    return None


OUTSIDE = outside_address()
needs_network_address = pytest.mark.skipif(OUTSIDE is None, reason='this machine has no non-loopback IPv4 address')


def test_resolve_access_rules() -> None:
    assert resolve_access('127.0.0.1', None, insecure=False) is None
    assert resolve_access('localhost', None, insecure=False) is None
    generated = resolve_access('0.0.0.0', None, insecure=False)
    assert generated and len(generated) >= 24
    assert resolve_access('0.0.0.0', 'my-token', insecure=False) == 'my-token'
    assert resolve_access('0.0.0.0', None, insecure=True) is None
    with pytest.raises(ValueError, match='needs an access token'):
        resolve_access('0.0.0.0', '', insecure=False)
    assert is_loopback('::1') and not is_loopback('192.168.1.10') and not is_loopback('example.com')


class DefaultHost(AppServer):
    def command(self) -> list[str]:  # no --host at all: the default must be loopback
        return [sys.executable, '-m', 'jarvis', '--no-open', '--port', str(self.port),
                '--data-dir', str(self.data_dir), '--no-default-model']


@needs_network_address
def test_default_binds_loopback_only(tmp_path: Path) -> None:
    with DefaultHost(tmp_path / 'data') as app:
        assert httpx.get(app.url + '/api/hub/stats').status_code == 200
        with pytest.raises(httpx.ConnectError):
            httpx.get(f'http://{OUTSIDE}:{app.port}/api/hub/stats', timeout=3)
        assert 'access token' not in app.output()


@pytest.fixture
def exposed(tmp_path: Path) -> Iterator[tuple[AppServer, str]]:
    with AppServer(tmp_path / 'data', host='0.0.0.0') as app:
        found = re.search(r'access token: (\S+)', app.output())
        assert found, app.output()
        yield app, found.group(1)


def test_every_route_page_and_socket_needs_the_token(exposed: tuple[AppServer, str]) -> None:
    app, token = exposed
    base = app.url
    for path in ('/', '/chat', '/api/system/status', '/api/chat/history', '/api/models', '/api/plugins',
                 '/_nicegui_ws/socket.io/?EIO=4&transport=polling', '/assets/icon.png'):
        response = httpx.get(base + path)
        assert response.status_code == 401, path
        assert 'token' in response.text
    assert httpx.post(base + '/api/chat', json={'message': 'hi'}).status_code == 401
    assert httpx.get(base + '/api/system/status', headers={'Authorization': 'Bearer wrong'}).status_code == 401
    assert httpx.get(base + '/api/system/status?token=wrong').status_code == 401

    assert httpx.get(base + '/api/system/status', headers={'Authorization': f'Bearer {token}'}).status_code == 200
    assert httpx.get(base + '/api/system/status', headers={'X-Jarvis-Token': token}).status_code == 200
    page = httpx.get(base + f'/?token={token}')
    assert page.status_code == 200 and 'J.A.R.V.I.S.' in page.text
    cookie = page.cookies.get('jarvis_token')
    assert cookie == token, 'the first page load sets a cookie for the page\'s own requests'
    with httpx.Client(base_url=base, cookies={'jarvis_token': token}) as browser_like:
        assert browser_like.get('/_nicegui_ws/socket.io/?EIO=4&transport=polling').status_code == 200
        answer = browser_like.post('/api/chat', json={'message': 'what is 1+1'})
        assert answer.status_code == 200 and answer.json()['text'] == '1 + 1 = 2'


def test_on_the_network_the_machines_names_and_addresses_are_answered(exposed: tuple[AppServer, str]) -> None:
    app, token = exposed
    auth = {'Authorization': f'Bearer {token}'}
    short = socket.gethostname().split('.')[0]
    for host in (f'{short}:{app.port}', f'{short}.local:{app.port}', f'192.0.2.7:{app.port}', f'localhost:{app.port}'):
        assert httpx.get(app.url + '/api/hub/stats', headers={**auth, 'Host': host}).status_code == 200, host
    refused = httpx.get(app.url + '/api/hub/stats', headers={**auth, 'Host': f'evil.example:{app.port}'})
    assert refused.status_code == 403 and '--allow-host' in refused.json()['error']


def test_events_websocket_needs_the_token(exposed: tuple[AppServer, str]) -> None:
    app, token = exposed
    url = app.url.replace('http', 'ws') + '/api/events'

    async def run() -> None:
        with pytest.raises(InvalidStatus):
            async with websockets.connect(url):
                pass
        async with websockets.connect(f'{url}?token={token}') as events:
            assert 'type' in (await asyncio.wait_for(events.recv(), 10))

    asyncio.run(run())


@needs_chromium
@needs_network_address
def test_a_browser_on_the_network_works_with_the_token(exposed: tuple[AppServer, str]) -> None:
    app, token = exposed
    driver = start_chromium()
    try:
        driver.get(f'http://{OUTSIDE}:{app.port}/')
        assert 'access token required' in driver.find_element(By.TAG_NAME, 'body').text
        driver.get(f'http://{OUTSIDE}:{app.port}/?token={token}')
        wait_for(lambda: driver.find_element(By.CSS_SELECTOR, '[data-testid="connection-indicator"]').text == 'Connected',
                 timeout=20, message='the UI socket did not connect with the token cookie')
        wait_for(lambda: driver.find_element(By.CSS_SELECTOR, '[data-testid="cpu-value"]').text.endswith('%'))
    finally:
        driver.quit()


def test_no_token_on_the_network_refuses_to_start_unless_insecure(tmp_path: Path) -> None:
    port = free_port()
    refused = subprocess.run([sys.executable, '-m', 'jarvis', '--no-open', '--host', '0.0.0.0', '--port', str(port),
                              '--token', '', '--data-dir', str(tmp_path / 'a')],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert 'needs an access token' in refused.stderr and '--insecure' in refused.stderr

    with AppServer(tmp_path / 'b', host='0.0.0.0', args=['--no-default-model', '--insecure']) as app:
        assert httpx.get(app.url + '/api/system/status').status_code == 200
        assert 'access token' not in app.output()


# spaces, a semicolon, quotes, a comma, an equals sign, a percent escape and non-ASCII: all printable
ODD_TOKEN = 'my secret; "Jarvis" ü,=%20'


@pytest.fixture(scope='module')
def odd_token_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    with AppServer(tmp_path_factory.mktemp('odd'), host='0.0.0.0', args=['--no-default-model', '--token', ODD_TOKEN]) as app:
        yield app


def printed_address(app: AppServer) -> str:
    found = re.search(r'jarvis: J.A.R.V.I.S. is at (http://\S+)', app.output())
    assert found, app.output()
    return found.group(1)


def test_any_printable_token_works_for_a_whole_session(odd_token_app: AppServer) -> None:
    app = odd_token_app
    address = printed_address(app)
    # the address other machines reach it by (the app serves on 0.0.0.0), ready to paste
    assert address == f'http://{display_host("0.0.0.0")}:{app.port}/?token={quote(ODD_TOKEN, safe="")}'
    with httpx.Client(timeout=30) as session:
        assert session.get(address).status_code == 200  # the first page: ?token= sets the cookie
        cookie = session.cookies.get('jarvis_token')
        assert cookie and ';' not in cookie and ' ' not in cookie and cookie.isascii()
        # later: the cookie alone (on the same host: a cookie belongs to the address it was set for)
        origin = address.split('/?')[0]
        assert session.get(origin + '/chat').status_code == 200
        assert session.get(origin + '/api/system/status').status_code == 200
        assert session.get(origin + '/_nicegui_ws/socket.io/?EIO=4&transport=polling').status_code == 200

    async def socket_with_the_cookie_only() -> None:
        url = origin.replace('http', 'ws') + '/api/events'
        async with websockets.connect(url, additional_headers={'Cookie': f'other=1; jarvis_token={cookie}'}) as events:
            assert 'type' in (await asyncio.wait_for(events.recv(), 10))
        with pytest.raises(InvalidStatus):  # the cookie as the token itself would be sent, unencoded, is not it
            async with websockets.connect(url, additional_headers={'Cookie': 'jarvis_token=my secret'}):
                pass

    asyncio.run(socket_with_the_cookie_only())
    # the other ways to give it: as typed (UTF-8) or percent-encoded
    raw = ODD_TOKEN.encode()
    assert httpx.get(app.url + '/api/hub/stats', headers={b'X-Jarvis-Token': raw}).status_code == 200
    assert httpx.get(app.url + '/api/hub/stats', headers={b'Authorization': b'Bearer ' + raw}).status_code == 200
    assert httpx.get(app.url + '/api/hub/stats', headers={'X-Jarvis-Token': quote(ODD_TOKEN)}).status_code == 200
    assert httpx.get(app.url + '/api/hub/stats', headers={'X-Jarvis-Token': 'my secret'}).status_code == 401


@needs_chromium
def test_a_browser_session_with_an_odd_token_connects_on_every_page(odd_token_app: AppServer, browser) -> None:  # type: ignore[no-untyped-def]
    def connected() -> bool:
        return browser.find_element(By.CSS_SELECTOR, '[data-testid="connection-indicator"]').text == 'Connected'

    address = printed_address(odd_token_app)
    browser.get(address)
    wait_for(connected, timeout=20, message='the first page did not connect')
    for path in ('/chat', '/plugins'):  # later pages on the same host: only the cookie
        browser.get(address.split('/?')[0] + path)
        wait_for(connected, timeout=20, message=f'{path} did not connect with the cookie alone')


@pytest.mark.parametrize('token', ['tab\there', 'line\nbreak', 'bell\x07', 'delete\x7f'])
def test_a_token_with_control_characters_is_refused_at_start(tmp_path: Path, token: str) -> None:
    result = subprocess.run([sys.executable, '-m', 'jarvis', '--no-open', '--host', '0.0.0.0', '--port', str(free_port()),
                             '--data-dir', str(tmp_path), '--token', token],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and 'printable' in lines[0] and '--token' in lines[0], result.stderr


def test_a_given_token_is_used(tmp_path: Path) -> None:
    with AppServer(tmp_path / 'data', host='0.0.0.0', args=['--no-default-model', '--token', 'tony-stark-42']) as app:
        assert 'access token: tony-stark-42' in app.output()
        assert httpx.get(app.url + '/api/hub/stats').status_code == 401
        assert httpx.get(app.url + '/api/hub/stats?token=tony-stark-42').status_code == 200
