"""GGUF models through llama-cpp-python, each in a runner process of its own.

A loaded model lives in a child process (``llama_runner``) that this module starts, talks to over
pipes and ends to unload the model, as Ollama runs its models: unloading gives back everything the
model brought in (llama.cpp's and numpy's libraries, llama-cpp-python's modules, the heap the
threads that ran it left behind), which an unload inside the app's own process could not. The app
itself never imports llama_cpp.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import queue
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import ChatTurn, GenerationOptions, ModelError
from .gguf import GGUFInfo, read_gguf

log = logging.getLogger(__name__)
llama_log = logging.getLogger('llama_cpp')  # the runner's log lines: llama.cpp's among them

# the frozen app (PyInstaller) has no ``python -m``: its entry point runs the runner on this argument
RUNNER_ARGUMENT = '--llama-runner'
# seconds a runner has to end after its stdin closed before it is killed
EXIT_GRACE_S = 2.0
# how often a request that waits for the runner looks at its cancel event
POLL_S = 0.1


def default_threads() -> int:
    """CPU threads for generating and for reading a prompt: all cores but one.

    The core left free keeps the model fast, not only the windows: llama.cpp's threads wait for each
    other at every step by spinning, so when another process (the window that draws the stream, the
    app's own loop, anything else) takes a core from one of them, the others spin until it is back.
    Measured on this project's 2-core machine with one browser window streaming the answer
    (``benchmarks/chat.py``, part "threads", 2026-11-27, three rounds under a 1-minute load of 4 to 9):
    1 thread wrote 9.4 tokens/s (8.6 to 17.0), 2 threads 2.5 (1.7 to 6.7); a long prompt (about 700
    tokens) was read in 7.0 s by 1 thread and 8.9 s with 2 reading it (1 generating).
    """
    return max(1, (os.cpu_count() or 2) - 1)


def runner_command() -> list[str]:
    """How to start a runner: this interpreter with the runner module (the bundle: itself, with a flag)."""
    if getattr(sys, 'frozen', False):
        return [sys.executable, RUNNER_ARGUMENT]
    return [sys.executable, '-m', 'jarvis.models.llama_runner']


@dataclass(frozen=True, slots=True)
class PromptStats:
    """How much of one prompt llama.cpp evaluated (from its own counters): the rest came from its KV cache."""

    tokens: int | None  # None: not counted (a chat template formats the prompt inside llama-cpp-python)
    evaluated: int

    @property
    def reused(self) -> int | None:
        return None if self.tokens is None else max(0, self.tokens - self.evaluated)


class RunnerGone(ModelError):
    """The runner process ended (unloaded, or it crashed) before it finished a request."""


class RunnerProcess:
    """One runner process: JSON lines to its stdin, its replies read by a thread into a queue, its
    log lines (stderr) into the ``llama_cpp`` logger."""

    def __init__(self, name: str) -> None:
        self.name = name
        package_root = str(Path(__file__).resolve().parents[2])  # found also when the app runs from a checkout
        env = {**os.environ, 'PYTHONPATH': os.pathsep.join(filter(None, [package_root, os.environ.get('PYTHONPATH')])),
               # numpy comes with llama-cpp-python; its BLAS threads would only hold memory here
               'OPENBLAS_NUM_THREADS': '1', 'PYTHONUNBUFFERED': '1'}
        self._process = subprocess.Popen(runner_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, env=env, text=True, encoding='utf-8',
                                         errors='replace', bufsize=1)
        self.pid = self._process.pid
        self._replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._log_tail: deque[str] = deque(maxlen=20)  # to say why a runner that died did
        self._send_lock = threading.Lock()
        self._threads = [threading.Thread(target=self._read_replies, name=f'{name} replies', daemon=True),
                         threading.Thread(target=self._read_log, name=f'{name} log', daemon=True)]
        for thread in self._threads:
            thread.start()

    def send(self, request: dict[str, Any]) -> None:
        with self._send_lock:
            try:
                assert self._process.stdin is not None
                self._process.stdin.write(json.dumps(request) + '\n')
                self._process.stdin.flush()
            except (OSError, ValueError) as error:  # a closed pipe: the runner is gone
                raise RunnerGone(f'{self.name} is not running any more.') from error

    def reply(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next reply; None after ``timeout``. Raises ``RunnerGone`` once the runner has ended."""
        try:
            item = self._replies.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is None:
            self._replies.put(None)  # every later call hears it too
            raise RunnerGone(self._death())
        return item

    def stop(self) -> None:
        """End the runner (closing its stdin ends it; a runner that does not end in time is killed)."""
        try:
            with self._send_lock:
                if self._process.stdin is not None:
                    self._process.stdin.close()
        except OSError:
            pass
        try:
            self._process.wait(EXIT_GRACE_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        for thread in self._threads:
            thread.join(EXIT_GRACE_S)

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    def _read_replies(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            try:
                self._replies.put(json.loads(line))
            except json.JSONDecodeError:
                llama_log.debug('%s', line.rstrip())
        self._replies.put(None)

    def _read_log(self) -> None:
        assert self._process.stderr is not None
        for line in self._process.stderr:
            line = line.rstrip()
            if not line:
                continue
            self._log_tail.append(line)
            level, _, text = line.partition(' ')
            if level in ('WARNING', 'ERROR', 'CRITICAL'):
                llama_log.warning('%s', text)
            else:
                llama_log.debug('%s', text if level in ('DEBUG', 'INFO') else line)

    def _death(self) -> str:
        try:
            code = self._process.wait(EXIT_GRACE_S)
        except subprocess.TimeoutExpired:
            code = None
        last = next((line for line in reversed(self._log_tail) if 'Error' in line or 'error' in line), '')
        return f'The process that ran {self.name} ended (exit code {code})' + (f': {last}' if last else '.')


class LlamaCppModel:
    """A loaded GGUF, running in a runner process. Loading and generating block: call them in a worker thread."""

    source = 'local'

    def __init__(self, path: Path | str, *, name: str | None = None, context_length: int = 4096,
                 gpu_layers: int = 0, threads: int = 0, gguf: GGUFInfo | None = None) -> None:
        path = Path(path)
        # a clear error for a corrupt or foreign file before llama.cpp sees it (``gguf``: read already)
        info = gguf or read_gguf(path)
        if importlib.util.find_spec('llama_cpp') is None:
            raise ModelError('llama-cpp-python is not installed, so GGUF models cannot run.')
        trained = info.context_length or context_length
        self.context_length = max(256, min(context_length, trained))
        self.threads = threads or default_threads()
        self.threads_batch = self.threads
        self.name = name or path.stem
        self.path = path
        self._lock = threading.Lock()  # one request at a time: the runner's llama context is not re-entrant
        # set by close(): a generation still running ends at once instead of holding the lock (and
        # so the unload or the switch to another model) until its last token
        self._closing = threading.Event()
        try:
            self._runner: RunnerProcess | None = RunnerProcess(self.name)
        except OSError as error:
            raise ModelError(f'The process for {path.name} could not be started: {error}') from error
        try:
            loaded = self._request({'op': 'load', 'path': str(path), 'context_length': self.context_length,
                                    'gpu_layers': gpu_layers, 'threads': self.threads})
        except ModelError as error:
            self._runner.stop()
            self._runner = None
            raise ModelError(f'llama.cpp could not load {path.name}: {error}'
                             if isinstance(error, RunnerGone) else str(error)) from error
        self.chat_template: str | None = loaded.get('chat_template') or None
        self.details: dict[str, Any] = {
            'path': str(path),
            'context_length': self.context_length,
            'quantization': info.quantization,
            'parameters': info.parameters,
            'architecture': info.architecture,
            'chat_template': bool(self.chat_template),
            'gpu_layers': gpu_layers,
            'threads': self.threads,
            'batch_threads': self.threads_batch,
        }
        self.last_prompt: PromptStats | None = None  # of the latest generation

    @property
    def runner_pid(self) -> int | None:
        """The process the model runs in (None once unloaded)."""
        return self._runner.pid if self._runner is not None else None

    def stream_chat(self, turns: list[ChatTurn], options: GenerationOptions,
                    cancel: threading.Event) -> Iterator[str]:
        with self._lock:
            runner = self._usable()
            runner.send({'op': 'chat', 'turns': _turns(turns), 'max_tokens': options.max_tokens,
                         'temperature': options.temperature})
            finished = False
            try:
                while True:
                    reply = self._next(runner, cancel)
                    if reply is None:  # cancelled: the runner ends the answer at its next token
                        break
                    if 'piece' in reply:
                        yield reply['piece']
                        continue
                    finished = True
                    self._ended(reply)
                    prompt = reply['done'].get('prompt') or {}
                    if 'evaluated' in prompt:
                        self.last_prompt = PromptStats(tokens=prompt.get('tokens'), evaluated=prompt['evaluated'])
                        log.debug('%s: prompt of %s tokens, %d evaluated', self.name, self.last_prompt.tokens,
                                  self.last_prompt.evaluated)
                    return
            finally:
                if not finished:  # cancelled, or the caller stopped reading: stop the runner, wait for its end
                    self._finish(runner)

    def prefill(self, turns: list[ChatTurn], stop: threading.Event) -> int:
        """Read a conversation into the cache (without answering), so that a prompt that begins with it
        reads only the rest; returns how many tokens were evaluated. It reads a chunk at a time and
        ends after the chunk under way when ``stop`` is set (what it read is kept).

        Only for the plain transcript: a chat template formats the prompt inside llama-cpp-python.
        """
        if self.chat_template:
            return 0
        with self._lock:
            if self._runner is None or self._closing.is_set():
                return 0
            runner = self._runner
            try:
                runner.send({'op': 'prefill', 'turns': _turns(turns)})
                reply = self._next(runner, stop)
                if reply is None:
                    reply = self._finish(runner)
                return int(self._ended(reply).get('evaluated', 0)) if reply is not None else 0
            except ModelError:
                if self._closing.is_set():  # unloaded meanwhile: nothing was read for an answer
                    return 0
                raise

    def count_tokens(self, text: str) -> int:
        with self._lock:
            runner = self._usable()
            runner.send({'op': 'count', 'text': text})
            reply = self._next(runner, None)
            assert reply is not None
            return int(self._ended(reply)['tokens'])

    def close(self) -> None:
        """Unload: end the runner process; a generation still running ends with an error at once."""
        self._closing.set()
        runner = self._runner
        if runner is not None:
            runner.stop()  # a request under way reads the runner's end and lets go of the lock
        with self._lock:
            self._runner = None

    # --- talking to the runner -------------------------------------------------------------------

    def _usable(self) -> RunnerProcess:
        if self._runner is None or self._closing.is_set():
            raise ModelError(f'{self.name} was unloaded.')
        return self._runner

    def _next(self, runner: RunnerProcess, cancel: threading.Event | None) -> dict[str, Any] | None:
        """The runner's next reply to the request under way; None once ``cancel`` is set."""
        while True:
            if cancel is not None and cancel.is_set():
                return None
            try:
                reply = runner.reply(POLL_S)
            except RunnerGone as error:
                if self._closing.is_set():
                    raise ModelError(f'{self.name} was unloaded while it was answering.') from error
                raise
            if self._closing.is_set():  # the runner may end the request before it ends itself
                raise ModelError(f'{self.name} was unloaded while it was answering.')
            if reply is not None:
                return reply

    def _finish(self, runner: RunnerProcess) -> dict[str, Any] | None:
        """Stop the request under way and read up to its end (its last reply); None if the runner ended."""
        try:
            runner.send({'op': 'stop'})
            while True:
                reply = runner.reply()
                if reply is not None and 'piece' not in reply:
                    return reply
        except RunnerGone:
            return None

    def _ended(self, reply: dict[str, Any]) -> dict[str, Any]:
        """The result of a request that ended: its ``done`` object, or its error raised."""
        if 'error' in reply:
            raise ModelError(reply['error'])
        return reply['done']

    def _request(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self._runner is not None
        self._runner.send(request)
        reply = self._next(self._runner, None)
        assert reply is not None
        return self._ended(reply)


def _turns(turns: list[ChatTurn]) -> list[dict[str, str]]:
    return [{'role': turn.role, 'content': turn.content} for turn in turns]
