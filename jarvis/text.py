"""Small rules for text that comes from outside (scripts, pastes, files)."""
from __future__ import annotations

import re

# A lone surrogate (from a broken paste, or "\ud800" in a script's JSON) is not valid Unicode:
# it cannot be encoded as UTF-8, so SQLite and every client would choke on it.
_LONE_SURROGATE = re.compile('[\ud800-\udfff]')


def has_lone_surrogate(text: str) -> bool:
    return _LONE_SURROGATE.search(text) is not None


def mark_lone_surrogates(text: str) -> str:
    """Replace each lone surrogate by U+FFFD (the replacement character): marked, nothing dropped."""
    return _LONE_SURROGATE.sub('\ufffd', text)
