"""Files and folders in the states users leave them in."""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def read_only(directory: Path) -> Iterator[Path]:
    """Make a folder read-only for this process, as a read-only mount or a folder of another user is.

    Permission bits do not stop root, so as root the folder is made immutable (``chattr +i``).
    """
    if os.geteuid() != 0:
        mode = directory.stat().st_mode
        directory.chmod(0o555)
        try:
            yield directory
        finally:
            directory.chmod(mode)
        return
    chattr = shutil.which('chattr')
    if chattr is None or subprocess.run([chattr, '+i', str(directory)], capture_output=True, check=False).returncode:
        pytest.skip('running as root on a file system without chattr +i: a read-only folder cannot be made')
    try:
        yield directory
    finally:
        subprocess.run([chattr, '-i', str(directory)], check=True)
