"""The Alerts view and the alert toast with several simulated users: a rule changed in one window
(or by a script) shows in the others, a firing alert toasts in every window whichever view it is on,
and a window's visibility, as its page reports it, reaches the hub."""
from __future__ import annotations

import time
from typing import Any

import pytest
from nicegui.testing.user import User
from nicegui.testing.user_interaction import UserInteraction

from jarvis.events import SystemMetrics
from jarvis.ui import live, notifications
from jarvis.ui.live import VISIBILITY_EVENT

from .conftest import Harness
from .helpers.waiting import eventually


def element(user: User, marker: str) -> Any:
    found = user.find(marker=marker).elements
    assert len(found) == 1, f'{len(found)} elements marked {marker}'
    return next(iter(found))


def hidden_or_not(user: User, marker: str) -> Any:
    """The element with a marker, visible or not (user.find sees only visible ones)."""
    assert user.client is not None
    [found] = [e for e in user.client.elements.values() if marker in e._markers]  # pylint: disable=protected-access
    return found


def absent(user: User, marker: str) -> bool:
    assert user.client is not None
    return not any(marker in e._markers for e in user.client.elements.values())  # pylint: disable=protected-access


def texts(user: User, marker: str) -> list[str]:
    """The text of every label inside the elements with this marker."""
    return [label.text for e in user.find(marker=marker).elements for label in e.descendants()
            if hasattr(label, 'text') and isinstance(label.text, str)]


async def opened(harness: Harness, *paths: str) -> list[User]:
    users = []
    for path in paths:
        user = harness.new_user()
        await user.open(path)
        if path == '/alerts':
            await eventually(lambda user=user: element(user, 'alert-rule:cpu-high'))
        users.append(user)
    return users


def busy(at: float, memory: float) -> SystemMetrics:
    """A sample an hour ahead: the real sampler's own samples (the windows keep it running) are older than
    these, so the alerts take them for stale and only these count."""
    return SystemMetrics(cpu=5, memory=memory, disk=50.0, gpu=None, timestamp=time.time() + 3600 + at)


async def test_the_view_lists_the_rules_and_a_change_in_one_window_shows_in_the_other(jarvis: Harness) -> None:
    alice, bob = await opened(jarvis, '/alerts', '/alerts')
    assert element(alice, 'alert-threshold:cpu-high').value == 90
    assert element(alice, 'alert-duration:cpu-high').value == 120
    assert 'cpu-high: CPU above 90 % for 2 min' in element(alice, 'alert-rule-condition:cpu-high').text
    element(alice, 'alert-threshold:cpu-high').set_value(75)
    element(alice, 'alert-severity:cpu-high').set_value('critical')
    alice.find(marker='alert-rule-save:cpu-high').click()
    await eventually(lambda: element(bob, 'alert-threshold:cpu-high').value == 75)
    assert element(bob, 'alert-severity:cpu-high').value == 'critical'
    assert element(bob, 'alert-rule-condition:cpu-high').text == 'cpu-high: CPU above 75 % for 2 min'
    rule = await jarvis.services.alerts.rule('cpu-high')
    assert (rule.threshold, rule.severity) == (75, 'critical')

    element(bob, 'alert-rule-enabled:memory-high').set_value(False)  # the switch saves at once
    await eventually(lambda: element(alice, 'alert-rule-enabled:memory-high').value is False)
    assert (await jarvis.services.alerts.rule('memory-high')).enabled is False


async def test_a_rule_that_does_not_fit_says_why_and_is_not_stored(jarvis: Harness) -> None:
    [alice] = await opened(jarvis, '/alerts')
    element(alice, 'alert-threshold:disk-full').set_value(250)
    alice.find(marker='alert-rule-save:disk-full').click()
    await eventually(lambda: 'from 0 to 100 %' in element(alice, 'alert-rule-error:disk-full').text)
    assert (await jarvis.services.alerts.rule('disk-full')).threshold == 95
    assert element(alice, 'alert-threshold:disk-full').value == 250, 'what the user typed stays, to correct it'
    element(alice, 'alert-threshold:disk-full').set_value(None)  # an emptied field is no "keep the old value"
    alice.find(marker='alert-rule-save:disk-full').click()
    await eventually(lambda: 'Give a number' in element(alice, 'alert-rule-error:disk-full').text)
    element(alice, 'alert-threshold:disk-full').set_value(95)  # the stored value again: saved, the error goes
    alice.find(marker='alert-rule-save:disk-full').click()
    await eventually(lambda: not hidden_or_not(alice, 'alert-rule-error:disk-full').visible)
    element(alice, 'alert-new-threshold').set_value(None)
    alice.find(marker='alert-new-add').click()
    await eventually(lambda: 'Give a number' in element(alice, 'alert-new-error').text)
    assert len(await jarvis.services.alerts.rules()) == 5


async def test_rules_added_and_removed_in_one_window_or_by_a_script_show_in_the_others(jarvis: Harness) -> None:
    alice, bob = await opened(jarvis, '/alerts', '/alerts')
    element(alice, 'alert-new-metric').set_value('gpu_temperature')
    element(alice, 'alert-new-threshold').set_value(70)
    alice.find(marker='alert-new-add').click()
    await eventually(lambda: element(bob, 'alert-threshold:gpu-temperature-1').value == 70)
    assert element(bob, 'alert-metric:gpu-temperature-1').value == 'gpu_temperature'

    bob.find(marker='alert-rule-remove:gpu-temperature-1').click()
    await eventually(lambda: absent(alice, 'alert-rule:gpu-temperature-1'))

    async with jarvis.http() as http:  # a script changes a rule: every window follows
        response = await http.post('/api/alerts', json={'id': 'gpu-hot', 'threshold': 80})
    assert response.status_code == 200, response.text
    for user in (alice, bob):
        await eventually(lambda user=user: element(user, 'alert-threshold:gpu-hot').value == 80)


async def test_a_firing_alert_toasts_in_every_window_and_shows_in_the_alerts_view(
        jarvis: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[tuple[str, str, str]] = []
    monkeypatch.setattr(notifications, 'notify',
                        lambda client, message, **options: shown.append((client.id, message, options.get('type'))))
    alerts, system = await opened(jarvis, '/alerts', '/')
    await jarvis.services.alerts.save({'metric': 'memory', 'threshold': 80, 'duration_s': 0, 'severity': 'critical'},
                                      'memory-test')
    jarvis.services.hub.publish(busy(0, memory=93))
    await eventually(lambda: element(alerts, 'alert-firing:memory-test'))

    def firing() -> set[tuple[str, str, str]]:
        return {(client, message, kind) for client, message, kind in shown if message.startswith('Alert:')}

    await eventually(lambda: firing() == {(alerts.client.id, 'Alert: Memory above 80 %', 'negative'),
                                          (system.client.id, 'Alert: Memory above 80 %', 'negative')})
    assert 'peak so far 93 %.' in ' '.join(texts(alerts, 'alert-firing:memory-test'))
    await eventually(lambda: element(alerts, 'alert-log').rows and element(alerts, 'alert-log').rows[0]['ended'] == 'firing')

    jarvis.services.hub.publish(busy(1, memory=41))
    await eventually(lambda: len([m for _, m, _ in shown if m.startswith('Resolved:')]) == 2)
    await eventually(lambda: element(alerts, 'alerts-none-firing'))
    [row] = element(alerts, 'alert-log').rows
    assert (row['alert'], row['peak'], row['how']) == ('Memory above 80 % (memory-test)', '93 %', 'cleared')
    assert len([m for _, m, _ in shown if m.startswith('Alert:')]) == 2, 'it fired once'


def report_visibility(user: User, state: str) -> None:
    """What the page's script sends on visibilitychange (``emitEvent``), as NiceGUI delivers it."""
    assert user.client is not None
    UserInteraction(user, {user.client.layout}, None).trigger(VISIBILITY_EVENT, state)


async def test_each_window_reports_whether_its_page_is_visible(jarvis: Harness) -> None:
    """The server's half of the page's report (tests/test_browser_alerts.py has a real page send it)."""
    hub = jarvis.services.hub
    alice, bob = jarvis.new_user(), jarvis.new_user()
    await alice.open('/')
    await bob.open('/alerts')
    assert hub.visible_count == 2, 'a window is visible until its page says otherwise'
    report_visibility(alice, 'hidden')  # another tab in front, or the window minimised
    assert hub.visible_count == 1 and live._windows[alice.client.id].visible is False  # pylint: disable=protected-access
    report_visibility(bob, 'hidden')
    assert hub.visible_count == 0 and hub.viewer_count == 2, 'hidden windows are still connected'
    report_visibility(alice, 'visible')
    assert hub.visible_count == 1
    assert hub.stats()['visible'] == 1


async def test_the_alerts_view_is_in_the_navigation(jarvis: Harness, user: User) -> None:
    await user.open('/')
    user.find(marker='nav-alerts').click()
    await user.should_see('Firing now')
    await eventually(lambda: element(user, 'alert-rule:cpu-high'))
