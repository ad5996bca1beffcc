"""The domain wired together: hub, storage and metrics (later: assistant, models, plugins).

Nothing here imports NiceGUI; the UI and the HTTP API both get this object.
"""
from __future__ import annotations

import asyncio
import logging

from .config import Settings
from .hub import Hub
from .metrics import MetricsSampler
from .storage import Database, SettingsStore

log = logging.getLogger(__name__)


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.ensure_dirs()
        self.hub = Hub(buffer_size=settings.buffer_size)
        self.db = Database(settings.db_path)
        self.store = SettingsStore(self.db)
        self.sampler = MetricsSampler(self.hub, interval=settings.metrics_interval)
        self.started = False

    async def start(self) -> None:
        await asyncio.to_thread(self.store.load)
        await self.sampler.start()
        self.started = True
        log.info('J.A.R.V.I.S. services started (data in %s)', self.settings.data_dir)

    async def stop(self) -> None:
        await self.sampler.stop()
        self.db.close()
        self.started = False
