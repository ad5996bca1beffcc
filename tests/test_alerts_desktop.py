"""Desktop notifications on a real D-Bus session bus (``dbus-run-session``) with a notification server
the test starts (tests/helpers/notification_server.py): what the app sends arrives there; with no bus
or no server it is one clear log line, and the alert still happens in the app."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip('dbus_fast')

from dbus_fast.aio import MessageBus  # noqa: E402

from jarvis.alerts import DesktopNotifications  # noqa: E402

from .helpers.browser import STRICT, wait_for  # noqa: E402
from .helpers.notification_server import DBUS_RUN_SESSION, NotificationBus  # noqa: E402
from .helpers.server import AppServer  # noqa: E402

pytestmark = pytest.mark.skipif(DBUS_RUN_SESSION is None and not STRICT,
                                reason='needs dbus-run-session (Debian: apt-get install dbus-daemon; .ci/run does)')

UNAVAILABLE = 'Desktop notifications are unavailable'


@pytest.fixture
def bus() -> Iterator[NotificationBus]:
    with NotificationBus() as running:
        yield running


async def connections(address: str) -> int:
    """How many clients the bus has (each connection gets a unique name such as ":1.4")."""
    probe = await MessageBus(bus_address=address).connect()
    try:
        introspection = await probe.introspect('org.freedesktop.DBus', '/org/freedesktop/DBus')
        bus_object = probe.get_proxy_object('org.freedesktop.DBus', '/org/freedesktop/DBus', introspection)
        names = await bus_object.get_interface('org.freedesktop.DBus').call_list_names()  # type: ignore[attr-defined]
    finally:
        probe.disconnect()
    return sum(1 for name in names if name.startswith(':')) - 1  # less the probe itself


async def test_a_notification_goes_out_on_the_session_bus(bus: NotificationBus,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('DBUS_SESSION_BUS_ADDRESS', bus.address)
    desktop = DesktopNotifications('J.A.R.V.I.S.', icon=Path('/nowhere/icon.png'))
    assert await desktop.send('CPU above 90 %', 'CPU has been above 90 % for 2 min: now 97 %, peak 98 %.')
    assert await desktop.send('Disk above 95 %', 'Disk is at 97 %, above 95 %.', critical=True)
    await desktop.close()
    assert [(n['app_name'], n['summary'], n['body'], n['urgency']) for n in bus.notifications()] == [
        ('J.A.R.V.I.S.', 'CPU above 90 %', 'CPU has been above 90 % for 2 min: now 97 %, peak 98 %.', 1),
        ('J.A.R.V.I.S.', 'Disk above 95 %', 'Disk is at 97 %, above 95 %.', 2)]
    assert bus.notifications()[0]['app_icon'] == 'file:///nowhere/icon.png'
    assert desktop.sent == 2 and desktop.unavailable is None


def fire(app: AppServer, rule_id: str, threshold: float) -> None:
    """A critical rule on memory that holds on any machine, checked against the next sample: with no window
    open the app samples when asked for the status and the last sample is stale (after 1.5 intervals)."""
    response = httpx.post(app.url + '/api/alerts', json={'id': rule_id, 'metric': 'memory', 'threshold': threshold,
                                                         'duration_s': 0, 'severity': 'critical'})
    assert response.status_code == 200, response.text

    def firing() -> bool:
        assert httpx.get(app.url + '/api/system/status').status_code == 200
        return rule_id in [a['rule_id'] for a in httpx.get(app.url + '/api/alerts').json()['active']]

    wait_for(firing, timeout=20, interval=0.5, message=app.output())


def test_the_app_shows_a_firing_alert_on_the_desktop_while_no_window_is_open(
        bus: NotificationBus, tmp_path: Path) -> None:
    with AppServer(tmp_path / 'data', env={'DBUS_SESSION_BUS_ADDRESS': bus.address}) as app:
        assert httpx.get(app.url + '/api/hub/stats').json()['visible'] == 0
        fire(app, 'memory-any', 0)
        [notification] = wait_for(bus.notifications, timeout=20, message=app.output())
        assert (notification['app_name'], notification['summary'], notification['urgency']) == \
            ('J.A.R.V.I.S.', 'Memory above 0 %', 2)
        assert notification['body'].startswith('Memory is at ') and notification['body'].endswith(', above 0 %.')
        assert notification['app_icon'].startswith('file://') and notification['app_icon'].endswith('icon.png')
        body = httpx.get(app.url + '/api/alerts').json()
        assert body['desktop_notifications'] == {'enabled': True, 'unavailable': None, 'sent': 1, 'failed': 0}
        assert [a['rule_id'] for a in body['active']] == ['memory-any']
    assert UNAVAILABLE not in app.output() and 'Traceback' not in app.output()


def test_with_no_bus_to_reach_the_app_says_so_once_and_the_alerts_still_happen(tmp_path: Path) -> None:
    gone = f'unix:path={tmp_path}/no-bus-here'
    with AppServer(tmp_path / 'data', env={'DBUS_SESSION_BUS_ADDRESS': gone}) as app:
        fire(app, 'memory-any', 0)
        wait_for(lambda: UNAVAILABLE in app.output(), timeout=20, message=app.output())
        fire(app, 'memory-more', 0.5)
        log = wait_for(lambda: len(httpx.get(app.url + '/api/alerts/log').json()) == 2 and
                       httpx.get(app.url + '/api/alerts/log').json(), timeout=20)
        assert {entry['rule_id'] for entry in log} == {'memory-any', 'memory-more'}
        status = wait_for(lambda: (s := httpx.get(app.url + '/api/alerts').json()['desktop_notifications'])['failed']
                          == 2 and s, timeout=20)  # both were tried
        assert status['sent'] == 0 and status['unavailable'].startswith('the D-Bus session bus cannot be reached')
    lines = [line for line in app.output().splitlines() if UNAVAILABLE in line]
    assert len(lines) == 1, app.output()
    assert 'the D-Bus session bus cannot be reached' in lines[0] and "Alerts still show in the app's windows" in lines[0]
    assert 'Traceback' not in app.output()


async def test_with_no_session_bus_at_all_it_is_one_sentence(monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv('DBUS_SESSION_BUS_ADDRESS', raising=False)
    monkeypatch.delenv('DISPLAY', raising=False)
    desktop = DesktopNotifications('J.A.R.V.I.S.')
    with caplog.at_level(logging.DEBUG, logger='jarvis.alerts'):
        assert await desktop.send('CPU above 90 %', 'now 97 %') is False
        assert await desktop.send('CPU above 90 %', 'now 98 %') is False
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "Desktop notifications are unavailable: there is no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS not set and "
        "could not get DISPLAY environment variable to get bus address). Alerts still show in the app's windows."]
    assert warnings[0].exc_info is None, 'one line, no traceback'
    assert desktop.failed == 2


async def test_a_bus_without_a_notification_server_is_one_line_leaves_no_connection_open_and_recovers(
        bus: NotificationBus, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    with NotificationBus(with_service=False) as bare:
        monkeypatch.setenv('DBUS_SESSION_BUS_ADDRESS', bare.address)
        desktop = DesktopNotifications('J.A.R.V.I.S.')
        before = await connections(bare.address)
        with caplog.at_level(logging.INFO, logger='jarvis.alerts'):
            for _ in range(3):
                assert await desktop.send('CPU above 90 %', 'now 97 %') is False
            await asyncio.sleep(0.2)  # the daemon has seen any connection close
            assert await connections(bare.address) == before, 'each failed try closes its connection'
            assert desktop.unavailable == ('no notification server runs on the D-Bus session bus '
                                           '(org.freedesktop.Notifications is missing)')
            # a notification server turns up (here: the session of another bus): it works again
            monkeypatch.setenv('DBUS_SESSION_BUS_ADDRESS', bus.address)
            assert await desktop.send('CPU above 90 %', 'now 99 %') is True
        await desktop.close()
    messages = [r.getMessage() for r in caplog.records if r.name.startswith('jarvis.alerts')]
    assert [m for m in messages if m.startswith(UNAVAILABLE)] == [
        f'{UNAVAILABLE}: no notification server runs on the D-Bus session bus (org.freedesktop.Notifications is '
        "missing). Alerts still show in the app's windows."]
    assert messages[-1] == 'Desktop notifications work again.'
    assert [n['body'] for n in bus.notifications()] == ['now 99 %']
