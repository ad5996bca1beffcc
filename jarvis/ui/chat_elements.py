"""The two browser-side parts of the Chat view: the message list that follows the newest message, and
the keyboard shortcuts. Both are small Vue components next to this file."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import ui


class ChatScroller(ui.element, component='chat_scroller.js'):
    """A scrolling box that keeps the newest message in view, unless the user scrolled up to read (then
    it shows "Jump to latest")."""

    def __init__(self, jump_text: str = 'Jump to latest') -> None:
        super().__init__()
        self.props['jump-text'] = jump_text

    def follow(self) -> None:
        """Show the newest message, now and as it grows (after a send, when a conversation opens)."""
        self.run_method('follow')

    def reveal(self, message_id: str) -> None:
        """Scroll a message into the middle of the view and mark it for a moment (a search hit)."""
        self.run_method('reveal', message_id)


class ChatShortcuts(ui.element, component='chat_shortcuts.js'):
    """Ctrl+K, Ctrl+Shift+O, Esc and Up in the empty input (see the .js); ``on_shortcut(name)``."""

    def __init__(self, input_selector: str, on_shortcut: Callable[[str], Any]) -> None:
        super().__init__()
        self.props['input-selector'] = input_selector
        self.on('shortcut', lambda event: on_shortcut(event.args))
