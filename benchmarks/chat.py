"""Benchmark 4: the chat's overhead, tokens per second of the Gemma GGUF through the app against
llama-cpp-python called directly.

Both run the same model file with the same context length, threads, GPU layers, sampling
(temperature 0, greedy) and max_tokens on the same prompt: the app's system prompt and one user
message, as a plain transcript (the default Gemma is a base model: the app uses no chat template).

* Through the app: ``jarvis --no-open --no-default-model`` with ``JARVIS_MODELS_DIR`` pointing at the
  assembled GGUF and ``models.options`` seeded in ``<data-dir>/jarvis.db`` (the app has no HTTP route
  for them); the model is loaded with ``POST /api/models/load``, each answer is ``POST /api/chat``
  in a new conversation (so the prompt never grows), and its ``tokens``, ``tokens_per_s`` and
  ``first_token_s`` are the app's own figures. The answer streams through the hub and storage to one
  connected browser window on /chat (phase "window"), then to one ``/api/events`` client instead
  (phase "events").
* Directly: the model loaded in the benchmark process by the app's own loader
  (``jarvis.models.local.LlamaCppModel``, which calls ``llama_cpp.Llama(...).create_completion(...,
  stream=True)``), so n_ctx, threads, batch threads, prompt, stop sequences and sampling are the app's
  whatever its version. Counted as the app counts: one token per non-empty streamed piece, tokens/s
  from the first piece to the last ((n - 1) / (t_last - t_first); n / (t_end - t_first) is kept too).
  It runs in a long-lived worker thread, as the app runs the model (through asyncio.to_thread), so
  that llama.cpp's OpenMP (libgomp) thread team is driven the same way.

They take turns (the order rotates each repetition), after one discarded warm-up answer each. The texts must be identical:
that checks that both ran the same prompt and sampling.
"""
from __future__ import annotations

import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from .common import (
    HOST,
    Processes,
    free_port,
    jarvis_command,
    log,
    ratio,
    start_chromium,
    summary,
    target,
    wait_for,
    wait_http,
)

TARGET_RATIO = 0.95
MODEL_NAME = 'gemma-3-270m-q4_k_m'
PROMPT = 'List all the US states with a fact about each one.'  # the default model fills max_tokens (about 430 alone)


class Direct:
    """The model loaded by the app's own loader (jarvis.models.local.LlamaCppModel: the same n_ctx,
    threads, batch threads and GPU layers as the app), generating through its ``stream_chat`` (the same
    transcript, stop sequences and sampling) straight into this process: no hub, storage, event loop
    or client."""

    def __init__(self, path: Path, context_length: int, gpu_layers: int) -> None:
        from jarvis.models.local import LlamaCppModel, default_threads  # pylint: disable=import-outside-toplevel
        self.model = LlamaCppModel(path, context_length=context_length, gpu_layers=gpu_layers)
        self.n_ctx = self.model.context_length
        self.threads = getattr(self.model, 'threads', None) or default_threads()
        self.chat_template = self.model.chat_template

    def generate(self, prompt: str, max_tokens: int, temperature: float) -> dict[str, Any]:
        from jarvis.assistant.assistant import SYSTEM_PROMPT  # pylint: disable=import-outside-toplevel
        from jarvis.models.base import ChatTurn, GenerationOptions  # pylint: disable=import-outside-toplevel
        turns = [ChatTurn('system', SYSTEM_PROMPT), ChatTurn('user', prompt)]
        options = GenerationOptions(max_tokens=max_tokens, temperature=temperature)
        started = time.perf_counter()
        pieces, first, last = [], None, None
        for piece in self.model.stream_chat(turns, options, threading.Event()):
            if piece:  # one token per non-empty streamed piece, as the app counts
                last = time.perf_counter()
                first = first or last
                pieces.append(piece)
        finished = time.perf_counter()
        count = len(pieces)
        return {
            'tokens': count,
            # the app's figure: from the first token to the last, (count - 1) intervals
            'tokens_per_s': (count - 1) / (last - first) if first and last and last > first and count > 1 else None,
            # the same up to the end of the stream, count / (end - first), the app's earlier formula
            'tokens_per_s_to_end': count / (finished - first) if first and finished > first else None,
            'first_token_s': first - started if first else None,
            'total_s': finished - started,
            'text': ''.join(pieces).strip(),
        }

    def close(self) -> None:
        self.model.close()


class EventsClient:
    """One /api/events client in a thread, counting chat_message events."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.chat_events = 0
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name='events-client')

    def start(self) -> EventsClient:
        self._thread.start()
        if not self._connected.wait(30):
            raise TimeoutError('the /api/events client did not connect')
        return self

    def _run(self) -> None:
        from websockets.sync.client import connect  # pylint: disable=import-outside-toplevel
        with connect(self.url, max_size=None) as websocket:
            self._connected.set()
            while not self._stop.is_set():
                try:
                    message = websocket.recv(timeout=0.5)
                except TimeoutError:
                    continue
                if isinstance(message, str) and message.startswith('{"type": "chat_message"'):
                    self.chat_events += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def _seed_options(data_dir: Path, options: dict[str, Any]) -> None:
    from jarvis.models.manager import OPTIONS_KEY  # pylint: disable=import-outside-toplevel
    from jarvis.storage import Database, SettingsStore  # pylint: disable=import-outside-toplevel
    data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(data_dir / 'jarvis.db')
    try:
        SettingsStore(db).set_blocking(OPTIONS_KEY, options)
    finally:
        db.close()


def _app_answer(http: httpx.Client, model: str) -> dict[str, Any]:
    response = http.post('/api/chat', json={'message': PROMPT, 'conversation_id': f'bench-{uuid.uuid4().hex}'})
    response.raise_for_status()
    answer = response.json()
    if answer.get('status') != 'done' or answer.get('source') != model:
        raise RuntimeError(f'the app did not answer with the model: {answer}')
    return {'tokens': answer['tokens'], 'tokens_per_s': answer['tokens_per_s'],
            'first_token_s': answer['first_token_s'], 'text': answer['text']}


def run(procs: Processes, *, quick: bool, repeat: int | None = None, max_tokens: int = 128,
        models_dir: Path | None = None) -> dict[str, Any]:
    from jarvis.models.default_model import ensure_default_model  # pylint: disable=import-outside-toplevel
    repeat = repeat or (2 if quick else 6)
    options = {'context_length': 4096, 'temperature': 0.0, 'gpu_layers': 0, 'max_tokens': max_tokens}
    runs: list[dict[str, Any]] = []
    checks: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix='bench-chat-') as tmp:
        workdir = Path(tmp)
        models = models_dir or workdir / 'models'
        model_path = ensure_default_model(models)
        data_dir = workdir / 'data'
        _seed_options(data_dir, options)
        port = free_port()
        base = f'http://{HOST}:{port}'
        log_path = workdir / 'app.log'
        process = procs.popen([*jarvis_command(), '--no-open', '--port', str(port), '--data-dir', str(data_dir),
                               '--no-default-model'], env={'JARVIS_MODELS_DIR': str(models)}, log_path=log_path)
        direct = None
        worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix='direct-llama')
        driver = None
        events = None
        try:
            wait_http(base + '/api/hub/stats', process, log_path=log_path)
            with httpx.Client(base_url=base, timeout=600) as http:
                loaded = http.post('/api/models/load', json={'model': MODEL_NAME})
                if loaded.status_code != 200:
                    raise RuntimeError(f'the app could not load {MODEL_NAME}: {loaded.text}')
                log('chat: model loaded in the app; loading it directly (n_ctx, threads as the app)')
                direct = worker.submit(Direct, model_path, options['context_length'], options['gpu_layers']).result()
                checks.update({'n_ctx': direct.n_ctx, 'threads': direct.threads,
                               'chat_template': bool(direct.chat_template), 'prompt': PROMPT, **options})

                for phase in ('window', 'events'):
                    if phase == 'window':
                        driver = procs.add_driver(start_chromium())
                        driver.set_page_load_timeout(60)
                        driver.get(base + '/chat')
                        wait_for(lambda: driver.find_elements('css selector', '[data-testid="chat-input"]'),
                                 timeout=60, message='the Chat view did not open')
                    else:
                        events = EventsClient(base.replace('http://', 'ws://') + '/api/events').start()
                    _app_answer(http, MODEL_NAME)  # warm-up, not counted
                    worker.submit(direct.generate, PROMPT, max_tokens, 0.0).result()
                    subjects = ['direct', 'app']
                    for rep in range(repeat):
                        order = subjects[rep % len(subjects):] + subjects[:rep % len(subjects)]  # take turns
                        for subject in order:
                            if subject == 'direct':
                                result = worker.submit(direct.generate, PROMPT, max_tokens, 0.0).result()
                            else:
                                before = events.chat_events if events else 0
                                result = _app_answer(http, MODEL_NAME)
                                if phase == 'window':  # the finished bubble shows the app's own figure
                                    shown = f'{result["tokens_per_s"]:.1f} tokens/s'
                                    result['window_showed_answer'] = bool(wait_for(
                                        lambda: shown in driver.execute_script(
                                            'const m = document.querySelectorAll(\'[data-testid="bubble-meta"]\');'
                                            'return m.length ? m[m.length - 1].innerText : ""'),
                                        timeout=15, message='the window did not show the finished answer'))
                                else:
                                    time.sleep(0.3)
                                    result['events_received'] = events.chat_events - before
                            result.update({'subject': subject, 'phase': phase, 'rep': rep})
                            runs.append(result)
                            log(f'chat: {phase} {rep + 1}/{repeat}: {subject}: {result["tokens"]} tokens, '
                                f'{result["tokens_per_s"]:.1f} tokens/s, first token {result["first_token_s"]:.3f} s')
                    if driver is not None:
                        procs.quit_driver(driver)
                        driver = None
                    if events is not None:
                        events.stop()
                        events = None
        finally:
            if events is not None:
                events.stop()
            if driver is not None:
                procs.quit_driver(driver)
            if direct is not None:
                worker.submit(direct.close).result()
            worker.shutdown()
            procs.stop(process)

    def values(phase: str, subject: str, key: str) -> list[float]:
        return [r[key] for r in runs if r['phase'] == phase and r['subject'] == subject and r[key] is not None]

    phases: dict[str, Any] = {}
    for phase in ('window', 'events'):
        paired = []
        for rep in range(repeat):
            app = next(r for r in runs if r['phase'] == phase and r['subject'] == 'app' and r['rep'] == rep)
            other = next(r for r in runs if r['phase'] == phase and r['subject'] == 'direct' and r['rep'] == rep)
            paired.append(ratio(app['tokens_per_s'], other['tokens_per_s']))
        app_tps = summary(values(phase, 'app', 'tokens_per_s'))
        direct_tps = summary(values(phase, 'direct', 'tokens_per_s'))
        phases[phase] = {
            'app_tokens_per_s': app_tps,
            'direct_tokens_per_s': direct_tps,
            'app_first_token_s': summary(values(phase, 'app', 'first_token_s')),
            'direct_first_token_s': summary(values(phase, 'direct', 'first_token_s')),
            'tokens': sorted({r['tokens'] for r in runs if r['phase'] == phase}),
            'ratio_of_medians': ratio(app_tps.get('p50'), direct_tps.get('p50')),
            'ratio_paired': summary(paired),
        }
    texts = {r['text'] for r in runs}
    checks['identical_texts'] = len(texts) == 1
    for r in runs:
        r.pop('text', None)
    return {
        'description': 'Chat overhead: tokens/s through the app vs llama-cpp-python directly',
        'settings': {'repeat': repeat, 'max_tokens': max_tokens, 'model': MODEL_NAME},
        'checks': checks,
        'runs': runs,
        'phases': phases,
        'targets': {f'ratio_{phase}': target(phases[phase]['ratio_of_medians'], '>=', TARGET_RATIO)
                    for phase in phases},
    }
