"""The app's own lines on the console (the address, start failures), apart from the log.

Each line goes out in one write with its newline: ``print`` writes the text and the newline
separately, and a log line from another thread (the GPU probe, the recorder) could land between
them and glue itself to the address a user or a script reads.
"""
from __future__ import annotations

import sys


def say(line: str) -> None:
    """Write one whole line to stderr and flush it (stderr: stdout may be a pipe nobody reads)."""
    stream = sys.stderr
    stream.write(line + '\n')
    stream.flush()
