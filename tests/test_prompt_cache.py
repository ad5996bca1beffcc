"""Long conversations stay fast: the prompt begins the same way from turn to turn, so that llama.cpp
reuses its KV cache for that beginning and evaluates only the new messages.

The prompt builder is checked on its own (its cut moves rarely, and in chunks), and with the real Gemma
through the chat pipeline, reading llama.cpp's own count of the prompt tokens it evaluated.
"""
from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jarvis.assistant.assistant import SYSTEM_PROMPT, fit_to_context, stable_start
from jarvis.config import Settings
from jarvis.events import ChatMessage
from jarvis.models.default_model import DEFAULT_MODEL_FILE
from jarvis.models.local import LlamaCppModel
from jarvis.models.prompt import ASSISTANT, transcript
from jarvis.services import Services

GEMMA = Path(DEFAULT_MODEL_FILE).stem


@dataclass
class ContextWindow:
    """What the prompt builder asks of a model besides counting: the size of its context."""

    context_length: int


def conversation(messages: int, seed: int = 7) -> list[ChatMessage]:
    rng = random.Random(seed)
    words = 'the a model answer question city weather list fact river mountain number table code'.split()
    return [ChatMessage(role='user' if i % 2 == 0 else 'assistant',
                        text=f'message {i}: ' + ' '.join(rng.choice(words) for _ in range(rng.randint(5, 120))))
            for i in range(messages)]


def count(text: str) -> int:
    return len(text) // 4 + 1


def prompts(history: list[ChatMessage], context_length: int, reserve: int) -> list[str]:
    """The prompt of every user turn, as the app builds it."""
    window = ContextWindow(context_length)
    return [transcript(fit_to_context(window, SYSTEM_PROMPT, history[:n], reserve, count))  # type: ignore[arg-type]
            for n in range(1, len(history) + 1, 2)]


def test_the_prompt_keeps_its_beginning_from_turn_to_turn() -> None:
    history = conversation(120)  # about 11,000 tokens: it outgrows the default context three times
    built = prompts(history, context_length=4096, reserve=512)  # the default model settings
    label = f'\n{ASSISTANT}:'
    # a turn's prompt (without its closing label) starts the next one, unless the cut moved on
    kept = [b.startswith(a.removesuffix(label)) for a, b in zip(built, built[1:])]
    overflowed = next(i for i, p in enumerate(built) if not p.startswith(f'{SYSTEM_PROMPT}\n\nUser: message 0:'))
    after = kept[overflowed:]
    assert len(after) > 30, 'the conversation outgrew the context early'
    # before: the oldest message went whenever a new one came in, and no turn kept the last one's beginning
    assert sum(after) >= 0.7 * len(after), f'{sum(after)} of {len(after)} turns kept the beginning'


def test_the_cut_moves_in_chunks_and_what_is_kept_fits() -> None:
    costs = [count(m.text) + 8 for m in conversation(200)]
    room = 800
    starts = [stable_start(costs[:n], room) for n in range(1, len(costs) + 1)]
    assert starts == sorted(starts), 'the cut never moves back'
    for n, start in enumerate(starts, 1):
        assert sum(costs[start:n]) <= room or start == n - 1
    moves = [(a, b) for a, b in zip(starts, starts[1:]) if a != b]
    assert moves and all(sum(costs[a:b]) >= room // 2 for a, b in moves), 'at least half the room at a time'
    assert stable_start([5000], room) == 0 and stable_start([10, 5000], room) == 1, 'the newest message stays'


def test_a_message_longer_than_the_context_keeps_its_beginning() -> None:
    turns = fit_to_context(ContextWindow(300), 'system', [ChatMessage(role='user', text='z' * 10_000)], 50,  # type: ignore[arg-type]
                           count)
    assert [t.role for t in turns] == ['system', 'user'] and 0 < len(turns[1].content) < 10_000


# --- with the real model ----------------------------------------------------------------------

@pytest.fixture
async def small_context_app(settings: Settings, models_dir: Path, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Services]:
    own = tmp_path / 'models'
    own.mkdir()
    (own / DEFAULT_MODEL_FILE).symlink_to(models_dir / DEFAULT_MODEL_FILE)
    monkeypatch.setenv('JARVIS_MODELS_DIR', str(own))
    services = Services(settings)
    services.plugins._builtins = []  # pylint: disable=protected-access
    await services.start()
    # a context of 512 tokens fills within a few turns of this test
    await services.models.set_options(context_length=512, max_tokens=24, temperature=0.0)
    await services.models.load(GEMMA)
    yield services
    await services.stop()


@pytest.mark.model
async def test_later_turns_evaluate_only_their_new_messages(small_context_app: Services) -> None:
    assistant, models = small_context_app.assistant, small_context_app.models
    model = models.active
    assert isinstance(model, LlamaCppModel)
    figures = []
    for turn in range(12):
        await assistant.send(f'Note {turn}: the {["red", "green", "blue"][turn % 3]} box on shelf {turn} holds '
                             f'{turn * 7} screws, {turn * 3} nails and a manual about the {turn}th machine.')
        assert model.last_prompt is not None and model.last_prompt.tokens
        figures.append((model.last_prompt.tokens, model.last_prompt.evaluated))
    first_tokens, first_evaluated = figures[0]
    assert first_evaluated >= first_tokens - 1, 'the first prompt is read whole'
    # once the conversation fills the context (about 400 tokens of prompt), most turns still read only
    # their new message and its label; before, every one of them read the whole conversation again
    full = [(tokens, evaluated) for tokens, evaluated in figures if tokens > 250]
    assert len(full) >= 6, figures
    cheap = [evaluated for tokens, evaluated in full if evaluated < tokens / 3]
    assert len(cheap) >= len(full) / 2, figures


@pytest.mark.model
async def test_a_turn_that_moves_the_cut_was_read_while_the_user_read_the_answer(small_context_app: Services) -> None:
    assistant, models = small_context_app.assistant, small_context_app.models
    model = models.active
    assert isinstance(model, LlamaCppModel)
    figures = []
    for turn in range(10):
        await assistant.send(f'Note {turn}: the box on shelf {turn} holds {turn * 7} screws, {turn * 3} nails and a '
                             f'manual about the {turn}th machine of the {["red", "green", "blue"][turn % 3]} line.')
        assert model.last_prompt is not None and model.last_prompt.tokens
        figures.append((model.last_prompt.tokens, model.last_prompt.evaluated))
        assert assistant.reading_ahead is not None
        await assistant.reading_ahead  # the user reads the answer: the model reads what the next prompt begins with
    # every turn after the first reads little more than its own message: at the turns where the
    # conversation no longer fits and the prompt starts further on, that start was read ahead
    assert all(evaluated < 80 for _, evaluated in figures[1:]), figures
    assert max(tokens for tokens, _ in figures) > 300, 'the context filled up'
    assert any(b < a for (a, _), (b, _) in zip(figures, figures[1:])), 'the cut moved on at least once'
