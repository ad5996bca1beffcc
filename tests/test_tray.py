"""The tray icon under Xvfb: with a tray host (Debian's trayer, an XEmbed tray) the icon shows, its tooltip
follows the samples and its menu entries ask the window to act; without a tray host
the app says so once and runs without one (closing the window quits, as tests/test_native_window.py shows)."""
from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator, Iterator

import pytest
from nicegui import ui
from nicegui.testing.user import User

from jarvis import events, tray
from jarvis.events import SystemMetrics
from jarvis.hub import Hub
from jarvis.preferences import CLOSE_TO_TRAY_KEY
from jarvis.storage import SettingsStore, open_database

from .conftest import Harness
from .helpers.browser import STRICT
from .helpers.display import TRAYER, XVFB, click_tray_icon, tray_host, virtual_display
from .helpers.waiting import eventually

pytestmark = [
    pytest.mark.native,
    pytest.mark.skipif(XVFB is None and not STRICT, reason='needs Xvfb (Debian: apt-get install xvfb; .ci/run does)'),
]
needs_trayer = pytest.mark.skipif(TRAYER is None and not STRICT,
                                  reason='needs a tray host (Debian: apt-get install trayer; .ci/run does)')


@pytest.fixture
def display(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with virtual_display() as name:
        monkeypatch.setenv('DISPLAY', name)
        monkeypatch.delenv('WAYLAND_DISPLAY', raising=False)
        yield name


def test_without_a_tray_host_it_says_why(display: str) -> None:
    assert tray.unavailable() == 'the desktop has no system tray'


def test_without_a_display_it_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv('DISPLAY', raising=False)
    assert 'no X display' in (tray.unavailable() or '')


@pytest.fixture
async def tray_display(display: str) -> AsyncIterator[str]:
    """The display with a tray host, which stays until the test's own parts have stopped (pystray would
    otherwise try to dock its icon again, and log that it cannot)."""
    with tray_host(display):
        await eventually(lambda: tray.unavailable() is None, timeout=10)
        yield display
        # pystray's icon closes its X connection when it is collected: while the display is still there (on a
        # display that is gone it raises, inside whatever the collection interrupted)
        gc.collect()


@contextlib.contextmanager
def started_tray() -> Iterator[tuple[tray.Tray, list[str]]]:
    """A running tray icon on a hub of its own, and the window requests its entries publish there."""
    hub = Hub()
    requests: list[str] = []
    hub.subscribe(lambda event: requests.append(event.data.action), types=[events.WINDOW_REQUEST])
    icon = tray.Tray(hub)
    icon.start()
    try:
        yield icon, requests
    finally:
        icon.stop()


@needs_trayer
async def test_the_tray_icon_menu_and_tooltip_with_a_tray_host(tray_display: str) -> None:
    import pystray  # pylint: disable=import-outside-toplevel
    with started_tray() as (icon, requests):
        await eventually(lambda: icon.icon.visible, timeout=10)
        assert icon.icon.title == 'J.A.R.V.I.S.'
        icon.hub.publish(SystemMetrics(cpu=12.3, memory=40.0, disk=50.0, gpu=None))
        await eventually(lambda: icon.icon.title == 'J.A.R.V.I.S. - CPU 12 %, GPU n/a')

        entries = [item for item in icon.icon.menu.items if item is not pystray.Menu.SEPARATOR]
        assert [item.text for item in entries] == ['Show / hide', 'New conversation', 'Quit']
        for item in entries:
            item(icon.icon)
        await eventually(lambda: requests == ['toggle', 'new_conversation', 'quit'])
        assert entries[0].default, 'the entry a click on the icon runs where the tray shows no menu'


@needs_trayer
async def test_a_click_on_the_x11_icon_runs_its_default_entry(tray_display: str) -> None:
    """Where the tray shows no menu (an XEmbed tray), a click is the only way back to a window hidden to the
    tray: a real click (the X server's test extension) on the docked icon asks to show / hide the window."""
    with started_tray() as (_icon, requests):
        assert tray.running()
        await eventually(lambda: click_tray_icon(tray_display, 'jarvis-desktop'), timeout=10)
        await eventually(lambda: requests == ['toggle'], timeout=5)
    assert not tray.running()


async def test_without_a_tray_icon_closing_quits_and_there_is_nothing_to_choose(user: User) -> None:
    assert not tray.running()
    await user.open('/')
    await user.should_see(marker='nav-system')
    await user.should_not_see(marker='close-to-tray')


@needs_trayer
async def test_the_close_to_tray_switch_is_offered_where_a_tray_icon_runs(tray_display: str, jarvis: Harness) -> None:
    icon = tray.Tray(jarvis.services.hub)
    icon.start()
    try:
        first, second = jarvis.new_user(), jarvis.new_user()
        await first.open('/')
        await second.open('/chat')
        switch = first.find(marker='close-to-tray').elements.pop()
        other = second.find(marker='close-to-tray').elements.pop()
        assert isinstance(switch, ui.switch) and switch.value is False, 'off until chosen'
        assert switch.text == 'Close to tray'
        assert switch.props['aria-label'].startswith('Close to tray: closing the window hides it')
        assert jarvis.services.preferences.close_to_tray is False

        first.find(marker='close-to-tray').click()
        await eventually(lambda: jarvis.services.preferences.close_to_tray is True)
        await eventually(lambda: other.value is True)  # the other window's switch follows at once
        stored = SettingsStore(open_database(jarvis.services.settings.db_path).db)
        stored.load()
        assert stored.get(CLOSE_TO_TRAY_KEY) is True, 'the choice persists'

        second.find(marker='close-to-tray').click()
        await eventually(lambda: jarvis.services.preferences.close_to_tray is False)
        await eventually(lambda: switch.value is False)
    finally:
        icon.stop()
