"""The chat benchmark's long conversation: the first token at 40 messages and more, and why.

First the app itself: a plain start, one conversation answered for real through ``POST /api/chat``
(temperature 0, up to 512 tokens an answer, the default 4,096-token context), each message sent
``READING_S`` after the previous answer (a quick reader; the model reads ahead meanwhile), the first
words of each answer timed at an ``/api/events`` client. Then the same history replayed in this process on the
app's own model wrapper, turn by turn, with two ways to fit the conversation into the context: the
app's (the oldest messages dropped in chunks, so that the prompt keeps its beginning) and the rule
before it (the oldest message dropped whenever a new one comes in). Before each timed turn the
previous turn's prompt and its answer are read into the model's cache, as answering it would have
left them; llama.cpp's own counters say how many prompt tokens the timed turn evaluated.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .chat_app import BenchApp
from .common import Processes, log, summary
from .llama_peers import Worker

# seconds between an answer and the next message: a quick reader (the model reads ahead meanwhile)
READING_S = 10.0
# every third one asks for a long answer (the default model writes 100 to 512 tokens to those), so
# that the conversation outgrows the 4,096-token context before its 40th message
QUESTIONS = [
    'List all the US states with a fact about each one.', 'What is the capital of France?',
    'Tell me about the history of Rome.',
    'Write a Python program that prints a multiplication table, and explain it line by line.',
    'How does photosynthesis work?', 'Give me three tips for learning Python.',
    'List the planets of the solar system with three facts about each.',
    'What is the difference between weather and climate?', 'Explain what a black hole is.',
    'List all the countries of Europe with their capitals.', 'Write a short poem about the sea.',
    'How do vaccines work?', 'List the first twenty elements of the periodic table with one fact each.',
    'Suggest a healthy breakfast.', 'How does a car engine work?',
    'List all the US states with their capitals.', 'Describe the water cycle.', 'Why is the sky blue?',
    'Write a Python program that counts the words in a file, and explain it line by line.',
    'What is the tallest mountain in the world?', 'How do I make a cup of tea?',
    'List twenty famous painters with one painting each.', 'How do bees make honey?', 'What is democracy?',
    'List the seven continents with three facts about each.',
]


def run(procs: Processes, workdir: Path, models: Path, model_path: Path, *, quick: bool) -> dict[str, Any]:
    build, measure = (6, 2) if quick else (20, 5)
    reading = 3.0 if quick else READING_S
    max_tokens = 128 if quick else 512
    options = {'temperature': 0.0, 'max_tokens': max_tokens, 'context_length': 4096}
    app = BenchApp(procs, workdir, models, options=options, conversations=1, name='long')
    turns: list[dict[str, Any]] = []
    try:
        app.wait_ready()
        app.wait_standby()
        app.listen()
        conversation = app.conversations[0]
        for index in range(build + measure):
            if index:
                time.sleep(reading)  # the user reads the answer (and the model reads ahead)
            answer = app.ask(QUESTIONS[index % len(QUESTIONS)], conversation)
            turns.append({'turn': index + 1, 'messages_before': 2 * index, 'tokens': answer['tokens'],
                          'request_to_first_words_s': answer['request_to_first_words_s'],
                          'first_token_s': answer['first_token_s']})
            log(f'chat: long: message {2 * index + 1}: first words after {answer["request_to_first_words_s"]:.2f} s '
                f'({answer["tokens"]} tokens answered)')
        history = [(m['role'], m['text']) for m in app.history(conversation)
                   if m['status'] in ('done', 'stopped') and m['text']]
    finally:
        app.stop()
    measured = turns[build:]
    replayed = replay(model_path, history, list(range(build, build + measure)), max_tokens)
    return {
        'settings': {'build_turns': build, 'measured_turns': measure, 'reading_s': reading, **options},
        'turns': turns,
        'messages_before_measured': [t['messages_before'] for t in measured],
        'app_request_to_first_words_s': summary([t['request_to_first_words_s'] for t in measured]),
        'app_first_token_s': summary([t['first_token_s'] for t in measured]),
        'replay': replayed,
    }


def replay(model_path: Path, history: list[tuple[str, str]], turns: list[int], max_tokens: int) -> dict[str, Any]:
    """Each of ``turns`` (0-based user turns) timed with both rules on the app's wrapper."""
    from jarvis.assistant.assistant import SYSTEM_PROMPT, fit_to_context  # pylint: disable=import-outside-toplevel
    from jarvis.events import ChatMessage  # pylint: disable=import-outside-toplevel
    from jarvis.models.base import ChatTurn, GenerationOptions  # pylint: disable=import-outside-toplevel
    from jarvis.models.local import LlamaCppModel  # pylint: disable=import-outside-toplevel

    messages = [ChatMessage(role=role, text=text) for role, text in history]  # type: ignore[arg-type]
    rules: dict[str, Callable[..., list[ChatTurn]]] = {'kept_beginning': fit_to_context,
                                                        'drop_one_per_message': drop_one_per_message}
    worker = Worker('replay')
    model = worker.run(LlamaCppModel, model_path, context_length=4096)
    results: dict[str, Any] = {'turns': [t + 1 for t in turns], 'rules': {}}

    def turn_prompt(rule: Callable[..., list[ChatTurn]], upto: int) -> list[ChatTurn]:
        return rule(model, SYSTEM_PROMPT, messages[:upto], max_tokens)

    def timed(turns_: list[ChatTurn]) -> dict[str, Any]:
        started = time.perf_counter()
        first = None
        for piece in model.stream_chat(turns_, GenerationOptions(max_tokens=8, temperature=0.0), threading.Event()):
            if piece and first is None:
                first = time.perf_counter() - started
        stats = model.last_prompt
        return {'first_token_s': first, 'prompt_tokens': stats.tokens if stats else None,
                'evaluated': stats.evaluated if stats else None}

    def read_in(turns_: list[ChatTurn]) -> None:
        # the previous turn's prompt and its answer, as answering it left them in the cache
        for _ in model.stream_chat(turns_, GenerationOptions(max_tokens=1, temperature=0.0), threading.Event()):
            pass

    try:
        for name, rule in rules.items():
            rows = []
            for turn in turns:
                user_at = 2 * turn  # the index of the turn's user message in the history
                if user_at >= len(messages):
                    break
                previous = turn_prompt(rule, user_at - 1) + [ChatTurn('assistant', messages[user_at - 1].text)]
                worker.run(read_in, previous)
                row = worker.run(timed, turn_prompt(rule, user_at + 1))
                row['turn'] = turn + 1
                rows.append(row)
                log(f'chat: long replay ({name}): message {user_at + 1}: evaluated {row["evaluated"]} of '
                    f'{row["prompt_tokens"]} prompt tokens, first token {row["first_token_s"] or 0:.2f} s')
            results['rules'][name] = {
                'rows': rows,
                'evaluated': summary([r['evaluated'] for r in rows]),
                'prompt_tokens': summary([r['prompt_tokens'] for r in rows]),
                'first_token_s': summary([r['first_token_s'] for r in rows]),
            }
    finally:
        worker.run(model.close)
        worker.shutdown()
    return results


def drop_one_per_message(model: Any, system: str, history: list[Any], reserve: int) -> list[Any]:
    """The rule before: as many of the latest messages as fit, so the oldest one kept moves on with
    every new message once the conversation is longer than the context (the previous fit_to_context)."""
    from jarvis.models.base import ChatTurn  # pylint: disable=import-outside-toplevel
    budget = model.context_length - reserve - model.count_tokens(system) - 16
    turns = []
    for message in reversed(history):
        cost = model.count_tokens(message.text) + 8
        if cost > budget:
            break
        budget -= cost
        turns.append(ChatTurn(message.role, message.text))
    return [ChatTurn('system', system), *reversed(turns)]
