"""GGUF models in-process through llama-cpp-python.

llama_cpp (and numpy with it) is imported by the first load, not at start: with no model loaded the
app does not hold its libraries.
"""
from __future__ import annotations

import ctypes
import gc
import logging
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import native_logs
from .base import ChatTurn, GenerationOptions, ModelError
from .gguf import GGUFInfo, read_gguf
from .prompt import PENALTY_WINDOW, TRANSCRIPT_SAMPLING, stop_sequences, transcript
from .repetition import LoopGuard

log = logging.getLogger(__name__)

# prefill reads this many prompt tokens between looks at its stop event (about a second here)
PREFILL_CHUNK = 256


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


@dataclass(frozen=True, slots=True)
class PromptStats:
    """How much of one prompt llama.cpp evaluated (from its own counters): the rest came from its KV cache."""

    tokens: int | None  # None: not counted (a chat template formats the prompt inside llama-cpp-python)
    evaluated: int

    @property
    def reused(self) -> int | None:
        return None if self.tokens is None else max(0, self.tokens - self.evaluated)


class LlamaCppModel:
    """A loaded GGUF. Loading and generating block: call them in a worker thread."""

    source = 'local'

    def __init__(self, path: Path | str, *, name: str | None = None, context_length: int = 4096,
                 gpu_layers: int = 0, threads: int = 0, gguf: GGUFInfo | None = None) -> None:
        path = Path(path)
        # a clear error for a corrupt or foreign file before llama.cpp sees it (``gguf``: read already)
        info = gguf or read_gguf(path)
        try:
            from llama_cpp import Llama  # pylint: disable=import-outside-toplevel
        except ImportError as error:
            raise ModelError('llama-cpp-python is not installed, so GGUF models cannot run.') from error
        # imported with the first model, not at start (its memory); its lines go to the debug log from then on
        native_logs.route_llama_cpp_logs()
        trained = info.context_length or context_length
        self.context_length = max(256, min(context_length, trained))
        self.threads = threads or default_threads()
        self.threads_batch = self.threads
        try:
            # swa_full: a model with sliding-window attention layers (Gemma 3) keeps their whole
            # context, or llama.cpp cannot cut its cache back to a common prefix and evaluates each
            # prompt from its start; the cache of the default model is 75 MiB at 4,096 tokens either way
            self._llm: Any = Llama(model_path=str(path), n_ctx=self.context_length, n_threads=self.threads,
                                   n_threads_batch=self.threads_batch, n_gpu_layers=gpu_layers,
                                   last_n_tokens_size=PENALTY_WINDOW, swa_full=True, verbose=False)
        except (ValueError, RuntimeError, OSError) as error:
            raise ModelError(f'llama.cpp could not load {path.name}: {error}') from error
        self.name = name or path.stem
        self.path = path
        self.chat_template: str | None = self._llm.metadata.get('tokenizer.chat_template') or None
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
        self._lock = threading.Lock()  # one generation at a time: a llama context is not re-entrant
        # set by close(): a generation still running stops at its next token instead of holding the
        # lock (and so the unload or the switch to another model) until its last token
        self._closing = threading.Event()

    def stream_chat(self, turns: list[ChatTurn], options: GenerationOptions,
                    cancel: threading.Event) -> Iterator[str]:
        with self._lock:
            if self._llm is None or self._closing.is_set():
                raise ModelError(f'{self.name} was unloaded.')
            guard: LoopGuard | None = None
            evaluated_before = self._prompt_tokens_evaluated()
            prompt: str | None = None
            if self.chat_template:
                stream, read = self._chat_stream(turns, options), _delta_text
            else:  # a base model: the transcript, its stop sequences, the repetition controls
                sampling = TRANSCRIPT_SAMPLING
                prompt = transcript(turns)
                stream = self._llm.create_completion(
                    prompt, max_tokens=options.max_tokens, temperature=options.temperature,
                    stop=stop_sequences(turns), repeat_penalty=sampling.repeat_penalty,
                    frequency_penalty=sampling.frequency_penalty, presence_penalty=sampling.presence_penalty,
                    stream=True)
                read, guard = _completion_text, LoopGuard()
            try:
                # llama.cpp reads the whole prompt before the first step of the stream, then computes
                # one token per step: a cancel or a close takes effect when the step under way ends
                for chunk in stream:
                    if cancel.is_set():
                        break  # leaving the generator stops llama.cpp from computing further tokens
                    if self._closing.is_set():
                        raise ModelError(f'{self.name} was unloaded while it was answering.')
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
                stream.close()  # type: ignore[union-attr]
                try:
                    self.last_prompt = self._prompt_stats(prompt, evaluated_before)
                except Exception:  # pylint: disable=broad-except  # figures for the log; never the answer's fault
                    log.debug('could not read the prompt figures', exc_info=True)
                else:
                    log.debug('%s: prompt of %s tokens, %d evaluated', self.name, self.last_prompt.tokens,
                              self.last_prompt.evaluated)

    def prefill(self, turns: list[ChatTurn], stop: threading.Event) -> int:
        """Read a conversation into the cache (without answering), so that a prompt that begins with it
        reads only the rest; returns how many tokens were evaluated. It reads a chunk at a time and
        ends after the chunk under way when ``stop`` is set (what it read is kept).

        Only for the plain transcript: a chat template formats the prompt inside llama-cpp-python.
        """
        if self.chat_template:
            return 0
        with self._lock:
            if self._llm is None or self._closing.is_set():
                return 0
            llm = self._llm
            tokens = llm.tokenize(transcript(turns, answer=False).encode('utf-8'), special=True)
            # start after what the cache holds already: asking again for a part of it would cut the
            # cache back to that part
            cached = llm.longest_token_prefix(llm.input_ids[:llm.n_tokens].tolist(), tokens)
            before = self._prompt_tokens_evaluated()
            for end in [*range(cached + PREFILL_CHUNK, len(tokens), PREFILL_CHUNK), len(tokens)]:
                if end <= cached or stop.is_set() or self._closing.is_set():
                    break
                # llama-cpp-python evaluates what its cache lacks of these tokens, then samples one
                # token that is never evaluated: the cache then holds exactly tokens[:end]
                for _ in llm.create_completion(tokens[:end], max_tokens=1, temperature=0.0, stream=True):
                    pass
            return self._prompt_tokens_evaluated() - before

    def _chat_stream(self, turns: list[ChatTurn], options: GenerationOptions) -> Any:
        messages = [{'role': t.role, 'content': t.content} for t in turns]
        try:
            return self._llm.create_chat_completion(messages=messages, max_tokens=options.max_tokens,
                                                    temperature=options.temperature, stream=True)
        except Exception as error:  # some templates reject a system turn: fold it into the first user turn
            if not turns or turns[0].role != 'system':
                raise ModelError(f'The chat template of {self.name} failed: {error}') from error
            merged = [{'role': 'user', 'content': f'{turns[0].content}\n\n{turns[1].content}'}] if len(turns) > 1 else []
            messages = merged + [{'role': t.role, 'content': t.content} for t in turns[2:]]
            return self._llm.create_chat_completion(messages=messages, max_tokens=options.max_tokens,
                                                    temperature=options.temperature, stream=True)

    def _prompt_tokens_evaluated(self) -> int:
        """llama.cpp's count of prompt tokens evaluated so far (tokens read in batches, not generated)."""
        from llama_cpp import llama_perf_context  # pylint: disable=import-outside-toplevel
        return int(llama_perf_context(self._llm._ctx.ctx).n_p_eval)  # pylint: disable=protected-access

    def _prompt_stats(self, prompt: str | None, evaluated_before: int) -> PromptStats:
        """After a generation: its prompt's length in tokens (tokenized as create_completion does) and how
        many of them llama.cpp evaluated; generated tokens are counted apart (one at a time)."""
        evaluated = self._prompt_tokens_evaluated() - evaluated_before
        tokens = None if prompt is None else len(self._llm.tokenize(prompt.encode('utf-8'), special=True))
        return PromptStats(tokens=tokens, evaluated=evaluated)

    def count_tokens(self, text: str) -> int:
        with self._lock:  # never on a model that close() is freeing
            if self._llm is None:
                raise ModelError(f'{self.name} was unloaded.')
            return len(self._llm.tokenize(text.encode('utf-8', errors='replace'), add_bos=False, special=False))

    def close(self) -> None:
        """Free the model; a generation still running stops at its next token first."""
        self._closing.set()
        with self._lock:
            llm, self._llm = self._llm, None
            if llm is not None:
                llm.close()
                del llm
                release_freed_memory()


def release_freed_memory() -> None:
    """Give the memory a freed model leaves behind back to the system.

    The model's own buffers go with it, but glibc's allocator keeps the heap they shared with
    Python (seen: 80 MiB resident after closing the default model, 45 MiB after trimming).
    """
    gc.collect()  # llama_cpp.Llama holds reference cycles: free its arrays now, not at some later collection
    if not sys.platform.startswith('linux'):
        return
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        pass


def _completion_text(chunk: dict) -> str:
    return chunk['choices'][0].get('text') or ''


def _delta_text(chunk: dict) -> str:
    return chunk['choices'][0].get('delta', {}).get('content') or ''
