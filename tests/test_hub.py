"""The hub: fan-out, bounded buffers, isolation of failing subscribers, viewers."""
from __future__ import annotations

import asyncio
import json
import logging
import threading
import time

import pytest

from jarvis import events
from jarvis.events import ChatMessage, ModelLoaded, Notification, PluginToggled, SystemMetrics
from jarvis.hub import Hub


def metrics(cpu: float) -> SystemMetrics:
    return SystemMetrics(cpu=cpu, memory=10.0, disk=20.0, gpu=None)


async def settle(hub: Hub, timeout: float = 5.0) -> None:
    """Wait until every callback subscriber has drained its buffer."""
    deadline = time.monotonic() + timeout
    while any(s.pending for s in hub.subscriptions) and time.monotonic() < deadline:
        await asyncio.sleep(0.001)
    await asyncio.sleep(0)


async def test_fan_out_reaches_every_subscriber_in_order() -> None:
    hub = Hub()
    received: list[list[float]] = [[] for _ in range(200)]
    for index in range(200):
        hub.subscribe(lambda event, i=index: received[i].append(event.data.cpu))
    for value in range(50):
        hub.publish(metrics(float(value)))
    await settle(hub)
    assert all(r == [float(v) for v in range(50)] for r in received)
    assert hub.published_total == 50 and hub.skipped_total == 0


async def test_stalled_subscriber_drops_its_own_events_only(caplog: pytest.LogCaptureFixture) -> None:
    hub = Hub(buffer_size=256)
    release = asyncio.Event()
    fast: list[float] = []

    async def stalled(_: events.Event) -> None:
        await release.wait()

    stalled_sub = hub.subscribe(stalled, name='stalled')
    fast_sub = hub.subscribe(lambda event: fast.append(event.data.cpu), name='fast')
    caplog.set_level(logging.WARNING, logger='jarvis.hub')

    started = time.perf_counter()
    for value in range(1000):
        hub.publish(metrics(float(value)))
        if value % 100 == 0:
            await asyncio.sleep(0)  # let the fast subscriber run between bursts
    publish_time = time.perf_counter() - started
    await settle_subscription(fast_sub)

    assert fast == [float(v) for v in range(1000)], 'the fast subscriber got every event'
    assert fast_sub.skipped == 0
    # the stalled one holds one event in its callback and 256 in its buffer; the rest is skipped and counted
    assert stalled_sub.pending == 256
    assert stalled_sub.skipped == 1000 - 256 - 1
    assert hub.skipped_total == stalled_sub.skipped
    overflow_warnings = [r for r in caplog.records if 'is full' in r.getMessage()]
    assert len(overflow_warnings) == 1, 'one warning per overflow episode'
    assert publish_time < 5.0  # generous: publishing is a deque append per subscriber

    release.set()
    await settle(hub)
    assert stalled_sub.pending == 0
    assert any('caught up after skipping 743 events' in r.getMessage() for r in caplog.records)


async def settle_subscription(subscription, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while subscription.pending and time.monotonic() < deadline:
        await asyncio.sleep(0.001)


async def test_second_overflow_episode_warns_again(caplog: pytest.LogCaptureFixture) -> None:
    hub = Hub(buffer_size=4)
    subscription = hub.subscribe(name='reader')  # no callback: drained by hand
    caplog.set_level(logging.WARNING, logger='jarvis.hub')
    for episode in range(2):
        for value in range(10):
            hub.publish(metrics(float(value)))
        while subscription.pending:
            await subscription.get()
    assert len([r for r in caplog.records if 'is full' in r.getMessage()]) == 2
    assert subscription.skipped == 12


async def test_raising_subscriber_is_isolated(caplog: pytest.LogCaptureFixture) -> None:
    hub = Hub()
    good: list[float] = []

    def broken(_: events.Event) -> None:
        raise RuntimeError('boom')

    broken_sub = hub.subscribe(broken, name='broken')
    hub.subscribe(lambda event: good.append(event.data.cpu))
    for value in range(20):
        hub.publish(metrics(float(value)))  # never raises
    await settle(hub)
    assert good == [float(v) for v in range(20)]
    assert broken_sub.errors == 20
    assert not broken_sub.closed, 'a failing subscriber stays subscribed'
    assert any('boom' in (r.exc_text or '') or r.exc_info for r in caplog.records)


async def test_latest_value_and_replay_for_new_subscribers() -> None:
    hub = Hub()
    hub.publish(metrics(1.0))
    hub.publish(metrics(2.0))
    hub.publish(ModelLoaded(model='gemma'))
    assert hub.latest(events.SYSTEM_METRICS).data.cpu == 2.0  # type: ignore[union-attr]
    subscription = hub.subscribe(replay=[events.SYSTEM_METRICS, events.MODEL_LOADED, events.CHAT_MESSAGE])
    first, second = await subscription.get(), await subscription.get()
    assert (first.type, first.data.cpu) == (events.SYSTEM_METRICS, 2.0)
    assert (second.type, second.data.model) == (events.MODEL_LOADED, 'gemma')
    assert subscription.pending == 0


async def test_type_filter_and_async_iteration() -> None:
    hub = Hub()
    subscription = hub.subscribe(types=[events.CHAT_MESSAGE])
    hub.publish(metrics(5.0))
    hub.publish(ChatMessage(role='user', text='hallo'))
    event = await asyncio.wait_for(anext(aiter(subscription)), 1)
    assert event.data.text == 'hallo'
    assert subscription.pending == 0


async def test_publish_from_another_thread_is_delivered_on_the_loop() -> None:
    hub = Hub()
    seen: list[tuple[float, int]] = []
    hub.subscribe(lambda event: seen.append((event.data.cpu, threading.get_ident())))
    loop_thread = threading.get_ident()
    worker = threading.Thread(target=lambda: [hub.publish(metrics(float(v))) for v in range(5)])
    worker.start()
    worker.join()
    for _ in range(100):
        if len(seen) == 5:
            break
        await asyncio.sleep(0.01)
    assert [v for v, _ in seen] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert {t for _, t in seen} == {loop_thread}


async def test_unsubscribe_and_viewer_accounting() -> None:
    hub = Hub()
    subscriptions = [hub.subscribe(lambda e: None, viewer=True) for _ in range(100)]
    assert hub.subscriber_count == 100 and hub.viewer_count == 100
    waiter = asyncio.ensure_future(hub.wait_for_viewers())
    await asyncio.sleep(0)
    assert waiter.done()
    for subscription in subscriptions:
        subscription.close()
        subscription.close()  # idempotent
    assert hub.subscriber_count == 0 and hub.viewer_count == 0
    waiter = asyncio.ensure_future(hub.wait_for_viewers())
    await asyncio.sleep(0.01)
    assert not waiter.done(), 'no viewer: waiting goes on'
    late = hub.subscribe(name='late')
    late.viewer = True
    await asyncio.wait_for(waiter, 1)
    late.close()


def test_payloads_serialise_to_json_with_the_seed_field_names() -> None:
    hub_events = {
        events.SYSTEM_METRICS: (metrics(45.2), {'cpu', 'memory', 'disk', 'gpu'}),
        events.CHAT_MESSAGE: (ChatMessage(role='assistant', text='Antwort von J.A.R.V.I.S.'), {'role', 'text'}),
        events.MODEL_LOADED: (ModelLoaded(model='mistral'), {'model'}),
        events.PLUGIN_TOGGLED: (PluginToggled(plugin='Wikipedia', enabled=True), {'plugin', 'enabled'}),
    }
    for name, (payload, seed_fields) in hub_events.items():
        assert payload.event_type == name
        data = json.loads(json.dumps(events.Event(name, payload, 0.0).to_json_dict()))
        assert data['type'] == name
        assert seed_fields <= set(data['data'])
    assert json.loads(json.dumps(metrics(1.0).to_dict()))['gpu'] is None  # "n/a", not 0


async def test_a_hidden_window_gets_no_per_tick_events_and_stops_counting_as_watching() -> None:
    hub = Hub()
    received: list[str] = []
    window = hub.subscribe(lambda e: received.append(e.type), viewer=True, window=True,
                           paused_while_hidden=[events.SYSTEM_METRICS])
    script = hub.subscribe(lambda e: None, viewer=True)  # a script: watching while connected, never "visible"
    assert hub.watching_count == 1
    window.visible = True
    assert hub.watching_count == 2 and hub.visible_count == 1
    script.close()
    window.visible = False  # minimised or behind another tab
    assert hub.watching_count == 0 and hub.viewer_count == 1, 'hidden: still connected, nobody watching'
    waiter = asyncio.ensure_future(hub.wait_for_watchers())
    hub.publish(metrics(10))
    hub.publish(Notification('still told'))
    await settle(hub)
    assert received == [events.NOTIFICATION], 'no live sample, the rest as before'
    assert window.skipped == 0, 'not counted as an overflow'
    assert not waiter.done()
    window.visible = True
    await asyncio.wait_for(waiter, 1)
    hub.publish(metrics(11))
    await settle(hub)
    assert received == [events.NOTIFICATION, events.SYSTEM_METRICS]
