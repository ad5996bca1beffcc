"""The chat pipeline: a message goes to the enabled plugins first, then to the active model.

Every step is published on the hub as ``chat_message`` so that all windows show the
conversation live; the answer streams (coalesced) and is written to SQLite when it completes.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any, Protocol

from ..config import Settings
from ..events import ChatMessage, ConversationsChanged
from ..hub import Hub
from ..models.base import ChatModel, ChatTurn, GenerationOptions, ModelLoadError, ToolCall, ToolSpec, supports_tools
from ..plugins.manager import PluginManager
from ..storage import Database, SettingsStore
from ..text import mark_lone_surrogates
from .conversations import (
    DEFAULT_TITLE,
    Conversation,
    ConversationNotFound,
    ConversationStore,
    SearchHit,
    ShownMessage,
    Thread,
    clean_title,
)
from .tools import ToolRegistry, ToolResult

log = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    'You are J.A.R.V.I.S., a helpful, friendly and concise assistant that runs locally on the '
    "user's computer. Answer in the language of the question."
)
MAX_SYSTEM_PROMPT = 4000  # characters
# added for a model that calls tools: it has the machine's live state at hand, and the numbers must be real
TOOLS_PROMPT = (
    ' You can call tools that read this computer (its live metrics, busiest processes, recorded history and '
    'alerts) and its plugins. For a question about the computer, call a tool and answer from its result: '
    'never invent numbers or process names.')
MAX_TOOL_ROUNDS = 3  # rounds of calls before the model must answer with what it has
COALESCE_S = 0.1  # stream updates go out at most this often, so a fast model cannot flood the windows
NO_MODEL = 'No model is loaded, so I can only answer through plugins right now.'  # + the models' hint


class ChatInputError(ValueError):
    """The message cannot be sent; the text says why."""


class ModelSource(Protocol):
    @property
    def active(self) -> ChatModel | None: ...

    @property
    def generation_options(self) -> GenerationOptions: ...

    @property
    def no_model_hint(self) -> str: ...

    @property
    def system_prompt(self) -> str:
        """The default system prompt from the settings ('': the assistant's own)."""

    def use(self, prefer: str | None = None) -> AbstractAsyncContextManager[ChatModel | None]:
        """The model for one answer (``prefer``: "source:name", else the chat's model), loaded first if it
        is not (ModelLoadError when it cannot be)."""

    async def find(self, key: str) -> Any:
        """The model listed under ``key``, or None."""

    def on_release(self, listener: Callable[[ChatModel], Awaitable[None]]) -> None: ...


class Assistant:
    def __init__(self, hub: Hub, db: Database, store: SettingsStore, settings: Settings,
                 models: ModelSource, plugins: PluginManager, *, tools: ToolRegistry | None = None) -> None:
        self.hub = hub
        self.tools = tools  # offered to a model that calls tools; None: no model gets tools
        self.store = store
        self.settings = settings
        self.models = models
        self.plugins = plugins
        self._store = ConversationStore(db)
        self._streaming: dict[str, ChatMessage] = {}  # message id -> the answer so far
        self._cancel: dict[str, threading.Event] = {}
        self._generation_lock = asyncio.Lock()
        self._options: dict[str, GenerationOptions] = {}  # answer id -> the caller's options (the /v1 routes)
        # answer id -> the model it uses and an event set once it lets go of it
        self._using: dict[str, tuple[ChatModel, asyncio.Event]] = {}
        self._read_ahead: threading.Event | None = None  # set to stop reading the conversation ahead
        self.reading_ahead: asyncio.Task | None = None  # the model reading the next prompt's beginning, if it does
        models.on_release(self.stop_answers_of)

    async def start(self) -> None:
        """Make the stored conversations whole (answers cut off by a crash, messages from before branches);
        start the first conversation when there is none, so that every window opens the same one."""
        await self._store.repair()
        if await self._store.latest() is None:
            await self._store.create()

    async def stop(self) -> None:
        for cancel in self._cancel.values():
            cancel.set()
        self._stop_reading_ahead()

    # --- conversations ----------------------------------------------------------------------
    # There is no "active" conversation for the whole app: each window shows the one it chose. What a
    # new window opens, and where a script's message goes without a conversation id, is the
    # conversation used last (``latest_conversation``).

    async def conversations(self) -> list[Conversation]:
        """Every conversation: pinned ones first, then newest first."""
        return await self._store.list()

    async def conversation(self, conversation_id: str) -> Conversation:
        """One conversation; ConversationNotFound when there is none with that id."""
        return await self._store.require(conversation_id)

    async def latest_conversation(self) -> Conversation | None:
        """The conversation used last: the one with the newest message (or the newest empty one)."""
        return await self._store.latest()

    async def thread(self, conversation_id: str) -> Thread:
        """A conversation and the branch it shows, with the text so far of answers that are streaming."""
        thread = await self._store.thread(conversation_id)
        return replace(thread, messages=[replace(shown, message=self._streaming.get(shown.message.id, shown.message))
                                         for shown in thread.messages])

    async def history(self, conversation_id: str | None = None) -> list[ChatMessage]:
        """The branch a conversation shows (default: the one used last), answers streaming now included."""
        if conversation_id is None:
            latest = await self._store.latest()
            if latest is None:
                return []
            conversation_id = latest.id
        return [shown.message for shown in (await self.thread(conversation_id)).messages]

    async def recent_messages(self, limit: int, conversation_id: str | None = None) -> list[ShownMessage]:
        """The last ``limit`` shown messages (of one conversation, or of every one), oldest first."""
        if conversation_id is not None:
            await self._store.require(conversation_id)
        return await self._store.last_messages(limit, conversation_id)

    async def search(self, query: str) -> list[SearchHit]:
        """Titles, then messages (every alternative), that hold every word of ``query``; best matches first."""
        return await self._store.search(query)

    async def export(self, conversation_id: str, kind: str) -> str:
        """A conversation as Markdown (``md``) or as JSON (``json``, which ``import_conversation`` reads)."""
        return await self._store.export(conversation_id, kind)

    async def import_conversation(self, exported: str) -> Conversation:
        conversation = await self._store.import_json(exported)
        self.hub.publish(ConversationsChanged(conversation_id=conversation.id, action='created'))
        return conversation

    async def new_conversation(self) -> Conversation:
        conversation = await self._store.create()
        self.hub.publish(ConversationsChanged(conversation_id=conversation.id, action='created'))
        return conversation

    async def rename(self, conversation_id: str, title: str) -> Conversation:
        conversation = await self._store.rename(conversation_id, title)
        self.hub.publish(ConversationsChanged(conversation_id=conversation_id, action='renamed'))
        return conversation

    async def pin(self, conversation_id: str, pinned: bool) -> Conversation:
        conversation = await self._store.set_pinned(conversation_id, pinned)
        self.hub.publish(ConversationsChanged(conversation_id=conversation_id, action='pinned'))
        return conversation

    async def update(self, conversation_id: str, *, title: str | None = None, pinned: bool | None = None,
                     system_prompt: str | None = None, model: str | None = None) -> Conversation:
        """Rename, pin, and/or give it its own system prompt and model ('' for either: back to the default);
        what ``PATCH /api/chat/conversations/{id}`` does. Everything is checked before anything changes."""
        conversation = await self._store.require(conversation_id)
        if title is not None and not clean_title(title):
            raise ValueError('A conversation needs a name.')
        if system_prompt is not None and len(system_prompt) > MAX_SYSTEM_PROMPT:
            raise ValueError(f'A system prompt has at most {MAX_SYSTEM_PROMPT} characters.')
        if model and await self.models.find(model) is None:
            raise ValueError(f'There is no model "{model[:80]}": use a model\'s "source:name" from the Models '
                             'list (for example "local:gemma-3-270m-q4_k_m"), or "" for the chat\'s model.')
        if system_prompt is not None or model is not None:
            conversation = await self._store.set_answering(
                conversation_id,
                conversation.system_prompt if system_prompt is None else (system_prompt.strip() or None),
                conversation.model if model is None else (model or None))
            self.hub.publish(ConversationsChanged(conversation_id=conversation_id, action='updated'))
        if title is not None:
            conversation = await self.rename(conversation_id, title)
        if pinned is not None:
            conversation = await self.pin(conversation_id, pinned)
        return conversation

    async def delete(self, conversation_id: str) -> None:
        """Delete a conversation; an answer it is streaming stops (its sender is told it was not kept).
        Windows that showed it show the conversation used last (a fresh one after the last)."""
        for message_id, message in list(self._streaming.items()):
            if message.conversation_id == conversation_id:
                self.stop_generation(message_id)
        if not await self._store.delete(conversation_id):
            raise ConversationNotFound(f'There is no conversation with the id "{conversation_id[:64]}".')
        if await self._store.latest() is None:  # the last one: a fresh one takes its place in every window
            await self._store.create()
        self.hub.publish(ConversationsChanged(conversation_id=conversation_id, action='deleted'))

    async def show_alternative(self, message_id: str, step: int = 0) -> None:
        """Show the alternative of a message ``step`` places away (-1: the one before), down to its newest
        answer, in every window that shows its conversation. MessageNotFound when there is none."""
        conversation_id = await self._store.show(message_id, step)
        self.hub.publish(ConversationsChanged(conversation_id=conversation_id, action='branch'))

    # --- sending ----------------------------------------------------------------------------

    @property
    def max_message_chars(self) -> int:
        return self.settings.max_message_chars

    def validate(self, text: object) -> str:
        if not isinstance(text, str):
            raise ChatInputError('A message must be text.')
        if not text.strip():
            raise ChatInputError('An empty message is not sent.')
        if len(text) > self.settings.max_message_chars:
            raise ChatInputError(f'The message is too long ({len(text):,} characters; the limit is '
                                 f'{self.settings.max_message_chars:,}). Nothing was sent.')
        return mark_lone_surrogates(text)

    async def send(self, text: object, conversation_id: str | None = None, *,
                   options: GenerationOptions | None = None,
                   on_answer: Callable[[str], None] | None = None) -> ChatMessage:
        """Answer a message through plugins or the model; returns the final answer.

        ``conversation_id`` names the conversation (ConversationNotFound when there is none, also
        when it is deleted while the answer is written); without it the conversation used last
        (a new one when there is none). The message follows the branch the conversation shows.
        ``options`` replace the model settings' length and temperature for this answer; ``on_answer``
        is called with the answer's id before its first ``chat_message`` is published, so that a caller
        can follow that one answer on the hub (the /v1 routes stream it).
        """
        text = self.validate(text)
        if conversation_id is not None:
            conversation = await self._store.require(conversation_id)
        else:
            conversation = await self._store.latest() or await self.new_conversation()
        return await self._ask(conversation, text, parent_id=None, options=options, on_answer=on_answer)

    async def edit(self, message_id: str, text: object) -> ChatMessage:
        """Send a new version of one of the user's messages: an alternative to it, answered anew.
        The earlier version and its answers stay (navigate with ``show_alternative``)."""
        text = self.validate(text)
        original = await self._store.message(message_id)
        if original.role != 'user':
            raise ChatInputError('Only your own messages can be edited.')
        conversation = await self._store.require(original.conversation_id)
        return await self._ask(conversation, text, parent_id=original.parent_id)

    async def regenerate(self, message_id: str) -> ChatMessage:
        """Answer the message before an answer again: a new alternative to that answer."""
        original = await self._store.message(message_id)
        if original.role != 'assistant':
            raise ChatInputError('Only an answer can be regenerated.')
        question = await self._store.message(original.parent_id) if original.parent_id else None
        if question is None or question.role != 'user':
            raise ChatInputError('This answer follows no message of yours, so there is nothing to answer again.')
        answer = ChatMessage(role='assistant', text='', id=uuid.uuid4().hex, status='streaming')
        [answer] = await self._store.append(original.conversation_id, [answer], parent_id=question.id)
        self.hub.publish(ConversationsChanged(conversation_id=answer.conversation_id, action='updated'))
        return await self._answer_and_keep(answer, question.text)

    async def _ask(self, conversation: Conversation, text: str, parent_id: str | None, *,
                   options: GenerationOptions | None = None,
                   on_answer: Callable[[str], None] | None = None) -> ChatMessage:
        """Store the user's message and the answer it gets (after ``parent_id``; None: after the head)."""
        user_message = ChatMessage(role='user', text=text, id=uuid.uuid4().hex)
        answer = ChatMessage(role='assistant', text='', id=uuid.uuid4().hex, status='streaming')
        # both at once: a message sent meanwhile in another window follows this answer, not this question
        user_message, answer = await self._store.append(conversation.id, [user_message, answer], parent_id)
        self.hub.publish(user_message)
        if conversation.title == DEFAULT_TITLE and conversation.message_count == 0:
            await self.rename(conversation.id, await self._store.title_for(text, conversation.id))
        else:
            self.hub.publish(ConversationsChanged(conversation_id=conversation.id, action='updated'))
        return await self._answer_and_keep(answer, text, options=options, on_answer=on_answer)

    async def _answer_and_keep(self, answer: ChatMessage, text: str, *, options: GenerationOptions | None = None,
                               on_answer: Callable[[str], None] | None = None) -> ChatMessage:
        self._streaming[answer.id] = answer
        if options is not None:
            self._options[answer.id] = options
        if on_answer is not None:
            on_answer(answer.id)
        self.hub.publish(answer)  # every window shows the typing indicator at once
        try:
            final = await self._answer(answer, text)
        except Exception as error:  # the app keeps running; the conversation shows what went wrong
            log.exception('answering failed')
            final = replace(answer, text=f'Something went wrong: {error}', status='error', source='J.A.R.V.I.S.')
        finally:
            self._streaming.pop(answer.id, None)
            self._cancel.pop(answer.id, None)
            self._options.pop(answer.id, None)
        try:
            await self._store.save_message(final)
        except ConversationNotFound as gone:
            raise ConversationNotFound('The conversation was deleted while J.A.R.V.I.S. was answering, so the '
                                       'answer was not kept.') from gone
        finally:
            self.hub.publish(final)  # every window ends the typing indicator, whether or not it was kept
        return final

    async def _answer(self, answer: ChatMessage, text: str) -> ChatMessage:
        # A model that calls tools decides itself, with every enabled plugin offered to it as a tool; any
        # other model (or none loaded yet) keeps the route of before: the plugins first, then the model.
        if not self._tools_for(self.models.active):
            reply = await self.plugins.handle(text, answer.conversation_id)
            if reply is not None:
                return replace(answer, text=reply.text, status='error' if reply.error else 'done',
                               source=reply.plugin)
        cancel = self._cancel.setdefault(answer.id, threading.Event())
        conversation = await self._store.require(answer.conversation_id)
        system_prompt = conversation.system_prompt or self.models.system_prompt or SYSTEM_PROMPT
        self._stop_reading_ahead()  # what it read so far stays in the model's cache
        async with self._generation_lock:  # one model, one generation at a time; others wait their turn
            try:
                # after the wait: the model may have changed meanwhile. It is loaded here when it is
                # not (the first message, or the first after the keep-alive unloaded it); a load
                # under way is waited for, and the answer streams once it is done.
                async with self.models.use(conversation.model) as model:
                    if model is None:
                        return replace(answer, text=self.no_model_text, status='done', source='J.A.R.V.I.S.')
                    return await self._answer_with(model, answer, cancel, system_prompt)
            except ModelLoadError as error:  # the error says why and what to do
                return replace(answer, text=str(error), status='error', source='J.A.R.V.I.S.')

    async def _answer_with(self, model: ChatModel, answer: ChatMessage, cancel: threading.Event,
                           system_prompt: str) -> ChatMessage:
        released = asyncio.Event()
        self._using[answer.id] = (model, released)
        try:
            if not cancel.is_set():
                history = await self._history(answer.conversation_id, answer.id)
                turns = await self._fit(model, history, system_prompt, answer_id=answer.id)
            if cancel.is_set():  # stopped, or the model is being released, before it started
                return replace(answer, status='stopped', source=model.name, model=model.name)
            if self._tools_for(model):
                final = await self._answer_with_tools(model, turns, answer, cancel)
            else:
                final = await self._stream(model, turns, answer, cancel)
        finally:
            del self._using[answer.id]
            released.set()
        if final.status == 'done' and final.text:
            self._start_reading_ahead([*history, final], system_prompt)
        return final

    def _tools_for(self, model: ChatModel | None) -> bool:
        return self.tools is not None and model is not None and supports_tools(model)

    async def _answer_with_tools(self, model: ChatModel, turns: list[ChatTurn], answer: ChatMessage,
                                 cancel: threading.Event) -> ChatMessage:
        """The model answers with the tools offered: the calls it asks for run (with the plugins' rules, a
        failure is a result it reads), their results go back as ``tool`` turns, and it answers; after
        MAX_TOOL_ROUNDS rounds of calls it is asked once more without tools, so the chat always ends with an
        answer. The answer lists the calls that ran (``tools``), which the chat shows."""
        assert self.tools is not None
        offered = await self.tools.offered()
        specs = [tool.spec for tool in offered]
        turns = [ChatTurn('system', turns[0].content + TOOLS_PROMPT), *turns[1:]] if turns else turns
        used: list[ToolResult] = []
        for round_ in range(MAX_TOOL_ROUNDS + 1):
            calls: list[ToolCall] = []
            final = await self._stream(model, turns, answer, cancel, tools=specs if round_ < MAX_TOOL_ROUNDS else [],
                                       calls=calls, used=used)
            if not calls or final.status != 'done':
                return final
            calls = [replace(call, id=call.id or f'call_{round_}_{index}') for index, call in enumerate(calls)]
            results = []
            for call in calls:  # one after another: a plugin's thread answers one request at a time anyway
                results.append(await self.tools.call(call, offered, answer.conversation_id))
                used.append(results[-1])
                update = replace(answer, source=model.name, model=model.name, tools=[r.to_dict() for r in used])
                self._streaming[answer.id] = update
                self.hub.publish(update)  # every window shows which tool runs
            if cancel.is_set():
                return replace(final, status='stopped', tools=[r.to_dict() for r in used])
            turns = [*turns, ChatTurn('assistant', final.text, tool_calls=tuple(calls)),
                     *(ChatTurn('tool', result.content, tool_call_id=call.id, tool_name=call.name)
                       for call, result in zip(calls, results))]
        return final  # not reached: the last round offers no tools

    def _start_reading_ahead(self, history: list[ChatMessage], system_prompt: str) -> None:
        """While the user reads the answer, let the model read the beginning of the next prompt.

        Usually the model has read all of it already: the conversation so far, its own answer
        included, is in its cache. But when one more message will make the conversation outgrow the
        context, the next prompt starts further on (``fit_to_context``) and the model would read all
        of it again when that message comes; reading it now means the message waits only for itself.
        A new message stops the reading; what is read by then is kept.
        """
        self._stop_reading_ahead()
        stop = self._read_ahead = threading.Event()
        self.reading_ahead = asyncio.get_running_loop().create_task(self._read_conversation_ahead(history, system_prompt, stop),
                                                                    name='read ahead')

    def _stop_reading_ahead(self) -> None:
        if self._read_ahead is not None:
            self._read_ahead.set()

    async def _read_conversation_ahead(self, history: list[ChatMessage], system_prompt: str,
                                       stop: threading.Event) -> None:
        try:
            async with self._generation_lock:
                if stop.is_set():
                    return
                # the model loaded now, if any; not held: reading ahead is no use that keeps it loaded,
                # and an unload stops the reading (LlamaCppModel.close)
                model = self.models.active
                read = getattr(model, 'prefill', None)
                if model is None or read is None:  # none, or one without a cache of ours (Ollama keeps its own)
                    return
                turns = await self._fit(model, history, system_prompt, upcoming=True)
                await asyncio.to_thread(read, turns, stop)
        except Exception:  # pylint: disable=broad-except  # only a head start: the next message reads it anyway
            log.debug('could not read the conversation ahead', exc_info=True)

    @property
    def no_model_text(self) -> str:
        """The answer while no model is loaded: what the models part says to do now."""
        return f'{NO_MODEL} {self.models.no_model_hint}'

    async def stop_answers_of(self, model: ChatModel) -> None:
        """Stop the answers a model is generating (kept as "stopped") and return once they let go of it.

        The model manager calls this before it unloads or replaces the model, so that neither waits
        for an answer to run to its end.
        """
        waits = []
        for answer_id, (used, released) in list(self._using.items()):
            if used is model:
                self._cancel.setdefault(answer_id, threading.Event()).set()
                waits.append(released.wait())
        await asyncio.gather(*waits)

    async def _history(self, conversation_id: str, answer_id: str) -> list[ChatMessage]:
        """The messages of the branch this answer is on that its prompt includes (not the answer itself)."""
        messages = await self._store.path_to(conversation_id, answer_id)
        return [m for m in messages if m.id != answer_id and m.status in ('done', 'stopped') and m.text]

    async def _fit(self, model: ChatModel, history: list[ChatMessage], system_prompt: str, upcoming: bool = False,
                   answer_id: str | None = None) -> list[ChatTurn]:
        options = self._options.get(answer_id or '') or self.models.generation_options
        return await asyncio.to_thread(fit_to_context, model, system_prompt, history, options.max_tokens,
                                       upcoming=upcoming)

    async def _stream(self, model: ChatModel, turns: list[ChatTurn], answer: ChatMessage,
                      cancel: threading.Event, *, tools: list[ToolSpec] | None = None,
                      calls: list[ToolCall] | None = None, used: list[ToolResult] | None = None) -> ChatMessage:
        """Stream one answer of the model. With ``tools`` (a list, maybe empty: the conversation may hold
        tool turns) the model may also ask for calls, which are put into ``calls``; ``used`` are the calls
        that ran before, shown with the answer."""
        options = self._options.get(answer.id) or self.models.generation_options
        progress = _Progress()
        asked: list[ToolCall] = []  # filled by the worker thread, read once it is done
        loop = asyncio.get_running_loop()
        first_words = asyncio.Event()

        def generate() -> None:  # in a worker thread: the event loop stays free while the model computes
            try:
                pieces = model.stream_chat(turns, options, cancel) if tools is None else \
                    model.stream_chat_with_tools(turns, tools, options, cancel)  # type: ignore[attr-defined]
                for piece in pieces:
                    if isinstance(piece, ToolCall):
                        asked.append(piece)
                        continue
                    progress.add(piece)
                    if not first_words.is_set() and piece:
                        loop.call_soon_threadsafe(first_words.set)
            except BaseException as error:  # handed to the loop, which reports it in the chat
                progress.error = error

        # The loop looks at the answer every COALESCE_S instead of waking for each token: on a small
        # machine every wake-up is CPU taken from the model. Only the first words wake it at once,
        # so that they show without waiting for the next look.
        progress.started = time.perf_counter()
        worker = asyncio.ensure_future(asyncio.to_thread(generate))
        first = asyncio.ensure_future(first_words.wait())
        base = replace(answer, source=model.name, model=model.name, tools=[r.to_dict() for r in used or []])
        published = 0
        while not worker.done():
            await asyncio.wait([worker] if first.done() else [worker, first], timeout=COALESCE_S,
                               return_when=asyncio.FIRST_COMPLETED)
            text, tokens = progress.snapshot()
            if tokens != published and not worker.done():
                published = tokens
                update = replace(base, text=text)
                self._streaming[answer.id] = update
                self.hub.publish(update)
        await worker
        first.cancel()
        if calls is not None:
            calls.extend(asked)
        text, tokens = progress.snapshot()
        status = 'stopped' if cancel.is_set() else 'error' if progress.error else 'done'
        if progress.error is not None:
            text = f'{text}\n\n' if text else ''
            text += f'The model failed: {progress.error}'
        return replace(base, text=text.strip() if status == 'done' else text, status=status, tokens=tokens,
                       first_token_s=progress.first_token_s, tokens_per_s=progress.tokens_per_s)

    @contextlib.asynccontextmanager
    async def model_turn(self) -> AsyncIterator[None]:
        """The model's turn: it generates one answer at a time, and whoever else has it generate (the /v1
        routes that address a model directly) waits here for the chat's answers, as they wait for it."""
        async with self._generation_lock:
            yield

    def stop_generation(self, message_id: str | None = None) -> bool:
        """Stop one answer (or every answer) that is being generated; the partial text is kept."""
        targets = [message_id] if message_id else list(self._streaming)
        stopped = False
        for target in targets:
            if target in self._streaming:
                self._cancel.setdefault(target, threading.Event()).set()
                stopped = True
        return stopped


class _Progress:
    """The answer so far, written by the generating thread and read by the event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pieces: list[str] = []
        self.started = 0.0
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.error: BaseException | None = None

    def add(self, piece: str) -> None:
        if not piece:
            return
        now = time.perf_counter()
        with self._lock:
            self._pieces.append(piece)
            self.first_at = self.first_at or now
            self.last_at = now

    def snapshot(self) -> tuple[str, int]:
        with self._lock:
            return ''.join(self._pieces), len(self._pieces)

    @property
    def first_token_s(self) -> float | None:
        return round(self.first_at - self.started, 3) if self.first_at else None

    @property
    def tokens_per_s(self) -> float | None:
        """Tokens from the first to the last, as the model produced them (one per streamed piece)."""
        count = len(self._pieces)
        if self.first_at is None or self.last_at is None or self.last_at <= self.first_at or count < 2:
            return None
        return round((count - 1) / (self.last_at - self.first_at), 1)


def fit_to_context(model: ChatModel, system: str, history: list[ChatMessage], reserve: int,
                   count: Callable[[str], int] | None = None, *, upcoming: bool = False) -> list[ChatTurn]:
    """The system prompt and as much of the conversation as fits the model's context window.

    The prompt begins the same way turn after turn, so that llama.cpp reads only what is new: it
    keeps what it computed for the longest common start of two prompts (its KV cache) and evaluates
    the rest. Dropping the oldest message whenever a new one comes in would change that start at
    every turn and make it read the whole conversation again for each answer; instead, once the
    conversation outgrows the room, the oldest messages go in chunks of at least half the room
    (``stable_start``), and the first message kept stays the same for many turns.
    The newest message always goes in; if it alone is too long, its beginning is kept. Where the
    cut lies does not depend on the newest message as long as it is no longer than an ordinary one
    (``room // 8`` tokens): so it is known before that message comes, and with ``upcoming`` this
    returns the beginning of the next turn's prompt (this history, cut as the next message will cut
    it), which the model can read while the user reads the answer.
    """
    count = count or model.count_tokens
    room = model.context_length - reserve - count(system) - 16
    costs = [count(message.text) + 8 for message in history]  # + the turn's label and line breaks
    ordinary = min(512, room // 8)  # the room an ordinary new message takes, whatever its length
    if upcoming:
        start = stable_start([*costs, ordinary], room)
        return [ChatTurn('system', system), *(ChatTurn(m.role, m.text) for m in history[start:])]  # type: ignore[arg-type]
    start = stable_start([*costs[:-1], max(costs[-1], ordinary)], room) if costs else 0
    turns = [ChatTurn(m.role, m.text) for m in history[start:]]  # type: ignore[arg-type]
    if costs and costs[-1] > room:  # the newest message alone is too long: keep as much of it as fits
        newest = history[-1]
        keep = max(1, int(len(newest.text) * max(room, 64) / costs[-1]))
        turns = [ChatTurn(newest.role, newest.text[:keep])]  # type: ignore[arg-type]
    return [ChatTurn('system', system), *turns]


def stable_start(costs: list[int], room: int) -> int:
    """Where the kept part of a conversation starts: the first message such that the messages from
    there on cost at most ``room`` (or the newest message alone).

    Messages are dropped from the conversation's start in chunks that cost at least half the room.
    Where the chunks end depends only on the messages before, which never change, so as the
    conversation grows the start stays put until the kept part no longer fits, then moves on by a
    whole chunk: one turn in many reads the kept part anew, the others only their new messages.
    """
    chunk = max(1, room // 2)
    start, remaining = 0, sum(costs)
    while remaining > room and start < len(costs) - 1:
        dropped = 0
        while dropped < chunk and start < len(costs) - 1:
            dropped += costs[start]
            start += 1
        remaining -= dropped
    return start
