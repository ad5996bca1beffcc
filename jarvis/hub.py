"""The hub: one UI-agnostic object that holds the live state and fans out typed events.

Publishing never blocks and never raises because of a subscriber: every subscriber owns a
bounded buffer; when it is full the event is skipped for that subscriber only, counted, and
a warning is logged once per overflow episode. A subscriber's callback runs in its own task,
so one that is slow or raises never delays or hurts the others.
"""
from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from .events import Event, Payload

log = logging.getLogger(__name__)

DEFAULT_BUFFER_SIZE = 256

Callback = Callable[[Event], Awaitable[Any] | Any]


class Subscription:
    """One subscriber's bounded buffer, drained by its callback task or by ``async for``."""

    _ids = itertools.count(1)

    def __init__(self, hub: Hub, *, name: str, maxsize: int, types: frozenset[str] | None,
                 callback: Callback | None, viewer: bool, window: bool = False,
                 paused_while_hidden: frozenset[str] = frozenset()) -> None:
        if maxsize < 1:
            raise ValueError('maxsize must be at least 1')
        self.id = next(self._ids)
        self.name = name or f'subscriber-{self.id}'
        self.maxsize = maxsize
        self.types = types
        # every event offered to this subscriber ends up in exactly one of: delivered, skipped, pending
        self.delivered = 0
        self.skipped = 0
        self.errors = 0
        self._hub = hub
        self._viewer = viewer
        # a window (a page a person looks at) rather than a script; its page says whether it is visible
        # (see jarvis/ui/live.py); a script is never visible but always watching while connected
        self.window = window
        self._visible = False
        # per-tick event types (live samples) a hidden window does not receive: nobody would see them
        self.paused_while_hidden = paused_while_hidden
        self._buffer: deque[Event] = deque()
        self._ready = asyncio.Event()
        self._overflowing = False
        self._skipped_in_episode = 0
        self._closed = False
        self._task: asyncio.Task | None = None
        if callback is not None:
            self._task = asyncio.get_running_loop().create_task(self._pump(callback), name=f'hub:{self.name}')

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> int:
        return len(self._buffer)

    @property
    def viewer(self) -> bool:
        return self._viewer

    @viewer.setter
    def viewer(self, value: bool) -> None:
        """Whether this subscriber is a connected window (the metrics sampler runs only while one is)."""
        if value != self._viewer:
            self._viewer = value
            self._hub._viewers_changed()  # pylint: disable=protected-access

    @property
    def visible(self) -> bool:
        return self._visible

    @visible.setter
    def visible(self, value: bool) -> None:
        if value != self._visible:
            self._visible = value
            self._hub._viewers_changed()  # pylint: disable=protected-access

    @property
    def watching(self) -> bool:
        """Connected, and a person or a script takes in what it receives: a visible window or a script."""
        return self._viewer and (self._visible or not self.window)

    def offer(self, event: Event) -> bool:
        """Queue an event without blocking; return False when it was skipped because the buffer is full."""
        if self._closed or (self.types is not None and event.type not in self.types):
            return True
        if not self._visible and event.type in self.paused_while_hidden:
            return True  # not skipped: a hidden window is not meant to get it (it catches up when shown)
        if len(self._buffer) >= self.maxsize:
            self.skipped += 1
            self._skipped_in_episode += 1
            self._hub.skipped_total += 1
            if not self._overflowing:
                self._overflowing = True
                log.warning('hub: buffer of %s is full (%d events); skipping events until it drains',
                            self.name, self.maxsize)
            return False
        self._buffer.append(event)
        self._ready.set()
        return True

    async def get(self) -> Event:
        """Wait for the next event."""
        while not self._buffer:
            if self._closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        event = self._buffer.popleft()
        self.delivered += 1
        if self._overflowing and not self._buffer:
            log.warning('hub: %s caught up after skipping %d events', self.name, self._skipped_in_episode)
            self._overflowing = False
            self._skipped_in_episode = 0
        return event

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        return await self.get()

    def close(self) -> None:
        """Stop receiving events; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._buffer.clear()
        self._ready.set()
        if self._task is not None and self._task is not _current_task():
            self._task.cancel()
        self._hub._remove(self)  # pylint: disable=protected-access

    async def _pump(self, callback: Callback) -> None:
        try:
            while not self._closed:
                event = await self.get()
                try:
                    result = callback(event)
                    if inspect.isawaitable(result):
                        await result
                except asyncio.CancelledError:
                    raise
                except Exception:  # a failing subscriber must never hurt the others
                    self.errors += 1
                    log.exception('hub: subscriber %s failed on %s', self.name, event.type)
        except (StopAsyncIteration, asyncio.CancelledError):
            pass


def _current_task() -> asyncio.Task | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


class Hub:
    """Holds the latest value of each event type and fans events out to every subscriber."""

    def __init__(self, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        self.buffer_size = buffer_size
        self.skipped_total = 0
        self.published_total = 0
        self._subscriptions: dict[int, Subscription] = {}
        self._latest: dict[str, Event] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._has_viewers: asyncio.Event | None = None
        self._has_watchers: asyncio.Event | None = None

    # --- publishing -------------------------------------------------------------------------

    def publish(self, payload: Payload) -> Event:
        """Fan a payload out to every subscriber. Never blocks; safe to call from any thread."""
        event = Event(type=payload.event_type, data=payload, timestamp=time.time())
        if self._loop is not None and threading.get_ident() != self._loop_thread:
            try:
                self._loop.call_soon_threadsafe(self._fan_out, event)
            except RuntimeError:  # the loop is closed: the app is shutting down
                log.debug('hub: skipped %s published after shutdown', event.type)
        else:
            self._fan_out(event)
        return event

    def _fan_out(self, event: Event) -> None:
        self.published_total += 1
        self._latest[event.type] = event
        for subscription in list(self._subscriptions.values()):
            subscription.offer(event)

    def latest(self, event_type: str) -> Event | None:
        """The last event of a type, so that a new view starts from the current state."""
        return self._latest.get(event_type)

    # --- subscribing ------------------------------------------------------------------------

    def subscribe(self, callback: Callback | None = None, *, name: str = '',
                  types: Iterable[str] | None = None, maxsize: int | None = None,
                  viewer: bool = False, replay: Iterable[str] = (), window: bool = False,
                  paused_while_hidden: Iterable[str] = ()) -> Subscription:
        """Add a subscriber (must be called on the event loop).

        With a callback, events are delivered to it in order by a task of its own; without one,
        read them with ``async for event in subscription``. ``replay`` names event types whose
        latest value is queued at once, so the subscriber starts from the current state. A ``window``
        receives no event of the ``paused_while_hidden`` types while it is not visible.
        """
        self._bind_loop()
        subscription = Subscription(self, name=name, maxsize=maxsize or self.buffer_size,
                                    types=frozenset(types) if types is not None else None,
                                    callback=callback, viewer=viewer, window=window,
                                    paused_while_hidden=frozenset(paused_while_hidden))
        self._subscriptions[subscription.id] = subscription
        for event_type in replay:
            if (event := self._latest.get(event_type)) is not None:
                subscription.offer(event)
        if viewer:
            self._viewers_changed()
        return subscription

    def _remove(self, subscription: Subscription) -> None:
        if self._subscriptions.pop(subscription.id, None) is not None and subscription.viewer:
            self._viewers_changed()

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)

    @property
    def subscriptions(self) -> list[Subscription]:
        return list(self._subscriptions.values())

    # --- viewers: the sampler runs only while at least one window is connected --------------

    @property
    def viewer_count(self) -> int:
        return sum(1 for s in self._subscriptions.values() if s.viewer)

    @property
    def visible_count(self) -> int:
        """Connected windows whose page a person can see now (not hidden behind another tab, not minimised)."""
        return sum(1 for s in self._subscriptions.values() if s.viewer and s.visible)

    @property
    def watching_count(self) -> int:
        """Subscribers someone takes live values in from: visible windows and connected scripts. While
        there is none, live samples can wait (the metrics sampler drops to its calm rate)."""
        return sum(1 for s in self._subscriptions.values() if s.watching)

    async def wait_for_viewers(self) -> None:
        """Return as soon as at least one window is connected."""
        self._bind_loop()
        assert self._has_viewers is not None
        await self._has_viewers.wait()

    async def wait_for_watchers(self) -> None:
        """Return as soon as a window is visible or a script is connected."""
        self._bind_loop()
        assert self._has_watchers is not None
        await self._has_watchers.wait()

    def _viewers_changed(self) -> None:
        for flag, count in ((self._has_viewers, self.viewer_count), (self._has_watchers, self.watching_count)):
            if flag is not None:
                if count:
                    flag.set()
                else:
                    flag.clear()

    def _bind_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop = loop
            self._loop_thread = threading.get_ident()
            self._has_viewers = asyncio.Event()
            self._has_watchers = asyncio.Event()
            self._viewers_changed()

    def stats(self) -> dict[str, Any]:
        return {
            'subscribers': self.subscriber_count,
            'viewers': self.viewer_count,
            'visible': self.visible_count,
            'watching': self.watching_count,
            'published': self.published_total,
            'skipped': self.skipped_total,
        }
