"""Hooks that tests run inside the native window's own process (``WindowProcess(on_window=...)``): they are
pickled by name into that process, so this module imports nothing but the standard library."""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

# what the window's process must not import: the framework and the app (it only shows their page)
HEAVY = ('nicegui', 'fastapi', 'uvicorn', 'httpx', 'jarvis.app', 'jarvis.services', 'jarvis.ui', 'llama_cpp')


def report_modules(window: Any, send: Callable[..., None]) -> None:
    """Send the app an event that names the heavy modules this process has imported."""
    del window
    send('modules', imported=[name for name in HEAVY if name in sys.modules])


def leave_a_waiting_thread(window: Any, send: Callable[..., None]) -> None:
    """Start a thread that is not a daemon and never ends, as pywebview's script injection does when a close
    overtakes a page load: the window's process must end all the same once its window has closed."""
    import threading  # pylint: disable=import-outside-toplevel
    del window, send
    threading.Thread(target=threading.Event().wait, name='waits for ever', daemon=False).start()
