"""Benchmark 4: the chat with the default Gemma GGUF, against what a user would otherwise run.

Parts (``--chat-parts``, all by default):

* ``throughput``: tokens/s and first token of one answer through the app, streaming to one browser
  window on /chat (phase "window") and then to one ``/api/events`` client (phase "events"), against
  three peers on the same GGUF and prompt: llama-cpp-python's ``Llama`` with its own defaults,
  llama-cpp-python's OpenAI-compatible server (``python -m llama_cpp.server``), and the app's own
  model wrapper called directly (``jarvis.models.local.LlamaCppModel``: the app's settings without
  the hub, storage and clients: what the app adds). The app answers in the conversation the window
  shows, so its prompt grows by one exchange per answer; each peer gets the very prompt the app's next
  answer reads (the same history); temperature 0. The texts are compared but need not be equal:
  each subject's cache holds what it read and wrote before, and llama.cpp's sums come out slightly
  differently when a prompt is read in other pieces, which can tip a greedy choice.
* ``threads``: the app with 1, 2 and the automatic number of CPU threads, streaming to one browser
  window: tokens/s of an answer, and the first token of a long message (where reading the prompt,
  on the batch threads, dominates).
* ``cold``: the first message after a plain start (the default model on standby, not loaded): from
  the request to the first words at an ``/api/events`` client, and from the launch; against
  ``llama_cpp.server`` from its launch (it loads the model before it serves) to its first token.
* ``memory``: resident memory of the app's process tree, started plainly with one browser window
  open: idle with no model loaded, with the model loaded, and after it was unloaded; against
  ``llama_cpp.server`` idle (its model stays loaded).
* ``long``: a conversation of 40 messages and more through the app (real answers, up to 512 tokens
  each, temperature 0): the first token of the next messages; then the same history replayed on the
  app's wrapper with the app's prompt (its beginning kept) and with the rule before (the oldest
  message dropped whenever one comes in), counting with llama.cpp's own counters how many prompt
  tokens each turn evaluated.

Every process started here is ended on success, error and Ctrl+C.
"""
from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from . import chat_lifecycle, long_chat
from .chat_app import MODEL_NAME, BenchApp
from .common import Processes, log, ratio, start_chromium, summary, target, wait_for
from .llama_peers import LlamaDefaults, LlamaServer, Worker, app_request

PARTS = ('throughput', 'threads', 'cold', 'memory', 'long')
TARGET_RATIO = 0.95  # app tokens/s against each peer's
TARGET_COLD_FIRST_TOKEN_S = 1.5
TARGET_LONG_FIRST_TOKEN_S = 1.0
TARGET_IDLE_RSS_MIB = 120.0
PROMPT = 'List all the US states with a fact about each one.'  # the default model fills max_tokens (about 430 alone)
SUBJECTS = ('app', 'wrapper', 'llama_defaults', 'llama_server')


class Wrapper:
    """The model loaded by the app's own loader (the app's n_ctx, threads, batch threads and GPU layers),
    generating through its ``stream_chat`` (the same transcript, stop sequences and sampling) straight
    into this process: no hub, storage, event loop or client."""

    def __init__(self, path: Path, context_length: int, gpu_layers: int) -> None:
        from jarvis.models.local import LlamaCppModel  # pylint: disable=import-outside-toplevel
        self.model = LlamaCppModel(path, context_length=context_length, gpu_layers=gpu_layers)
        self.settings = {'n_ctx': self.model.context_length, 'n_threads': self.model.threads,
                         'n_threads_batch': self.model.threads_batch}

    def generate(self, history: list[tuple[str, str]], max_tokens: int, temperature: float) -> dict[str, Any]:
        from jarvis.assistant.assistant import SYSTEM_PROMPT, fit_to_context  # pylint: disable=import-outside-toplevel
        from jarvis.events import ChatMessage  # pylint: disable=import-outside-toplevel
        from jarvis.models.base import GenerationOptions  # pylint: disable=import-outside-toplevel

        from .llama_peers import Stopwatch  # pylint: disable=import-outside-toplevel
        messages = [ChatMessage(role=role, text=text) for role, text in history]  # type: ignore[arg-type]
        turns = fit_to_context(self.model, SYSTEM_PROMPT, messages, max_tokens)
        watch = Stopwatch()
        for piece in self.model.stream_chat(turns, GenerationOptions(max_tokens=max_tokens, temperature=temperature),
                                            threading.Event()):
            watch.piece(piece)
        return watch.result()

    def close(self) -> None:
        self.model.close()


def run(procs: Processes, *, quick: bool, repeat: int | None = None, max_tokens: int = 128,
        models_dir: Path | None = None, parts: list[str] | None = None) -> dict[str, Any]:
    from jarvis.models.default_model import ensure_default_model  # pylint: disable=import-outside-toplevel
    parts = [p for p in PARTS if p in (parts or PARTS)]
    result: dict[str, Any] = {
        'description': 'The chat with the default Gemma GGUF against llama-cpp-python (its defaults, its '
                       'server) and the app\'s own model wrapper',
        'settings': {'quick': quick, 'max_tokens': max_tokens, 'model': MODEL_NAME, 'parts': parts},
        'targets': {},
    }
    with tempfile.TemporaryDirectory(prefix='bench-chat-') as tmp:
        workdir = Path(tmp)
        models = models_dir or workdir / 'models'
        model_path = ensure_default_model(models)
        for part in parts:
            log(f'chat: --- {part} ---')
            began = time.monotonic()
            try:
                if part == 'throughput':
                    outcome = throughput(procs, workdir, models, model_path, quick=quick, repeat=repeat,
                                         max_tokens=max_tokens)
                elif part == 'threads':
                    outcome = chat_lifecycle.threads(procs, workdir, models, quick=quick, max_tokens=max_tokens)
                elif part == 'cold':
                    outcome = chat_lifecycle.cold_start(procs, workdir, models, model_path, quick=quick)
                elif part == 'memory':
                    outcome = chat_lifecycle.memory(procs, workdir, models, model_path, quick=quick)
                else:
                    outcome = long_chat.run(procs, workdir, models, model_path, quick=quick)
            except Exception as error:  # pylint: disable=broad-except  # report it, run the other parts
                import traceback  # pylint: disable=import-outside-toplevel
                traceback.print_exc()
                outcome = {'error': f'{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ""}'}
            finally:
                procs.cleanup()
            outcome['duration_s'] = round(time.monotonic() - began, 1)
            result[part] = outcome
    _targets(result)
    return result


def notes(result: dict[str, Any]) -> list[str]:
    """What the chat rows measured, in plain sentences."""
    found: list[str] = []
    throughput_ = result.get('throughput') or {}
    if 'checks' in throughput_:
        checks = throughput_['checks']
        settings = checks.get('settings') or {}

        def threads(subject: str) -> str:
            s = settings.get(subject) or {}
            return f'{s.get("n_threads")}/{s.get("n_threads_batch")}'

        same = [peer for peer in ('llama_defaults', 'llama_server') if checks.get(f'same_text_{peer}')]
        found.append(
            'Chat throughput: the app\'s tokens/s is its own figure (first token to last, one token per streamed '
            'piece), every peer is counted the same way on the same GGUF, prompt (the app\'s transcript), '
            'temperature 0, stop sequences and repetition penalties, taking turns after a discarded warm-up each. '
            f'Threads (generating/reading the prompt): app and wrapper {threads("app")}, Llama() defaults '
            f'{threads("llama_defaults")}, llama_cpp.server defaults {threads("llama_server")}; context 4,096 '
            'tokens everywhere (the libraries\' own 512 and 2,048 are too small for a long conversation); the '
            'penalties look at the last 256 tokens in the app and at the libraries\' default 64 in the peers. '
            + ('The app and its wrapper wrote the identical texts' if checks.get('identical_texts_app_wrapper')
               else 'The app\'s and its wrapper\'s texts differ in places (each reads the growing conversation '
                    'in other pieces: its own cache, the app\'s reading ahead; the sums round differently)')
            + (f'; {" and ".join(same)} wrote the same as the app.' if same
               else '; the peers\' texts differ too (also their penalty window).'))
    if 'stats' in (result.get('threads') or {}):
        auto = result['threads']['auto']
        found.append(f'Chat threads: the app streaming to one browser window on /chat with 1, 2 and the automatic '
                     f'number of CPU threads (here {auto["threads"]} generating and {auto["batch_threads"]} reading '
                     f'the prompt, of {auto["cores"]} cores); first token of a long message of about 700 tokens.')
    if 'app_runs' in (result.get('cold') or {}):
        found.append('Chat cold start: a plain start (the default model on standby, its GGUF already assembled, in '
                     'the page cache), then one message as soon as it serves: from the request to its first words '
                     'at an /api/events client (loading the model, reading the prompt, 100 ms coalescing of the '
                     'stream), and from the launch. llama_cpp.server loads the model before it serves: from its '
                     'launch to the first token of the same prompt.')
    if 'app_idle_rss_mib' in (result.get('memory') or {}):
        found.append('Chat memory: RSS of the app\'s process tree sampled every second with one browser window on '
                     'the System view: idle after a plain start (no model loaded), with the model loaded after one '
                     'message, and after POST /api/models/unload (the keep-alive unloads the same way); against '
                     'llama_cpp.server idle after one answer.')
    if 'replay' in (result.get('long') or {}):
        settings = result['long']['settings']
        found.append('Chat long conversation: the app answers a conversation for real (temperature 0, up to 512 '
                     'tokens an answer, 4,096-token context), each message sent '
                     f'{settings["reading_s"]:g} s after the previous answer (a quick reader; the model reads the '
                     'next prompt\'s beginning meanwhile); the first token is timed for the messages after the '
                     f'first {settings["build_turns"] * 2}, at an /api/events client. The replay '
                     'times the same turns on the app\'s wrapper with the previous turn and its answer in the cache, '
                     'with the app\'s prompt and with the rule before (the oldest message dropped for every new one); '
                     '"evaluated" is llama.cpp\'s count of prompt tokens it computed.')
    return found


def _targets(result: dict[str, Any]) -> None:
    targets = result['targets']
    phases = (result.get('throughput') or {}).get('phases') or {}
    for phase, data in phases.items():
        for peer in SUBJECTS[1:]:
            targets[f'ratio_{phase}_vs_{peer}'] = target(data['ratios'].get(peer), '>=', TARGET_RATIO)
    cold = result.get('cold') or {}
    if 'app_request_to_first_words_s' in cold:
        targets['cold_first_token_s'] = target(cold['app_request_to_first_words_s'].get('p50'), '<',
                                               TARGET_COLD_FIRST_TOKEN_S)
    memory = result.get('memory') or {}
    if 'app_idle_rss_mib' in memory:
        targets['idle_rss_mib'] = target(memory['app_idle_rss_mib'].get('max'), '<', TARGET_IDLE_RSS_MIB)
        targets['rss_after_unload_mib'] = target(memory['app_after_unload_rss_mib'].get('max'), '<',
                                                 TARGET_IDLE_RSS_MIB)
    long = result.get('long') or {}
    if 'app_request_to_first_words_s' in long:
        targets['long_first_token_s'] = target(long['app_request_to_first_words_s'].get('p50'), '<=',
                                               TARGET_LONG_FIRST_TOKEN_S)


# --- throughput ---------------------------------------------------------------------------------

def throughput(procs: Processes, workdir: Path, models: Path, model_path: Path, *, quick: bool,
               repeat: int | None, max_tokens: int) -> dict[str, Any]:
    repeat = repeat or (2 if quick else 6)
    options = {'context_length': 4096, 'temperature': 0.0, 'gpu_layers': 0, 'max_tokens': max_tokens}
    runs: list[dict[str, Any]] = []
    checks: dict[str, Any] = {'prompt': PROMPT, **options}
    app = BenchApp(procs, workdir, models, options=options, default_model=False)
    wrapper_worker, defaults_worker = Worker('app-wrapper'), Worker('llama-defaults')
    wrapper = defaults = server = driver = None
    try:
        app.wait_ready()
        app.load()
        log('chat: the app loaded the model; loading the peers')
        wrapper = wrapper_worker.run(Wrapper, model_path, options['context_length'], options['gpu_layers'])
        defaults = defaults_worker.run(LlamaDefaults, model_path)
        server = LlamaServer(procs, model_path, workdir / 'llama-server.log')
        server.wait_ready()
        checks['settings'] = {'app': wrapper.settings, 'wrapper': wrapper.settings,
                              'llama_defaults': defaults.settings, 'llama_server': server.settings()}

        def answer(subject: str, phase: str, history: list[tuple[str, str]]) -> dict[str, Any]:
            """One answer to PROMPT after ``history``, the conversation the app shows now."""
            if subject == 'app':
                result = app.ask(PROMPT, None)
                app.wait_idle()  # the model reads ahead after an answer: not while a peer is timed
                if phase == 'window':  # the finished bubble shows the app's own figure
                    shown = f'{result["tokens_per_s"]:.1f} tokens/s'
                    result['window_showed_answer'] = bool(wait_for(
                        lambda: shown in driver.execute_script(
                            'const m = document.querySelectorAll(\'[data-testid="bubble-meta"]\');'
                            'return m.length ? m[m.length - 1].innerText : ""'),
                        timeout=15, message='the window did not show the finished answer'))
                return result
            turns = [*history, ('user', PROMPT)]
            if subject == 'wrapper':
                return wrapper_worker.run(wrapper.generate, turns, max_tokens, 0.0)
            if subject == 'llama_defaults':
                return defaults_worker.run(defaults.generate, app_request(turns, max_tokens))
            return server.generate(app_request(turns, max_tokens))

        for phase in ('window', 'events'):
            if phase == 'window':
                driver = procs.add_driver(start_chromium())
                driver.set_page_load_timeout(60)
                driver.get(app.url + '/chat')
                wait_for(lambda: driver.find_elements('css selector', '[data-testid="chat-input"]'),
                         timeout=60, message='the Chat view did not open')
            else:
                app.listen()
            history = app.shown_history()
            for subject in SUBJECTS:  # warm-up, not counted
                answer(subject, phase, history)
            for rep in range(repeat):
                history = app.shown_history()  # what the app's next answer reads, for every subject
                shift = rep % len(SUBJECTS)
                for subject in SUBJECTS[shift:] + SUBJECTS[:shift]:  # take turns
                    result = answer(subject, phase, history)
                    result.update({'subject': subject, 'phase': phase, 'rep': rep})
                    runs.append(result)
                    log(f'chat: {phase} {rep + 1}/{repeat}: {subject}: {result["tokens"]} tokens, '
                        f'{result["tokens_per_s"] or 0:.1f} tokens/s, first token {result["first_token_s"] or 0:.3f} s')
            if driver is not None:
                procs.quit_driver(driver)
                driver = None
    finally:
        if driver is not None:
            procs.quit_driver(driver)
        if wrapper is not None:
            wrapper_worker.run(wrapper.close)
        if defaults is not None:
            defaults_worker.run(defaults.close)
        wrapper_worker.shutdown()
        defaults_worker.shutdown()
        if server is not None:
            server.stop()
        app.stop()

    def values(phase: str, subject: str, key: str) -> list[float]:
        return [r[key] for r in runs if r['phase'] == phase and r['subject'] == subject and r.get(key) is not None]

    phases: dict[str, Any] = {}
    for phase in ('window', 'events'):
        stats = {subject: {'tokens_per_s': summary(values(phase, subject, 'tokens_per_s')),
                           'first_token_s': summary(values(phase, subject, 'first_token_s'))}
                 for subject in SUBJECTS}
        app_p50 = stats['app']['tokens_per_s'].get('p50')
        phases[phase] = {
            'stats': stats,
            'ratios': {peer: ratio(app_p50, stats[peer]['tokens_per_s'].get('p50')) for peer in SUBJECTS[1:]},
            'tokens': sorted({r['tokens'] for r in runs if r['phase'] == phase}),
        }
    def texts(subject: str) -> list[str]:
        return [r['text'] for r in sorted(runs, key=lambda r: (r['phase'], r['rep'])) if r['subject'] == subject]

    checks['identical_texts_app_wrapper'] = texts('app') == texts('wrapper')
    for peer in ('llama_defaults', 'llama_server'):
        checks[f'same_text_{peer}'] = texts(peer) == texts('app')
    for r in runs:
        r.pop('text', None)
    return {'repeat': repeat, 'checks': checks, 'runs': runs, 'phases': phases}
