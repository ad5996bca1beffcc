"""One chat message as a bubble: its text (sanitised Markdown), a typing indicator while the answer has no
text yet, the answer's details, and its actions: edit (your messages), regenerate (answers) and "2/3"
to step through the alternatives of a message."""
from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol

from nicegui import ui

from ..assistant.conversations import ShownMessage
from ..events import ChatMessage
from . import format as fmt
from .markers import mark
from .safe_markdown import SafeMarkdown

USER_NAME = 'You'
ASSISTANT_NAME = 'J.A.R.V.I.S.'


class BubbleActions(Protocol):
    def edit(self, message: ChatMessage) -> Awaitable[None] | None: ...

    def regenerate(self, message: ChatMessage) -> Awaitable[None] | None: ...

    def alternative(self, message: ChatMessage, step: int) -> Awaitable[None] | None: ...


class Bubble:
    """One message, updated in place while it streams."""

    def __init__(self, shown: ShownMessage, actions: BubbleActions) -> None:
        message = shown.message
        mine = message.role == 'user'
        self.message = message
        self.alternative, self.alternatives = shown.alternative, shown.alternatives
        self.element = ui.chat_message(name=USER_NAME if mine else ASSISTANT_NAME, sent=mine,
                                       stamp=fmt.message_stamp(message.created_at),
                                       avatar='/assets/user.svg' if mine else '/assets/icon.png') \
            .classes('w-full').props(f'bg-color={"primary" if mine else "grey-9"} '
                                     f'text-color={"white" if mine else "grey-2"}')
        self.element.props(f'data-message-id="{message.id}"')  # the id is a hex uuid from this app
        mark(self.element, f'bubble-{message.role}')
        # one child: Quasar draws every child of a chat message as a bubble of its own
        with self.element, ui.column().classes('gap-0 min-w-0'):
            self.text = mark(SafeMarkdown(message.text).classes('jarvis-bubble-text'), 'bubble-text')
            # which tools the model called for this answer (a label: text, never HTML)
            self.used = mark(ui.label('').classes('text-xs opacity-70'), 'bubble-tools')
            self.typing = mark(ui.spinner('dots', size='lg'), 'typing-indicator')
            self.meta = mark(ui.label('').classes('text-xs opacity-70 mt-1'), 'bubble-meta')
            with ui.row().classes('jarvis-bubble-actions items-center gap-0 no-wrap'):
                with ui.row().classes('items-center gap-0 no-wrap') as self.navigation:
                    self.previous = mark(ui.button(icon='chevron_left',
                                                   on_click=lambda: actions.alternative(self.message, -1))
                                         .props('flat dense round size=sm color=inherit aria-label="Previous version"')
                                         .tooltip('Previous version'), 'previous-alternative', f'previous:{message.id}')
                    self.position = mark(ui.label('').classes('text-xs tabular-nums'), 'alternatives',
                                         f'alternatives:{message.id}')
                    self.next = mark(ui.button(icon='chevron_right',
                                               on_click=lambda: actions.alternative(self.message, 1))
                                     .props('flat dense round size=sm color=inherit aria-label="Next version"')
                                     .tooltip('Next version'), 'next-alternative', f'next:{message.id}')
                if mine:
                    self.action = mark(ui.button(icon='edit', on_click=lambda: actions.edit(self.message))
                                       .props('flat dense round size=sm color=inherit aria-label="Edit (Up in the empty input edits your last message)"')
                                       .tooltip('Edit (Up in the empty input edits your last message)'),
                                       'edit-message', f'edit:{message.id}')
                else:
                    self.action = mark(ui.button(icon='refresh', on_click=lambda: actions.regenerate(self.message))
                                       .props('flat dense round size=sm color=inherit aria-label="Regenerate: answer again (the answers so far stay)"')
                                       .tooltip('Regenerate: answer again (the answers so far stay)'),
                                       'regenerate-message', f'regenerate:{message.id}')
        self.update(message)

    def update(self, message: ChatMessage, alternative: int | None = None, alternatives: int | None = None) -> None:
        self.message = message
        if alternative is not None and alternatives is not None:
            self.alternative, self.alternatives = alternative, alternatives
        if self.text.content != message.text:
            self.text.set_content(message.text)
        streaming = message.status == 'streaming'
        self.typing.set_visibility(streaming and not message.text)
        self.used.set_text(tools_used(message))
        self.used.set_visibility(bool(self.used.text))
        self.meta.set_text(meta(message))
        self.meta.set_visibility(bool(self.meta.text))
        self.action.set_visibility(not streaming)
        self.navigation.set_visibility(self.alternatives > 1)
        self.position.set_text(f'{self.alternative}/{self.alternatives}')
        self.previous.set_enabled(self.alternative > 1)
        self.next.set_enabled(self.alternative < self.alternatives)
        if message.status == 'error':
            self.element.props('bg-color=red-10 text-color=red-1')


def tools_used(message: ChatMessage) -> str:
    """The small line under an answer that says which tools ran: ``used: top_processes(sort=cpu)``."""
    labels = [f'{tool.get("arguments") or tool.get("name")}{"" if tool.get("ok", True) else " (failed)"}'
              for tool in message.tools]
    return f'used: {", ".join(labels)}' if labels else ''


def meta(message: ChatMessage) -> str:
    if message.role != 'assistant' or message.status == 'streaming':
        return ''
    parts = [message.model or message.source]
    if message.first_token_s is not None:
        parts.append(f'first token {message.first_token_s:.2f} s')
    if message.tokens_per_s is not None:
        parts.append(f'{message.tokens_per_s:.1f} tokens/s')
    if message.status == 'stopped':
        parts.append('stopped')
    return ' · '.join(p for p in parts if p)

