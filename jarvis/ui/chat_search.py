"""Search every conversation (Ctrl+K): titles and messages, with the matched words marked.

The marks come from the hit's offsets and every piece is shown as text, never as HTML: a message that
holds markup shows it as typed.
"""
from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable

from nicegui import ui

from ..assistant.assistant import Assistant
from ..assistant.conversations import SearchHit
from . import format as fmt
from .markers import mark

Open = Callable[[SearchHit], Awaitable[None]]


class SearchDialog:
    def __init__(self, assistant: Assistant, on_open: Open) -> None:
        self.assistant = assistant
        self.on_open = on_open
        self.hits: list[SearchHit] = []
        self._searches = itertools.count()  # a slower, older search must not replace a newer one's hits
        self._latest = 0
        with ui.dialog().props('position=top') as self.dialog, \
                ui.card().classes('jarvis-search-card w-[40rem] max-w-[96vw] gap-2'):
            self.input = mark(ui.input(placeholder='Search every conversation', on_change=self._search)
                              .props('autofocus outlined dense clearable debounce=200 maxlength=200')
                              .classes('w-full'), 'search-input')
            with self.input.add_slot('prepend'):
                ui.icon('search')
            self.input.on('keydown.enter', self._open_first)
            self.status = mark(ui.label('Type a word from a title or a message.').classes('text-sm opacity-70'),
                               'search-status')
            with ui.element('div').classes('w-full max-h-[60vh] overflow-y-auto'):
                self.results = mark(ui.list().classes('w-full').props('separator'), 'search-results')

    def open(self) -> None:
        self.dialog.open()
        self.input.run_method('focus')

    def close(self) -> None:
        self.dialog.close()

    async def _search(self) -> None:
        query = (self.input.value or '').strip()
        number = self._latest = next(self._searches)
        hits = await self.assistant.search(query) if query else []
        if number != self._latest or self.dialog.is_deleted:
            return
        self.hits = hits
        self.results.clear()
        if not query:
            self.status.set_text('Type a word from a title or a message.')
        elif not hits:
            self.status.set_text(f'Nothing found for "{query}".')
        else:
            self.status.set_text(f'{len(hits)} found' + (' (the best 50)' if len(hits) >= 50 else '') + '.')
        with self.results:
            for hit in hits:
                self._result(hit)

    def _result(self, hit: SearchHit) -> None:
        with ui.item(on_click=lambda h=hit: self._open(h)).props('clickable') as item:
            with ui.item_section():
                with ui.row().classes('w-full items-center gap-2 no-wrap text-xs opacity-70'):
                    ui.icon('forum' if hit.message_id is None else
                            'person' if hit.role == 'user' else 'smart_toy', size='xs')
                    ui.label('Title of a conversation' if hit.message_id is None else hit.title) \
                        .classes('truncate font-medium')
                    ui.space()
                    ui.label(fmt.relative_time(hit.created_at)).classes('shrink-0')
                with ui.element('div').classes('text-sm jarvis-snippet'):
                    for text, marked in segments(hit.snippet, hit.highlights):
                        ui.label(text).classes('inline' + (' jarvis-hit' if marked else ''))
        mark(item, 'search-hit')

    async def _open_first(self) -> None:
        if self.hits:
            await self._open(self.hits[0])

    async def _open(self, hit: SearchHit) -> None:
        self.close()
        await self.on_open(hit)


def segments(text: str, highlights: list[tuple[int, int]]) -> list[tuple[str, bool]]:
    """The text cut at the highlights: (piece, marked) in order; overlapping or bad offsets are skipped."""
    pieces: list[tuple[str, bool]] = []
    position = 0
    for start, end in sorted(highlights):
        if start < position or end <= start or end > len(text):
            continue
        if start > position:
            pieces.append((text[position:start], False))
        pieces.append((text[start:end], True))
        position = end
    if position < len(text):
        pieces.append((text[position:], False))
    return pieces
