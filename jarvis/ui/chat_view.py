"""The Chat view: the conversations, the one this window shows, and a composer with send, stop and edit.

Each window shows the conversation it chose; messages arrive as ``chat_message`` events from the hub,
so every window that shows a conversation follows it live, whichever window (or script) sent the
message. A conversation shows one branch: editing a message or regenerating an answer adds an
alternative ("2/3"), and every window that shows the conversation follows when it changes branch.
Below 768 px the conversation list is a drawer of its own (the "Conversations" button).
"""
from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace
from typing import Protocol

from nicegui import background_tasks, ui

from .. import events, framework
from ..assistant.assistant import Assistant, ChatInputError
from ..assistant.conversations import (
    DEFAULT_TITLE,
    Conversation,
    ConversationNotFound,
    MessageNotFound,
    SearchHit,
    ShownMessage,
    Thread,
)
from ..events import ChatMessage, ConversationsChanged
from ..models.manager import ModelCatalog
from ..services import Services
from . import format as fmt
from . import notifications
from .chat_bubble import Bubble
from .chat_elements import ChatScroller, ChatShortcuts
from .chat_search import SearchDialog
from .live import LiveWindow, use_hub
from .markers import mark

CHOSEN_KEY = 'jarvis.chat.conversation'  # in the window's own storage: the conversation it chose
INPUT_SELECTOR = 'textarea[data-testid="chat-input"]'


class ModelChoices(Protocol):
    async def catalog(self) -> ModelCatalog: ...


class ChatView:
    def __init__(self, assistant: Assistant, live: LiveWindow, models: ModelChoices | None = None) -> None:
        self.assistant = assistant
        self.live = live
        self.models = models  # the models a conversation can choose (its "Answering" dialog)
        self.conversation: Conversation | None = None
        self.bubbles: dict[str, Bubble] = {}
        self.order: list[str] = []  # the ids of the shown branch, oldest first
        self.editing: ChatMessage | None = None
        self._loads = itertools.count(1)
        self._load = self._drawn = 0  # the newest load, and the one drawn: an older, slower load draws nothing
        self._target: str | None = None  # the conversation shown, or being loaded to be shown
        self._arrived: dict[str, ChatMessage] = {}  # events that came in while the conversation loaded
        self._reveal: str | int | None = None  # a message (id, or place in the branch) to show after a reload
        with ui.element('div').classes('jarvis-chat') as self.root:
            self.backdrop = ui.element('div').classes('jarvis-chat-backdrop')
            self.backdrop.on('click', self.close_panel)
            self._build_panel()
            with ui.column().classes('jarvis-chat-main gap-2 no-wrap'):
                self._build_header()
                # the assistant's own no-model text: it promises the default model only while it can be had
                self.no_model = mark(ui.label(self.assistant.no_model_text).classes(
                    'text-sm px-3 py-2 rounded bg-amber-500/15 text-amber-500 w-full'), 'no-model-banner')
                self.no_model.bind_visibility_from(live, 'model', backward=fmt.no_chat_model)
                self.scroller = mark(ChatScroller(), 'messages-scroller').classes('w-full')
                with self.scroller:
                    self.messages = mark(ui.column().classes('w-full gap-1 pr-3'), 'messages')
                    self.empty = mark(ui.label('Ask J.A.R.V.I.S. anything: the first message names the conversation.')
                                      .classes('w-full text-center opacity-60 mt-8'), 'empty-conversation')
                self._build_composer()
            ChatShortcuts(INPUT_SELECTOR, self._shortcut)
            self.search = SearchDialog(assistant, self.open_hit)
        live.on(events.CHAT_MESSAGE, self._on_message, owner=self.root)
        live.on(events.CONVERSATIONS_CHANGED, self._on_conversations_changed, owner=self.root)
        live.on(events.MODEL_STATUS, lambda _: self.no_model.set_text(self.assistant.no_model_text), owner=self.root)
        self._opening = background_tasks.create(self._open_first(), name='chat: open conversation')

    @property
    def conversation_id(self) -> str | None:
        return self.conversation.id if self.conversation else None

    # --- building ---------------------------------------------------------------------------

    def _build_panel(self) -> None:
        with ui.element('div').classes('jarvis-chat-panel') as self.panel:
            mark(self.panel, 'conversation-panel')
            with ui.row().classes('w-full items-center gap-1 no-wrap'):
                mark(ui.button('New conversation', icon='add', on_click=self.new_conversation)
                     .props('unelevated no-caps').classes('grow').tooltip('Ctrl+Shift+O'), 'new-conversation')
                mark(ui.button(icon='close', on_click=self.close_panel).props('flat round dense aria-label="Close"')
                     .classes('jarvis-narrow-only').tooltip('Close'), 'close-conversations')
            mark(ui.button('Search', icon='search', on_click=self.open_search)
                 .props('flat no-caps align=left').classes('w-full').tooltip('Ctrl+K'), 'open-search')
            with ui.scroll_area().classes('w-full grow'):
                self.conversation_list([])

    def _build_header(self) -> None:
        with ui.row().classes('w-full items-center gap-1 no-wrap'):
            mark(ui.button(icon='menu_open', on_click=self.open_panel).props('flat round dense aria-label="Conversations"')
                 .classes('jarvis-narrow-only').tooltip('Conversations'), 'open-conversations')
            self.pin_icon = ui.icon('push_pin', size='xs').classes('opacity-70').tooltip('Pinned')
            self.pin_icon.set_visibility(False)
            self.title = mark(ui.label(DEFAULT_TITLE).classes('text-xl font-semibold truncate min-w-0'),
                              'conversation-title')
            ui.space()
            mark(ui.label().classes('text-xs opacity-70 truncate max-md:hidden').bind_text_from(
                self.live, 'model', backward=lambda m: fmt.model_caption(m, none='')), 'chat-model')
            mark(ui.button(icon='search', on_click=self.open_search).props('flat round dense aria-label="Search (Ctrl+K)"')
                 .classes('jarvis-narrow-only').tooltip('Search (Ctrl+K)'), 'search-button')
            mark(ui.button(icon='add_comment', on_click=self.new_conversation).props('flat round dense aria-label="New conversation (Ctrl+Shift+O)"')
                 .classes('jarvis-narrow-only').tooltip('New conversation (Ctrl+Shift+O)'), 'new-conversation-header')
            with mark(ui.button(icon='more_vert').props('flat round dense aria-label=Conversation'), 'conversation-menu'):
                ui.tooltip('Conversation')
                with ui.menu():
                    mark(ui.menu_item('Rename…', on_click=self._rename), 'rename-conversation')
                    mark(ui.menu_item('System prompt and model…', on_click=self._edit_answering),
                         'answering-conversation')
                    with mark(ui.menu_item(on_click=self._toggle_pin), 'pin-conversation'):
                        self.pin_label = ui.label('Pin')
                    mark(ui.menu_item('Export as Markdown', on_click=lambda: self._export('md')), 'export-md')
                    mark(ui.menu_item('Export as JSON', on_click=lambda: self._export('json')), 'export-json')
                    ui.separator()
                    mark(ui.menu_item('Delete…', on_click=self._confirm_delete), 'delete-conversation')

    def _build_composer(self) -> None:
        limit = self.assistant.max_message_chars
        with ui.row().classes('w-full items-center gap-2 no-wrap text-sm px-3 py-1 rounded bg-sky-500/15') \
                as self.edit_banner:
            ui.icon('edit')
            ui.label('Editing your message: sending it makes a new version (the earlier one stays).') \
                .classes('grow min-w-0')
            mark(ui.button('Cancel', on_click=self.cancel_edit).props('flat dense no-caps').tooltip('Esc'),
                 'cancel-edit')
        mark(self.edit_banner, 'edit-banner').set_visibility(False)
        with ui.row().classes('w-full items-end gap-2 no-wrap'):
            self.input = mark(ui.textarea(placeholder='Message J.A.R.V.I.S. (Enter sends, Shift+Enter: new line)')
                              .props(f'autogrow outlined dense autofocus maxlength={limit + 1} rows=1')
                              .classes('grow jarvis-chat-input'), 'chat-input')
            self.input.on('keydown.enter.exact.prevent', self.send)
            mark(ui.button(icon='send', on_click=self.send).props('round unelevated color=primary aria-label="Send (Enter)"')
                 .tooltip('Send (Enter)'), 'send-button')
            self.stop_button = mark(ui.button(icon='stop', on_click=self.stop).props('round unelevated color=negative aria-label="Stop the answer (Esc)"')
                                    .tooltip('Stop the answer (Esc)'), 'stop-button')
            self.stop_button.set_visibility(False)

    @ui.refreshable_method
    def conversation_list(self, conversations: list[Conversation]) -> None:
        with ui.list().classes('w-full').props('dense'):
            for conversation in conversations:
                self._conversation_item(conversation)

    def _conversation_item(self, conversation: Conversation) -> None:
        active = conversation.id == self.conversation_id
        with ui.item(on_click=lambda c=conversation: self.choose(c.id)) \
                .classes('rounded' + (' bg-sky-500/20' if active else '')).props('clickable') as item:
            with ui.item_section():
                ui.item_label(conversation.title).props('lines=1')
                count = conversation.message_count
                ui.item_label(f'{fmt.relative_time(conversation.updated_at)} · '
                              f'{count} message{"" if count == 1 else "s"}').props('caption')
            if conversation.pinned:
                with ui.item_section().props('side'):
                    ui.icon('push_pin', size='xs')
        mark(item, 'conversation-item', f'conversation:{conversation.id}', *(['conversation-active'] * active))
        item.props(f'data-conversation-id="{conversation.id}"')  # a hex uuid: nothing to escape

    # --- showing a conversation -------------------------------------------------------------

    async def _open_first(self) -> None:
        """The conversation this window chose before (when it comes back from another view), else the one
        used last, else none yet (the first message starts one)."""
        chosen = self.root.client.storage.get(CHOSEN_KEY)
        conversation = None
        if isinstance(chosen, str):
            try:
                conversation = await self.assistant.conversation(chosen)
            except ConversationNotFound:
                conversation = None
        if conversation is None:
            conversation = await self.assistant.latest_conversation()
        await self._show(conversation.id if conversation else None)

    async def _show(self, conversation_id: str | None, *, reveal: str | int | None = None,
                    keep_scroll: bool = False) -> None:
        """Show a conversation (None: none yet). ``reveal``: a message id, or a place in the branch, to
        scroll to; ``keep_scroll``: the same conversation again, so leave the scrolling as it is."""
        load = self._load = next(self._loads)
        self._target, self._arrived = conversation_id, {}
        thread: Thread | None = None
        if conversation_id is not None:
            self.root.client.storage[CHOSEN_KEY] = conversation_id
            try:
                thread = await self.assistant.thread(conversation_id)
            except ConversationNotFound:  # deleted meanwhile: show the one used last instead
                if load == self._load:
                    await self._show((await self._latest_id()))
                return
        if self.root.is_deleted or load != self._load:
            return
        self._drawn = load
        self._draw(thread, reveal=reveal if reveal is not None else self._reveal, keep_scroll=keep_scroll)
        self._reveal = None
        await self.refresh_list()

    def _draw(self, thread: Thread | None, *, reveal: str | int | None, keep_scroll: bool) -> None:
        previous_id = self.conversation_id
        self.conversation = thread.conversation if thread else None
        if previous_id != self.conversation_id:
            self.cancel_edit()
        self._show_title()
        shown = list(thread.messages) if thread else []
        self._merge_arrived(shown)
        self.messages.clear()
        self.bubbles.clear()
        self.order = []
        with self.messages:
            for item in shown:
                self._add_bubble(item)
        self._update_state()
        if isinstance(reveal, int):
            reveal = self.order[reveal] if 0 <= reveal < len(self.order) else None
        if reveal:
            self.scroller.reveal(reveal)
        elif not keep_scroll:
            self.scroller.follow()

    def _merge_arrived(self, shown: list[ShownMessage]) -> None:
        """Events that came while the conversation loaded are newer than what the database had."""
        places = {item.message.id: index for index, item in enumerate(shown)}
        for message in self._arrived.values():
            if message.id in places:
                shown[places[message.id]] = replace(shown[places[message.id]], message=message)
            elif message.parent_id == (shown[-1].message.id if shown else ''):
                places[message.id] = len(shown)
                shown.append(ShownMessage(message))
        self._arrived = {}

    def _add_bubble(self, item: ShownMessage) -> None:
        self.bubbles[item.message.id] = Bubble(item, self)
        self.order.append(item.message.id)

    def _show_title(self) -> None:
        conversation = self.conversation
        self.title.set_text(conversation.title if conversation else DEFAULT_TITLE)
        self.pin_icon.set_visibility(bool(conversation and conversation.pinned))
        self.pin_label.set_text('Unpin' if conversation and conversation.pinned else 'Pin')

    def _update_state(self) -> None:
        self.empty.set_visibility(not self.order)
        streaming = any(b.message.status == 'streaming' for b in self.bubbles.values())
        self.stop_button.set_visibility(streaming)

    async def refresh_list(self) -> None:
        conversations = await self.assistant.conversations()
        if not self.root.is_deleted:
            self.conversation_list.refresh(conversations)

    async def _latest_id(self) -> str | None:
        latest = await self.assistant.latest_conversation()
        return latest.id if latest else None

    # --- hub events -------------------------------------------------------------------------

    async def _on_message(self, message: ChatMessage) -> None:
        if message.conversation_id != self._target or self._target is None:
            return
        if self._drawn != self._load:  # still loading: drawn with the loaded ones
            self._arrived[message.id] = message
            return
        bubble = self.bubbles.get(message.id)
        if bubble is not None:
            bubble.update(message)
        elif message.parent_id == (self.order[-1] if self.order else ''):
            with self.messages:
                self._add_bubble(ShownMessage(message))
        else:  # the conversation took another branch (an edit or a regeneration, here or elsewhere)
            await self._show(self.conversation_id, keep_scroll=True)
            return
        self._update_state()

    async def _on_conversations_changed(self, change: ConversationsChanged) -> None:
        if change.conversation_id == self.conversation_id:
            if change.action == 'deleted':
                await self._show(await self._latest_id())
                return
            if change.action == 'branch':
                await self._show(self.conversation_id, keep_scroll=True)
                return
            if change.action in ('renamed', 'pinned', 'updated'):
                try:
                    self.conversation = await self.assistant.conversation(change.conversation_id)
                except ConversationNotFound:
                    return  # deleted right after: the deletion's event follows
                self._show_title()
        await self.refresh_list()

    # --- actions ----------------------------------------------------------------------------

    async def send(self) -> None:
        text = self.input.value or ''
        if not text.strip():
            return  # empty or whitespace-only: nothing to send
        try:
            self.assistant.validate(text)
        except ChatInputError as error:  # the text stays in the input: nothing is lost
            notifications.notify(self.root.client, str(error), type='warning')
            return
        editing = self.editing
        self.cancel_edit(clear=False)
        self.input.set_value('')
        self.input.run_method('focus')
        self.scroller.follow()
        background_tasks.create(self._answer(text, editing), name='chat: answer')

    async def _answer(self, text: str, editing: ChatMessage | None) -> None:
        try:
            if editing is not None:
                await self.assistant.edit(editing.id, text)
                return
            if not self._opening.done():  # sent before the window has opened its conversation: into that one
                await asyncio.shield(self._opening)
            conversation_id = self._target  # the conversation shown, or being opened to be shown
            if conversation_id is None:  # none yet: this message starts one
                conversation = await self.assistant.new_conversation()
                await self._show(conversation.id)
                conversation_id = conversation.id
            await self.assistant.send(text, conversation_id)
        except (ConversationNotFound, MessageNotFound, ChatInputError) as error:
            # deleted in another window while this one sent
            notifications.notify(self.root.client, str(error), type='warning')

    def stop(self) -> None:
        for message_id, bubble in self.bubbles.items():
            if bubble.message.status == 'streaming':
                self.assistant.stop_generation(message_id)

    async def choose(self, conversation_id: str) -> None:
        self.close_panel()
        if conversation_id != self.conversation_id:
            await self._show(conversation_id)

    async def new_conversation(self) -> None:
        self.close_panel()
        if self.conversation is None or self.order:  # an empty one is already open: use it
            conversation = await self.assistant.new_conversation()
            await self._show(conversation.id)
        self.input.run_method('focus')

    def open_panel(self) -> None:
        self.panel.classes(add='is-open')
        self.backdrop.classes(add='is-open')

    def close_panel(self) -> None:
        self.panel.classes(remove='is-open')
        self.backdrop.classes(remove='is-open')

    def open_search(self) -> None:
        self.close_panel()
        self.search.open()

    async def open_hit(self, hit: SearchHit) -> None:
        """Open a search hit's conversation at its message (on the message's branch)."""
        try:
            if hit.message_id is not None:
                shown = [m.message.id for m in (await self.assistant.thread(hit.conversation_id)).messages]
                if hit.message_id not in shown:  # an alternative that is not shown: show its branch
                    self._reveal = hit.message_id  # for the reload that the branch change brings
                    await self.assistant.show_alternative(hit.message_id)
            await self._show(hit.conversation_id, reveal=hit.message_id)
        except (ConversationNotFound, MessageNotFound) as error:
            notifications.notify(self.root.client, str(error), type='warning')

    # bubble actions (chat_bubble.BubbleActions)

    def edit(self, message: ChatMessage) -> None:
        self.editing = message
        self.input.set_value(message.text)
        self.edit_banner.set_visibility(True)
        self.input.run_method('focus')

    def cancel_edit(self, clear: bool = True) -> None:
        if self.editing is not None and clear:
            self.input.set_value('')
        self.editing = None
        self.edit_banner.set_visibility(False)

    async def regenerate(self, message: ChatMessage) -> None:
        self.scroller.follow()
        try:
            await self.assistant.regenerate(message.id)
        except (ConversationNotFound, MessageNotFound, ChatInputError) as error:
            notifications.notify(self.root.client, str(error), type='warning')

    async def alternative(self, message: ChatMessage, step: int) -> None:
        place = self.order.index(message.id) if message.id in self.order else None
        self._reveal = place  # the reload that the branch change brings shows the same place
        try:
            await self.assistant.show_alternative(message.id, step)
        except MessageNotFound as error:
            self._reveal = None
            notifications.notify(self.root.client, str(error), type='warning')

    def _edit_last(self) -> None:
        mine = [self.bubbles[i].message for i in self.order if self.bubbles[i].message.role == 'user']
        if mine:
            self.edit(mine[-1])

    async def _shortcut(self, name: str) -> None:
        if name == 'search':
            self.open_search()
        elif name == 'new':
            await self.new_conversation()
        elif name == 'escape':  # stop the answer; with none streaming, leave editing
            if any(b.message.status == 'streaming' for b in self.bubbles.values()):
                self.stop()
            else:
                self.cancel_edit()
                self.close_panel()
        elif name == 'edit-last':
            self._edit_last()

    async def _toggle_pin(self) -> None:
        if self.conversation is not None:
            try:
                await self.assistant.pin(self.conversation.id, not self.conversation.pinned)
            except ConversationNotFound as error:
                notifications.notify(self.root.client, str(error), type='warning')

    async def _rename(self) -> None:
        if self.conversation is None:
            return
        conversation_id = self.conversation.id
        with self.root, ui.dialog() as dialog, ui.card().classes('w-80 max-w-[92vw]'):
            ui.label('Rename conversation').classes('text-lg')
            name = mark(ui.input('Name', value=self.title.text).props('autofocus outlined maxlength=120')
                        .classes('w-full'), 'rename-input')
            with ui.row().classes('w-full justify-end'):
                ui.button('Cancel', on_click=lambda: dialog.submit(None)).props('flat')
                mark(ui.button('Rename', on_click=lambda: dialog.submit(name.value)), 'rename-confirm')
            name.on('keydown.enter', lambda: dialog.submit(name.value))
        title = await dialog
        if title is not None:
            try:
                await self.assistant.rename(conversation_id, title)
            except (ValueError, ConversationNotFound) as error:
                notifications.notify(self.root.client, str(error), type='warning')

    async def _edit_answering(self) -> None:
        """This conversation's own system prompt and model; empty and "the chat's model" are the defaults."""
        if self.conversation is None:
            return
        conversation_id = self.conversation.id
        try:
            conversation = await self.assistant.conversation(conversation_id)
        except ConversationNotFound as error:
            notifications.notify(self.root.client, str(error), type='warning')
            return
        choices = {'': "The chat's model (the one loaded, or on standby)"}
        if self.models is not None:
            catalog = await self.models.catalog()
            choices |= {m.key: f'{m.name} ({m.source})' for m in catalog.models if m.state != 'error'}
        if conversation.model and conversation.model not in choices:
            choices[conversation.model] = f'{conversation.model} (not listed now)'
        with self.root, ui.dialog() as dialog, ui.card().classes('w-[32rem] max-w-[92vw]'):
            ui.label('System prompt and model').classes('text-lg')
            ui.label('For this conversation only; empty uses the default from the Models settings.') \
                .classes('text-xs opacity-70')
            prompt = mark(ui.textarea('System prompt', value=conversation.system_prompt or '')
                          .props('outlined autogrow maxlength=4000').classes('w-full'), 'answering-prompt')
            model = mark(ui.select(choices, value=conversation.model or '', label='Model')
                         .props('outlined dense').classes('w-full'), 'answering-model')
            with ui.row().classes('w-full justify-end'):
                ui.button('Cancel', on_click=lambda: dialog.submit(None)).props('flat')
                mark(ui.button('Save', on_click=lambda: dialog.submit((prompt.value or '', model.value or ''))),
                     'answering-save')
        chosen = await dialog
        if chosen is not None:
            try:
                await self.assistant.update(conversation_id, system_prompt=chosen[0], model=chosen[1])
            except (ValueError, ConversationNotFound) as error:
                notifications.notify(self.root.client, str(error), type='warning')
                return
            notifications.notify(self.root.client, 'Saved: the next answer uses them.', type='positive')

    async def _confirm_delete(self) -> None:
        if self.conversation is None:
            return
        conversation_id = self.conversation.id
        with self.root, ui.dialog() as dialog, ui.card().classes('max-w-[92vw]'):
            ui.label(f'Delete "{self.title.text}" and all its messages?')
            with ui.row().classes('w-full justify-end'):
                ui.button('Cancel', on_click=lambda: dialog.submit(False)).props('flat')
                mark(ui.button('Delete', color='negative', on_click=lambda: dialog.submit(True)), 'delete-confirm')
        if await dialog:
            try:
                await self.assistant.delete(conversation_id)
            except ConversationNotFound:
                pass  # another window deleted it first: its event has switched this view already

    async def _export(self, kind: str) -> None:
        if self.conversation is None:
            return
        content = await self.assistant.export(self.conversation.id, kind)
        filename = f'{_slug(self.title.text)}.{kind}'
        saved = await framework.save_file(content.encode('utf-8'), filename,
                                          'text/markdown' if kind == 'md' else 'application/json')
        if saved is not None:
            notifications.notify(self.root.client, f'Saved to {saved}', type='positive')


def chat_page(services: Services) -> None:
    ChatView(services.assistant, use_hub(services.hub), services.models)
    services.models.preload()  # with "preload" on, the model loads now rather than with the first message


def _slug(title: str) -> str:
    slug = ''.join(c if c.isalnum() else '-' for c in title.lower()).strip('-')
    return '-'.join(filter(None, slug.split('-')))[:60] or 'conversation'
