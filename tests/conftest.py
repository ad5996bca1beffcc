"""Shared fixtures: the app in NiceGUI's user simulation, and the real app as a server process."""
from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from nicegui import core, ui
from nicegui.functions.download import download
from nicegui.functions.navigate import Navigate
from nicegui.functions.notify import notify
from nicegui.testing.general import nicegui_reset_globals, prepare_simulation
from nicegui.testing.user import User

from jarvis.app import create_app
from jarvis.config import Settings
from jarvis.models.default_model import ensure_default_model
from jarvis.plugins.base import Plugin
from jarvis.plugins.builtin import BUILTIN_PLUGINS
from jarvis.services import Services

from .helpers.server import OFFLINE, AppServer


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # no desktop notifications: an in-process test must never reach the desktop of the person running it
    # (tests/test_alerts_desktop.py sends them on a session bus of its own)
    return Settings(data_dir=tmp_path / 'data', load_default_model=False, metrics_interval=0.2,
                    wikipedia_url=OFFLINE, ollama_host=OFFLINE, desktop_notifications=False)


@dataclass
class Harness:
    """The whole app (services, API, UI) in NiceGUI's user simulation."""

    services: Services
    _new_client: Callable[[], httpx.AsyncClient]
    users: list[User] = field(default_factory=list)

    def new_user(self) -> User:
        user = User(self._new_client())
        self.users.append(user)
        return user

    def http(self) -> httpx.AsyncClient:
        return self._new_client()


@asynccontextmanager
async def simulate(settings: Settings, plugins: Sequence[type[Plugin]] = BUILTIN_PLUGINS, *,
                   wait_ready: bool = True) -> AsyncIterator[Harness]:
    """The app with exactly these plugins (the built-ins by default): tests never depend on which
    third-party plugins are installed here."""
    with nicegui_reset_globals():
        os.environ['NICEGUI_USER_SIMULATION'] = 'true'
        clients: list[httpx.AsyncClient] = []

        def new_client() -> httpx.AsyncClient:
            # a name the app answers to: jarvis.web_guard refuses any other Host
            client = httpx.AsyncClient(transport=httpx.ASGITransport(core.app), base_url='http://127.0.0.1')
            clients.append(client)
            return client

        try:
            services, root = create_app(settings)
            services.plugins.set_sources(plugins)
            prepare_simulation()
            ui.run(root, storage_secret='test secret', reconnect_timeout=0.2, tailwind=False)
            async with core.app.router.lifespan_context(core.app):
                if wait_ready:
                    await services.wait_ready()
                yield Harness(services, new_client)
                for client in clients:
                    await client.aclose()
        finally:
            os.environ.pop('NICEGUI_USER_SIMULATION', None)
            ui.navigate = Navigate()
            ui.notify = notify
            ui.download = download


@pytest.fixture
async def jarvis(settings: Settings, caplog: pytest.LogCaptureFixture,
                 request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    async with simulate(settings) as harness:
        yield harness
    # as NiceGUI's own user fixture does: an ERROR log is a failure unless the test expects one
    if request.node.get_closest_marker('allow_errors') is None:
        errors = [r.getMessage() for r in caplog.get_records('call') if r.levelno >= logging.ERROR]
        if errors:
            pytest.fail(f'unexpected ERROR logs: {errors}', pytrace=False)


@pytest.fixture
async def user(jarvis: Harness) -> User:
    return jarvis.new_user()


@pytest.fixture(scope='session')
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models directory with the real default Gemma GGUF, assembled once per test run."""
    directory = tmp_path_factory.mktemp('models')
    ensure_default_model(directory)
    return directory


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """The real app, started with ``jarvis --no-open`` in its own process."""
    with AppServer(tmp_path_factory.mktemp('server-data')) as app_server:
        yield app_server


@pytest.fixture
def browser() -> Iterator:
    """A headless Chromium for one test (tests that use it are marked ``needs_chromium``)."""
    from .helpers.browser import quit_chromium, start_chromium  # pylint: disable=import-outside-toplevel

    driver = start_chromium()
    yield driver
    quit_chromium(driver)
