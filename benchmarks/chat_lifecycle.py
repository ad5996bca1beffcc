"""The chat benchmark's parts on the model's lifecycle: CPU threads, the cold start, memory."""
from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import psutil

from .chat_app import BenchApp
from .common import Processes, log, start_chromium, summary, wait_for
from .llama_peers import LlamaServer, app_request, server_cold_start

MIB = 2**20
HELLO = 'Hello! Who are you?'
# a long message: reading it (prompt processing, on the batch threads) takes most of its first token
LONG_MESSAGE = 'Summarise these notes in one sentence. ' + ' '.join(
    f'Note {i}: the shipment {i} left the {["north", "south", "east", "west"][i % 4]} depot at {8 + i % 10}:00 '
    f'with {i * 3} boxes of parts for the assembly line.' for i in range(24))


# --- CPU threads ----------------------------------------------------------------------------------

def threads(procs: Processes, workdir: Path, models: Path, *, quick: bool, max_tokens: int) -> dict[str, Any]:
    """The app with 1, 2 and the automatic number of threads (0), streaming to one browser window."""
    from jarvis.models.local import default_threads  # pylint: disable=import-outside-toplevel
    repeat = 1 if quick else 3
    configs = [1, 2, 0]
    runs: list[dict[str, Any]] = []
    for rep in range(repeat):
        for config in configs[rep % 3:] + configs[:rep % 3]:  # take turns
            options = {'context_length': 4096, 'temperature': 0.0, 'max_tokens': max_tokens, 'threads': config}
            app = BenchApp(procs, workdir, models, options=options, conversations=4, default_model=False,
                           name=f'threads-{config}')
            driver = None
            try:
                app.wait_ready()
                app.load()
                driver = procs.add_driver(start_chromium())
                driver.set_page_load_timeout(60)
                driver.get(app.url + '/chat')
                wait_for(lambda d=driver: d.find_elements('css selector', '[data-testid="chat-input"]'), timeout=60,
                         message='the Chat view did not open')
                app.ask('Say hello.', app.conversations[0])  # warm-up
                app.wait_idle()
                answer = app.ask('List all the US states with a fact about each one.', app.conversations[1])
                app.wait_idle()
                long = app.ask(LONG_MESSAGE, app.conversations[2])
                runs.append({'threads': config, 'rep': rep, 'tokens_per_s': answer['tokens_per_s'],
                             'tokens': answer['tokens'], 'long_message_first_token_s': long['first_token_s'],
                             'load_1min': os.getloadavg()[0]})
                log(f'chat: threads {config or "auto"} ({rep + 1}/{repeat}): {answer["tokens_per_s"]:.1f} tokens/s, '
                    f'first token of the long message {long["first_token_s"]:.2f} s')
            finally:
                if driver is not None:
                    procs.quit_driver(driver)
                app.stop()
    stats = {}
    for config in configs:
        mine = [r for r in runs if r['threads'] == config]
        stats[str(config)] = {'tokens_per_s': summary([r['tokens_per_s'] for r in mine]),
                              'long_message_first_token_s': summary([r['long_message_first_token_s'] for r in mine])}
    return {'repeat': repeat, 'runs': runs, 'stats': stats,
            'auto': {'threads': default_threads(), 'batch_threads': default_threads(), 'cores': os.cpu_count()}}


# --- the cold start ----------------------------------------------------------------------------------

def cold_start(procs: Processes, workdir: Path, models: Path, model_path: Path, *, quick: bool) -> dict[str, Any]:
    """The first message after a plain start (model on standby) against llama_cpp.server's launch."""
    repeat = 2 if quick else 5
    options = {'temperature': 0.0, 'max_tokens': 32}
    request = app_request([('user', HELLO)], 32)
    app_runs: list[dict[str, Any]] = []
    server_runs: list[dict[str, Any]] = []
    for rep in range(repeat):
        for subject in (('app', 'server') if rep % 2 == 0 else ('server', 'app')):
            if subject == 'server':
                server_runs.append(server_cold_start(procs, model_path, request, workdir))
                log(f'chat: cold {rep + 1}/{repeat}: llama_cpp.server: launch to first token '
                    f'{server_runs[-1]["launch_to_first_token_s"]:.2f} s')
                continue
            app = BenchApp(procs, workdir, models, options=options, conversations=1, name='cold')
            try:
                app.wait_ready()
                app.wait_standby()
                app.listen()
                rss_before = app.rss()
                asked = time.perf_counter()
                answer = app.ask(HELLO, app.conversations[0])
                app_runs.append({'request_to_first_words_s': answer['request_to_first_words_s'],
                                 'first_token_after_load_s': answer['first_token_s'],
                                 # as llama_cpp.server is measured: launched, asked as soon as it serves
                                 'launch_to_first_words_s': (asked - app.launched) + answer['request_to_first_words_s'],
                                 'rss_before_mib': rss_before / MIB, 'rss_after_mib': app.rss() / MIB})
                log(f'chat: cold {rep + 1}/{repeat}: app: message to first words '
                    f'{answer["request_to_first_words_s"]:.2f} s')
            finally:
                app.stop()
    return {
        'repeat': repeat,
        'app_runs': app_runs,
        'server_runs': server_runs,
        'app_request_to_first_words_s': summary([r['request_to_first_words_s'] for r in app_runs]),
        'app_first_token_after_load_s': summary([r['first_token_after_load_s'] for r in app_runs]),
        'app_launch_to_first_words_s': summary([r['launch_to_first_words_s'] for r in app_runs]),
        'server_launch_to_first_token_s': summary([r['launch_to_first_token_s'] for r in server_runs]),
        'server_ready_s': summary([r['ready_s'] for r in server_runs]),
    }


# --- memory --------------------------------------------------------------------------------------------

def _sample(read: Any, seconds: float) -> list[float]:
    values = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        values.append(read() / MIB)
        time.sleep(1.0)
    return values


def _mappings(pid: int) -> dict[str, int]:
    """Resident bytes of one process by what is mapped (a library's file name; '[anon]', '[heap]', ...)."""
    found: dict[str, int] = {}
    name = '[anon]'
    try:
        with open(f'/proc/{pid}/smaps', encoding='utf-8', errors='replace') as smaps:
            for line in smaps:
                fields = line.split()
                if fields and '-' in fields[0] and not fields[0].endswith(':'):
                    name = fields[5].rsplit('/', 1)[-1] if len(fields) > 5 else '[anon]'
                elif fields and fields[0] == 'Rss:':
                    found[name] = found.get(name, 0) + int(fields[1]) * 1024
    except OSError:  # not Linux, or the process ended
        return {}
    return found


def _grown(before: dict[str, int], after: dict[str, int], top: int = 10) -> dict[str, float]:
    """The mappings of the app's process that grew most between two moments, in MiB."""
    growth = {k: (after.get(k, 0) - before.get(k, 0)) / MIB for k in after.keys() | before.keys()}
    return {k: round(v, 2) for k, v in sorted(growth.items(), key=lambda kv: -abs(kv[1]))[:top]}


def memory(procs: Processes, workdir: Path, models: Path, model_path: Path, *, quick: bool) -> dict[str, Any]:
    """Resident memory of a plain start with one browser window: idle, with the model, after unloading it."""
    settle, window = (5.0, 5.0) if quick else (20.0, 15.0)
    options = {'temperature': 0.0, 'max_tokens': 32}
    app = BenchApp(procs, workdir, models, options=options, conversations=1, name='memory')
    driver = None
    result: dict[str, Any] = {'settle_s': settle, 'window_s': window}
    try:
        app.wait_ready()
        app.wait_standby()
        driver = procs.add_driver(start_chromium())
        driver.set_page_load_timeout(60)
        driver.get(app.url + '/')
        wait_for(lambda: driver.find_elements('css selector', '[data-testid="cpu-value"]'), timeout=60,
                 message='the System view did not open')
        time.sleep(settle)
        idle = _sample(app.rss, window)
        idle_maps = _mappings(app.process.pid)
        app.ask(HELLO, app.conversations[0])
        loaded = _sample(app.rss, window)
        app_alone = psutil.Process(app.process.pid).memory_info().rss / MIB  # the model runs in a child
        app.unload()  # the keep-alive's unload does the same: end the model's process
        time.sleep(settle)
        after = _sample(app.rss, window)
        # where the app's own process holds more than before the load (its children are gone by now)
        result['app_process_grew_after_unload_mib'] = _grown(idle_maps, _mappings(app.process.pid))
        result['app_process_loaded_rss_mib'] = app_alone
        log(f'chat: memory: idle {statistics.median(idle):.0f} MiB, loaded {statistics.median(loaded):.0f} MiB, '
            f'after unloading {statistics.median(after):.0f} MiB')
        result.update({'app_idle_rss_mib': summary(idle), 'app_loaded_rss_mib': summary(loaded),
                       'app_after_unload_rss_mib': summary(after)})
    finally:
        if driver is not None:
            procs.quit_driver(driver)
        app.stop()
    server = LlamaServer(procs, model_path, workdir / 'llama-server-memory.log')
    try:
        server.wait_ready()
        server.generate(app_request([('user', HELLO)], 32))
        time.sleep(settle)
        result['server_idle_rss_mib'] = summary(_sample(server.rss, window))
        log(f'chat: memory: llama_cpp.server idle {result["server_idle_rss_mib"]["p50"]:.0f} MiB')
    finally:
        server.stop()
    return result
