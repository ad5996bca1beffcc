"""Prompts for models without a chat template: a plain transcript that stops at the next user turn.

A base model (such as the default Gemma 3 270M) continues text; given a transcript it writes
J.A.R.V.I.S.'s next line. Forcing a chat template on such a model makes it repeat itself.
"""
from __future__ import annotations

from .base import ChatTurn

USER = 'User'
ASSISTANT = 'J.A.R.V.I.S.'
STOP = [f'\n{USER}:', f'\n{ASSISTANT}:', f'{USER}:']


def transcript(turns: list[ChatTurn]) -> str:
    lines: list[str] = []
    for turn in turns:
        if turn.role == 'system':
            lines.append(turn.content.strip() + '\n')
        elif turn.role == 'user':
            lines.append(f'{USER}: {turn.content.strip()}')
        else:
            lines.append(f'{ASSISTANT}: {turn.content.strip()}')
    lines.append(f'{ASSISTANT}:')
    return '\n'.join(lines)
