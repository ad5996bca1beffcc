"""jarvis.assistant.completions: OpenAI's ``stop`` on a growing answer, and the ``jarvis`` id through the chat's
pipeline with a scripted model (the exact words matter here; tests/test_openai_api.py has the real one)."""
from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from jarvis.assistant.completions import (
    CompletionRequest,
    Finished,
    InvalidCompletion,
    Message,
    Started,
    StopCut,
    estimate_tokens,
)
from jarvis.config import Settings
from jarvis.models.base import ChatTurn, GenerationOptions
from jarvis.services import Services

from .helpers.scripted_model import ScriptedModel


def test_the_answer_ends_before_the_first_stop_sequence() -> None:
    cut = StopCut(['END', '\n\n'])
    assert cut.visible('one two END three', final=False) == ('one two ', True)
    assert cut.visible('one\n\ntwo END', final=True) == ('one', True)
    assert cut.visible('nothing to stop', final=True) == ('nothing to stop', False)
    assert StopCut([]).visible('anything', final=False) == ('anything', False)


def test_a_possible_start_of_a_stop_sequence_is_held_back_until_it_is_clear() -> None:
    cut = StopCut(['END'])
    assert cut.visible('one two E', final=False) == ('one two ', False)
    assert cut.visible('one two EN', final=False) == ('one two ', False)
    assert cut.visible('one two ENO', final=False) == ('one two ENO', False)  # it was no stop after all
    assert cut.visible('one two EN', final=True) == ('one two EN', False)  # the answer ended there
    assert StopCut(['\n\n']).visible('a line\n', final=False) == ('a line', False)


def test_a_long_answer_with_long_stop_sequences_is_cut_in_one_pass() -> None:
    stops = ['x' * 499 + 'y', 'z' * 500]
    answer = 'x' * 32_000
    assert StopCut(stops).visible(answer, final=False) == ('x' * (32_000 - 499), False)


def test_tokens_are_estimated_at_about_four_characters() -> None:
    assert estimate_tokens('') == 0 and estimate_tokens('abc') == 1 and estimate_tokens('a' * 400) == 100


class RecordingModel(ScriptedModel):
    """The scripted model, also keeping the options of each generation."""

    def __init__(self, pieces: list[str], **kwargs: Any) -> None:
        super().__init__(pieces, **kwargs)
        self.options: list[GenerationOptions] = []

    def stream_chat(self, turns: list[ChatTurn], options: GenerationOptions,
                    cancel: threading.Event) -> Iterator[str]:
        self.options.append(options)
        yield from super().stream_chat(turns, options, cancel)


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    services = Services(settings)
    services.plugins.set_sources([])  # no plugin answers: the model does
    await services.start()
    yield services
    await services.stop()


async def steps_of(services: Services, request: CompletionRequest) -> list[Any]:
    return [step async for step in services.completions.complete(request)]


async def test_jarvis_gives_its_options_to_the_model_for_that_answer_only(services: Services) -> None:
    model = RecordingModel(['Hello', ' there.'])
    await services.models.activate(model, model.info)
    steps = await steps_of(services, CompletionRequest('jarvis', [Message('user', 'Hi')], max_tokens=7,
                                                       temperature=0.1))
    assert isinstance(steps[0], Started) and isinstance(steps[-1], Finished)
    assert ''.join(s for s in steps if isinstance(s, str)) == steps[-1].text == 'Hello there.'
    await services.assistant.send('And now?')
    defaults = services.models.generation_options
    assert model.options == [GenerationOptions(max_tokens=7, temperature=0.1), defaults]


async def test_a_stop_sequence_stops_a_jarvis_answer_where_it_begins(services: Services) -> None:
    model = RecordingModel(['Hello ', 'world. ', 'ST', 'OP', ' and on'] + [' and on'] * 200, delay=0.02)
    await services.models.activate(model, model.info)
    steps = await steps_of(services, CompletionRequest('jarvis', [Message('user', 'Hi')], stop=('STOP',)))
    finished = steps[-1]
    assert (finished.text, finished.finish_reason) == ('Hello world. ', 'stop')
    assert ''.join(s for s in steps if isinstance(s, str)) == 'Hello world. '
    stored = (await services.assistant.recent_messages(1))[0].message
    assert stored.status == 'stopped' and stored.text.startswith('Hello world. STOP')
    assert model.generated < 50  # the model stopped soon after, not at the end of its script


async def test_jarvis_refuses_what_the_chat_refuses(services: Services) -> None:
    with pytest.raises(InvalidCompletion) as empty:
        await steps_of(services, CompletionRequest('jarvis', [Message('user', '   ')]))
    assert 'empty' in str(empty.value) and empty.value.param == 'messages.0.content'
    with pytest.raises(InvalidCompletion) as last:
        await steps_of(services, CompletionRequest('jarvis', [Message('user', 'Hi'), Message('assistant', 'Hello')]))
    assert last.value.param == 'messages.1'
    assert await services.assistant.recent_messages(10) == []  # nothing was sent
