"""The "Live" / "Offline" pill: pulses while this window is connected to the app."""
from nicegui import ui

from ..framework import HANDSHAKE_FLAG


class LiveIndicator(ui.element, component='live_indicator.js'):
    def __init__(self, live_text: str = 'Live', offline_text: str = 'Offline') -> None:
        super().__init__()
        self.props['live-text'] = live_text
        self.props['offline-text'] = offline_text
        self.props['handshake-flag'] = HANDSHAKE_FLAG
