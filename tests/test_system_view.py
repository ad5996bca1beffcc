"""The shell and the System view, with NiceGUI's simulated users."""
from __future__ import annotations

import asyncio
import gc
import math
import os
import time

import psutil
import pytest
from nicegui import ui
from nicegui.testing.user import User

from jarvis import events
from jarvis.config import Settings
from jarvis.events import GpuReading, SystemMetrics
from jarvis.metrics import history_store
from jarvis.metrics.history_store import Aggregate, HistoryBatch, HistoryPoint, HistoryRange, HistorySample
from jarvis.metrics.processes import PANEL_INTERVAL_S, ProcessInfo, ProcessSnapshot
from jarvis.ui import live, notifications
from jarvis.ui.history_chart import series_data

from .conftest import Harness
from .helpers.waiting import eventually


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The real sampler takes its first sample and then stays quiet: a real sample that arrived between a
    test's published one and its check would replace the value the test looks for."""
    return settings.with_changes(metrics_interval=3600.0)


@pytest.fixture
async def jarvis(jarvis: Harness) -> Harness:
    """The app once its first real sample is out (it samples at start, with or without a window)."""
    await eventually(lambda: jarvis.services.hub.latest(events.SYSTEM_METRICS) is not None)
    return jarvis


def sample(cpu: float, gpu: float | None = None, **extra: object) -> SystemMetrics:
    values: dict = dict(cpu=cpu, memory=42.0, disk=61.0, gpu=gpu, cpu_per_core=[cpu, cpu], cpu_count=2,
                        memory_used=8 * 2**30, memory_total=16 * 2**30, disk_used=100 * 2**30,
                        disk_total=200 * 2**30, disk_path='/home/tony')
    values.update(extra)
    return SystemMetrics(**values)


def label_text(user: User, marker: str) -> str:
    return user.find(marker=marker).elements.pop().text


async def wait_text(user: User, marker: str, expected: str, timeout: float = 3.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if label_text(user, marker) == expected:
            return
        await asyncio.sleep(0.02)
    assert label_text(user, marker) == expected


async def caught_up(user: User) -> None:
    """Until the window has taken in every sample sent to it: the real one it was sent on connecting, then a
    test's. A text check alone can be fooled when the real sample has the same CPU % as the test's."""
    window = live._windows[user.client.id]  # pylint: disable=protected-access
    await eventually(lambda: window.subscription.pending == 0)


async def test_published_cpu_shows_as_percent(jarvis: Harness, user: User) -> None:
    await user.open('/')
    jarvis.services.hub.publish(sample(50.0))
    await caught_up(user)
    await wait_text(user, 'cpu-value', '50%')
    await user.should_see('50%')
    assert label_text(user, 'memory-value') == '42%'
    assert label_text(user, 'disk-value') == '61%'
    assert label_text(user, 'memory-caption') == '8.0 GiB / 16.0 GiB'
    cores = user.find(marker='core-bars').elements.pop()
    assert cores.props['cores'] == [[50.0, 'warning'], [50.0, 'warning']]


async def test_two_users_see_the_same_values(jarvis: Harness) -> None:
    alice, bob = jarvis.new_user(), jarvis.new_user()
    await alice.open('/')
    await bob.open('/')
    jarvis.services.hub.publish(sample(73.0))
    await wait_text(alice, 'cpu-value', '73%')
    await wait_text(bob, 'cpu-value', '73%')
    jarvis.services.hub.publish(sample(12.0))
    await wait_text(alice, 'cpu-value', '12%')
    await wait_text(bob, 'cpu-value', '12%')


async def test_new_window_starts_from_the_latest_values(jarvis: Harness, user: User) -> None:
    jarvis.services.hub.publish(sample(64.0))
    await user.open('/')
    assert label_text(user, 'cpu-value') == '64%', 'shown at once, not after the next tick'


async def test_bar_colours_follow_the_level(jarvis: Harness, user: User) -> None:
    await user.open('/')
    bar = user.find(marker='cpu-bar').elements.pop()
    for value, color in ((20.0, 'positive'), (60.0, 'warning'), (90.0, 'negative')):
        jarvis.services.hub.publish(sample(value))
        await wait_text(user, 'cpu-value', f'{value:.0f}%')
        assert bar.props['color'] == color
        assert bar.value == pytest.approx(value / 100)


async def test_no_gpu_reads_na(jarvis: Harness, user: User) -> None:
    await user.open('/')
    jarvis.services.hub.publish(sample(5.0, gpu_status='no NVIDIA driver (NVML Shared Library Not Found)'))
    await wait_text(user, 'cpu-value', '5%')
    assert label_text(user, 'gpu-value') == 'n/a'
    assert label_text(user, 'gpu-status').startswith('n/a: no NVIDIA driver')


async def test_gpu_details_show_each_field_or_na(jarvis: Harness, user: User) -> None:
    await user.open('/')
    gpu = GpuReading(index=0, name='NVIDIA H100', utilization=100.0, memory_used=40 * 2**30,
                     memory_total=80 * 2**30, temperature=None, power=695.0, power_limit=700.0, fan=None)
    jarvis.services.hub.publish(sample(5.0, gpu=100.0, gpus=[gpu], gpu_status='ok'))
    await wait_text(user, 'gpu-value', '100%')
    table = user.find(marker='gpu-table').elements.pop()
    assert table.rows == [{'index': 0, 'name': '#0 NVIDIA H100', 'utilization': '100%',
                           'memory': '40.0 GiB / 80.0 GiB', 'temperature': 'n/a', 'power': '695 / 700 W',
                           'fan': 'n/a'}]


async def test_values_update_in_place(jarvis: Harness, user: User) -> None:
    await user.open('/')
    jarvis.services.hub.publish(sample(10.0))
    await wait_text(user, 'cpu-value', '10%')
    label = user.find(marker='cpu-value').elements.pop()
    elements_before = len(user.client.elements)
    for value in range(11, 30):
        jarvis.services.hub.publish(sample(float(value)))
    await wait_text(user, 'cpu-value', '29%')
    assert user.find(marker='cpu-value').elements.pop() is label, 'the same label, not a rebuilt one'
    assert len(user.client.elements) == elements_before


async def test_real_sampler_feeds_the_view(jarvis: Harness, user: User) -> None:
    await user.open('/')
    for _ in range(100):  # the window connected, so the sampler (0.2 s here) starts
        if label_text(user, 'cpu-value') != 'n/a':
            break
        await asyncio.sleep(0.05)
    assert label_text(user, 'cpu-value').endswith('%')
    assert jarvis.services.sampler.samples_taken >= 1


async def test_history_chart_gets_a_point_per_tick(jarvis: Harness, user: User) -> None:
    await user.open('/')
    chart = user.find(marker='history-chart').elements.pop()
    await eventually(lambda: label_text(user, 'history-caption') != 'Loading…')  # the 5-minute range is there
    published = sample(33.0, gpu=None)
    jarvis.services.hub.publish(published)
    await wait_text(user, 'cpu-value', '33%')
    series = chart.options['series']
    assert [s['name'] for s in series] == ['CPU', 'Memory', 'GPU', 'GPU memory', 'GPU °C']
    at = int(published.timestamp * 1000)
    points = {s['name']: next(p for p in s['data'] if p[0] == at) for s in series}
    assert points['CPU'][1] == 33.0 and points['Memory'][1] == 42.0
    assert points['GPU'][1] is None and points['GPU °C'][1] is None, 'a gap in the chart, not a fake 0'
    assert all(len(s['data']) == len(series[0]['data']) for s in series)


@pytest.mark.allow_errors
async def test_error_in_one_window_stays_in_that_window(jarvis: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(notifications, 'notify', lambda client, message, **_: shown.append((client.id, message)))
    alice, bob = jarvis.new_user(), jarvis.new_user()
    await alice.open('/')
    await bob.open('/')
    window = live._windows[alice.client.id]  # pylint: disable=protected-access

    def broken(_: SystemMetrics) -> None:
        raise ValueError('bad reading')

    window.on(events.SYSTEM_METRICS, broken)
    jarvis.services.hub.publish(sample(81.0))
    await wait_text(bob, 'cpu-value', '81%')
    await wait_text(alice, 'cpu-value', '81%')
    assert shown == [(alice.client.id, 'Could not show an update (ValueError: bad reading)')]
    jarvis.services.hub.publish(sample(82.0))
    await wait_text(alice, 'cpu-value', '82%')  # the window keeps working
    assert {client_id for client_id, _ in shown} == {alice.client.id}


async def test_hundred_windows_leave_no_subscriber_behind(jarvis: Harness) -> None:
    hub = jarvis.services.hub
    gc.collect()  # windows of earlier tests' simulations
    baseline, windows_before = hub.subscriber_count, live.open_windows()
    users = [jarvis.new_user() for _ in range(100)]
    for user in users:
        await user.open('/')
    assert hub.subscriber_count == baseline + 100
    assert hub.viewer_count == 100
    for user in users:  # the browser closes: its socket disconnects, NiceGUI deletes the client
        for socket_id in list(user.client._socket_to_document_id):  # pylint: disable=protected-access
            user.client.handle_disconnect(socket_id)
    assert hub.viewer_count == 0, 'a closed window stops counting as connected at once'
    for _ in range(100):
        if hub.subscriber_count == baseline:
            break
        await asyncio.sleep(0.05)
    assert hub.subscriber_count == baseline
    assert live.open_windows() == windows_before


async def test_shell_navigation_and_views(jarvis: Harness, user: User) -> None:
    await user.open('/')
    for title in ('System', 'Chat', 'Models', 'Plugins'):
        await user.should_see(marker=f'nav-{title.lower()}')
    await user.should_see('J.A.R.V.I.S.')
    await user.should_see(marker='connection-indicator')
    user.find(marker='nav-chat').click()
    await user.should_not_see(marker='cpu-value')
    user.find(marker='nav-system').click()
    await user.should_see(marker='cpu-value')


async def test_theme_defaults_to_dark_and_persists(jarvis: Harness, user: User) -> None:
    await user.open('/')
    dark = user.find(kind=ui.dark_mode).elements.pop()
    assert dark.value is True
    user.find(marker='theme-toggle').click()
    for _ in range(50):
        if jarvis.services.preferences.dark_mode is False:
            break
        await asyncio.sleep(0.02)
    assert jarvis.services.preferences.dark_mode is False
    other = jarvis.new_user()
    await other.open('/')
    assert other.find(kind=ui.dark_mode).elements.pop().value is False


async def test_the_theme_follows_in_every_open_window_at_once(jarvis: Harness) -> None:
    first, second = jarvis.new_user(), jarvis.new_user()
    await first.open('/')
    await second.open('/chat')  # already open, on another view: no reload
    second_dark = second.find(kind=ui.dark_mode).elements.pop()
    toggle = second.find(marker='theme-toggle').elements.pop()
    assert second_dark.value is True and toggle.props['aria-label'] == 'Switch to light theme'
    first.find(marker='theme-toggle').click()
    for _ in range(100):
        if second_dark.value is False:
            break
        await asyncio.sleep(0.02)
    assert second_dark.value is False, 'the other window followed'
    assert toggle.props['icon'] == 'dark_mode' and toggle.props['aria-label'] == 'Switch to dark theme'
    assert jarvis.services.preferences.dark_mode is False, 'and the choice persists'


def tooltip_of(button: ui.button) -> str | None:
    """The tooltip's text, inside the button or pointed at it."""
    for element in button.client.elements.values():
        if isinstance(element, ui.tooltip) and (element.parent_slot is not None and element.parent_slot.parent is button
                                                or element.props.get('target') == f'#{button.html_id}'):
            return element.text
    return None


async def test_icon_only_header_buttons_have_accessible_names_and_tooltips(user: User) -> None:
    await user.open('/')
    theme = user.find(marker='theme-toggle').elements.pop()
    assert isinstance(theme, ui.button) and not theme.text, 'the theme button shows its icon only'
    checked = 0
    for button in user.find(kind=ui.button).elements:
        if button.props.get('icon') and not button.props.get('label') and not button.text:
            assert button.props.get('aria-label'), f'{button.props["icon"]} has no accessible name'
            assert tooltip_of(button), f'{button.props["icon"]} has no tooltip'
            checked += 1
    assert checked >= 2, 'the navigation and theme buttons at least'
    assert tooltip_of(theme) == theme.props['aria-label'] == 'Switch to light theme'


# --- the Processes panel ------------------------------------------------------------------------

def process(pid: int, name: str, cpu: float | None, memory: int, gpu: int | None = None) -> ProcessInfo:
    return ProcessInfo(pid=pid, name=name, user='tony', cpu=cpu, memory=memory, memory_percent=None,
                       gpu_memory=gpu, cpu_time=0.0, started=0.0)


def scan(processes: list[ProcessInfo], gpu_status: str = 'no NVIDIA driver') -> ProcessSnapshot:
    return ProcessSnapshot(processes=processes, count=len(processes), cpu_window_s=5.0, gpu_status=gpu_status)


THIRTY = [process(1000 + i, f'proc{i}', float(i), (30 - i) * 2**20) for i in range(30)]


def table_rows(user: User) -> list[dict]:
    return user.find(marker='processes-table').elements.pop().rows


async def open_with_scans_paused(jarvis: Harness, user: User) -> None:
    """The System view, with the app's own scans stopped: the panel shows only what the test publishes."""
    await jarvis.services.system.processes.stop()
    await user.open('/')


async def test_processes_panel_shows_the_top_by_cpu_and_sorts_on_a_column_click(jarvis: Harness, user: User) -> None:
    await open_with_scans_paused(jarvis, user)
    jarvis.services.hub.publish(scan(THIRTY))
    await eventually(lambda: len(table_rows(user)) == 20)
    rows = table_rows(user)
    assert [r['name'] for r in rows[:3]] == ['proc29', 'proc28', 'proc27'], 'most CPU first'
    assert rows[0]['cpu_text'] == '29%' and rows[-1]['cpu_text'] == '10%' and rows[0]['memory_text'] == '1.0 MiB'
    assert label_text(user, 'processes-summary').startswith('Top 20 of 30 processes, by cpu')
    table = user.find(marker='processes-table')
    table.trigger('update:pagination', {'sortBy': 'memory', 'descending': True, 'rowsPerPage': 0})
    await eventually(lambda: table_rows(user)[0]['name'] == 'proc0')
    assert [r['pid'] for r in table_rows(user)] == [1000 + i for i in range(20)], 'the top 20 of the whole scan'
    table.trigger('update:pagination', {'sortBy': 'name', 'descending': False, 'rowsPerPage': 0})
    await eventually(lambda: table_rows(user)[0]['name'] == 'proc0' and table_rows(user)[1]['name'] == 'proc1')


async def test_the_filter_box_searches_the_whole_scan(jarvis: Harness, user: User) -> None:
    await open_with_scans_paused(jarvis, user)
    quiet = process(4242, 'needle-daemon', 0.0, 1024)
    jarvis.services.hub.publish(scan([*THIRTY, quiet]))
    await eventually(lambda: len(table_rows(user)) == 20)
    assert 4242 not in [r['pid'] for r in table_rows(user)]
    user.find(marker='processes-filter').type('NEEDLE')
    await eventually(lambda: [r['pid'] for r in table_rows(user)] == [4242])
    assert table_rows(user)[0]['cpu_text'] == '0.0%'
    assert label_text(user, 'processes-summary').startswith('1 of 31 processes match')
    user.find(marker='processes-filter').clear().type('1002')  # a PID
    await eventually(lambda: [r['pid'] for r in table_rows(user)] == [1002])


async def test_gpu_memory_column_only_with_a_gpu_and_na_where_the_driver_refuses(jarvis: Harness, user: User) -> None:
    await open_with_scans_paused(jarvis, user)
    table = user.find(marker='processes-table').elements.pop()
    jarvis.services.hub.publish(scan(THIRTY[:3]))
    await eventually(lambda: len(table_rows(user)) == 3)
    assert 'gpu_memory' not in [c['name'] for c in table.columns], 'no GPU: no column'
    assert 'GPU memory n/a: no NVIDIA driver' in label_text(user, 'processes-summary')
    jarvis.services.hub.publish(scan([process(1, 'trainer', 90.0, 2**30, gpu=40 * 2**30),
                                      process(2, 'shell', 1.0, 2**20, gpu=0),
                                      process(3, 'wddm', 1.0, 2**20, gpu=None)], gpu_status='ok'))
    await eventually(lambda: len(table_rows(user)) == 3 and table_rows(user)[0]['name'] == 'trainer')
    assert 'gpu_memory' in [c['name'] for c in table.columns]
    assert [r['gpu_memory_text'] for r in table_rows(user)] == ['40.0 GiB', '', 'n/a']


def panel_in_view(user: User, in_view: bool = True) -> None:
    """What the page reports when the panel scrolls into view (or out of it, or the tab is hidden)."""
    user.find(marker='processes-panel').trigger('panelvisibility', {'detail': in_view})


async def test_a_window_that_shows_the_panel_holds_a_demand_until_it_leaves(jarvis: Harness, user: User) -> None:
    monitor = jarvis.services.system.processes
    await user.open('/')
    await asyncio.sleep(0.2)
    assert monitor.demands() == [], 'the panel is not in view yet (and the recorder scans at its minutes itself)'
    panel_in_view(user)
    await eventually(lambda: [d.name[:16] for d in monitor.demands()] == ['processes panel '])
    assert monitor.wanted_interval() == PANEL_INTERVAL_S
    panel_in_view(user, False)  # scrolled away, or the tab was hidden
    await eventually(lambda: monitor.demands() == [])
    panel_in_view(user)
    await eventually(lambda: len(monitor.demands()) == 1)
    user.find(marker='nav-chat').click()
    await eventually(lambda: monitor.demands() == [])
    assert monitor.wanted_interval() is None, 'nobody asks: no scans until a minute of the history ends'


async def test_the_panel_shows_the_real_processes(jarvis: Harness, user: User) -> None:
    await user.open('/')
    panel_in_view(user)
    user.find(marker='processes-filter').type(str(os.getpid()))
    await eventually(lambda: os.getpid() in [r['pid'] for r in table_rows(user)])
    mine = next(r for r in table_rows(user) if r['pid'] == os.getpid())
    assert mine['name'] == psutil.Process().name() and mine['memory'] > 0


# --- the history chart --------------------------------------------------------------------------

def chart_of(user: User):  # type: ignore[no-untyped-def]
    return user.find(marker='history-chart').elements.pop()


async def test_a_week_of_history_is_drawn_from_the_minute_means(jarvis: Harness, user: User) -> None:
    now = time.time()
    minutes = []
    for index in range(7 * 24 * 60):
        minute = Aggregate(math.floor(now / 60) * 60 - 7 * 86400 + index * 60)
        minute.add(HistorySample(minute.t, cpu=float(index % 100), memory=50.0, disk=1.0).values())
        minutes.append(minute)
    await jarvis.services.db.run(history_store.write, jarvis.services.db, HistoryBatch(minutes=minutes), now)
    await user.open('/')
    await eventually(lambda: label_text(user, 'history-caption') != 'Loading…')
    user.find(marker='history-range').elements.pop().set_value('7d')
    await eventually(lambda: 'means per 17 min' in label_text(user, 'history-caption'))
    options = chart_of(user).options
    cpu = options['series'][0]['data']
    assert 500 <= len(cpu) <= 600, 'averaged on the server to what a chart shows'
    assert [p[0] for p in cpu] == sorted(p[0] for p in cpu)
    assert options['xAxis']['min'] == pytest.approx((now - 7 * 86400) * 1000, abs=5000)
    assert all(p[1] is None for p in options['series'][2]['data']), 'no GPU: an empty series'
    assert options['yAxis'][1]['show'] is False, 'no temperature axis without readings'
    user.find(marker='history-range').elements.pop().set_value('5m')
    await eventually(lambda: 'min' not in chart_of(user).options['xAxis'])


def test_a_time_without_samples_is_a_gap_in_the_line() -> None:
    points = [HistoryPoint(t, (10.0, 20.0, 1.0, None, None, None), (10.0, 20.0, 1.0, None, None, None))
              for t in (0.0, 2.0, 4.0, 3600.0, 3602.0)]
    data = series_data(HistoryRange(0.0, 3602.0, 'samples', None, points), 'cpu')
    assert data == [[0, 10.0], [2000, 10.0], [4000, 10.0], [1802000, None], [3600000, 10.0], [3602000, 10.0]]
    assert series_data(HistoryRange(0.0, 3602.0, 'samples', None, points), 'gpu')[0] == [0, None]
