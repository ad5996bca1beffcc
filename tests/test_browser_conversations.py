"""Conversations in a real headless Chromium against the real app: the newest message stays in view,
two windows on different conversations, a 390 px window, search, regenerate across a restart,
keys, and toasts that leave the input and its buttons free. The stand-in Ollama answers with text
the test chooses."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from .helpers.browser import needs_chromium, quit_chromium, start_chromium, wait_for
from .helpers.fake_ollama import FakeModel, FakeOllama
from .helpers.server import AppServer

pytestmark = [pytest.mark.browser, needs_chromium]

MODEL = 'stand-in:latest'
PARAGRAPHS = ' '.join(f'Paragraph {i}: the quick brown fox jumps over the lazy dog.\n\n' for i in range(10))

# the rectangle of an element (by CSS selector, the last match) and of the message list, in the viewport
RECTS = '''
const rect = (element) => { if (!element) return null; const r = element.getBoundingClientRect();
  return {left: r.left, top: r.top, right: r.right, bottom: r.bottom, width: r.width, height: r.height}; };
const all = document.querySelectorAll(selector);
return {element: rect(all[all.length - 1]), list: rect(document.querySelector('.jarvis-scroller-box')),
        width: window.innerWidth, height: window.innerHeight};
'''


@pytest.fixture
def ollama() -> Iterator[FakeOllama]:
    with FakeOllama([FakeModel(MODEL)]) as server:
        server.chat_reply = 'Ready.'
        yield server


def serve(data_dir: Path, ollama: FakeOllama) -> AppServer:
    app = AppServer(data_dir, env={'OLLAMA_HOST': ollama.url}).start()
    response = httpx.post(app.url + '/api/models/load', json={'model': MODEL, 'source': 'ollama'}, timeout=30)
    assert response.status_code == 200, response.text
    return app


@pytest.fixture
def app(tmp_path: Path, ollama: FakeOllama) -> Iterator[AppServer]:
    app = serve(tmp_path / 'data', ollama)
    yield app
    app.stop()


@pytest.fixture
def second_browser() -> Iterator[Any]:
    driver = start_chromium()
    yield driver
    quit_chromium(driver)


def ask(app: AppServer, message: str, conversation_id: str | None = None) -> dict:
    body = {'message': message, **({'conversation_id': conversation_id} if conversation_id else {})}
    response = httpx.post(app.url + '/api/chat', json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def open_chat(driver: Any, app: AppServer, width: int | None = None) -> Any:
    if width is not None:  # headless Chromium's windows are at least 500 px wide: emulate a narrow screen
        driver.execute_cdp_cmd('Emulation.setDeviceMetricsOverride',
                               {'width': width, 'height': 844, 'deviceScaleFactor': 1, 'mobile': False})
    driver.get(app.url + '/chat')
    wait_for(lambda: driver.execute_script('return window.socket && window.socket.connected'))
    box = wait_for(lambda: driver.find_element(By.CSS_SELECTOR, 'textarea[data-testid="chat-input"]'))
    if width is not None:
        assert driver.execute_script('return window.innerWidth') == width
    return box


def by_id(driver: Any, testid: str) -> Any:
    return driver.find_element(By.CSS_SELECTOR, f'[data-testid="{testid}"]')


def displayed(driver: Any, testid: str) -> Any:
    """The one element with this test id that is shown (bubbles without alternatives hide their arrows)."""
    [element] = [e for e in driver.find_elements(By.CSS_SELECTOR, f'[data-testid="{testid}"]') if e.is_displayed()]
    return element


def alternatives_shown(driver: Any) -> list[str]:
    """The "n/m" of the messages that have alternatives, in order."""
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, '[data-testid="alternatives"]') if e.is_displayed()]


def texts(driver: Any, role: str) -> list[str]:
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR,
                                                 f'[data-testid="bubble-{role}"] .jarvis-bubble-text')]


def title(driver: Any) -> str:
    return by_id(driver, 'conversation-title').text


def listed(driver: Any) -> list[str]:
    return [e.text.split('\n')[0] for e in driver.find_elements(By.CSS_SELECTOR, '[data-testid="conversation-item"]')]


def after_layout(driver: Any, selector: str) -> dict:
    """RECTS as the browser paints them next: read by a ResizeObserver of the message list made after the
    view's own (observers are called in the order they were made), so that the reading comes after the
    view has followed the list's latest growth, never between a message's arrival and that scroll."""
    return driver.execute_async_script(
        'const done = arguments[arguments.length - 1], selector = arguments[0];'
        "const content = document.querySelector('.jarvis-scroller-box > div');"
        'const observer = new ResizeObserver(() => { observer.disconnect(); done((() => {' + RECTS + '})()); });'
        'observer.observe(content);', selector)


def newest_in_view(driver: Any) -> bool:
    """The end of the newest message is inside the message list's visible part (all of the message, unless it
    is taller than the list), and the list is inside the window."""
    return in_view(after_layout(driver, '[data-message-id]'))


def in_view(rects: dict) -> bool:
    element, box = rects['element'], rects['list']
    if element is None:
        return False
    end_in_view = box['top'] <= element['bottom'] <= box['bottom'] + 1
    start_in_view = box['top'] - 1 <= element['top'] or element['height'] > box['height']
    return end_in_view and start_in_view and box['bottom'] <= rects['height']


def rect_of(driver: Any, selector: str) -> dict:
    return driver.execute_script('const selector = arguments[0];' + RECTS, selector)['element']


def overlaps(a: dict, b: dict) -> bool:
    return a['left'] < b['right'] and b['left'] < a['right'] and a['top'] < b['bottom'] and b['top'] < a['bottom']


def send(box: Any, text: str) -> None:
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


def press(driver: Any, *keys: str) -> None:
    """A key combination, on whatever has the focus (Ctrl+K: press(driver, Keys.CONTROL, 'k'))."""
    actions = ActionChains(driver)
    for key in keys[:-1]:
        actions.key_down(key)
    actions.send_keys(keys[-1])
    for key in reversed(keys[:-1]):
        actions.key_up(key)
    actions.perform()


# --- the newest message in view -----------------------------------------------------------------


def test_the_newest_message_is_in_view_after_sending_and_while_the_answer_streams(
        app: AppServer, ollama: FakeOllama, browser: Any) -> None:
    ollama.chat_reply = PARAGRAPHS
    for number in range(4):  # a conversation longer than the window
        ask(app, f'question {number}')
    box = open_chat(browser, app)
    wait_for(lambda: len(texts(browser, 'assistant')) == 4 and newest_in_view(browser),
             message='the conversation did not open at its newest message')

    ollama.chat_delay = 0.04  # about four seconds of streaming
    ollama.chat_reply = ' '.join(f'line{i}\n\n' for i in range(80))
    send(box, 'one more, please')
    wait_for(lambda: texts(browser, 'user')[-1:] == ['one more, please'], message='not sent')
    checks = 0
    while not texts(browser, 'assistant')[-1].endswith('line79'):
        answer = texts(browser, 'assistant')[-1]
        if answer.startswith('line') and len(texts(browser, 'assistant')) == 5:
            reading = after_layout(browser, '[data-message-id]')
            assert in_view(reading), (f'the streaming answer left the view at {answer[-12:]!r}', reading)
            checks += 1
        time.sleep(0.15)
    assert checks >= 3, 'the answer was seen while it streamed'
    wait_for(lambda: newest_in_view(browser), timeout=5, message='the finished answer is not in view')
    assert not by_id(browser, 'jump-to-latest').is_displayed()

    # scrolled up to read: a new message does not pull the view down; "Jump to latest" does
    browser.execute_script("document.querySelector('.jarvis-scroller-box').scrollTop = 0")
    wait_for(lambda: by_id(browser, 'jump-to-latest').is_displayed(), message='no jump button after scrolling up')
    ollama.chat_delay = 0
    ollama.chat_reply = 'A short one.'
    ask(app, 'from a script')  # the same conversation: the one used last
    wait_for(lambda: texts(browser, 'assistant')[-1] == 'A short one.')
    assert not newest_in_view(browser), 'the reader stays where they scrolled to'
    by_id(browser, 'jump-to-latest').click()
    wait_for(lambda: newest_in_view(browser), message='"Jump to latest" did not show the newest message')
    wait_for(lambda: not by_id(browser, 'jump-to-latest').is_displayed())


# --- windows and conversations ------------------------------------------------------------------


def test_two_windows_show_different_conversations(app: AppServer, browser: Any, second_browser: Any) -> None:
    ask(app, 'the first topic')
    first, second = browser, second_browser
    first_box, second_box = open_chat(first, app), open_chat(second, app)
    for window in (first, second):
        wait_for(lambda w=window: title(w) == 'the first topic' and texts(w, 'user') == ['the first topic'])

    by_id(first, 'new-conversation').click()
    wait_for(lambda: title(first) == 'New conversation' and texts(first, 'user') == [])
    send(first_box, 'alpha')
    wait_for(lambda: title(first) == 'alpha' and texts(first, 'assistant') == ['Ready.'])
    wait_for(lambda: listed(second) == ['alpha', 'the first topic'], message='the list did not follow')
    assert title(second) == 'the first topic' and texts(second, 'user') == ['the first topic'], \
        'the second window stays on its conversation'

    send(second_box, 'beta')
    wait_for(lambda: texts(second, 'user') == ['the first topic', 'beta'])
    time.sleep(0.5)
    assert texts(first, 'user') == ['alpha'], 'the first window does not show the other conversation'

    second.find_elements(By.CSS_SELECTOR, '[data-testid="conversation-item"]')[listed(second).index('alpha')].click()
    wait_for(lambda: title(second) == 'alpha' and texts(second, 'user') == ['alpha'])
    send(first_box, 'gamma')
    wait_for(lambda: texts(second, 'user') == ['alpha', 'gamma'], message='not live in the other window')

    # the window keeps its choice while it visits another view and comes back
    navigate(second, 'Models')
    wait_for(lambda: not second.find_elements(By.CSS_SELECTOR, '[data-testid="conversation-title"]'))
    ask(app, 'a script writes into the first topic', listed_id(app, 'the first topic'))
    navigate(second, 'Chat')
    wait_for(lambda: title(second) == 'alpha' and texts(second, 'user') == ['alpha', 'gamma'],
             message='the window lost the conversation it chose')


def navigate(driver: Any, view: str) -> None:
    """Go to another view through the navigation drawer (the window and its connection stay)."""
    driver.find_element(By.XPATH, f"//aside//div[contains(@class, 'q-item')][.//div[text()='{view}']]").click()


def listed_id(app: AppServer, conversation_title: str) -> str:
    conversations = httpx.get(app.url + '/api/chat/conversations').json()
    return next(c['id'] for c in conversations if c['title'] == conversation_title)


@pytest.mark.parametrize('width', [390, 360])
def test_a_390_px_window_creates_and_switches_conversations(app: AppServer, browser: Any, width: int) -> None:
    """Also at 360 px, the narrowest the chat is made for."""
    ask(app, 'an older topic')
    box = open_chat(browser, app, width=width)
    wait_for(lambda: title(browser) == 'an older topic')
    assert browser.execute_script('return document.documentElement.scrollWidth') <= width, 'nothing sticks out'
    panel = rect_of(browser, '[data-testid="conversation-panel"]')
    assert panel['right'] <= 0, 'the conversation list waits in its drawer'
    drawer = rect_of(browser, '.q-drawer--left')
    assert drawer is None or drawer['right'] <= 0, 'the navigation drawer does not cover a fresh narrow window'
    for selector in ('[data-testid="chat-input"]', '[data-testid="send-button"]',
                     '[data-testid="open-conversations"]', '[data-testid="conversation-menu"]',
                     '[data-testid="search-button"]', '[data-testid="new-conversation-header"]',
                     '.q-header .q-btn:first-of-type', '.q-header .q-btn:last-of-type'):  # navigation, theme
        element = rect_of(browser, selector)
        assert 0 <= element['left'] and element['right'] <= width and element['bottom'] <= 844, selector

    by_id(browser, 'open-conversations').click()
    wait_for(lambda: rect_of(browser, '[data-testid="conversation-panel"]')['left'] >= 0, message='no drawer')
    wait_for(lambda: by_id(browser, 'new-conversation').is_displayed())
    by_id(browser, 'new-conversation').click()
    wait_for(lambda: title(browser) == 'New conversation' and texts(browser, 'user') == [])
    wait_for(lambda: rect_of(browser, '[data-testid="conversation-panel"]')['right'] <= 0, message='drawer stays')
    send(box, 'a narrow topic')
    wait_for(lambda: title(browser) == 'a narrow topic' and texts(browser, 'assistant') == ['Ready.'])

    by_id(browser, 'open-conversations').click()
    wait_for(lambda: listed(browser) == ['a narrow topic', 'an older topic'])
    items = browser.find_elements(By.CSS_SELECTOR, '[data-testid="conversation-item"]')
    wait_for(lambda: items[1].is_displayed())
    items[1].click()
    wait_for(lambda: title(browser) == 'an older topic' and texts(browser, 'user') == ['an older topic'])
    wait_for(lambda: rect_of(browser, '[data-testid="conversation-panel"]')['right'] <= 0, message='drawer stays')
    assert newest_in_view(browser)


# --- search, regenerate, keys ---------------------------------------------------------------------


def test_search_finds_a_word_from_another_conversation_and_opens_it_at_that_message(
        app: AppServer, ollama: FakeOllama, browser: Any) -> None:
    ollama.chat_reply = PARAGRAPHS
    target = ask(app, 'Is Zanzibar an island?')  # early in a long conversation
    for number in range(4):
        ask(app, f'more {number}', target['conversation_id'])
    box = open_chat(browser, app)
    wait_for(lambda: title(browser) == 'Is Zanzibar an island?')
    by_id(browser, 'new-conversation').click()
    wait_for(lambda: title(browser) == 'New conversation')
    send(box, 'something else entirely')
    wait_for(lambda: title(browser) == 'something else entirely' and len(texts(browser, 'assistant')) == 1)

    press(browser, Keys.CONTROL, 'k')
    search = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, 'input[data-testid="search-input"]'))
    wait_for(lambda: browser.switch_to.active_element == search, message='the search field has no focus')
    search.send_keys('zanzi')
    hits = wait_for(lambda: [h for h in browser.find_elements(By.CSS_SELECTOR, '[data-testid="search-hit"]')
                             if h.is_displayed()])
    # the conversation's title, then the message; the matched word marked in each
    assert len(hits) == 2
    for hit in hits:
        assert [m.get_attribute('textContent') for m in hit.find_elements(By.CSS_SELECTOR, '.jarvis-hit')] == \
            ['Zanzibar']
    hits[1].click()
    wait_for(lambda: title(browser) == 'Is Zanzibar an island?', message='the hit did not open its conversation')
    message = f'[data-message-id="{target["id"]}"]'
    question = f'[data-message-id="{target["id"]}"]'.replace(target['id'], target['parent_id'])

    def question_in_view() -> bool:
        rects = after_layout(browser, question)
        return rects['element'] is not None and rects['list']['top'] <= rects['element']['top'] and \
            rects['element']['bottom'] <= rects['list']['bottom']
    wait_for(question_in_view, message='the view did not open at the message')
    assert browser.find_elements(By.CSS_SELECTOR, f'{question}.jarvis-found'), 'the message is marked'
    assert not newest_in_view(browser), 'it opened at the hit, not at the end'
    assert browser.find_elements(By.CSS_SELECTOR, message)


def test_regenerate_gives_2_of_2_and_both_answers_survive_a_restart(
        tmp_path: Path, ollama: FakeOllama, browser: Any) -> None:
    app = serve(tmp_path / 'data', ollama)
    try:
        ollama.chat_reply = 'Blue.'
        box = open_chat(browser, app)
        send(box, 'Pick a colour')
        wait_for(lambda: texts(browser, 'assistant') == ['Blue.'])
        ollama.chat_reply = 'Green.'
        by_id(browser, 'regenerate-message').click()
        wait_for(lambda: texts(browser, 'assistant') == ['Green.'], message='no second answer')
        wait_for(lambda: alternatives_shown(browser) == ['2/2'])
    finally:
        app.stop()

    app = AppServer(tmp_path / 'data', env={'OLLAMA_HOST': ollama.url}).start()  # the same data, a new process
    try:
        open_chat(browser, app)
        def shown() -> list[str]:
            return alternatives_shown(browser)
        wait_for(lambda: texts(browser, 'assistant') == ['Green.'] and shown() == ['2/2'],
                 message='the second answer is not shown after the restart')
        displayed(browser, 'previous-alternative').click()
        wait_for(lambda: texts(browser, 'assistant') == ['Blue.'] and shown() == ['1/2'])
        displayed(browser, 'next-alternative').click()
        wait_for(lambda: texts(browser, 'assistant') == ['Green.'] and shown() == ['2/2'])
    finally:
        app.stop()


def test_keys_edit_the_last_message_stop_the_answer_and_start_a_conversation(
        app: AppServer, ollama: FakeOllama, browser: Any) -> None:
    box = open_chat(browser, app)
    send(box, 'frist message')
    wait_for(lambda: texts(browser, 'assistant') == ['Ready.'])
    box.send_keys(Keys.ARROW_UP)  # in the empty input: edit the last message
    wait_for(lambda: by_id(browser, 'edit-banner').is_displayed() and box.get_attribute('value') == 'frist message')
    box.send_keys(Keys.CONTROL, 'a')
    ollama.chat_reply = ' '.join(f'word{i}' for i in range(300))
    ollama.chat_delay = 0.05
    send(box, 'first message')
    wait_for(lambda: texts(browser, 'user') == ['first message'] and texts(browser, 'assistant')[-1].startswith('word'))
    box.send_keys(Keys.ESCAPE)  # stops the answer
    wait_for(lambda: not by_id(browser, 'stop-button').is_displayed(), message='Esc did not stop the answer')
    history = httpx.get(app.url + '/api/chat/history', params={'limit': 1}).json()
    assert history[0]['status'] == 'stopped' and history[0]['alternatives'] == 1
    assert alternatives_shown(browser) == ['2/2'], 'the edit is the second version of the message'

    press(browser, Keys.CONTROL, Keys.SHIFT, 'o')
    wait_for(lambda: title(browser) == 'New conversation' and texts(browser, 'user') == [])
    assert len(httpx.get(app.url + '/api/chat/conversations').json()) == 2


@pytest.mark.parametrize('width', [1400, 390])
def test_toasts_leave_the_input_and_its_buttons_free(app: AppServer, browser: Any, width: int) -> None:
    box = open_chat(browser, app, width=None if width == 1400 else width)
    # one character over the limit, set at once (typing 32,001 characters would take minutes)
    browser.execute_script('''const box = arguments[0]; box.value = 'x'.repeat(32001);
        box.dispatchEvent(new Event('input', {bubbles: true}));''', box)
    time.sleep(0.3)  # the value reaches the server
    box.send_keys(Keys.ENTER)
    toast = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, '.q-notification'), message='no toast')
    assert 'too long' in toast.get_attribute('textContent')
    time.sleep(0.5)  # its entry animation
    toast_rect = rect_of(browser, '.q-notification')
    for testid in ('chat-input', 'send-button', 'conversation-menu'):
        assert not overlaps(toast_rect, rect_of(browser, f'[data-testid="{testid}"]')), testid
    # the header's buttons: navigation (its first) and the theme (its last)
    for button in ('.q-header .q-btn:first-of-type', '.q-header .q-btn:last-of-type'):
        assert not overlaps(toast_rect, rect_of(browser, button)), button
