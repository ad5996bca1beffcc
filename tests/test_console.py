"""The app's own console lines go out whole, so a log line from another thread cannot split them."""
from __future__ import annotations

import io
import logging
import sys
import threading

import pytest

from jarvis.console import say


class RecordingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def test_a_line_is_one_write_with_its_newline(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = RecordingStream()
    monkeypatch.setattr(sys, 'stderr', stream)
    say('jarvis: J.A.R.V.I.S. is at http://127.0.0.1:8765/')
    assert stream.writes == ['jarvis: J.A.R.V.I.S. is at http://127.0.0.1:8765/\n']


def test_log_lines_from_other_threads_never_glue_to_the_address(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = RecordingStream()
    monkeypatch.setattr(sys, 'stderr', stream)
    logger = logging.getLogger('jarvis.test_console')
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        stop = threading.Event()

        def chatter() -> None:
            while not stop.is_set():
                logger.warning('GPU monitoring off')

        thread = threading.Thread(target=chatter)
        thread.start()
        for _ in range(200):
            say('jarvis: J.A.R.V.I.S. is at http://127.0.0.1:8765/')
        stop.set()
        thread.join()
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    lines = stream.getvalue().splitlines()
    assert lines.count('jarvis: J.A.R.V.I.S. is at http://127.0.0.1:8765/') == 200
    assert set(lines) == {'jarvis: J.A.R.V.I.S. is at http://127.0.0.1:8765/', 'GPU monitoring off'}
