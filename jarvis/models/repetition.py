"""Ends an answer that starts over on itself: a base model can copy a whole paragraph it wrote.

llama.cpp's repetition penalties (see ``prompt.TRANSCRIPT_SAMPLING``) stop short loops, but a
paragraph-long one outlasts their window and their strength (the default Gemma, asked for a
multiplication table, writes its five rules and then all five again until the token limit).
llama.cpp's DRY sampler, made for this, is not offered by llama-cpp-python's completion API, so the
answer's text is watched here: text that repeats earlier text of the same answer is held back, and
once the repeat is long enough to be a loop the answer ends before it.
"""
from __future__ import annotations

HOLD_CHARS = 16  # a repeat this long might be the start of a loop: hold it back until it is clear
LOOP_CHARS = 160  # a repeat this long is a loop (a sentence or two, copied word for word)


class LoopGuard:
    """Fed the pieces of one answer; returns what can be shown and says when the answer loops."""

    def __init__(self, hold_chars: int = HOLD_CHARS, loop_chars: int = LOOP_CHARS) -> None:
        self.hold_chars = hold_chars
        self.loop_chars = loop_chars
        self.looped = False
        self._text = ''
        self._shown = 0  # how much of _text was returned
        self._repeat = 0  # the longest end of _text that also occurs earlier in it

    def feed(self, piece: str) -> str:
        """Add a piece; return the text that can be shown now (after a loop: what came before it)."""
        self._text += piece
        self._repeat = self._longest_repeat(self._repeat + len(piece))
        if self._repeat >= self.loop_chars:
            self.looped = True
            self._text = self._text[:len(self._text) - self._repeat]  # the copy is no part of the answer
            self._repeat = 0
            return self.flush()
        held = self._repeat if self._repeat >= self.hold_chars else 0
        end = len(self._text) - held
        shown, self._shown = self._text[self._shown:end], max(self._shown, end)
        return shown

    def flush(self) -> str:
        """The text still held back (at the end of the answer)."""
        shown, self._shown = self._text[self._shown:], len(self._text)
        return shown

    def _longest_repeat(self, at_most: int) -> int:
        # a repeat grows by at most the new piece, and every shorter end of a repeat repeats too:
        # a binary search over the length needs a handful of str.find calls per piece
        text, low, high = self._text, 0, min(at_most, len(self._text) - 1)
        while low < high:
            middle = (low + high + 1) // 2
            if text.find(text[-middle:], 0, len(text) - 1) >= 0:
                low = middle
            else:
                high = middle - 1
        return low
