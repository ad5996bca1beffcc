"""``use_hub()``: how a window subscribes to the hub (the seed's ``useWebSocket()``).

Each window (NiceGUI client) gets one ``LiveWindow``: one hub subscription with its own bounded
buffer, the connection state and the latest values as bindable properties, and per-view
handlers. The subscription counts as a connected viewer while the browser's socket is up and
is closed by itself when the window closes. A handler that raises shows a short notification
in its own window only (an error boundary); other views and windows carry on.

A window is ``visible`` while it is connected and its page is visible (the browser's Page Visibility
API: not in a background tab, not minimised): the page reports each change, and its state as soon as
it connects. Alerts go to the desktop only while no window is visible. A hidden window receives no per-tick
update (``PER_TICK``: live samples, process scans) and costs nothing to keep; when it is shown again it
shows the latest values at once, and the sampler, back at its full rate, takes a fresh sample right away.
The native window reports its minimise/restore and hide/show the same way (see jarvis/native_window.py).
"""
from __future__ import annotations

import inspect
import logging
import weakref
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from nicegui import Client, context, ui
from nicegui import events as ui_events
from nicegui.binding import BindableProperty

from .. import events
from ..events import Event, ModelLoaded, SystemMetrics
from ..hub import Hub, Subscription
from ..metrics.processes import PROCESSES
from . import notifications

log = logging.getLogger(__name__)

Handler = Callable[[Any], Any]

# the events a window receives on every tick; nobody sees them in a hidden window
PER_TICK = frozenset({events.SYSTEM_METRICS, PROCESSES})

VISIBILITY_EVENT = 'jarvisVisibility'  # camelCase: the name NiceGUI registers a listener under
# the native window's own minimise/hide (its page may still say 'visible'): dispatched on the document
NATIVE_VISIBILITY_EVENT = 'jarvis-native-visibility'
# runs at every connection: listens once per page, and reports the state now (the socket may be new)
REPORT_VISIBILITY_JS = f"""(() => {{
  const state = () => window.jarvisNativeHidden ? 'hidden' : document.visibilityState;
  const report = () => emitEvent('{VISIBILITY_EVENT}', state());
  if (!window.jarvisReportsVisibility) {{
    window.jarvisReportsVisibility = true;
    document.addEventListener('visibilitychange', report);
    document.addEventListener('{NATIVE_VISIBILITY_EVENT}', (event) => {{
      window.jarvisNativeHidden = event.detail === 'hidden';
      report();
    }});
  }}
  report();
}})()"""


class LiveWindow:
    connected = BindableProperty()
    metrics = BindableProperty()
    model = BindableProperty()
    visible = BindableProperty()

    def __init__(self, hub: Hub, client: Client) -> None:
        self.client = client
        self.connected: bool = client.has_socket_connection
        self._page_visible = True  # until the page says otherwise: it reports as soon as it connects
        self.visible: bool = self.connected
        latest_metrics = hub.latest(events.SYSTEM_METRICS)
        self.metrics: SystemMetrics | None = latest_metrics.data if latest_metrics else None  # type: ignore[assignment]
        latest_model = hub.latest(events.MODEL_LOADED)
        self.model: ModelLoaded | None = latest_model.data if latest_model else None  # type: ignore[assignment]
        self._handlers: dict[str, list[tuple[ui.element | None, Handler]]] = defaultdict(list)
        self._connection_listeners: list[tuple[ui.element, Callable[[], Any]]] = []
        self._hub = hub
        self.subscription: Subscription = hub.subscribe(
            self._dispatch, name=f'window {client.id[:8]}', viewer=self.connected, window=True,
            paused_while_hidden=PER_TICK)
        self.subscription.visible = self.visible
        client.layout.on(VISIBILITY_EVENT, self._on_visibility)
        client.on_connect(self._on_connect)
        client.on_disconnect(self._on_disconnect)
        client.on_delete(self.close)
        if self.connected:
            client.run_javascript(REPORT_VISIBILITY_JS)

    def on(self, event_type: str, handler: Handler, *, owner: ui.element | None = None) -> None:
        """Call ``handler(payload)`` for each event of a type while ``owner`` (a view's element) lives."""
        self._handlers[event_type].append((owner, handler))

    def on_connection(self, callback: Callable[[], Any], *, owner: ui.element) -> None:
        """Call ``callback()`` each time the window's socket connects or drops, while ``owner`` lives."""
        self._connection_listeners.append((owner, callback))

    def close(self) -> None:
        self.subscription.close()
        self._handlers.clear()
        self._connection_listeners.clear()
        if _windows.get(self.client.id) is self:
            del _windows[self.client.id]

    def _on_connect(self) -> None:
        self.connected = True
        self.subscription.viewer = True
        self._show_visibility()
        self.client.run_javascript(REPORT_VISIBILITY_JS)
        self._tell_connection_listeners()

    def _on_disconnect(self) -> None:
        self.connected = False
        self.subscription.viewer = False
        self._show_visibility()
        self._tell_connection_listeners()

    def _tell_connection_listeners(self) -> None:
        self._connection_listeners[:] = [(o, c) for o, c in self._connection_listeners if not o.is_deleted]
        for _, callback in list(self._connection_listeners):
            try:
                callback()
            except Exception:  # pylint: disable=broad-except  # one view's failure must not keep the others stale
                log.exception('a view failed to follow its window\'s connection')

    def _on_visibility(self, event: ui_events.GenericEventArguments) -> None:
        state = event.args[0] if isinstance(event.args, list) and event.args else event.args
        self._page_visible = state != 'hidden'  # 'visible'; browsers once also said 'prerender'
        self._show_visibility()

    def _show_visibility(self) -> None:
        was_visible = self.visible
        self.visible = self.connected and self._page_visible
        self.subscription.visible = self.visible
        if self.visible and not was_visible:
            self._catch_up()

    def _catch_up(self) -> None:
        """Shown again: the latest per-tick values at once (the sampler, back at full rate, follows with a
        fresh sample as soon as it can)."""
        for event_type in sorted(PER_TICK):
            if (event := self._hub.latest(event_type)) is not None:
                self.subscription.offer(event)

    async def _dispatch(self, event: Event) -> None:
        if self.client.is_deleted:
            self.close()
            return
        if event.type == events.SYSTEM_METRICS:
            self.metrics = event.data
        elif event.type == events.MODEL_LOADED:
            self.model = event.data
        handlers = self._handlers.get(event.type)
        if not handlers:
            return
        handlers[:] = [(owner, h) for owner, h in handlers if owner is None or not owner.is_deleted]
        for owner, handler in list(handlers):
            with (owner or self.client):
                try:
                    result = handler(event.data)
                    if inspect.isawaitable(result):
                        await result
                except Exception as error:  # error boundary: this window says so, the others carry on
                    log.exception('view handler for %s failed', event.type)
                    notifications.notify(self.client, f'Could not show an update ({type(error).__name__}: {error})',
                                         type='negative', group='view-error')


def use_hub(hub: Hub) -> LiveWindow:
    """The current window's live connection to the hub, created on first use."""
    client = context.client
    window = _windows.get(client.id)
    if window is None or window.subscription.closed:
        window = LiveWindow(hub, client)
        _windows[client.id] = window
    return window


def open_windows() -> int:
    """How many windows hold a live connection (for tests and diagnostics)."""
    return len(_windows)


# weak: a window lives as long as its client and its hub subscription hold it
_windows: weakref.WeakValueDictionary[str, LiveWindow] = weakref.WeakValueDictionary()
