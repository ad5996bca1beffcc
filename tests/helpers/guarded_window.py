"""A bare native window (the app's own window process, pywebview's Qt backend, adopted by NiceGUI as
the app does) with the close guard of jarvis/close_guard.py on: closing the window hides it, and ``POST /quit`` quits the way the tray's Quit does
(``framework.quit_app``). tests/test_close_to_tray.py runs it as a program of its own, under Xvfb.

When it quits it prints whether the window's process ended by itself (its window closed) or still runs
(its close was turned into hiding; the process would only be killed at exit).

    python tests/helpers/guarded_window.py PORT
"""
from __future__ import annotations

import asyncio
import multiprocessing
import sys

from nicegui import app, ui

from jarvis import framework
from jarvis.close_guard import CLOSED_TO_TRAY, CloseGuard
from jarvis.window_process import WindowProcess, WindowSpec

TITLE = 'Guarded window'


def main(port: int) -> None:
    guard = CloseGuard()
    guard.hide_on_close(True)
    window_process = WindowProcess(WindowSpec(url=f'http://127.0.0.1:{port}/', title=TITLE, size=(640, 480),
                                              min_size=(400, 300), gui='qt'), on_window=guard.attach)
    if (reason := window_process.result()) is not None:
        raise SystemExit(f'no window: {reason}')
    framework.adopt_native_window(window_process)
    hidden: list[int] = []

    def hide() -> None:  # what the app does (jarvis/native_window.py): hide the window whose close was cancelled
        hidden.append(1)
        window = framework.native_window()
        assert window is not None
        window.hide()

    framework.on_native_event(CLOSED_TO_TRAY, hide)

    @app.get('/closes-hidden')
    def closes_hidden() -> dict:
        return {'count': len(hidden)}

    @app.post('/quit')
    def quit_app() -> dict:
        framework.quit_app()
        return {}

    async def report_window_process() -> None:
        for child in multiprocessing.active_children():  # a process that has ended is no longer listed
            await asyncio.to_thread(child.join, 10)
            if child.exitcode is None:
                print('the window process still runs', flush=True)
        print('the app quits', flush=True)

    app.on_shutdown(report_window_process)
    ui.run(lambda: ui.label('guarded'), native=False, show=False, port=port, title=TITLE, reload=False,
           show_welcome_message=False, uvicorn_logging_level='warning')


if __name__ == '__main__':  # not in the window's process, which imports this module again under another name
    main(int(sys.argv[1]))
