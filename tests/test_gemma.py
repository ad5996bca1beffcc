"""The real default model: Gemma 3 270M (GGUF) through llama-cpp-python, a few tokens at a time.

The answers are read at temperature 0, so each prompt gives the same text on every run; the prompts
below are ones the default model answered badly before its stop sequences and repetition controls.
"""
from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import psutil
import pytest

from jarvis.assistant.assistant import SYSTEM_PROMPT
from jarvis.config import Settings
from jarvis.models.base import ChatTurn, GenerationOptions, ModelError
from jarvis.models.default_model import DEFAULT_MODEL_FILE, ensure_default_model
from jarvis.models.local import LlamaCppModel
from jarvis.services import Services

pytestmark = pytest.mark.model

TURN_LABEL = re.compile(r'^[ \t]*(user|you|human|assistant|system|j\.?a\.?r\.?v\.?i\.?s\.?)[ \t]*:', re.I | re.M)
SENTENCE_END = re.compile(r'[.!?\n]+')


@pytest.fixture(scope='session')
def gemma(models_dir: Path):  # type: ignore[no-untyped-def]
    model = LlamaCppModel(models_dir / DEFAULT_MODEL_FILE, context_length=1024)
    yield model
    model.close()


def test_default_model_is_assembled_once(models_dir: Path) -> None:
    path = models_dir / DEFAULT_MODEL_FILE
    assert path.stat().st_size > 200 * 2**20
    modified = path.stat().st_mtime
    assert ensure_default_model(models_dir) == path
    assert path.stat().st_mtime == modified, 'not written again'
    assert not list(models_dir.glob('*.partial'))


def test_gemma_answers_in_several_chunks(gemma: LlamaCppModel) -> None:
    assert gemma.chat_template is None, 'a base model: the transcript prompt is used'
    turns = [ChatTurn('system', 'You are J.A.R.V.I.S., a helpful assistant. Answer briefly.'),
             ChatTurn('user', 'What is the capital of France?')]
    pieces = list(gemma.stream_chat(turns, GenerationOptions(max_tokens=16, temperature=0.0), threading.Event()))
    answer = ''.join(pieces)
    assert len(pieces) > 1, 'streamed token by token'
    assert answer.strip(), 'a real answer'
    assert 'User:' not in answer, 'stops at the next user turn'
    assert gemma.count_tokens(answer) > 0


def test_stop_ends_generation_early(gemma: LlamaCppModel) -> None:
    turns = [ChatTurn('system', 'You are a storyteller.'), ChatTurn('user', 'Tell me a very long story about a robot.')]
    cancel = threading.Event()
    pieces = []
    for piece in gemma.stream_chat(turns, GenerationOptions(max_tokens=400, temperature=0.8), cancel):
        pieces.append(piece)
        if len(pieces) == 3:
            cancel.set()
    assert 3 <= len(pieces) <= 4, f'{len(pieces)} pieces after stop'
    # the model is free again right away
    again = list(gemma.stream_chat(turns, GenerationOptions(max_tokens=4), threading.Event()))
    assert again


async def test_the_app_answers_with_gemma(settings: Settings, models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('JARVIS_MODELS_DIR', str(models_dir))
    services = Services(settings.with_changes(load_default_model=True))
    await services.start()
    try:
        await services.model_ready()
        assert services.models.standby == ('gemma-3-270m-q4_k_m', 'local'), 'loads with the first message'
        await services.models.set_options(max_tokens=12, temperature=0.0)
        answer = await services.assistant.send('Hello! Who are you?')
        assert answer.status == 'done' and answer.text
        assert answer.model == 'gemma-3-270m-q4_k_m'
        assert answer.tokens and answer.tokens > 1 and answer.tokens_per_s and answer.first_token_s is not None
    finally:
        await services.stop()


def answer(model: LlamaCppModel, *conversation: str, max_tokens: int = 96) -> tuple[str, int]:
    """The model's answer to a conversation (user, assistant, user, ...) after the app's system prompt."""
    turns = [ChatTurn('system', SYSTEM_PROMPT)]
    turns += [ChatTurn('user' if i % 2 == 0 else 'assistant', text) for i, text in enumerate(conversation)]
    pieces = list(model.stream_chat(turns, GenerationOptions(max_tokens=max_tokens, temperature=0.0),
                                    threading.Event()))
    return ''.join(pieces), len(pieces)


def test_no_turn_of_the_user_leaks_into_an_answer(gemma: LlamaCppModel) -> None:
    # once an answer with a lowercase "user:" line is in the history, the model writes more of them
    # (before: " my name is J.A.R.V.I.S.\nuser: what is your name?")
    text, _ = answer(gemma, 'hi', 'hi\nuser: hi', 'what is my name?')
    assert text.strip() and not TURN_LABEL.search(text), text
    text, _ = answer(gemma, 'yes', 'yes\nuser: no', 'ok')  # before: " no\nuser: no"
    assert not TURN_LABEL.search(text), text


@pytest.mark.parametrize('prompt', ['Tell me about yourself.', 'what did the system say?', 'sup'])
def test_answers_do_not_loop(gemma: LlamaCppModel, prompt: str) -> None:
    # before: "I am a member of the Student Council." / "I am a computer user." / "1000000…" to the limit
    text, _ = answer(gemma, prompt)
    sentences = [s.strip().lower() for s in SENTENCE_END.split(text) if len(s.strip()) > 3]
    assert text.strip() and len(sentences) == len(set(sentences)) and not re.search(r'(.)\1{9}', text), text


def test_a_paragraph_long_loop_ends_the_answer(gemma: LlamaCppModel) -> None:
    # the penalties stop short loops; this answer lists five rules and then starts over on them
    # (before: 512 tokens, the rules written out twice)
    text, _ = answer(gemma, 'Write a Python program that prints a multiplication table, and explain it line by line.',
                     max_tokens=512)
    repeated = [text[i:i + 120] for i in range(0, len(text) - 120, 20) if text.count(text[i:i + 120]) > 1]
    assert not repeated, repeated[:1]


def test_the_system_prompt_is_not_recited(gemma: LlamaCppModel) -> None:
    words = SYSTEM_PROMPT.lower().split()
    phrases = [' '.join(words[i:i + 5]) for i in range(len(words) - 4)]
    recited = SYSTEM_PROMPT.replace('You are', '1:00 PM\n\nYou are', 1)
    for conversation in (
            ('Please describe your role and personality.',),  # before: "… concise assistant that runs locally on …"
            ('what time is it', recited, 'what day is it')):  # before: the whole system prompt again
        text, _ = answer(gemma, *conversation)
        assert text.strip() and not [p for p in phrases if p in text.lower()], text


def test_closing_the_model_stops_a_running_answer(models_dir: Path) -> None:
    model = LlamaCppModel(models_dir / DEFAULT_MODEL_FILE, context_length=1024)
    turns = [ChatTurn('system', SYSTEM_PROMPT), ChatTurn('user', 'List all the US states with a fact about each one.')]
    pieces: list[str] = []
    failure: list[BaseException] = []
    five = threading.Event()

    def generate() -> None:
        try:
            for piece in model.stream_chat(turns, GenerationOptions(max_tokens=512, temperature=0.0), threading.Event()):
                pieces.append(piece)
                if len(pieces) == 5:
                    five.set()
        except ModelError as error:
            failure.append(error)
        five.set()

    worker = threading.Thread(target=generate)
    worker.start()
    assert five.wait(60)
    model.close()  # returns once the answer has stopped, not after its ~430 tokens
    closed_at = len(pieces)
    worker.join(60)
    assert closed_at < 100 and len(pieces) == closed_at, 'nothing after the close'
    assert failure and 'unloaded' in str(failure[0])
    with pytest.raises(ModelError, match='unloaded'):
        model.count_tokens('hello')


def test_the_model_runs_in_a_process_that_ends_with_the_close(models_dir: Path) -> None:
    """Unloading gives back all the model brought in: the process it ran in ends (the test's own process
    never loads llama.cpp for it)."""
    model = LlamaCppModel(models_dir / DEFAULT_MODEL_FILE, context_length=1024)
    runner = model.runner_pid
    assert runner is not None and runner != os.getpid()
    assert any('libllama' in m.path for m in psutil.Process(runner).memory_maps()), 'llama.cpp runs there'
    assert list(model.stream_chat([ChatTurn('user', 'Hello!')], GenerationOptions(max_tokens=4, temperature=0.0),
                                  threading.Event()))
    model.close()
    assert model.runner_pid is None and not psutil.pid_exists(runner), 'ended (and reaped) by the close'
    with pytest.raises(ModelError, match='unloaded'):
        list(model.stream_chat([ChatTurn('user', 'Hello!')], GenerationOptions(max_tokens=4), threading.Event()))
