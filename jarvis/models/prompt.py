"""Prompts for models without a chat template: a plain transcript that stops at the next turn.

A base model (such as the default Gemma 3 270M) continues text; given a transcript it writes
J.A.R.V.I.S.'s next line. Forcing a chat template on such a model makes it repeat itself.
Left to itself it also writes the user's next line (under any spelling of the label), loops over
one sentence until the token limit, and now and then starts the document over by reciting the
system prompt: the stop sequences and the sampling below keep those out of the answer.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .base import ChatTurn

USER = 'User'
ASSISTANT = 'J.A.R.V.I.S.'

# The labels a base model writes when it starts a turn of its own: the transcript's two, in the
# spellings it invents for them (a lowercase "user:" was seen leaking), and the generic chat roles.
_TURN_LABELS = (
    'User', 'user', 'USER', 'You', 'Human', 'human',
    'J.A.R.V.I.S.', 'J.A.R.V.I.S', 'j.a.r.v.i.s.', 'JARVIS', 'Jarvis', 'Assistant', 'assistant',
    'System', 'system',
)
# The two labels of the transcript end an answer wherever they appear (a model also writes them
# after a control token such as Gemma's "<start_of_image>"), the invented ones at a line's start;
# a control token of Gemma's turn format as text ends it too.
STOP = [f'{USER}:', f'{ASSISTANT}:', *(f'\n{label}:' for label in _TURN_LABELS if label not in (USER, ASSISTANT)),
        '<start_of_', '<end_of_']

# A recital of the system prompt is cut as soon as this many of its words in a row are written;
# five words are a phrase of the prompt, not an ordinary answer that shares a few words with it.
RECITAL_WORDS = 5
_WORD = re.compile(r'\S+')


@dataclass(frozen=True, slots=True)
class Sampling:
    """llama.cpp's repetition controls (0 and 1.0 switch them off)."""

    repeat_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0


# A base model continuing a transcript falls into loops ("I am a member of the Student Council."
# until the token limit, even at temperature 0); penalising tokens it has just written keeps it
# moving on, and these values keep short answers unchanged. Checked on the default Gemma 3 270M.
TRANSCRIPT_SAMPLING = Sampling(repeat_penalty=1.15, frequency_penalty=0.3, presence_penalty=0.2)
# How many of the latest tokens the penalties look at (llama-cpp-python's default is 64).
PENALTY_WINDOW = 256


def transcript(turns: list[ChatTurn], *, answer: bool = True) -> str:
    """The conversation as a plain transcript; with ``answer``, ending where J.A.R.V.I.S. speaks next."""
    lines: list[str] = []
    for turn in turns:
        if turn.role == 'system':
            lines.append(turn.content.strip() + '\n')
        elif turn.role == 'user':
            lines.append(f'{USER}: {turn.content.strip()}')
        else:
            lines.append(f'{ASSISTANT}: {turn.content.strip()}')
    if answer:
        lines.append(f'{ASSISTANT}:')
    return '\n'.join(lines)


def stop_sequences(turns: list[ChatTurn]) -> list[str]:
    """Where an answer to this transcript ends: the next turn, or the start of a system prompt recital."""
    recital: list[str] = []
    for turn in turns:
        if turn.role == 'system':
            words = _WORD.findall(turn.content)
            recital += [' '.join(words[i:i + RECITAL_WORDS]) for i in range(len(words) - RECITAL_WORDS + 1)]
    return STOP + list(dict.fromkeys(recital))
