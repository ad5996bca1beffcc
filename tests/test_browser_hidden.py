"""A hidden window costs nothing, in a real headless Chromium: while another tab is in front of the app's
page, no per-tick update reaches that page and the sampler is calm; shown again, it shows current values at
once. The theme follows in a second window without a reload."""
from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By

from .helpers.browser import needs_chromium, wait_for
from .helpers.server import AppServer

pytestmark = [pytest.mark.browser, needs_chromium]

# every message NiceGUI's socket brings the page, with the page's visibility when it came
COUNT_MESSAGES_JS = """
window.jarvisMessages = [];
window.socket.onAny((name) => window.jarvisMessages.push([name, document.visibilityState, Date.now()]));
"""


def stats(app: AppServer) -> dict:
    return httpx.get(app.url + '/api/hub/stats').json()


def test_a_hidden_page_gets_no_ticks_and_shows_current_values_when_shown(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with AppServer(tmp_path / 'data') as app:
        browser.get(app.url + '/')
        app_tab = browser.current_window_handle
        wait_for(lambda: stats(app)['visible'] == 1, message=f'the page never said it is visible: {stats(app)}')
        wait_for(lambda: browser.find_element(By.CSS_SELECTOR, '[data-testid="updated-at"]').text,
                 message='no sample shown')
        browser.execute_script(COUNT_MESSAGES_JS)
        wait_for(lambda: browser.execute_script('return window.jarvisMessages.length') > 0,
                 message='the visible page gets the 2-second ticks')

        browser.switch_to.new_window('tab')  # another tab in front: the app's page is hidden
        browser.get('about:blank')
        wait_for(lambda: stats(app)['visible'] == 0, message=f'the page never said it is hidden: {stats(app)}')
        assert stats(app)['viewers'] == 1 and stats(app)['watching'] == 0, 'connected, nobody watching'
        hidden_from = browser.execute_script('return Date.now()')
        published = stats(app)['published']
        time.sleep(7)  # three ticks at the full rate
        hidden_until = browser.execute_script('return Date.now()')
        assert stats(app)['published'] - published <= 2, 'the sampler is calm (one sample per 30 s at most)'

        browser.switch_to.window(app_tab)  # in front again
        wait_for(lambda: stats(app)['visible'] == 1, message=f'the page never said it is visible again: {stats(app)}')
        messages = browser.execute_script('return window.jarvisMessages')
        while_hidden = [m for m in messages if hidden_from <= m[2] <= hidden_until]
        assert while_hidden == [], f'updates reached the hidden page: {while_hidden}'
        shown_at = time.time()

        def shows_a_current_sample() -> bool:
            text = browser.find_element(By.CSS_SELECTOR, '[data-testid="updated-at"]').text  # "Updated 18:42:07"
            clock = time.strptime(text.removeprefix('Updated '), '%H:%M:%S')
            today = time.localtime(shown_at)
            sampled = time.mktime((*today[:3], clock.tm_hour, clock.tm_min, clock.tm_sec, 0, 0, today.tm_isdst))
            return sampled >= shown_at - 2  # not the last sample taken while it was hidden
        # well before the calm rate's next sample (30 s away): the page is brought up to date when it is shown
        wait_for(shows_a_current_sample, timeout=5, message='the page did not show a current sample at once')
    assert 'Traceback' not in app.output()


def test_a_page_acknowledges_its_messages_every_thirtieth_second_not_every_third(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """nicegui.js calls ack() every 3 s, and each call that has something to acknowledge wakes the app;
    one call in ten sends (framework.ACK_EVERY). The page still receives its 2-second ticks meanwhile."""
    from jarvis import framework

    with AppServer(tmp_path / 'data') as app:
        browser.get(app.url + '/')
        wait_for(lambda: stats(app)['visible'] == 1, message=f'the page never said it is visible: {stats(app)}')
        browser.execute_script(COUNT_MESSAGES_JS + '''
window.jarvisAcks = 0;
const emit = window.socket.emit.bind(window.socket);
window.socket.emit = (name, ...rest) => { if (name === 'ack') window.jarvisAcks += 1; return emit(name, ...rest); };
''')
        time.sleep(7.5)  # two of nicegui.js's 3-second ack() calls, and three ticks
        assert browser.execute_script('return window.jarvisMessages.length') >= 2, 'the ticks keep coming'
        assert browser.execute_script('return window.jarvisAcks') == 0
        # the override itself: of ten calls with something new to acknowledge, one sends
        sent = browser.execute_script('''
window.jarvisAcks = 0;
for (let i = 0; i < %d; i++) { window.nextMessageId += 1; window.ack(); }
return window.jarvisAcks;''' % framework.ACK_EVERY)
        assert sent == 1
    assert 'Traceback' not in app.output()


def test_the_theme_follows_in_a_second_window(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with AppServer(tmp_path / 'data') as app:
        browser.get(app.url + '/')
        first = browser.current_window_handle
        wait_for(lambda: 'body--dark' in browser.find_element(By.TAG_NAME, 'body').get_attribute('class'))
        browser.switch_to.new_window('window')
        browser.get(app.url + '/chat')
        toggle = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, '[data-testid="theme-toggle"]'))
        assert toggle.get_attribute('aria-label') == 'Switch to light theme'
        toggle.click()
        wait_for(lambda: 'body--light' in browser.find_element(By.TAG_NAME, 'body').get_attribute('class'))
        browser.switch_to.window(first)  # not reloaded
        wait_for(lambda: 'body--light' in browser.find_element(By.TAG_NAME, 'body').get_attribute('class'),
                 message='the first window kept the dark theme')
        assert browser.find_element(By.CSS_SELECTOR, '[data-testid="theme-toggle"]').get_attribute('aria-label') \
            == 'Switch to dark theme'
