"""The System view in a real headless Chromium against the running app."""
from __future__ import annotations

import json
import threading
import time

import pytest
from selenium.webdriver.common.by import By
from websockets.sync.client import connect

from .helpers.browser import needs_chromium, wait_for
from .helpers.server import AppServer

pytestmark = [pytest.mark.browser, needs_chromium]


def text_of(driver, testid: str) -> str:  # type: ignore[no-untyped-def]
    return driver.find_element(By.CSS_SELECTOR, f'[data-testid="{testid}"]').text.strip()


def test_the_cards_show_each_new_sample(server: AppServer, browser) -> None:  # type: ignore[no-untyped-def]
    """Tick after tick, the page shows the sample the server published: its time and its CPU value.
    (Whether the CPU value itself changes depends on the machine, so the test does not ask for that.)"""
    samples: dict[str, float] = {}  # HH:MM:SS -> CPU %, as published on the hub
    stop = threading.Event()

    def listen() -> None:
        with connect(server.url.replace('http', 'ws') + '/api/events?types=system_metrics') as socket:
            while not stop.is_set():
                try:
                    data = json.loads(socket.recv(timeout=0.5))['data']
                except TimeoutError:
                    continue
                samples[time.strftime('%H:%M:%S', time.localtime(data['timestamp']))] = data['cpu']

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    try:
        browser.get(server.url)
        shown: list[tuple[str, str]] = []

        def a_new_sample_is_shown() -> bool:
            tick = text_of(browser, 'updated-at').removeprefix('Updated ')
            value = text_of(browser, 'cpu-value')
            if tick in samples and (not shown or shown[-1][0] != tick):
                assert value == f'{samples[tick]:.0f}%', f'at {tick} the page shows {value}, the sample {samples[tick]}'
                shown.append((tick, value))
            return len(shown) >= 3

        wait_for(a_new_sample_is_shown, timeout=30, message=f'the page did not follow the samples: {shown}')
    finally:
        stop.set()
        listener.join(5)
    assert text_of(browser, 'system-live') == 'Live'
    assert text_of(browser, 'connection-indicator') == 'Connected'


CHART_SERIES_JS = '''
const element = document.querySelector('[data-testid="history-chart"]');
const chart = element && getElement(element)?.chart;
return chart ? chart.getOption().series.map(s => s.data) : null;
'''


def test_history_chart_in_the_page_gains_a_point_per_tick(server: AppServer, browser) -> None:  # type: ignore[no-untyped-def]
    browser.get(server.url)
    before = wait_for(lambda: browser.execute_script(CHART_SERIES_JS), message='the chart never rendered')
    grown = wait_for(lambda: (s := browser.execute_script(CHART_SERIES_JS)) and len(s[0]) >= len(before[0]) + 2 and s,
                     timeout=15, message='the chart in the page got no new points')
    cpu, memory, gpu = grown
    assert len(cpu) == len(memory) == len(gpu)
    times = [point[0] for point in cpu]
    assert times == sorted(times) and len(set(times)) == len(times), 'each tick adds one point, in order'
    assert all(0 <= point[1] <= 100 for point in cpu + memory)
    shown = float(text_of(browser, 'cpu-value').rstrip('%'))
    assert any(abs(point[1] - shown) <= 0.5 for point in cpu[-3:]), 'the chart shows the values the card shows'


def test_live_values_over_long_polling_when_websockets_are_blocked(server: AppServer, browser) -> None:  # type: ignore[no-untyped-def]
    # as if a proxy blocked WebSockets: every WebSocket fails, so after socket.io's connection
    # timeout (20 s) NiceGUI's client carries on over HTTP long-polling
    browser.execute_cdp_cmd('Page.addScriptToEvaluateOnNewDocument', {
        'source': 'window.WebSocket = function BlockedWebSocket() { throw new Error("blocked by a proxy"); };'})
    browser.get(server.url)
    wait_for(lambda: browser.execute_script('return window.socket && window.socket.connected'), timeout=45,
             message='socket.io did not connect without WebSockets')
    wait_for(lambda: text_of(browser, 'cpu-value').endswith('%'), message='no CPU value')
    assert browser.execute_script('return window.socket.io.engine.transport.name') == 'polling'
    first_tick = wait_for(lambda: text_of(browser, 'updated-at'))
    later_tick = wait_for(lambda: (t := text_of(browser, 'updated-at')) != first_tick and t, timeout=15,
                          message='no live update over long-polling')
    assert later_tick.startswith('Updated')
    assert text_of(browser, 'system-live') == 'Live'


def test_live_indicator_goes_offline_and_back(tmp_path, browser) -> None:  # type: ignore[no-untyped-def]
    server = AppServer(tmp_path / 'data').start()
    try:
        browser.get(server.url)
        wait_for(lambda: text_of(browser, 'system-live') == 'Live', message='never live')
        server.stop()
        wait_for(lambda: text_of(browser, 'system-live') == 'Offline', timeout=15, message='did not show Offline')
        assert text_of(browser, 'connection-indicator') == 'Offline'
        server = AppServer(tmp_path / 'data', port=server.port).start()
        wait_for(lambda: text_of(browser, 'system-live') == 'Live', timeout=30, message='did not come back')
    finally:
        server.stop()
