"""The parts of jarvis.assistant.completions that need no model: OpenAI's ``stop`` on a growing answer."""
from __future__ import annotations

from jarvis.assistant.completions import StopCut, estimate_tokens


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
