"""The process a local GGUF model runs in: ``python -m jarvis.models.llama_runner``.

The app starts one per loaded model and ends it to unload the model (``local.LlamaCppModel``), as
Ollama runs each model in a runner process: unloading then gives back everything the model brought
into memory. In the app's own process it could not: llama.cpp's and numpy's libraries stay mapped
once imported, the Python modules of llama-cpp-python stay imported, and glibc keeps heap arenas of
the threads that ran the model (about 19 MiB after the first unload, measured on the default Gemma
3 270M, and more after each further load).

The protocol is one JSON object a line: requests on stdin, replies on the original stdout (the C
libraries' own prints go to stderr, which the app reads into its debug log). The first request loads
the model; after that one request runs at a time (a llama context is not re-entrant), in the main
thread, and ``{"op": "stop"}`` ends the request under way at its next token or prompt chunk. The end
of stdin (the app closed it, or the app died) ends the process.

Requests and their replies (each request ends with exactly one ``done`` or ``error`` reply):

- ``load`` (path, context_length, gpu_layers, threads): ``done`` with ``chat_template``
- ``chat`` (turns, max_tokens, temperature): ``piece`` replies, then ``done`` with ``prompt`` (the
  prompt's tokens, None under a chat template, and how many llama.cpp evaluated)
- ``prefill`` (turns): ``done`` with ``evaluated``
- ``count`` (text): ``done`` with ``tokens``
"""
from __future__ import annotations

import json
import logging
import os
import queue
import signal
import sys
import threading
from collections.abc import Iterator
from typing import IO, Any

from .. import native_logs
from .base import ChatTurn
from .prompt import PENALTY_WINDOW, TRANSCRIPT_SAMPLING, stop_sequences, transcript
from .repetition import LoopGuard

log = logging.getLogger(__name__)

# prefill reads this many prompt tokens between looks at its stop event (about a second here)
PREFILL_CHUNK = 256


class RequestError(Exception):
    """A request failed in a way the user should read about: its text is the reply's ``error``."""


class LlamaEngine:
    """The loaded GGUF, driven by one thread (the runner's main thread)."""

    def __init__(self, path: str, *, context_length: int, gpu_layers: int, threads: int) -> None:
        from llama_cpp import Llama  # pylint: disable=import-outside-toplevel
        native_logs.route_llama_cpp_logs()  # llama.cpp's lines to the debug log, not raw to stderr
        self.name = os.path.basename(path)
        try:
            # swa_full: a model with sliding-window attention layers (Gemma 3) keeps their whole
            # context, or llama.cpp cannot cut its cache back to a common prefix and evaluates each
            # prompt from its start; the cache of the default model is 75 MiB at 4,096 tokens either way
            self.llm: Any = Llama(model_path=path, n_ctx=context_length, n_threads=threads,
                                  n_threads_batch=threads, n_gpu_layers=gpu_layers,
                                  last_n_tokens_size=PENALTY_WINDOW, swa_full=True, verbose=False)
        except (ValueError, RuntimeError, OSError) as error:
            raise RequestError(f'llama.cpp could not load {self.name}: {error}') from error
        self.chat_template: str | None = self.llm.metadata.get('tokenizer.chat_template') or None

    def chat(self, turns: list[ChatTurn], max_tokens: int, temperature: float,
             stop: threading.Event) -> Iterator[str | dict[str, Any]]:
        """The answer's pieces, then the prompt's figures (a dict) when it ends without an error."""
        guard: LoopGuard | None = None
        evaluated_before = self._evaluated()
        prompt: str | None = None
        if self.chat_template:
            stream, read = self._chat_stream(turns, max_tokens, temperature), _delta_text
        else:  # a base model: the transcript, its stop sequences, the repetition controls
            sampling = TRANSCRIPT_SAMPLING
            prompt = transcript(turns)
            stream = self.llm.create_completion(
                prompt, max_tokens=max_tokens, temperature=temperature, stop=stop_sequences(turns),
                repeat_penalty=sampling.repeat_penalty, frequency_penalty=sampling.frequency_penalty,
                presence_penalty=sampling.presence_penalty, stream=True)
            read, guard = _completion_text, LoopGuard()
        try:
            # llama.cpp reads the whole prompt before the first step of the stream, then computes
            # one token per step: a stop takes effect when the step under way ends
            for chunk in stream:
                if stop.is_set():
                    break  # leaving the generator stops llama.cpp from computing further tokens
                piece = read(chunk)
                if guard is not None:
                    piece = guard.feed(piece)
                if piece:
                    yield piece
                if guard is not None and guard.looped:
                    log.info('%s started to repeat itself: the answer ends there', self.name)
                    break
            else:
                if guard is not None and (rest := guard.flush()):
                    yield rest
        finally:
            stream.close()
        evaluated = self._evaluated() - evaluated_before
        tokens = None if prompt is None else len(self.llm.tokenize(prompt.encode('utf-8'), special=True))
        yield {'tokens': tokens, 'evaluated': evaluated}

    def _chat_stream(self, turns: list[ChatTurn], max_tokens: int, temperature: float) -> Any:
        messages = [{'role': t.role, 'content': t.content} for t in turns]
        try:
            return self.llm.create_chat_completion(messages=messages, max_tokens=max_tokens,
                                                   temperature=temperature, stream=True)
        except Exception as error:  # some templates reject a system turn: fold it into the first user turn
            if not turns or turns[0].role != 'system':
                raise RequestError(f'The chat template of {self.name} failed: {error}') from error
            merged = [{'role': 'user', 'content': f'{turns[0].content}\n\n{turns[1].content}'}] if len(turns) > 1 else []
            messages = merged + [{'role': t.role, 'content': t.content} for t in turns[2:]]
            return self.llm.create_chat_completion(messages=messages, max_tokens=max_tokens,
                                                   temperature=temperature, stream=True)

    def prefill(self, turns: list[ChatTurn], stop: threading.Event) -> int:
        """Read a conversation into the cache (without answering), a chunk at a time until ``stop``."""
        if self.chat_template:
            return 0
        llm = self.llm
        tokens = llm.tokenize(transcript(turns, answer=False).encode('utf-8'), special=True)
        # start after what the cache holds already: asking again for a part of it would cut the
        # cache back to that part
        cached = llm.longest_token_prefix(llm.input_ids[:llm.n_tokens].tolist(), tokens)
        before = self._evaluated()
        for end in [*range(cached + PREFILL_CHUNK, len(tokens), PREFILL_CHUNK), len(tokens)]:
            if end <= cached or stop.is_set():
                break
            # llama-cpp-python evaluates what its cache lacks of these tokens, then samples one
            # token that is never evaluated: the cache then holds exactly tokens[:end]
            for _ in llm.create_completion(tokens[:end], max_tokens=1, temperature=0.0, stream=True):
                pass
        return self._evaluated() - before

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode('utf-8', errors='replace'), add_bos=False, special=False))

    def _evaluated(self) -> int:
        """llama.cpp's count of prompt tokens evaluated so far (tokens read in batches, not generated)."""
        from llama_cpp import llama_perf_context  # pylint: disable=import-outside-toplevel
        return int(llama_perf_context(self.llm._ctx.ctx).n_p_eval)  # pylint: disable=protected-access


def _completion_text(chunk: dict) -> str:
    return chunk['choices'][0].get('text') or ''


def _delta_text(chunk: dict) -> str:
    return chunk['choices'][0].get('delta', {}).get('content') or ''


def _turns(data: list[dict[str, Any]]) -> list[ChatTurn]:
    return [ChatTurn(role=t['role'], content=t['content']) for t in data]


class Runner:
    """Reads requests in a thread of its own (so that a stop arrives while a request runs) and runs
    them one after another in the calling thread."""

    def __init__(self, requests: IO[str], replies: IO[str]) -> None:
        self._requests = requests
        self._replies = replies
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._stop = threading.Event()  # of the request under way
        self._engine: LlamaEngine | None = None

    def run(self) -> None:
        threading.Thread(target=self._read, name='runner requests', daemon=True).start()
        while (request := self._queue.get()) is not None:
            self._stop.clear()
            try:
                self._handle(request)
            except RequestError as error:
                self._reply({'error': str(error)})
            except Exception as error:  # pylint: disable=broad-except  # the app shows it; the runner lives on
                log.warning('the model failed', exc_info=True)
                self._reply({'error': f'{type(error).__name__}: {error}'})

    def _read(self) -> None:
        for line in self._requests:
            request = json.loads(line)
            if request.get('op') == 'stop':
                self._stop.set()
            else:
                self._queue.put(request)
        self._stop.set()  # the app is gone or unloads the model: end the request under way too
        self._queue.put(None)

    def _handle(self, request: dict[str, Any]) -> None:
        op = request['op']
        if op == 'load':
            self._engine = LlamaEngine(request['path'], context_length=request['context_length'],
                                       gpu_layers=request['gpu_layers'], threads=request['threads'])
            self._reply({'done': {'chat_template': self._engine.chat_template}})
            return
        engine = self._engine
        if engine is None:
            raise RequestError('No model is loaded in this runner.')
        if op == 'chat':
            figures: dict[str, Any] = {}
            for item in engine.chat(_turns(request['turns']), request['max_tokens'], request['temperature'],
                                    self._stop):
                if isinstance(item, str):
                    self._reply({'piece': item})
                else:
                    figures = item
            self._reply({'done': {'prompt': figures}})
        elif op == 'prefill':
            self._reply({'done': {'evaluated': engine.prefill(_turns(request['turns']), self._stop)}})
        elif op == 'count':
            self._reply({'done': {'tokens': engine.count_tokens(request['text'])}})
        else:
            raise RequestError(f'Unknown request {op!r}.')

    def _reply(self, reply: dict[str, Any]) -> None:
        self._replies.write(json.dumps(reply) + '\n')
        self._replies.flush()


def main() -> None:
    # the replies get stdout's pipe to themselves: whatever the C libraries print goes to stderr
    replies = os.fdopen(os.dup(sys.stdout.fileno()), 'w', encoding='utf-8')
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    # the app decides when this process ends (Ctrl+C in its terminal reaches the whole group)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # each line is one record for the app's log: its level, then the text
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format='%(levelname)s %(message)s')
    Runner(sys.stdin, replies).run()


if __name__ == '__main__':
    main()
