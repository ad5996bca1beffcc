"""The System view in a real headless Chromium against the running app."""
from __future__ import annotations

import json
import math
import threading
import time

import pytest
from selenium.webdriver.common.by import By
from websockets.sync.client import connect

from jarvis.metrics import history_store
from jarvis.metrics.history_store import Aggregate, HistoryBatch, HistorySample
from jarvis.storage.database import Database

from .helpers.browser import needs_chromium, wait_for
from .helpers.server import AppServer
from .test_processes import start_burner, stop

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
    cpu, memory, gpu, gpu_memory, gpu_temperature = grown
    assert len(cpu) == len(memory) == len(gpu) == len(gpu_memory) == len(gpu_temperature)
    times = [point[0] for point in cpu]
    assert times == sorted(times) and len(set(times)) == len(times), 'each tick adds one point, in order'
    assert all(0 <= point[1] <= 100 for point in cpu + memory)
    shown = float(text_of(browser, 'cpu-value').rstrip('%'))
    assert any(abs(point[1] - shown) <= 0.5 for point in cpu[-3:]), 'the chart shows the values the card shows'


PROCESS_ROWS_JS = '''
return [...document.querySelectorAll('[data-testid="processes-table"] tbody tr')]
    .map(row => [...row.querySelectorAll('td')].map(cell => cell.innerText.trim()));
'''


def test_a_cpu_burner_shows_in_the_processes_panel(server: AppServer, browser) -> None:  # type: ignore[no-untyped-def]
    burner = start_burner('panel-burner')
    try:
        browser.get(server.url)
        wait_for(lambda: text_of(browser, 'cpu-value').endswith('%'), message='no CPU value')
        browser.execute_script('document.querySelector(\'[data-testid="processes-panel"]\').scrollIntoView()')
        wait_for(lambda: text_of(browser, 'processes-summary').startswith('Top'), timeout=30,
                 message='the Processes panel never showed a scan')
        box = browser.find_element(By.CSS_SELECTOR, '[data-testid="processes-filter"]')
        if box.tag_name != 'input':  # Quasar puts the attribute on the native input or on its wrapper
            box = box.find_element(By.TAG_NAME, 'input')
        box.send_keys('panel-burner')

        def burner_row() -> list[str] | None:
            rows = browser.execute_script(PROCESS_ROWS_JS)
            found = [r for r in rows if len(r) >= 5 and r[1] == str(burner.pid)]
            if not text_of(browser, 'processes-summary').startswith('1 of '):
                return None  # the filter has not reached the table yet
            # the first scan averages over a quarter of a second or since the recorder's last; the next ones
            # over the seconds between two scans
            return found[0] if found and float(found[0][3].rstrip('%')) >= 30 else None

        row = wait_for(burner_row, timeout=30, message='the burner never showed as busy in the panel')
    finally:
        stop(burner)
    name, pid, user, cpu, memory = row[:5]
    assert name == 'panel-burner' and user and memory.endswith('B')
    assert text_of(browser, 'processes-summary').startswith('1 of ')
    headers = browser.execute_script(
        "return [...document.querySelectorAll('[data-testid=\"processes-table\"] thead th')].map(h => h.innerText.trim())")
    assert [h.replace('arrow_upward', '').strip() for h in headers[:5]] == ['Name', 'PID', 'User', 'CPU', 'Memory']


CHART_STATE_JS = '''
const element = document.querySelector('[data-testid="history-chart"]');
const chart = element && getElement(element)?.chart;
if (!chart) return null;
const option = chart.getOption();
return {first: option.series[0].data[0], points: option.series[0].data.length, min: option.xAxis[0].min ?? null,
        zooms: option.dataZoom.map(z => z.type)};
'''


def click_range(browser, label: str) -> None:  # type: ignore[no-untyped-def]
    buttons = browser.find_elements(By.CSS_SELECTOR, '[data-testid="history-range"] button')
    next(b for b in buttons if b.text.strip() == label).click()


def test_the_chart_draws_a_recorded_week_and_goes_back_to_live(tmp_path, browser) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / 'data'
    database = Database(data / 'jarvis.db')
    now = time.time()
    minutes = []
    for index in range(7 * 24 * 60):
        minute = Aggregate(math.floor(now / 60) * 60 - 7 * 86400 + index * 60)
        minute.add(HistorySample(minute.t, cpu=float(index % 100), memory=50.0, disk=1.0).values())
        minutes.append(minute)
    history_store.write(database, HistoryBatch(minutes=minutes), now)
    database.close()
    with AppServer(data) as server:
        browser.get(server.url)
        wait_for(lambda: (s := browser.execute_script(CHART_STATE_JS)) and s['points'], timeout=30,
                 message='the chart never showed the last minutes')
        click_range(browser, '7 d')
        week = wait_for(lambda: (s := browser.execute_script(CHART_STATE_JS)) and s['first']
                        and s['first'][0] < (now - 6.5 * 86400) * 1000 and s, timeout=30,
                        message='the chart never showed the week')
        assert 500 <= week['points'] <= 600
        assert week['min'] == pytest.approx((now - 7 * 86400) * 1000, abs=60_000)
        assert week['zooms'] == ['inside', 'slider']
        click_range(browser, '5 min')
        live = wait_for(lambda: (s := browser.execute_script(CHART_STATE_JS)) and s['first']
                        and s['first'][0] > (now - 3600) * 1000 and s, timeout=30,
                        message='the chart never went back to the last 5 minutes')
        assert live['min'] is None, 'a live range follows its data'


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
