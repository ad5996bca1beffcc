"""The tray icon under Xvfb: with a tray host (Debian's trayer, an XEmbed tray) the icon shows, its tooltip
follows the samples and its menu entries ask the window to act; without a tray host
the app says so once and runs without one (closing the window quits, as tests/test_native_window.py shows)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from jarvis import events, tray
from jarvis.events import SystemMetrics
from jarvis.hub import Hub

from .helpers.browser import STRICT
from .helpers.display import TRAYER, XVFB, tray_host, virtual_display
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


@needs_trayer
async def test_the_tray_icon_menu_and_tooltip_with_a_tray_host(display: str) -> None:
    import pystray  # pylint: disable=import-outside-toplevel
    with tray_host(display):
        await eventually(lambda: tray.unavailable() is None, timeout=10)
        hub = Hub()
        requests: list[str] = []
        hub.subscribe(lambda event: requests.append(event.data.action), types=[events.WINDOW_REQUEST])
        icon = tray.Tray(hub)
        icon.start()
        try:
            await eventually(lambda: icon.icon.visible, timeout=10)
            assert icon.icon.title == 'J.A.R.V.I.S.'
            hub.publish(SystemMetrics(cpu=12.3, memory=40.0, disk=50.0, gpu=None))
            await eventually(lambda: icon.icon.title == 'J.A.R.V.I.S. - CPU 12 %, GPU n/a')

            entries = [item for item in icon.icon.menu.items if item is not pystray.Menu.SEPARATOR]
            assert [item.text for item in entries] == ['Show / hide', 'New conversation', 'Quit']
            for item in entries:
                item(icon.icon)
            await eventually(lambda: requests == ['toggle', 'new_conversation', 'quit'])
            assert entries[0].default, 'the entry a click on the icon runs where the tray shows no menu'
        finally:
            icon.stop()
