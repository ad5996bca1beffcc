"""The domain wired together: hub, storage, metrics, models, plugins and the assistant.

Nothing here imports NiceGUI; the UI and the HTTP API both get this object.
"""
from __future__ import annotations

import asyncio
import logging

from .assistant.assistant import Assistant
from .config import Settings
from .hub import Hub
from .metrics import MetricsSampler
from .models.manager import ModelManager
from .plugins.manager import PluginManager
from .preferences import Preferences
from .storage import Database, SettingsStore

log = logging.getLogger(__name__)


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.ensure_dirs()
        self.hub = Hub(buffer_size=settings.buffer_size)
        self.db = Database(settings.db_path)
        self.store = SettingsStore(self.db)
        self.preferences = Preferences(self.store)
        self.sampler = MetricsSampler(self.hub, interval=settings.metrics_interval)
        self.models = ModelManager(self.hub, settings, self.store)
        self.plugins = PluginManager(self.hub, self.db, settings, self.store, metrics=self.sampler.current)
        self.assistant = Assistant(self.hub, self.db, self.store, settings, self.models, self.plugins)
        self.started = False
        self._ready: asyncio.Event | None = None
        self._restore: asyncio.Task | None = None

    async def wait_ready(self) -> None:
        """Return once ``start`` has finished. NiceGUI runs startup handlers as tasks and serves at once,
        so a page or a script that arrives first waits here instead of seeing half-started services."""
        if self._ready is None:
            self._ready = asyncio.Event()
        await self._ready.wait()

    async def start(self) -> None:
        await asyncio.to_thread(self.store.load)
        self.models.load_options()
        await asyncio.to_thread(self.plugins.discover)
        await self.plugins.start()
        await self.assistant.start()
        await self.sampler.start()
        # the last model loads in the background: the window opens at once and the chat says
        # "no model loaded" for the second or two it takes
        self._restore = asyncio.get_running_loop().create_task(self.models.restore(), name='restore model')
        self.started = True
        if self._ready is None:
            self._ready = asyncio.Event()
        self._ready.set()
        log.info('J.A.R.V.I.S. services started (data in %s)', self.settings.data_dir)

    async def model_ready(self) -> None:
        """Wait until the model restored at start is loaded (or failed to load)."""
        if self._restore is not None:
            await asyncio.shield(self._restore)

    async def stop(self) -> None:
        await self.assistant.stop()
        if self._restore is not None and not self._restore.done():
            self._restore.cancel()
        await self.plugins.stop()
        await self.models.close()
        await self.sampler.stop()
        self.db.close()
        self.started = False
