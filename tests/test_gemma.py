"""The real default model: Gemma 3 270M (GGUF) through llama-cpp-python, a few tokens at a time."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from jarvis.config import Settings
from jarvis.models.base import ChatTurn, GenerationOptions
from jarvis.models.default_model import DEFAULT_MODEL_FILE, ensure_default_model
from jarvis.models.local import LlamaCppModel
from jarvis.services import Services

pytestmark = pytest.mark.model


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
    started = time.perf_counter()
    for piece in gemma.stream_chat(turns, GenerationOptions(max_tokens=400, temperature=0.8), cancel):
        pieces.append(piece)
        if len(pieces) == 3:
            cancel.set()
    assert 3 <= len(pieces) <= 4, f'{len(pieces)} pieces after stop'
    assert time.perf_counter() - started < 10
    # the model is free again right away
    again = list(gemma.stream_chat(turns, GenerationOptions(max_tokens=4), threading.Event()))
    assert again


async def test_the_app_answers_with_gemma(settings: Settings, models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('JARVIS_MODELS_DIR', str(models_dir))
    services = Services(settings.with_changes(load_default_model=True))
    await services.start()
    try:
        await services.model_ready()
        assert services.models.active is not None and services.models.active.name == 'gemma-3-270m-q4_k_m'
        await services.models.set_options(max_tokens=12, temperature=0.0)
        answer = await services.assistant.send('Hello! Who are you?')
        assert answer.status == 'done' and answer.text
        assert answer.model == 'gemma-3-270m-q4_k_m'
        assert answer.tokens and answer.tokens > 1 and answer.tokens_per_s and answer.first_token_s is not None
    finally:
        await services.stop()
