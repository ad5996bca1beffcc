"""A quiet console: native libraries' own lines go to the debug log, not straight to the terminal.

llama.cpp prints through a C callback that llama-cpp-python installs when it is imported: it writes some
of llama.cpp's lines to stderr whatever the app's log level (``llama_kv_cache_iswa: using full-size SWA
cache`` at every model load). ``route_llama_cpp_logs`` installs a callback of ours instead that hands each
line to the ``llama_cpp`` logger at DEBUG (its errors at WARNING), so ``--log-level`` decides.
Qt's and Chromium's chatter is silenced where the window's process starts (``jarvis.cli._prepare_qt``).
"""
from __future__ import annotations

import ctypes
import importlib.util
import logging
from typing import Any

log = logging.getLogger('llama_cpp')

GGML_LOG_LEVEL_ERROR = 3
_callback: Any = None  # the C function pointer must live as long as llama.cpp may call it


def route_llama_cpp_logs() -> bool:
    """Install the callback (imports llama_cpp: call it off the event loop); False without llama-cpp-python."""
    global _callback  # pylint: disable=global-statement
    if _callback is not None:
        return True
    if importlib.util.find_spec('llama_cpp') is None:
        return False
    import llama_cpp  # pylint: disable=import-outside-toplevel

    @llama_cpp.llama_log_callback
    def forward(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
        line = text.decode('utf-8', errors='replace').rstrip()
        if line:
            log.log(logging.WARNING if level == GGML_LOG_LEVEL_ERROR else logging.DEBUG, '%s', line)

    _callback = forward
    llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))
    return True
