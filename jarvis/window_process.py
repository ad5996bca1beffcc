"""The native window's own process, started by ``jarvis`` before it imports the app.

NiceGUI starts its window process only in ``ui.run()``, after the whole app has been imported, and that
process (started with 'spawn') imports NiceGUI, FastAPI and pywebview again before it opens a window:
measured here, the window's page began to load 2.9 s after launch although the server answered at 1.8 s.
This process imports only pywebview and Qt, so it runs beside the app's own imports: it opens the window at
once on a blank page of the app's colour and loads the app's address as soon as the server accepts
connections (it retries until then; the page itself waits for the app's start).

It speaks NiceGUI's protocol with the app's process: a method queue and a response queue for the window's
methods (``app.native.main_window``) and a pipe for its events (``app.native.on``); ``jarvis.framework``
hands them to NiceGUI. This module imports neither NiceGUI nor the app, and only the standard library
until the child process imports pywebview.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

# what the window shows until the app's page has loaded: the app's dark header colour, nothing to read
SPLASH_HTML = ('<!DOCTYPE html><html><head><meta charset="utf-8"><title>J.A.R.V.I.S.</title></head>'
               '<body style="margin:0;background:#0f172a"></body></html>')
# how often the window tries the server until it accepts a connection
RETRY_S = 0.02
READY = 'ready'


@dataclass(frozen=True)
class WindowSpec:
    """What the window shows and how (picklable: it crosses into the window's process)."""
    url: str
    title: str
    size: tuple[int, int]
    min_size: tuple[int, int]
    gui: str | None = None  # pywebview's GUI backend ('qt' on Linux); None: pywebview chooses
    # Qt's logging rules once the window is up (None: Qt's own); during its start everything Qt says goes
    # to a file, so that a failure can say why
    quiet_rules: str | None = None


class WindowProcess:
    """The window's process, seen from the app's process."""

    def __init__(self, spec: WindowSpec, on_window: Callable[[Any, Callable[[str], None]], None] | None = None) -> None:
        """Start the process. ``on_window(window, send)``, if given, runs there on pywebview's window as soon as
        it exists (``send(event_type)`` sends an event to the app); it must pickle, as a module's function or
        an object of one, since it crosses into the window's process."""
        context = multiprocessing.get_context('spawn')  # never fork: Qt and threads do not survive it
        self.spec = spec
        self.method_queue: multiprocessing.Queue = context.Queue()
        self.response_queue: multiprocessing.Queue = context.Queue()
        self.event_receiver, event_sender = context.Pipe(duplex=False)
        self._status, status_sender = context.Pipe(duplex=False)
        handle, self._output = tempfile.mkstemp(prefix='jarvis-window-', suffix='.log')
        os.close(handle)
        self.process = context.Process(
            target=run_window, name='jarvis-window', daemon=True,
            args=(spec, self.method_queue, self.response_queue, event_sender, status_sender, self._output, on_window))
        self.process.start()
        # the child holds the sending ends now: reading gets EOF as soon as it ends
        event_sender.close()
        status_sender.close()
        self._result: str | None = None
        self._waited = False

    def result(self, timeout: float = 30.0) -> str | None:
        """Why no native window can open (waits until it is up or has failed), None when it is up."""
        if self._waited:
            return self._result
        self._waited = True
        message: Any = None
        try:
            if self._status.poll(timeout):
                message = self._status.recv()
            else:
                message = f'the GUI backend did not start within {timeout:.0f} s'
        except (EOFError, OSError):  # the process ended without a word: Qt aborted (a missing library)
            message = None
        if message == READY:
            self._result = None
        else:
            self._result = message if isinstance(message, str) else self._crash_reason()
            self.stop()
        self._status.close()
        self._forget_output()
        return self._result

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(timeout=5)

    def _crash_reason(self) -> str:
        self.process.join(timeout=5)
        try:
            text = Path(self._output).read_text(encoding='utf-8', errors='replace')
        except OSError:
            text = ''
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        detail = next((line for line in lines if 'qt.qpa' in line or 'Error' in line or 'error' in line),
                      lines[-1] if lines else f'exit code {self.process.exitcode}')
        return f'the Qt GUI backend cannot start: {detail[:200]}'

    def _forget_output(self) -> None:
        try:
            os.unlink(self._output)
        except OSError:
            pass


# --- the window's process -------------------------------------------------------------------------

def run_window(spec: WindowSpec, method_queue: multiprocessing.Queue, response_queue: multiprocessing.Queue,
               event_sender: Connection, status: Connection, output: str,
               on_window: Callable[[Any, Callable[[str], None]], None] | None = None) -> None:
    """The window's process: open the window, load the app when its server answers, serve NiceGUI's calls."""
    console = _capture_stderr(output)  # what Qt says while it starts goes to a file: a failure quotes it
    try:
        import webview  # pylint: disable=import-outside-toplevel
        window = webview.create_window(spec.title, html=SPLASH_HTML, width=spec.size[0], height=spec.size[1],
                                       min_size=spec.min_size, background_color='#0f172a')
    except Exception as error:  # pylint: disable=broad-except  # no pywebview, no backend: the app says why
        _restore_stderr(console)
        status.send(f'the GUI backend did not start ({type(error).__name__}: {error})')
        return
    assert window is not None
    closed = threading.Event()
    window.events.closed += closed.set
    send = _forward_events(window, event_sender)
    if on_window is not None:
        on_window(window, send)
    _serve_methods(window, method_queue, response_queue, closed)
    _end_with_the_app(window, closed)

    def when_started() -> None:
        window.events.shown.wait()
        _restore_stderr(console)
        if spec.quiet_rules is not None:
            _quiet_qt(spec.quiet_rules)
        status.send(READY)
        status.close()
        if _wait_for_server(spec.url, closed):
            window.load_url(spec.url)

    start_args: dict[str, Any] = {'func': when_started}
    if spec.gui is not None:
        start_args['gui'] = spec.gui
    code = 0
    try:
        webview.start(**start_args)
    except Exception as error:  # pylint: disable=broad-except
        code = 1
        _restore_stderr(console)
        if not status.closed:
            status.send(f'the GUI backend did not start ({type(error).__name__}: {error})')
    _exit_now(response_queue, code)


def _exit_now(response_queue: multiprocessing.Queue, code: int) -> None:
    """End the process once its window has closed. pywebview leaves threads that wait for the window to load
    (its script injection, started by a page load that a quick close overtook), and Python's exit waits for
    every such thread for ever: the window's process would outlive the app. What the app may still read (the
    response queue, the console) is flushed first."""
    response_queue.close()
    response_queue.join_thread()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):  # closed, or none (a windowed bundle)
            pass
    os._exit(code)  # pylint: disable=protected-access


def _capture_stderr(path: str) -> int | None:
    try:
        saved = os.dup(2)
        target = os.open(path, os.O_WRONLY | os.O_APPEND)
    except OSError:
        return None
    os.dup2(target, 2)
    os.close(target)
    return saved


def _restore_stderr(saved: int | None) -> None:
    if saved is not None and saved >= 0:
        os.dup2(saved, 2)


def _quiet_qt(rules: str) -> None:
    try:
        from qtpy.QtCore import QLoggingCategory  # pylint: disable=import-outside-toplevel
        QLoggingCategory.setFilterRules(rules.replace(';', '\n'))
    except Exception:  # pylint: disable=broad-except  # another backend: nothing of Qt's to quiet
        pass


def _wait_for_server(url: str, closed: threading.Event) -> bool:
    """Until the app's server accepts connections (or the window was closed meanwhile)."""
    parts = urlsplit(url)
    address = (parts.hostname or '127.0.0.1', parts.port or 80)
    while not closed.is_set():
        try:
            with socket.create_connection(address, timeout=1.0):
                return True
        except OSError:
            time.sleep(RETRY_S)
    return False


def _forward_events(window: Any, sender: Connection) -> Callable[..., None]:
    """The window's events, as NiceGUI's own window process sends them (``app.native.on``)."""
    def send(event_type: str, **kwargs: Any) -> None:
        try:
            sender.send({'type': event_type, 'args': kwargs})
        except OSError:
            pass

    window.events.shown += lambda: send('shown')
    window.events.loaded += lambda: send('loaded')
    window.events.minimized += lambda: send('minimized')
    window.events.maximized += lambda: send('maximized')
    window.events.restored += lambda: send('restored')
    window.events.resized += lambda width, height: send('resized', width=width, height=height)
    window.events.moved += lambda x, y: send('moved', x=x, y=y)
    window.events.closed += lambda: send('closed')
    return send


def _serve_methods(window: Any, method_queue: multiprocessing.Queue, response_queue: multiprocessing.Queue,
                   closed: threading.Event) -> None:
    """Run what the app calls on ``app.native.main_window`` (NiceGUI's proxy puts ``(name, args, kwargs)``
    on the method queue; a call that returns something, or a dialog, answers on the response queue)."""
    def execute(method: Any, args: tuple, kwargs: dict) -> None:
        try:
            response = method(*args, **kwargs)
            if response is not None or 'dialog' in method.__name__:
                response_queue.put(response)
        except Exception:  # pylint: disable=broad-except
            log.exception('error in window.%s', method.__name__)

    # the queue is read without a timeout (no polling while the app is idle): closing the window puts
    # None on it, which ends the loop
    window.events.closed += lambda: method_queue.put(None)

    def serve() -> None:
        pending: list[threading.Thread] = []
        while not closed.is_set():
            try:
                call = method_queue.get()
            except (EOFError, OSError, ValueError):
                return
            if call is None:
                return
            name, args, kwargs = call
            try:
                if name == 'signal_server_shutdown':
                    while pending:  # an open dialog (a file picker) is answered before the app ends
                        pending.pop().join()
                elif name == 'get_always_on_top':
                    response_queue.put(window.on_top)
                elif name == 'set_always_on_top':
                    window.on_top = args[0]
                elif name == 'get_position':
                    response_queue.put((int(window.x), int(window.y)))
                elif name == 'get_size':
                    response_queue.put((int(window.width), int(window.height)))
                elif callable(method := getattr(window, name, None)):
                    pending.append(threading.Thread(target=execute, args=(method, args, kwargs), daemon=True))
                    pending[-1].start()
                else:
                    log.error('window.%s is not callable', name)
            except Exception:  # pylint: disable=broad-except
                log.exception('error in window.%s', name)

    threading.Thread(target=serve, name='window methods', daemon=True).start()


def _end_with_the_app(window: Any, closed: threading.Event) -> None:
    """Close the window when the app's process ends in any way (a crash or a kill included)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()
        if not closed.is_set():
            window.destroy()

    threading.Thread(target=watch, name='app watch', daemon=True).start()
