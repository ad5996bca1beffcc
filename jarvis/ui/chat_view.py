"""The Chat view: conversations, streaming bubbles, and a composer with send and stop.

Messages arrive as ``chat_message`` events from the hub, so every window shows the same
conversation live, whichever window sent the message.
"""
from __future__ import annotations

import time

from nicegui import background_tasks, ui
from nicegui import events as ui_events

from .. import events, framework
from ..assistant.assistant import Assistant, ChatInputError
from ..assistant.conversations import Conversation, ConversationNotFound
from ..events import ChatMessage, ConversationsChanged
from ..services import Services
from . import format as fmt
from . import notifications
from .live import LiveWindow, use_hub
from .markers import mark
from .safe_markdown import SafeMarkdown

USER_NAME = 'You'
ASSISTANT_NAME = 'J.A.R.V.I.S.'


class Bubble:
    """One message, updated in place while it streams."""

    def __init__(self, message: ChatMessage) -> None:
        mine = message.role == 'user'
        self.message = message
        self.element = ui.chat_message(name=USER_NAME if mine else ASSISTANT_NAME, sent=mine,
                                        stamp=time.strftime('%H:%M', time.localtime(message.created_at)),
                                        avatar='/assets/user.svg' if mine else '/assets/icon.png') \
            .classes('w-full').props(f'bg-color={"primary" if mine else "grey-9"} '
                                     f'text-color={"white" if mine else "grey-2"}')
        mark(self.element, f'bubble-{message.role}')
        # one child: Quasar draws every child of a chat message as a bubble of its own
        with self.element, ui.column().classes('gap-0 min-w-0'):
            self.text = mark(SafeMarkdown(message.text).classes('jarvis-bubble-text'), 'bubble-text')
            self.typing = mark(ui.spinner('dots', size='lg'), 'typing-indicator')
            self.meta = mark(ui.label('').classes('text-xs opacity-70 mt-1'), 'bubble-meta')
        self.update(message)

    def update(self, message: ChatMessage) -> None:
        self.message = message
        if self.text.content != message.text:
            self.text.set_content(message.text)
        self.typing.set_visibility(message.status == 'streaming' and not message.text)
        self.meta.set_text(_meta(message))
        self.meta.set_visibility(bool(self.meta.text))
        if message.status == 'error':
            self.element.props('bg-color=red-10 text-color=red-1')


class ChatView:
    def __init__(self, assistant: Assistant, live: LiveWindow) -> None:
        self.assistant = assistant
        self.live = live
        self.conversation_id: str | None = assistant.active_conversation_id
        self.bubbles: dict[str, Bubble] = {}
        self._loading = False
        self._arrived: dict[str, ChatMessage] = {}  # events that came in while the history loaded
        self.at_bottom = True
        with ui.row().classes('w-full no-wrap gap-4 items-stretch').style('height: calc(100vh - 96px)') as self.root:
            with ui.column().classes('w-64 shrink-0 gap-2 max-md:hidden'):
                mark(ui.button('New conversation', icon='add', on_click=self._new).props('unelevated')
                     .classes('w-full'), 'new-conversation')
                with ui.scroll_area().classes('w-full grow'):
                    self.conversation_list = ui.list().classes('w-full').props('dense')
            with ui.column().classes('grow min-w-0 gap-2 h-full'):
                self._build_header()
                # the assistant's own no-model text: it promises the default model only while it can be had
                self.no_model = mark(ui.label(self.assistant.no_model_text).classes(
                    'text-sm px-3 py-2 rounded bg-amber-500/15 text-amber-500 w-full'), 'no-model-banner')
                self.no_model.bind_visibility_from(live, 'model', backward=fmt.no_chat_model)
                self.scroll = ui.scroll_area(on_scroll=self._on_scroll).classes('w-full grow')
                with self.scroll:
                    self.messages = mark(ui.column().classes('w-full gap-1 pr-3'), 'messages')
                self._build_composer()
        live.on(events.CHAT_MESSAGE, self._on_message, owner=self.root)
        live.on(events.CONVERSATIONS_CHANGED, self._on_conversations_changed, owner=self.root)
        live.on(events.MODEL_STATUS, lambda _: self.no_model.set_text(self.assistant.no_model_text), owner=self.root)
        background_tasks.create(self._show_active(), name='chat: open conversation')

    # --- building ---------------------------------------------------------------------------

    def _build_header(self) -> None:
        with ui.row().classes('w-full items-center gap-2 no-wrap'):
            self.title = mark(ui.label('').classes('text-xl font-semibold truncate'), 'conversation-title')
            ui.space()
            mark(ui.label().classes('text-xs opacity-70').bind_text_from(
                self.live, 'model', backward=lambda m: fmt.model_caption(m, none='')),
                'chat-model')
            with ui.button(icon='more_vert').props('flat round dense').tooltip('Conversation'):
                with ui.menu():
                    mark(ui.menu_item('Rename…', on_click=self._rename), 'rename-conversation')
                    mark(ui.menu_item('Export as Markdown', on_click=lambda: self._export('md')), 'export-md')
                    mark(ui.menu_item('Export as JSON', on_click=lambda: self._export('json')), 'export-json')
                    ui.separator()
                    mark(ui.menu_item('Delete…', on_click=self._confirm_delete), 'delete-conversation')

    def _build_composer(self) -> None:
        limit = self.assistant.max_message_chars
        with ui.row().classes('w-full items-end gap-2 no-wrap'):
            self.input = mark(ui.textarea(placeholder='Message J.A.R.V.I.S. (Enter sends, Shift+Enter: new line)')
                              .props(f'autogrow outlined dense autofocus maxlength={limit + 1} rows=1')
                              .classes('grow'), 'chat-input')
            self.input.on('keydown.enter.exact.prevent', self.send)
            mark(ui.button(icon='send', on_click=self.send).props('round unelevated color=primary')
                 .tooltip('Send (Enter)'), 'send-button')
            self.stop_button = mark(ui.button(icon='stop', on_click=self.stop).props('round unelevated color=negative')
                                    .tooltip('Stop the answer'), 'stop-button')
            self.stop_button.set_visibility(False)

    # --- showing a conversation -------------------------------------------------------------

    async def _show_active(self) -> None:
        await self._show(self.assistant.active_conversation_id)
        await self._refresh_conversations()

    async def _show(self, conversation_id: str | None) -> None:
        if conversation_id is None:
            return
        self.conversation_id = conversation_id
        self._loading, self._arrived = True, {}
        try:
            history = await self.assistant.history(conversation_id)
            conversation = await self.assistant.conversation(conversation_id)
        except ConversationNotFound:  # deleted meanwhile: the deletion's own event switches the view
            return
        finally:
            self._loading = False
        if self.root.is_deleted or conversation_id != self.conversation_id:
            return
        self.title.set_text(conversation.title)
        self.messages.clear()  # a different conversation: the one time the list is rebuilt
        self.bubbles.clear()
        latest = {m.id: m for m in history}
        latest.update(self._arrived)  # newer than what the database had when it was read
        with self.messages:
            for message in sorted(latest.values(), key=lambda m: m.created_at):
                self.bubbles[message.id] = Bubble(message)
        self._arrived = {}
        self._update_stop_button()
        self.at_bottom = True
        self.scroll.scroll_to(percent=1.0)
        with self.root:  # and again, once the browser has laid the messages out
            ui.timer(0.3, lambda: self.scroll.scroll_to(percent=1.0), once=True)

    async def _refresh_conversations(self) -> None:
        conversations = await self.assistant.conversations()
        if self.root.is_deleted:
            return
        self.conversation_list.clear()
        with self.conversation_list:
            for conversation in conversations:
                self._conversation_item(conversation)

    def _conversation_item(self, conversation: Conversation) -> None:
        active = conversation.id == self.conversation_id
        with ui.item(on_click=lambda c=conversation: self._select(c.id)) \
                .classes('rounded' + (' bg-sky-500/20' if active else '')).props('clickable') as item:
            with ui.item_section():
                ui.item_label(conversation.title).props('lines=1')
                ui.item_label(_relative(conversation.updated_at)).props('caption')
        mark(item, 'conversation-item')

    # --- hub events -------------------------------------------------------------------------

    def _on_message(self, message: ChatMessage) -> None:
        if message.conversation_id != self.conversation_id:
            return
        if self._loading:
            self._arrived[message.id] = message
            return
        bubble = self.bubbles.get(message.id)
        if bubble is None:
            with self.messages:
                self.bubbles[message.id] = Bubble(message)
        else:
            bubble.update(message)
        self._update_stop_button()
        if self.at_bottom:  # follow the newest message unless the user scrolled up to read
            self.scroll.scroll_to(percent=1.0)

    async def _on_conversations_changed(self, change: ConversationsChanged) -> None:
        if change.action == 'selected' and change.conversation_id != self.conversation_id:
            await self._show(change.conversation_id)
        elif change.action == 'renamed' and change.conversation_id == self.conversation_id:
            try:
                conversation = await self.assistant.conversation(change.conversation_id)
            except ConversationNotFound:
                pass  # deleted right after the rename: the deletion's event follows
            else:
                self.title.set_text(conversation.title)
        await self._refresh_conversations()

    def _on_scroll(self, event: ui_events.ScrollEventArguments) -> None:
        self.at_bottom = event.vertical_percentage >= 0.98 or event.vertical_size <= event.vertical_container_size

    def _update_stop_button(self) -> None:
        streaming = any(b.message.status == 'streaming' for b in self.bubbles.values())
        self.stop_button.set_visibility(streaming)

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
        self.input.set_value('')
        self.input.run_method('focus')
        self.at_bottom = True
        background_tasks.create(self._answer(text, self.conversation_id), name='chat: answer')

    async def _answer(self, text: str, conversation_id: str | None) -> None:
        try:
            await self.assistant.send(text, conversation_id)
        except ConversationNotFound as error:  # deleted in another window while this one sent
            notifications.notify(self.root.client, str(error), type='warning')

    def stop(self) -> None:
        for message_id, bubble in self.bubbles.items():
            if bubble.message.status == 'streaming':
                self.assistant.stop_generation(message_id)

    async def _new(self) -> None:
        await self.assistant.new_conversation()

    async def _select(self, conversation_id: str) -> None:
        await self.assistant.select(conversation_id)

    async def _rename(self) -> None:
        if self.conversation_id is None:
            return
        with self.root, ui.dialog() as dialog, ui.card().classes('min-w-80'):
            ui.label('Rename conversation').classes('text-lg')
            name = mark(ui.input('Name', value=self.title.text).props('autofocus outlined').classes('w-full'),
                        'rename-input')
            with ui.row().classes('w-full justify-end'):
                ui.button('Cancel', on_click=lambda: dialog.submit(None)).props('flat')
                mark(ui.button('Rename', on_click=lambda: dialog.submit(name.value)), 'rename-confirm')
            name.on('keydown.enter', lambda: dialog.submit(name.value))
        title = await dialog
        if title is not None:
            try:
                await self.assistant.rename(self.conversation_id, title)
            except (ValueError, ConversationNotFound) as error:
                notifications.notify(self.root.client, str(error), type='warning')

    async def _confirm_delete(self) -> None:
        if self.conversation_id is None:
            return
        with self.root, ui.dialog() as dialog, ui.card():
            ui.label(f'Delete "{self.title.text}" and all its messages?')
            with ui.row().classes('w-full justify-end'):
                ui.button('Cancel', on_click=lambda: dialog.submit(False)).props('flat')
                mark(ui.button('Delete', color='negative', on_click=lambda: dialog.submit(True)), 'delete-confirm')
        if await dialog:
            try:
                await self.assistant.delete(self.conversation_id)
            except ConversationNotFound:
                pass  # another window deleted it first: its event has switched this view already

    async def _export(self, kind: str) -> None:
        if self.conversation_id is None:
            return
        content = await self.assistant.export(self.conversation_id, kind)
        filename = f'{_slug(self.title.text)}.{kind}'
        saved = await framework.save_file(content.encode('utf-8'), filename,
                                          'text/markdown' if kind == 'md' else 'application/json')
        if saved is not None:
            notifications.notify(self.root.client, f'Saved to {saved}', type='positive')


def chat_page(services: Services) -> None:
    ChatView(services.assistant, use_hub(services.hub))
    services.models.preload()  # with "preload" on, the model loads now rather than with the first message


def _meta(message: ChatMessage) -> str:
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


def _relative(timestamp: float) -> str:
    seconds = time.time() - timestamp
    if seconds < 60:
        return 'just now'
    if seconds < 3600:
        return f'{int(seconds // 60)} min ago'
    if seconds < 86400:
        return f'{int(seconds // 3600)} h ago'
    return time.strftime('%Y-%m-%d', time.localtime(timestamp))


def _slug(title: str) -> str:
    slug = ''.join(c if c.isalnum() else '-' for c in title.lower()).strip('-')
    return '-'.join(filter(None, slug.split('-')))[:60] or 'conversation'
