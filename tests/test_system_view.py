"""The shell and the System view, with NiceGUI's simulated users."""
from __future__ import annotations

import asyncio
import gc

import pytest
from nicegui import ui
from nicegui.testing.user import User

from jarvis import events
from jarvis.config import Settings
from jarvis.events import GpuReading, SystemMetrics
from jarvis.ui import live, notifications

from .conftest import Harness

REAL_SAMPLER = 'real_sampler'  # a test with this mark gets the machine's own samples


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    # The other tests publish the samples the views must show; the real sampler would publish the
    # machine's own in between. A long interval keeps a published sample fresh, so that a window
    # opening asks for no new one, and the sampler itself is stopped in ``quiet``.
    return settings if request.node.get_closest_marker(REAL_SAMPLER) else settings.with_changes(metrics_interval=60.0)


@pytest.fixture(autouse=True)
async def quiet(jarvis: Harness, request: pytest.FixtureRequest) -> None:
    if not request.node.get_closest_marker(REAL_SAMPLER):
        await jarvis.services.sampler.stop()
        jarvis.services.hub.publish(sample(0.0))


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


async def test_published_cpu_shows_as_percent(jarvis: Harness, user: User) -> None:
    await user.open('/')
    jarvis.services.hub.publish(sample(50.0))
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


@pytest.mark.real_sampler
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
    before = len(chart.options['series'][0]['data'])
    jarvis.services.hub.publish(sample(33.0, gpu=None))
    await wait_text(user, 'cpu-value', '33%')
    cpu_series, _, gpu_series = chart.options['series']
    assert len(cpu_series['data']) == before + 1
    assert cpu_series['data'][-1][1] == 33.0
    assert gpu_series['data'][-1][1] is None, 'a gap in the chart, not a fake 0'


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
