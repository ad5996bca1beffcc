"""Alerts in a real headless Chromium against the running app, with a real notification server on a
session bus: the page reports whether it is visible (another tab in front hides it), a firing alert
toasts in the visible page and reaches the desktop only while no window of the app is visible."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By

from .helpers.browser import STRICT, needs_chromium, wait_for
from .helpers.server import AppServer

notification_server = pytest.importorskip('tests.helpers.notification_server')

pytestmark = [pytest.mark.browser, needs_chromium,
              pytest.mark.skipif(notification_server.DBUS_RUN_SESSION is None and not STRICT,
                                 reason='needs dbus-run-session (Debian: apt-get install dbus-daemon; .ci/run does)')]


@pytest.fixture
def bus() -> Iterator:
    with notification_server.NotificationBus() as running:
        yield running


def stats(app: AppServer) -> dict:
    return httpx.get(app.url + '/api/hub/stats').json()


def add_rule(app: AppServer, rule_id: str, threshold: float) -> None:
    """A rule on memory that holds on any machine: it fires on the next sample (the window keeps the
    sampler going)."""
    response = httpx.post(app.url + '/api/alerts', json={'id': rule_id, 'metric': 'memory', 'threshold': threshold,
                                                         'duration_s': 0, 'severity': 'critical'})
    assert response.status_code == 200, response.text


def toasts(driver) -> list[str]:  # type: ignore[no-untyped-def]
    return [element.text for element in driver.find_elements(By.CSS_SELECTOR, '.q-notification')]


def test_alerts_reach_the_desktop_only_while_no_window_is_visible(bus, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with AppServer(tmp_path / 'data', env={'DBUS_SESSION_BUS_ADDRESS': bus.address}) as app:
        browser.get(app.url + '/alerts')
        app_tab = browser.current_window_handle
        wait_for(lambda: stats(app)['visible'] == 1, message=f'the page never said it is visible: {stats(app)}')

        add_rule(app, 'seen-in-window', 0)  # the page is visible: the alert shows there, not on the desktop
        wait_for(lambda: any('Alert: Memory above 0 %' in toast for toast in toasts(browser)),
                 message=f'no toast: {toasts(browser)}')
        wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, '[data-testid="alert-firing:seen-in-window"]'),
                 message='the Alerts view does not list the firing alert')

        browser.switch_to.new_window('tab')  # another tab in front: the app's page is hidden
        browser.get('about:blank')
        wait_for(lambda: stats(app)['visible'] == 0, message=f'the page never said it is hidden: {stats(app)}')
        assert stats(app)['viewers'] == 1, 'still connected'

        add_rule(app, 'seen-on-desktop', 0.5)
        # judged at the next sample: at the calm rate while no window is visible, up to 30 s away
        notifications = wait_for(bus.notifications, timeout=45, message=app.output())
        # sent in order: had the first alert gone to the desktop, it would be there before this one
        assert [(n['summary'], n['app_name']) for n in notifications] == [('Memory above 0.5 %', 'J.A.R.V.I.S.')]

        browser.switch_to.window(app_tab)  # in front again
        wait_for(lambda: stats(app)['visible'] == 1, message=f'the page never said it is visible again: {stats(app)}')
        log = httpx.get(app.url + '/api/alerts/log').json()
        assert {entry['rule_id'] for entry in log if entry['active']} == {'seen-in-window', 'seen-on-desktop'}
    assert 'Traceback' not in app.output()
