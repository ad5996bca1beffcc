"""What a user would run instead of the app, on the same GGUF and the same prompt: llama-cpp-python's
``Llama`` with its own defaults, and its OpenAI-compatible server (``python -m llama_cpp.server``).

Both get the prompt the app sends for a message (its system prompt and the conversation as a plain
transcript, since the default Gemma is a base model) with the app's per-request sampling (temperature,
repetition penalties, stop sequences), so that the texts can be compared. Everything set when the
model is loaded is the library's default (threads, batch threads, batch size, the penalties' window),
except the context length: the app's 4,096 tokens, since the library's 512 (2,048 for the server)
would not hold a long conversation.

Each streamed piece with text counts as one token, as the app counts; tokens/s runs from the first
piece to the last, (n - 1) / (t_last - t_first).
"""
from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .common import HOST, Processes, free_port, log, tail, wait_http

CONTEXT_LENGTH = 4096


@dataclass(frozen=True)
class Request:
    """One completion as the app asks llama.cpp for it."""

    prompt: str
    stop: list[str]
    max_tokens: int
    temperature: float
    sampling: dict[str, float] = field(default_factory=dict)  # the repetition penalties


def app_request(history: list[tuple[str, str]], max_tokens: int, temperature: float = 0.0) -> Request:
    """The completion the app sends for a conversation ((role, text), ..., ending with the user's message)."""
    from jarvis.assistant.assistant import SYSTEM_PROMPT  # pylint: disable=import-outside-toplevel
    from jarvis.models.base import ChatTurn  # pylint: disable=import-outside-toplevel
    from jarvis.models.prompt import TRANSCRIPT_SAMPLING, stop_sequences, transcript  # pylint: disable=import-outside-toplevel
    turns = [ChatTurn('system', SYSTEM_PROMPT), *(ChatTurn(role, text) for role, text in history)]  # type: ignore[arg-type]
    return Request(prompt=transcript(turns), stop=stop_sequences(turns), max_tokens=max_tokens,
                   temperature=temperature,
                   sampling={'repeat_penalty': TRANSCRIPT_SAMPLING.repeat_penalty,
                             'frequency_penalty': TRANSCRIPT_SAMPLING.frequency_penalty,
                             'presence_penalty': TRANSCRIPT_SAMPLING.presence_penalty})


class Stopwatch:
    """Counts streamed pieces as the app does."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.first: float | None = None
        self.last: float | None = None
        self.pieces: list[str] = []

    def piece(self, text: str) -> None:
        if text:
            self.last = time.perf_counter()
            self.first = self.first or self.last
            self.pieces.append(text)

    def result(self) -> dict[str, Any]:
        count = len(self.pieces)
        first, last = self.first, self.last
        return {
            'tokens': count,
            'tokens_per_s': (count - 1) / (last - first) if first and last and last > first and count > 1 else None,
            'first_token_s': first - self.started if first else None,
            'text': ''.join(self.pieces).strip(),
        }


class LlamaDefaults:
    """``llama_cpp.Llama(model_path, n_ctx=4096)``: every other setting is llama-cpp-python's default.

    Runs in one long-lived worker thread of the benchmark process (as the app runs its model), so that
    llama.cpp's thread pool is driven the same way."""

    def __init__(self, path: Path, context_length: int = CONTEXT_LENGTH) -> None:
        from llama_cpp import Llama  # pylint: disable=import-outside-toplevel
        self.llm = Llama(model_path=str(path), n_ctx=context_length, verbose=False)
        self.settings = {'n_ctx': self.llm.context_params.n_ctx, 'n_threads': self.llm.n_threads,
                         'n_threads_batch': self.llm.n_threads_batch, 'n_batch': self.llm.n_batch,
                         'last_n_tokens_size': self.llm.last_n_tokens_size}

    def generate(self, request: Request) -> dict[str, Any]:
        watch = Stopwatch()
        for chunk in self.llm.create_completion(request.prompt, max_tokens=request.max_tokens,
                                                temperature=request.temperature, stop=request.stop, stream=True,
                                                **request.sampling):
            watch.piece(chunk['choices'][0].get('text') or '')
        return watch.result()

    def close(self) -> None:
        self.llm.close()


def server_command(path: Path, port: int, context_length: int = CONTEXT_LENGTH) -> list[str]:
    return [sys.executable, '-m', 'llama_cpp.server', '--model', str(path), '--n_ctx', str(context_length),
            '--host', HOST, '--port', str(port)]


class LlamaServer:
    """``python -m llama_cpp.server --model GGUF --n_ctx 4096``, asked over HTTP as any OpenAI client asks."""

    def __init__(self, procs: Processes, path: Path, log_path: Path, context_length: int = CONTEXT_LENGTH) -> None:
        self.procs = procs
        self.port = free_port()
        self.url = f'http://{HOST}:{self.port}'
        self.log_path = log_path
        self.launched = time.perf_counter()
        self.process = procs.popen(server_command(path, self.port, context_length), log_path=log_path)
        self.http = httpx.Client(base_url=self.url, timeout=600)

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Seconds from the launch until it serves (it loads the model before it serves)."""
        wait_http(self.url + '/v1/models', self.process, timeout=timeout, interval=0.02, log_path=self.log_path)
        return time.perf_counter() - self.launched

    def generate(self, request: Request) -> dict[str, Any]:
        watch = Stopwatch()
        body = {'prompt': request.prompt, 'max_tokens': request.max_tokens, 'temperature': request.temperature,
                'stop': request.stop, 'stream': True, **request.sampling}
        with self.http.stream('POST', '/v1/completions', json=body) as response:
            if response.status_code != 200:
                raise RuntimeError(f'llama_cpp.server answered {response.status_code}: {response.read()[:300]!r}')
            for data in _sse_data(response.iter_lines()):
                watch.piece(data['choices'][0].get('text') or '')
        return watch.result()

    def settings(self) -> dict[str, Any]:
        import multiprocessing  # pylint: disable=import-outside-toplevel
        cores = multiprocessing.cpu_count()
        return {'n_ctx': CONTEXT_LENGTH, 'n_threads': max(cores // 2, 1), 'n_threads_batch': cores,
                'n_batch': 512, 'last_n_tokens_size': 64}

    def rss(self) -> int:
        import psutil  # pylint: disable=import-outside-toplevel
        try:
            return psutil.Process(self.process.pid).memory_info().rss
        except psutil.Error:
            return 0

    def stop(self) -> None:
        self.http.close()
        self.procs.stop(self.process)

    def output(self) -> str:
        return tail(self.log_path)


def _sse_data(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        if not line.startswith('data:'):
            continue
        payload = line[5:].strip()
        if payload == '[DONE]':
            return
        yield json.loads(payload)


class Worker:
    """One long-lived thread that runs calls in turn (llama.cpp objects stay on the thread that made them)."""

    def __init__(self, name: str) -> None:
        from concurrent.futures import ThreadPoolExecutor  # pylint: disable=import-outside-toplevel
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._lock = threading.Lock()

    def run(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return self._pool.submit(function, *args, **kwargs).result()

    def shutdown(self) -> None:
        self._pool.shutdown()


def server_cold_start(procs: Processes, path: Path, request: Request, workdir: Path) -> dict[str, Any]:
    """Launch the server, then ask it once: seconds to serving and to the first token from the launch."""
    server = LlamaServer(procs, path, workdir / f'llama-server-{free_port()}.log')
    try:
        ready = server.wait_ready()
        asked = time.perf_counter()
        result = server.generate(request)
        first = result['first_token_s']
        return {'ready_s': ready, 'first_token_s': first,
                'launch_to_first_token_s': (asked - server.launched) + first if first is not None else None,
                'rss_bytes': server.rss()}
    finally:
        server.stop()
        log('chat: llama_cpp.server stopped')
