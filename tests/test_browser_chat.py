"""The chat in a real headless Chromium: keys, and markdown that never runs as HTML or script."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from .helpers.browser import needs_chromium, wait_for
from .helpers.fake_ollama import FakeModel, FakeOllama
from .helpers.server import AppServer

pytestmark = [pytest.mark.browser, needs_chromium]

XSS = ('<script>document.title="pwned"; window.pwned = 1</script>'
       '<img src=x onerror="window.pwned = 2; alert(2)">'
       '<svg onload="window.pwned = 3"></svg>'
       ' [click me](javascript:window.pwned=4) **still bold**')


@pytest.fixture
def ollama() -> Iterator[FakeOllama]:
    with FakeOllama([FakeModel('stand-in:latest')]) as server:
        server.chat_reply = XSS  # the stand-in model answers with the payload too
        yield server


@pytest.fixture
def app(tmp_path: Path, ollama: FakeOllama) -> Iterator[AppServer]:
    with AppServer(tmp_path / 'data', env={'OLLAMA_HOST': ollama.url}) as server:
        response = httpx.post(server.url + '/api/models/load', json={'model': 'stand-in:latest', 'source': 'ollama'},
                              timeout=30)
        assert response.status_code == 200, response.text
        yield server


def bubble_texts(driver, role: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, f'[data-testid="bubble-{role}"] .jarvis-bubble-text')]


def no_alert(driver) -> bool:  # type: ignore[no-untyped-def]
    try:
        driver.switch_to.alert
    except NoAlertPresentException:
        return True
    return False


def test_xss_from_the_user_and_the_model_does_not_run(app: AppServer, browser) -> None:  # type: ignore[no-untyped-def]
    browser.get(app.url + '/chat')
    box = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, 'textarea[data-testid="chat-input"]'))
    wait_for(lambda: browser.execute_script('return window.socket && window.socket.connected'))
    box.send_keys(XSS)
    box.send_keys(Keys.ENTER)
    wait_for(lambda: bubble_texts(browser, 'assistant') and 'still bold' in bubble_texts(browser, 'assistant')[0],
             timeout=30, message='no answer from the stand-in model')
    assert no_alert(browser)
    assert browser.title == 'J.A.R.V.I.S.'
    assert browser.execute_script('return window.pwned === undefined')
    user_text, answer_text = bubble_texts(browser, 'user')[0], bubble_texts(browser, 'assistant')[0]
    for text in (user_text, answer_text):
        assert '<script>document.title="pwned"' in text, 'raw HTML shows as text'
    bubbles = browser.find_elements(By.CSS_SELECTOR, '.jarvis-bubble-text')
    for bubble in bubbles:
        assert not bubble.find_elements(By.TAG_NAME, 'script')
        assert not bubble.find_elements(By.TAG_NAME, 'img')
        assert not bubble.find_elements(By.TAG_NAME, 'svg')
        assert bubble.find_elements(By.TAG_NAME, 'strong'), 'markdown still renders'
        for link in bubble.find_elements(By.TAG_NAME, 'a'):
            assert not (link.get_attribute('href') or '').lower().startswith('javascript:')
            link.click()
    assert no_alert(browser)
    assert browser.execute_script('return window.pwned === undefined')
    assert browser.title == 'J.A.R.V.I.S.'


def test_enter_sends_and_shift_enter_makes_a_new_line(app: AppServer, browser) -> None:  # type: ignore[no-untyped-def]
    browser.get(app.url + '/chat')
    box = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, 'textarea[data-testid="chat-input"]'))
    wait_for(lambda: browser.execute_script('return window.socket && window.socket.connected'))
    box.send_keys('first line')
    box.send_keys(Keys.SHIFT, Keys.ENTER)
    box.send_keys('second line')
    assert box.get_attribute('value') == 'first line\nsecond line'
    assert bubble_texts(browser, 'user') == []
    box.send_keys(Keys.ENTER)
    wait_for(lambda: bubble_texts(browser, 'user') == ['first line\nsecond line'], message='not sent')
    wait_for(lambda: box.get_attribute('value') == '', message='the input did not clear')
    assert browser.switch_to.active_element == box, 'the input keeps the focus'


def test_links_in_messages_open_outside_the_app(app: AppServer, browser) -> None:  # type: ignore[no-untyped-def]
    """A link in a message opens in a new tab (the native window hands it to the system browser);
    the app's own tab stays where it was."""
    browser.get(app.url + '/chat')
    box = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, 'textarea[data-testid="chat-input"]'))
    wait_for(lambda: browser.execute_script('return window.socket && window.socket.connected'))
    box.send_keys(f'see [the icon]({app.url}/assets/icon.png)')
    box.send_keys(Keys.ENTER)
    link = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, '[data-testid="bubble-user"] .jarvis-bubble-text a'))
    assert link.get_attribute('target') == '_blank'
    assert 'noopener' in (link.get_attribute('rel') or '')
    app_tab = browser.current_window_handle
    link.click()
    wait_for(lambda: len(browser.window_handles) == 2, message='the link did not open a new tab')
    assert browser.current_window_handle == app_tab
    assert browser.current_url == app.url + '/chat', 'the app tab did not navigate away'
