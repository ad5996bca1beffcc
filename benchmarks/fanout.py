"""Benchmark 2: fan-out of hub events to many clients.

The app runs as ``jarvis --no-open`` would, plus a benchmark-only publisher route
(benchmarks/app_with_publisher.py). Clients: 1, 10 and 100 asyncio ``websockets`` clients of
``/api/events`` in the benchmark process (all event types, default client settings, as the README's
example connects), and 1 and 3 NiceGUI windows (each its own headless Chromium) on the System view.

* Latency of a WebSocket client: its arrival time (time.time() when the message is read) minus the
  event's ``timestamp`` (time.time() at publish), at a moderate rate. The clients share the
  benchmark process's event loop, so its own scheduling delay is part of the figure.
* Latency of a window: a MutationObserver in the page records performance.timeOrigin +
  performance.now() when the toast of a published ``Notification`` ("bench#<seq>#") enters the DOM;
  minus the event's timestamp. That is publish -> hub -> window subscription -> NiceGUI -> socket.io ->
  Quasar -> DOM.
* Highest sustained rate: the publish rate is stepped up (a few seconds per step) until a step fails;
  a step passes when the hub skipped no event for any subscriber (``GET /api/hub/stats`` "skipped"),
  every client received every event within a drain period, and the publisher kept the rate (>= 95 %).
"""
from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from .common import (
    BENCH_DIR,
    HOST,
    Processes,
    free_port,
    log,
    percentile,
    start_chromium,
    summary,
    target,
    wait_for,
    wait_http,
)

TARGET_P99_MS_AT_100 = 50.0
PREFIX = '{"type": "chat_message"'
STAMP = '"timestamp": '

WINDOW_OBSERVER = r'''
window.__benchSeen = {};
window.__benchSkew = (performance.timeOrigin + performance.now()) - Date.now();
const pattern = /bench#(\d+)#/g;
const note = (text) => {
  if (!text || text.indexOf('bench#') < 0) return;
  const t = performance.timeOrigin + performance.now();
  for (const m of text.matchAll(pattern)) { if (!(m[1] in window.__benchSeen)) window.__benchSeen[m[1]] = t; }
};
new MutationObserver((mutations) => {
  for (const mutation of mutations) {
    if (mutation.type === 'characterData') { note(mutation.target.data); continue; }
    for (const node of mutation.addedNodes) { note(node.textContent); }
  }
}).observe(document.body, {childList: true, subtree: true, characterData: true});
'''


class WsClient:
    """One ``/api/events`` client; counts the benchmark's chat events and records their latency."""

    def __init__(self) -> None:
        self.count = 0
        self.latencies: list[float] = []
        self.connected = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.error: BaseException | None = None

    async def run(self, url: str) -> None:
        import websockets  # pylint: disable=import-outside-toplevel
        try:
            async with websockets.connect(url, max_size=None, open_timeout=30) as websocket:
                self.connected.set()
                async for message in websocket:
                    arrived = time.time()
                    if isinstance(message, str) and message.startswith(PREFIX):
                        stamp = float(message[message.rindex(STAMP) + len(STAMP):-1])
                        self.latencies.append(arrived - stamp)
                        self.count += 1
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # pylint: disable=broad-except
            self.error = error
            self.connected.set()


async def _stats(http: httpx.AsyncClient) -> dict[str, int]:
    return (await http.get('/api/hub/stats')).json()


async def _wait_subscribers(http: httpx.AsyncClient, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (await _stats(http))['subscribers'] == count:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f'the hub did not reach {count} subscribers: {await _stats(http)}')


def _ms(values: list[float]) -> dict[str, float]:
    return {'p50_ms': percentile(values, 50) * 1000, 'p99_ms': percentile(values, 99) * 1000,
            'max_ms': max(values) * 1000 if values else float('nan'), 'samples': len(values)}


def _busy(before: Any, after: Any, elapsed: float) -> float:
    """Percent of one core used between two psutil cpu_times readings."""
    used = (after.user + after.system) - (before.user + before.system)
    return used / elapsed * 100.0 if elapsed > 0 else float('nan')


async def _ws_phase(base: str, server_pid: int, counts: list[int], *, latency_rate: float, latency_seconds: float,
                    repeat: int, rates: list[float], step_seconds: float) -> dict[str, Any]:
    results: dict[str, Any] = {}
    server, me = psutil.Process(server_pid), psutil.Process()
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        baseline = (await _stats(http))['subscribers']
        for count in counts:
            clients = [WsClient() for _ in range(count)]
            ws_url = base.replace('http://', 'ws://') + '/api/events'
            for client in clients:
                client.task = asyncio.ensure_future(client.run(ws_url))
                await client.connected.wait()
                if client.error is not None:
                    raise RuntimeError(f'a WebSocket client could not connect: {client.error!r}')
            try:
                await _wait_subscribers(http, baseline + count)
                await asyncio.sleep(1.0)
                # latency at a moderate rate, repeated
                per_rep = []
                pooled: list[float] = []
                for rep in range(repeat):
                    for c in clients:
                        c.latencies.clear()
                    start_counts = [c.count for c in clients]
                    skipped_before = (await _stats(http))['skipped']
                    answer = (await http.post('/bench/publish', json={
                        'rate': latency_rate, 'seconds': latency_seconds, 'kind': 'chat'})).json()
                    expected = answer['published']
                    ok = await _drain_from(clients, start_counts, expected, timeout=10)
                    skipped = (await _stats(http))['skipped'] - skipped_before
                    samples = [v for c in clients for v in c.latencies]
                    pooled.extend(samples)
                    per_rep.append({**_ms(samples), 'complete': ok, 'skipped': skipped})
                    await asyncio.sleep(0.5)
                latency = {**_ms(pooled), 'rate': latency_rate, 'seconds_per_rep': latency_seconds,
                           'p99_ms_per_rep': summary(r['p99_ms'] for r in per_rep),
                           'p50_ms_per_rep': summary(r['p50_ms'] for r in per_rep),
                           'reps': per_rep,
                           'skipped': sum(r['skipped'] for r in per_rep),
                           'complete': all(r['complete'] for r in per_rep)}
                log(f'fanout: {count} ws client(s) at {latency_rate:g} ev/s: p50 {latency["p50_ms"]:.2f} ms, '
                    f'p99 {latency["p99_ms"]:.2f} ms ({latency["samples"]} samples)')
                # the highest sustained rate
                steps = []
                best = None
                for rate in rates:
                    for c in clients:
                        c.latencies.clear()
                    start_counts = [c.count for c in clients]
                    skipped_before = (await _stats(http))['skipped']
                    cpu_before = (server.cpu_times(), me.cpu_times(), time.monotonic())
                    answer = (await http.post('/bench/publish', json={
                        'rate': rate, 'seconds': step_seconds, 'kind': 'chat'})).json()
                    expected = answer['published']
                    drained = await _drain_from(clients, start_counts, expected, timeout=max(5.0, step_seconds * 2))
                    cpu_after = (server.cpu_times(), me.cpu_times(), time.monotonic())
                    skipped = (await _stats(http))['skipped'] - skipped_before
                    kept_rate = answer['rate'] >= 0.95 * rate
                    passed = skipped == 0 and drained and kept_rate
                    reasons = ([f'{skipped} skipped'] if skipped else []) + \
                        ([f'publisher reached only {answer["rate"]:.0f} ev/s'] if not kept_rate else []) + \
                        (['not all received in time'] if not drained else [])
                    samples = [v for c in clients for v in c.latencies]
                    elapsed = cpu_after[2] - cpu_before[2]
                    steps.append({'rate': rate, 'published': expected, 'achieved_rate': answer['rate'],
                                  'publisher_lag_max_s': answer['lag_max_s'], 'skipped': skipped,
                                  'all_received': drained, 'passed': passed, 'failed_because': reasons,
                                  'server_core_percent': _busy(cpu_before[0], cpu_after[0], elapsed),
                                  'clients_core_percent': _busy(cpu_before[1], cpu_after[1], elapsed),
                                  **_ms(samples)})
                    log(f'fanout: {count} ws client(s) at {rate:g} ev/s: achieved {answer["rate"]:.0f} ev/s, '
                        f'skipped {skipped}, all received {drained}, p99 {steps[-1]["p99_ms"]:.1f} ms, '
                        f'CPU server {steps[-1]["server_core_percent"]:.0f} % / clients '
                        f'{steps[-1]["clients_core_percent"]:.0f} % of a core'
                        f' -> {"pass" if passed else "FAIL: " + ", ".join(reasons)}')
                    if not passed:
                        break
                    best = rate
                    await asyncio.sleep(0.5)
                failure = steps[-1] if not steps[-1]['passed'] else None
                results[str(count)] = {'clients': count, 'latency': latency, 'max_rate': best,
                                       'first_failed_rate': failure['rate'] if failure else None,
                                       'failed_because': failure['failed_because'] if failure else [],
                                       'steps': steps}
            finally:
                for client in clients:
                    if client.task is not None:
                        client.task.cancel()
                await asyncio.gather(*(c.task for c in clients if c.task is not None), return_exceptions=True)
                await _wait_subscribers(http, baseline, timeout=30)
                await asyncio.sleep(1.0)
    return results


async def _drain_from(clients: list[WsClient], start_counts: list[int], expected: int, timeout: float) -> bool:
    """Wait until every client has received ``expected`` more benchmark events."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(c.count - s >= expected for c, s in zip(clients, start_counts)):
            return True
        await asyncio.sleep(0.05)
    return False


def _window_phase(procs: Processes, base: str, counts: list[int], *, rate: float, seconds: float) -> dict[str, Any]:
    results: dict[str, Any] = {}
    seq = 0
    with httpx.Client(base_url=base, timeout=120) as http:
        for count in counts:
            drivers = []
            try:
                for _ in range(count):
                    driver = procs.add_driver(start_chromium())
                    driver.set_page_load_timeout(60)
                    driver.get(base + '/')
                    drivers.append(driver)
                for driver in drivers:
                    wait_for(lambda d=driver: str(d.execute_script(
                        'const e = document.querySelector(\'[data-testid="cpu-value"]\'); '
                        'return e ? e.innerText : ""')).strip().endswith('%'), timeout=60,
                        message='a window never showed the System view')
                    driver.execute_script(WINDOW_OBSERVER)
                wait_for(lambda: http.get('/api/hub/stats').json()['viewers'] >= count, timeout=30,
                         message='the windows did not connect')
                time.sleep(2.0)
                answer = http.post('/bench/publish', json={'rate': rate, 'seconds': seconds, 'kind': 'notification',
                                                           'timestamps': True, 'start_seq': seq}).json()
                seq += answer['published']
                stamps = {str(s): t for s, t in answer['timestamps']}
                time.sleep(3.0)
                latencies: list[float] = []
                skews = []
                missing = 0
                for driver in drivers:
                    seen = driver.execute_script('return window.__benchSeen') or {}
                    skews.append(float(driver.execute_script('return window.__benchSkew') or 0.0))
                    for key, published in stamps.items():
                        if key in seen:
                            latencies.append(seen[key] / 1000.0 - published)
                        else:
                            missing += 1
                result = {'windows': count, 'rate': rate, 'seconds': seconds, 'published': answer['published'],
                          'missing': missing, 'clock_skew_ms': skews, **_ms(latencies)}
                results[str(count)] = result
                log(f'fanout: {count} window(s) at {rate:g} ev/s: p50 {result["p50_ms"]:.1f} ms, '
                    f'p99 {result["p99_ms"]:.1f} ms, {missing} toast(s) not seen')
            finally:
                for driver in drivers:
                    procs.quit_driver(driver)
            time.sleep(2.0)
    return results


def run(procs: Processes, *, quick: bool, clients: list[int] | None = None, windows: list[int] | None = None,
        rates: list[float] | None = None) -> dict[str, Any]:
    clients = clients or [1, 10, 100]
    windows = windows if windows is not None else [1, 3]
    rates = rates or [50, 100, 200, 500, 1000, 2000, 5000]
    repeat = 2 if quick else 5
    latency_rate, latency_seconds = 20.0, (3.0 if quick else 5.0)
    step_seconds = 1.5 if quick else 3.0
    window_rate, window_seconds = 5.0, (3.0 if quick else 8.0)
    with tempfile.TemporaryDirectory(prefix='bench-fanout-') as tmp:
        port = free_port()
        base = f'http://{HOST}:{port}'
        log_path = Path(tmp) / 'app.log'
        process = procs.popen([sys.executable, str(BENCH_DIR / 'app_with_publisher.py'), '--port', str(port),
                               '--data-dir', str(Path(tmp) / 'data'), '--no-default-model', '--log-level', 'WARNING'],
                              log_path=log_path)
        try:
            wait_http(base + '/api/hub/stats', process, log_path=log_path)
            log(f'fanout: WebSocket clients {clients}, latency at {latency_rate:g} ev/s x {repeat}, '
                f'rate steps {rates} ({step_seconds:g} s each)')
            ws = asyncio.run(_ws_phase(base, process.pid, clients, latency_rate=latency_rate, latency_seconds=latency_seconds,
                                       repeat=repeat, rates=rates, step_seconds=step_seconds))
            win = _window_phase(procs, base, windows, rate=window_rate, seconds=window_seconds) if windows else {}
            if process.poll() is not None:
                raise RuntimeError('the app exited during the fan-out benchmark')
            server_log_warnings = [line for line in log_path.read_text(errors='replace').splitlines()
                                   if ' WARNING ' in line or ' ERROR ' in line][:20]
        finally:
            procs.stop(process)
    at_100 = ws.get('100', {}).get('latency', {}).get('p99_ms')
    return {
        'description': 'Fan-out of hub events to /api/events WebSocket clients and NiceGUI windows',
        'settings': {'ws_clients': clients, 'windows': windows, 'latency_rate': latency_rate,
                     'latency_seconds': latency_seconds, 'repeat': repeat, 'rate_steps': rates,
                     'step_seconds': step_seconds, 'window_rate': window_rate, 'window_seconds': window_seconds},
        'websocket': ws,
        'windows': win,
        'server_log_warnings': server_log_warnings,
        'targets': {'p99_ms_at_100_clients': target(at_100, '<', TARGET_P99_MS_AT_100)},
    }
