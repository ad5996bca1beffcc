"""A virtual X display (Xvfb) of its own for a test, optionally with a system tray host (trayer)."""
from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

XVFB = shutil.which('Xvfb')
TRAYER = shutil.which('trayer')  # Debian's trayer: an XEmbed system tray that runs without a desktop


@contextmanager
def virtual_display() -> Iterator[str]:
    assert XVFB is not None
    number = next(n for n in range(90, 200) if not Path(f'/tmp/.X11-unix/X{n}').exists()
                  and not Path(f'/tmp/.X{n}-lock').exists())
    xvfb = subprocess.Popen([XVFB, f':{number}', '-screen', '0', '1400x1000x24', '-nolisten', 'tcp'],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not Path(f'/tmp/.X11-unix/X{number}').exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f':{number}'
    finally:
        xvfb.terminate()
        xvfb.wait()


@contextmanager
def tray_host(display: str) -> Iterator[subprocess.Popen]:
    assert TRAYER is not None
    host = subprocess.Popen([TRAYER, '--edge', 'top', '--widthtype', 'pixel', '--width', '200'],
                            env={'DISPLAY': display, 'PATH': '/usr/bin:/bin'},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield host
    finally:
        host.terminate()
        host.wait()
