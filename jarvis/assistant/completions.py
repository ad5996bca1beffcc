"""Completions for the OpenAI-compatible API: the whole assistant under the id ``jarvis``, or one model
addressed directly by its name.

``jarvis`` sends the last user message through the chat pipeline (plugins first, then the active model),
so the answer appears in every window like any other message; this module follows that one answer on
the hub as it streams. A model's own id gives it the messages as they are, with no plugins and no
system prompt of the app's: it is loaded through the model manager when it is not the active one, and it
takes its turn with the chat's answers (one generation at a time). HTTP stays in ``jarvis.api.openai``.

A completion is an async iterator: ``Started`` once the answer is under way (anything wrong before
it is a ``CompletionError`` that the route answers with a status), then pieces of text, then one
``Finished`` with the reason and the token counts.
"""
from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from ..events import CHAT_MESSAGE, ChatMessage
from ..hub import Hub
from ..models.base import ChatModel, ChatTurn, GenerationOptions, ModelError, ModelInfo
from .assistant import COALESCE_S, Assistant, ChatInputError
from .conversations import ConversationNotFound

if TYPE_CHECKING:
    from ..models.manager import ModelCatalog

log = logging.getLogger(__name__)

ASSISTANT_ID = 'jarvis'
# a prompt leaves at least this many tokens of the context window for the answer
MIN_ANSWER_TOKENS = 16
# what a model's prompt format adds to each message (role labels, turn markers), as the chat reckons it
TURN_TOKENS = 8

Role = Literal['system', 'user', 'assistant']
FinishReason = Literal['stop', 'length']


class CompletionError(Exception):
    """A completion that cannot be made; the text says why and what to do."""


class UnknownModel(CompletionError):
    """No model has that id."""


class InvalidCompletion(CompletionError):
    """The request cannot be answered as it is (``param`` names the part that is wrong)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ContextTooLong(InvalidCompletion):
    """The messages do not fit the model's context window."""


class ModelUnavailable(CompletionError):
    """The model could not be loaded or was unloaded while it answered."""


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    model: str
    messages: Sequence[Message]
    max_tokens: int | None = None  # None: the model settings' answer length
    temperature: float | None = None  # None: the model settings' temperature
    stop: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """A model as /v1/models lists it."""

    id: str
    owned_by: str  # 'jarvis', or the model's source: 'local', 'ollama' or 'server:<name>'
    created: int  # Unix time: the file's for a local model, the start's for jarvis, 0 when unknown
    name: str = ''
    source: str = ''


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Started:
    """The answer is under way: from here on, a failure can only end the stream."""


@dataclass(frozen=True, slots=True)
class Finished:
    text: str  # the whole answer
    finish_reason: FinishReason
    usage: Usage


Step = Started | str | Finished


class ModelCatalogSource(Protocol):
    """What this module needs of the model manager (its public interface)."""

    @property
    def active(self) -> ChatModel | None: ...

    @property
    def active_info(self) -> ModelInfo | None: ...

    @property
    def generation_options(self) -> GenerationOptions: ...

    async def catalog(self) -> ModelCatalog: ...

    async def load(self, name: str, source: str | None = None) -> ModelInfo: ...


class Completions:
    def __init__(self, hub: Hub, assistant: Assistant, models: ModelCatalogSource) -> None:
        self.hub = hub
        self.assistant = assistant
        self.models = models
        self.created = int(time.time())
        self._running: set[threading.Event] = set()  # the cancel events of the direct completions under way
        self._quitting = False

    def stop_all(self) -> None:
        """Stop every direct completion (the app is quitting): each model stops at its next token, and each
        request ends at once with an error that says so. ``jarvis`` answers stop with the chat's."""
        self._quitting = True
        for cancel in list(self._running):
            cancel.set()

    # --- the models -------------------------------------------------------------------------

    async def list_models(self) -> list[ModelEntry]:
        """``jarvis`` first, then every model the model manager can load (not those it lists as broken)."""
        catalog = await self.models.catalog()
        usable = [m for m in catalog.models if m.state != 'error']
        times = await asyncio.to_thread(_file_times, [m.path for m in usable])
        entries = [ModelEntry(ASSISTANT_ID, 'jarvis', self.created)]
        taken = {ASSISTANT_ID}
        for info in usable:
            # a name that two sources share (or "jarvis" itself) is listed as source:name
            model_id = info.name if info.name not in taken else f'{info.source}:{info.name}'
            taken.add(model_id)
            entries.append(ModelEntry(model_id, info.source, times.get(info.path or '', 0), info.name, info.source))
        return entries

    async def find_model(self, model_id: str) -> ModelEntry:
        """The model with this id (also ``local:NAME``, ``ollama:NAME`` or ``server:SERVER:NAME``); UnknownModel
        when none has it."""
        entries = await self.list_models()
        for entry in entries:
            if entry.id == model_id:
                return entry
        for entry in entries:  # source:name, also where the name alone is unique ("server:gpu:llama3")
            if entry.source and f'{entry.source}:{entry.name}' == model_id:
                return entry
        known = ', '.join(e.id for e in entries[:10]) + (', ...' if len(entries) > 10 else '')
        raise UnknownModel(f'There is no model "{model_id[:100]}": use one of {known} (GET /v1/models lists them).')

    # --- completing -------------------------------------------------------------------------

    async def complete(self, request: CompletionRequest) -> AsyncIterator[Step]:
        """The steps of one completion (see the module's doc); raises CompletionError."""
        if not request.messages:
            raise InvalidCompletion('Send at least one message.', 'messages')
        if request.model == ASSISTANT_ID:
            async for step in self._through_assistant(request):
                yield step
            return
        entry = await self.find_model(request.model)
        async for step in self._direct(entry, request):
            yield step

    def _options(self, request: CompletionRequest) -> GenerationOptions | None:
        if request.max_tokens is None and request.temperature is None:
            return None
        defaults = self.models.generation_options
        return GenerationOptions(max_tokens=request.max_tokens or defaults.max_tokens,
                                 temperature=defaults.temperature if request.temperature is None
                                 else request.temperature)

    # --- jarvis: the chat pipeline ----------------------------------------------------------

    async def _through_assistant(self, request: CompletionRequest) -> AsyncIterator[Step]:
        last = request.messages[-1]
        if last.role != 'user':
            raise InvalidCompletion('The last message must be the user\'s: jarvis answers it in its own '
                                    'conversation, which keeps the history.', f'messages.{len(request.messages) - 1}')
        options = self._options(request)
        # subscribed before sending, so that no update of the answer is missed; buffered and bounded like
        # any subscriber, and each update holds the whole text so far, so one that is skipped loses nothing
        subscription = self.hub.subscribe(name='v1 completion', types=[CHAT_MESSAGE])
        answer_ids: list[str] = []
        created = asyncio.Event()

        def on_answer(answer_id: str) -> None:
            answer_ids.append(answer_id)
            created.set()

        sending = asyncio.ensure_future(self.assistant.send(last.content, options=options, on_answer=on_answer))
        waiting = asyncio.ensure_future(created.wait())
        cut = StopCut(request.stop)
        shown = ''
        finished = False
        try:
            # until the answer exists, or the message is refused
            await asyncio.wait([sending, waiting], return_when=asyncio.FIRST_COMPLETED)
            if not answer_ids:
                try:
                    sending.result()
                except ChatInputError as problem:
                    raise InvalidCompletion(str(problem), f'messages.{len(request.messages) - 1}.content') from None
                except ConversationNotFound as problem:
                    raise CompletionError(str(problem)) from None
            answer_id = answer_ids[0]
            yield Started()
            while not sending.done():
                update = asyncio.ensure_future(subscription.get())
                await asyncio.wait([update, sending], return_when=asyncio.FIRST_COMPLETED)
                if not update.done():
                    update.cancel()
                    break
                data = update.result().data
                if not isinstance(data, ChatMessage) or data.id != answer_id:
                    continue
                text, stopped = cut.visible(data.text.lstrip(), final=False)
                if text.startswith(shown) and len(text) > len(shown):
                    yield text[len(shown):]
                    shown = text
                if stopped:  # a stop sequence: the model writes no further (the windows show it as stopped)
                    self.assistant.stop_generation(answer_id)
            try:
                final = await sending
            except ConversationNotFound as problem:
                raise CompletionError(str(problem)) from None
            text, stopped = cut.visible(final.text.lstrip(), final=True)
            if text.startswith(shown) and len(text) > len(shown):
                yield text[len(shown):]
            limit = (options or self.models.generation_options).max_tokens
            reason: FinishReason = 'length' if not stopped and final.tokens and final.tokens >= limit else 'stop'
            # counted without the model's tokenizer, which is busy while any answer streams: the tokens the
            # model wrote when it answered, else (a plugin's answer, a cut one) about four characters a token
            written = final.tokens if final.tokens is not None and text == final.text.strip() else None
            usage = Usage(estimate_tokens(last.content), written if written is not None else estimate_tokens(text))
            finished = True
            yield Finished(text, reason, usage)
        finally:
            subscription.close()
            waiting.cancel()
            if not finished and answer_ids:  # the client left (or the request ended): the model stops too
                self.assistant.stop_generation(answer_ids[0])
            if not sending.done():
                # the answer is kept as "stopped" by the pipeline; waiting for that is not this request's job
                sending.add_done_callback(_log_failure)

    # --- a model addressed directly ---------------------------------------------------------

    async def _direct(self, entry: ModelEntry, request: CompletionRequest) -> AsyncIterator[Step]:
        turns = [ChatTurn(m.role, m.content) for m in request.messages]
        async with self.assistant.model_turn():  # one generation at a time, the chat's answers included
            if self._quitting:
                raise ModelUnavailable('J.A.R.V.I.S. is quitting; ask again once it runs.')
            model = await self._loaded(entry)
            defaults = self.models.generation_options
            prompt_tokens = await _count_turns(model, turns)
            room = model.context_length - prompt_tokens - TURN_TOKENS * (len(turns) + 1)
            if room < MIN_ANSWER_TOKENS or (request.max_tokens is not None and request.max_tokens > room):
                raise ContextTooLong(
                    f'The messages take {prompt_tokens:,} tokens and {entry.id} reads at most '
                    f'{model.context_length:,}' + (f', with {request.max_tokens:,} for the answer' if request.max_tokens
                                                   else '') + ': send fewer or shorter messages.', 'messages')
            options = GenerationOptions(
                max_tokens=request.max_tokens or min(defaults.max_tokens, room),
                temperature=defaults.temperature if request.temperature is None else request.temperature,
                stop=request.stop)  # a remote server stops there itself; StopCut below cuts for every model
            yield Started()
            cancel = threading.Event()
            progress = _Pieces()

            def generate() -> None:  # in a worker thread: the event loop stays free while the model computes
                try:
                    for piece in model.stream_chat(turns, options, cancel):
                        progress.add(piece)
                except BaseException as error:  # handed to the loop
                    progress.error = error

            self._running.add(cancel)
            worker = asyncio.ensure_future(asyncio.to_thread(generate))
            cut = StopCut(request.stop)
            shown = ''
            stopped = False
            try:
                # the loop looks every COALESCE_S, as the chat does, instead of waking for each token
                while not worker.done():
                    await asyncio.wait([worker], timeout=COALESCE_S)
                    text, stopped = cut.visible(progress.text(), final=worker.done())
                    if len(text) > len(shown):
                        yield text[len(shown):]
                        shown = text
                    if stopped:
                        cancel.set()
                        break
                await worker
            finally:
                cancel.set()  # the client left, or the stop sequence came: the model stops at its next token
                self._running.discard(cancel)
            if self._quitting:
                raise ModelUnavailable('J.A.R.V.I.S. is quitting, so the answer stopped.')
            if progress.error is not None:
                error = progress.error
                message = str(error) if isinstance(error, ModelError) else f'{type(error).__name__}: {error}'
                raise ModelUnavailable(f'{entry.id} failed while it answered: {message}')
            text, stopped = cut.visible(progress.text(), final=True)
            if len(text) > len(shown):
                yield text[len(shown):]
            written = await _count(model, text)  # the answer's tokens, as the model's tokenizer counts them
            # the model wrote one piece per token, but a base model's loop guard may hold some back and join them
            length = max(written, progress.count) >= options.max_tokens
            yield Finished(text, 'length' if length and not stopped else 'stop', Usage(prompt_tokens, written))

    async def _loaded(self, entry: ModelEntry) -> ChatModel:
        """The model, loaded through the model manager when it is not the active one (it then becomes the
        active one, as a load in the Models view makes it)."""
        key = f'{entry.source}:{entry.name}'
        info = self.models.active_info
        if info is None or info.key != key or self.models.active is None:
            try:  # shielded: a load that began ends, also when the client leaves
                await asyncio.shield(self.models.load(entry.name, entry.source))
            except ModelError as error:
                raise ModelUnavailable(f'{entry.id} could not be loaded: {error}') from None
        info, model = self.models.active_info, self.models.active
        if model is None or info is None or info.key != key:  # switched or unloaded meanwhile
            raise ModelUnavailable(f'{entry.id} was unloaded before it could answer; try again.')
        return model


class StopCut:
    """The part of an answer to show under OpenAI's ``stop``: everything before the first stop sequence;
    while the answer is still coming, an end that may be the start of one is held back."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]

    def visible(self, text: str, *, final: bool) -> tuple[str, bool]:
        """The text to show and whether a stop sequence ended it."""
        found = [at for stop in self.stops if (at := text.find(stop)) >= 0]
        if found:
            return text[:min(found)], True
        if final:
            return text, False
        held = max((size for stop in self.stops for size in range(1, len(stop)) if text.endswith(stop[:size])),
                   default=0)
        return text[:len(text) - held], False


class _Pieces:
    """The answer so far, written by the generating thread and read by the event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pieces: list[str] = []
        self.error: BaseException | None = None

    def add(self, piece: str) -> None:
        if piece:
            with self._lock:
                self._pieces.append(piece)

    def text(self) -> str:
        with self._lock:
            return ''.join(self._pieces)

    @property
    def count(self) -> int:
        """Pieces the model produced: one per token for llama.cpp and Ollama."""
        with self._lock:
            return len(self._pieces)


def estimate_tokens(text: str) -> int:
    """About four characters a token: the count where no tokenizer is at hand (as the Ollama client counts)."""
    return (len(text) + 3) // 4


async def _count(model: ChatModel | None, text: str) -> int:
    """Tokens of ``text`` by the model's tokenizer (in a worker thread: a long text takes a while), or an
    estimate when there is no model or it was unloaded meanwhile."""
    if not text:
        return 0
    if model is not None:
        try:
            return await asyncio.to_thread(model.count_tokens, text)
        except ModelError:
            pass
    return estimate_tokens(text)


async def _count_turns(model: ChatModel, turns: list[ChatTurn]) -> int:
    def count() -> int:
        return sum(model.count_tokens(turn.content) for turn in turns if turn.content)
    try:
        return await asyncio.to_thread(count)
    except ModelError as error:
        raise ModelUnavailable(str(error)) from None


def _file_times(paths: list[str | None]) -> dict[str, int]:
    times = {}
    for path in paths:
        if path:
            try:
                times[path] = int(os.stat(path).st_mtime)
            except OSError:
                pass
    return times


def _log_failure(task: asyncio.Future) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.info('an answer for /v1 ended with an error: %s', task.exception())


