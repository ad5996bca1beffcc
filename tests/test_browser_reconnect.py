"""A window that loses its connection shows "Offline", reconnects by itself and catches up."""
from __future__ import annotations

import time

import httpx
import pytest
from selenium.webdriver.common.by import By

from .helpers.browser import needs_chromium, wait_for
from .helpers.proxy import CuttableProxy
from .helpers.server import AppServer

pytestmark = [pytest.mark.browser, needs_chromium]


def texts(driver, role: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, f'[data-testid="bubble-{role}"] .jarvis-bubble-text')]


def indicator(driver) -> str:  # type: ignore[no-untyped-def]
    return driver.find_element(By.CSS_SELECTOR, '[data-testid="connection-indicator"]').text.strip()


@pytest.mark.parametrize('outage_s', [1.0, 6.0], ids=['short-outage', 'long-outage'])
def test_offline_then_back_with_the_messages_sent_meanwhile(server: AppServer, browser, outage_s: float) -> None:  # type: ignore[no-untyped-def]
    with CuttableProxy(server.port) as proxy:
        browser.get(proxy.url + '/chat')
        wait_for(lambda: indicator(browser) == 'Connected', message='never connected')
        httpx.post(server.url + '/api/chat', json={'message': 'note: before the outage'}, timeout=30)
        wait_for(lambda: 'note: before the outage' in texts(browser, 'user'))

        proxy.cut()
        wait_for(lambda: indicator(browser) == 'Offline', timeout=15, message='never showed Offline')
        # the app goes on: another window (here a script) chats while this one is away
        for text in ('note: sent while you were away', 'what is 6*7'):
            assert httpx.post(server.url + '/api/chat', json={'message': text}, timeout=30).status_code == 200
        time.sleep(outage_s)
        proxy.restore()

        wait_for(lambda: indicator(browser) == 'Connected', timeout=40, message='did not reconnect by itself')
        wait_for(lambda: 'what is 6*7' in texts(browser, 'user'), timeout=20, message='did not catch up')
        users = texts(browser, 'user')
        assert users == ['note: before the outage', 'note: sent while you were away', 'what is 6*7']
        assert any('42' in text for text in texts(browser, 'assistant'))
