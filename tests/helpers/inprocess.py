"""The whole app served for real (uvicorn on a TCP port) in a thread of the test process, so
that a test can drive the hub directly while real clients connect over the network."""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from nicegui import ui
from nicegui.server import Server
from nicegui.testing.general import nicegui_reset_globals

from jarvis.app import create_app
from jarvis.config import Settings
from jarvis.services import Services

from .server import free_port


@contextmanager
def serve_in_thread(settings: Settings) -> Iterator[tuple[Services, str]]:
    port = free_port()
    previous = os.environ.get('NICEGUI_SCREEN_TEST_PORT')
    os.environ['NICEGUI_SCREEN_TEST_PORT'] = str(port)  # under pytest, NiceGUI serves on this port
    with nicegui_reset_globals():
        services, root = create_app(settings)
        thread = threading.Thread(target=lambda: ui.run(root, port=port, show=False, reload=False, tailwind=False,
                                                        show_welcome_message=False, uvicorn_logging_level='warning'),
                                  daemon=True, name='jarvis-server')
        thread.start()
        url = f'http://127.0.0.1:{port}'
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + '/api/hub/stats', timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        else:
            raise TimeoutError('the in-process server did not start')
        try:
            yield services, url
        finally:
            Server.instance.should_exit = True
            thread.join(20)
            if previous is None:
                os.environ.pop('NICEGUI_SCREEN_TEST_PORT', None)
            else:
                os.environ['NICEGUI_SCREEN_TEST_PORT'] = previous
