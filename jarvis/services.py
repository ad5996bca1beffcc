"""The domain wired together: hub, storage, metrics, models, plugins and the assistant.

Nothing here imports NiceGUI; the UI and the HTTP API both get this object.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from . import events
from .alerts import AlertManager, DesktopNotifications
from .assistant.assistant import Assistant
from .assistant.completions import Completions
from .assistant.tools import ToolRegistry
from .config import Settings
from .events import ChatMessage, Event, Notification
from .hub import Hub
from .machine import MachineQueries, MachineSources
from .metrics import SystemMonitor
from .models.manager import ModelManager
from .plugins.manager import PluginManager
from .plugins.records import PluginRecords
from .preferences import Preferences
from .resources import asset
from .storage import SettingsStore, StorageError, describe_storage_error, open_database, prepare_folders

log = logging.getLogger(__name__)

# ``stop`` gives the parts this long in all; whatever still runs then is left to the process exit
STOP_TIMEOUT_S = 4.0
# the start waits this long at most for the machine's first sample, which the first page shows
FIRST_SAMPLE_TIMEOUT_S = 3.0


class StartupError(Exception):
    """The app cannot start; the message is one sentence that says what to do."""


class Services:
    def __init__(self, settings: Settings) -> None:
        """Open the data folder and the database (blocking, before the server starts).

        Raises ``StartupError`` when they cannot be used; a damaged database is moved aside instead,
        and the windows are told so when they connect (``startup_notices``)."""
        self.settings = settings
        try:
            prepare_folders(settings.data_dir, settings.models_dir)
            opened = open_database(settings.db_path)
        except StorageError as error:
            raise StartupError(str(error)) from error
        self._pending_notices = [Notification(opened.moved_aside.notice(), level='warning')] \
            if opened.moved_aside else []
        self._notices: list[Event] = []
        self._failure: str | None = None
        self.hub = Hub(buffer_size=settings.buffer_size)
        self.db = opened.db
        self.store = SettingsStore(self.db)
        self.preferences = Preferences(self.store, self.hub)
        # live samples, processes and the history; ``sampler`` stays for the parts that need samples only
        self.system = SystemMonitor(self.hub, self.db, interval=settings.metrics_interval)
        self.sampler = self.system.sampler
        self.models = ModelManager(self.hub, settings, self.store, machine=self.system)
        # what the machine's questions read (the plugins through their context, later the tools for models); the
        # calls look the parts up when they run, so that each reads the part in place then
        self.machine_sources = MachineSources(
            current=lambda: self.system.current(),
            top_processes=lambda sort, limit: self.system.top_processes(sort, limit),
            history=lambda start, end, points: self.system.history_range(start=start, end=end, max_points=points),
            busy_processes=lambda start, end: self.system.busy_processes_between(start, end),
            alert_log=lambda limit: self.alerts.log(limit),
            active_alerts=lambda: self.alerts.active(),
            model_catalog=lambda: self.models.catalog(),
            recent_answers=self._recent_answers)
        self.machine = MachineQueries(self.machine_sources)
        self.plugins = PluginManager(self.hub, self.db, settings, self.store, metrics=self.sampler.current,
                                     machine=self.machine_sources)
        desktop = DesktopNotifications('J.A.R.V.I.S.', icon=asset('icon.png')) if settings.desktop_notifications else None
        self.alerts = AlertManager(self.hub, self.db, self.store, desktop=desktop)
        # what a model that calls tools is offered (the machine's queries, the enabled plugins), also read by MCP
        self.tools = ToolRegistry(self.system, self.alerts, self.plugins, queries=self.machine)
        self.assistant = Assistant(self.hub, self.db, self.store, settings, self.models, self.plugins,
                                   tools=self.tools)
        self.completions = Completions(self.hub, self.assistant, self.models)  # the /v1 routes
        self.records = PluginRecords(self.db)  # notes and reminders, read by the MCP tools
        self.started = False
        self._ready: asyncio.Event | None = None
        self._restore: asyncio.Task | None = None

    async def _recent_answers(self, limit: int) -> list[ChatMessage]:
        return [shown.message for shown in await self.assistant.recent_messages(limit)]

    async def wait_ready(self) -> None:
        """Return once ``start`` has finished. NiceGUI runs startup handlers as tasks and serves at once,
        so a page or a script that arrives first waits here instead of seeing half-started services.

        Raises ``StartupError`` when the start failed: nothing ever waits on a start that cannot end."""
        if self._ready is None:
            self._ready = asyncio.Event()
        await self._ready.wait()
        if self._failure is not None:
            raise StartupError(self._failure)

    @property
    def failure(self) -> str | None:
        """Why the start failed (one sentence that says what to do), or None."""
        return self._failure

    def startup_notices(self) -> list[Event]:
        """What this start has to tell every window and script that connects (a damaged database that
        was moved aside): published when nobody is connected yet, so they are shown on connection."""
        return list(self._notices)

    async def start(self) -> None:
        """Start every part; raises ``StartupError`` (and ``wait_ready`` does from then on) when one fails."""
        try:
            await self._start()
        except Exception as error:
            log.debug('the start failed', exc_info=True)
            self._failure = _describe_start_failure(error, self.settings)
            raise StartupError(self._failure) from error
        finally:
            if self._ready is None:
                self._ready = asyncio.Event()
            self._ready.set()

    async def _start(self) -> None:
        await asyncio.to_thread(self.store.load)
        self.models.load_options()
        await self.alerts.start()  # before the sampler: its first sample is checked too
        # the machine first: its first sample, which the first page shows (no wait for a tick), needs two CPU
        # readings 0.2 s apart; the first was taken as the sampler was made, so by now it needs no wait
        first_sample = self._first_sample()
        await self.system.start()
        await asyncio.to_thread(self.plugins.discover)
        await self.plugins.start()
        await self.assistant.start()
        await first_sample
        # no model is loaded at start: the last one used (else the default, assembled now if it is
        # missing) waits on standby for the first message that needs it
        self._restore = asyncio.get_running_loop().create_task(self.models.restore(), name='restore model')
        self._notices = [self.hub.publish(notice) for notice in self._pending_notices]
        self.started = True
        log.info('J.A.R.V.I.S. services started (data in %s)', self.settings.data_dir)

    def _first_sample(self, timeout: float = FIRST_SAMPLE_TIMEOUT_S) -> asyncio.Future[None]:
        """Done once the sampler has published its first sample (or after ``timeout``: a slow reading, such
        as a hung network disk, must not hold the start; the page then shows it when it comes)."""
        loop = asyncio.get_running_loop()
        published: asyncio.Future[None] = loop.create_future()
        subscription = self.hub.subscribe(
            lambda _event: published.done() or published.set_result(None), name='first sample',
            types=[events.SYSTEM_METRICS], replay=[events.SYSTEM_METRICS])

        async def wait() -> None:
            try:
                await asyncio.wait_for(asyncio.shield(published), timeout)
            except asyncio.TimeoutError:
                log.info('the first sample of the machine took more than %.0f s; the start goes on', timeout)
            finally:
                subscription.close()
        return asyncio.ensure_future(wait())

    async def model_ready(self) -> None:
        """Wait until the chat's model is on standby (the default one assembled, or its install failed)."""
        if self._restore is not None:
            await asyncio.shield(self._restore)

    def stop_answers(self) -> None:
        """Stop every answer being generated, so that it is saved as "stopped" with its text (the first
        thing to do when the app is asked to quit: the request that waits for it then ends at once)."""
        self.assistant.stop_generation()
        self.completions.stop_all()

    async def stop(self) -> None:
        """Stop every part, also after a failed or partial start; bounded, so that quitting always ends."""
        async def cancel_restore() -> None:
            if self._restore is not None and not self._restore.done():
                self._restore.cancel()

        # the metrics before the models: their stop writes the history still in memory, which must not wait
        # behind a model that is slow to unload
        steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ('assistant', self.assistant.stop), ('model restore', cancel_restore), ('plugins', self.plugins.stop),
            ('alerts', self.alerts.stop), ('metrics', self.system.stop), ('models', self.models.close)]
        try:
            await asyncio.wait_for(_run_each(steps), STOP_TIMEOUT_S)
        except asyncio.TimeoutError:
            log.warning('the app did not stop within %.0f s; quitting anyway', STOP_TIMEOUT_S)
        # the connection's lock is held while a query runs: closing waits for it in a thread, never on the loop
        closing = asyncio.ensure_future(asyncio.to_thread(self._close_db))
        await asyncio.wait([closing], timeout=1.0)
        self.started = False

    def _close_db(self) -> None:
        try:
            self.db.close()
        except Exception:  # the data is committed already; nothing to do about it when quitting
            log.warning('the database did not close cleanly', exc_info=True)


async def _run_each(steps: list[tuple[str, Callable[[], Awaitable[None]]]]) -> None:
    for name, step in steps:
        try:
            await step()
        except Exception:  # one part that fails to stop must not keep the others running
            log.warning('%s did not stop cleanly', name, exc_info=True)


def _describe_start_failure(error: Exception, settings: Settings) -> str:
    return describe_storage_error(error, settings.db_path) or (
        f'J.A.R.V.I.S. could not start ({type(error).__name__}: {error}): start it with --log-level DEBUG '
        f'to see where.')
