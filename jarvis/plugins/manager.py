"""Finds plugins (built-ins and the ``jarvis.plugins`` entry points), keeps their switches and
settings, and gives them the first word on each message.

Each plugin runs in a thread with an event loop of its own (``PluginWorker``): matching a message,
``handle``, ``start``, ``stop`` and whatever tasks it schedules. The app's loop only waits, with the
plugin's timeout, so a plugin that blocks or hangs is marked "error" and the chat carries on.

Views and routes use the async facade: ``list()``, ``get(name)``, ``toggle()``, ``configure()``; each
returns a ``PluginInfo``, the state in effect. ``PluginNotFound`` means an unknown name (HTTP 404),
any other ``PluginError`` a request that cannot be done (HTTP 422).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ..config import Settings
from ..events import PluginSettingsChanged, PluginToggled
from ..hub import Hub
from ..storage import Database, SettingsStore
from .base import PatternTimeout, Plugin, PluginContext
from .language import guess_language
from .settings import Setting, SettingError, SettingValue, declared_settings, shown
from .worker import PluginWorker, WorkerTimeout

if TYPE_CHECKING:
    from ..events import SystemMetrics
    from ..machine import MachineSources

log = logging.getLogger(__name__)
T = TypeVar('T')

ENTRY_POINT_GROUP = 'jarvis.plugins'
ENABLED_KEY = 'plugins.enabled'
SETTINGS_KEY = 'plugins.settings'  # {plugin name: {setting: value}}, over each plugin's defaults
MAX_NAME_CHARS = 100
MAX_SETTINGS_PER_CALL = 50

State = Literal['enabled', 'disabled', 'error']
Source = Literal['built-in', 'installed']
InstalledPlugins = Callable[[], Iterable[EntryPoint]]


def installed_plugins() -> list[EntryPoint]:
    """Every plugin that an installed package registers under the ``jarvis.plugins`` entry point."""
    return list(entry_points(group=ENTRY_POINT_GROUP))


@dataclass
class PluginEntry:
    """The manager's record of one plugin (views and routes get a PluginInfo instead)."""

    name: str
    description: str
    version: str
    source: Source
    plugin: Plugin | None  # None when a plugin could not be loaded
    specs: dict[str, Setting] = field(default_factory=dict)
    enabled: bool = True
    error: str = ''
    started: bool = False
    worker: PluginWorker | None = None

    @property
    def state(self) -> State:
        if self.error:
            return 'error'
        return 'enabled' if self.enabled else 'disabled'


@dataclass(frozen=True)
class PluginInfo:
    """A plugin as views and routes see it: its state and the settings in effect."""

    name: str
    description: str
    version: str
    source: Source
    enabled: bool
    state: State
    error: str
    settings: dict[str, SettingValue]  # in effect: the defaults with the user's valid changes over them
    specs: dict[str, Setting]  # what each setting may be

    def to_dict(self) -> dict[str, Any]:
        return {'name': self.name, 'description': self.description, 'version': self.version,
                'source': self.source, 'enabled': self.enabled, 'state': self.state, 'error': self.error,
                'settings': dict(self.settings),
                'setting_specs': {key: spec.to_dict() for key, spec in self.specs.items()}}


@dataclass(frozen=True)
class PluginReply:
    plugin: str
    text: str
    error: bool = False


class PluginError(ValueError):
    """A request about plugins that cannot be done; the text says why and what to do."""


class PluginNotFound(PluginError):
    """There is no plugin of that name."""


class PluginManager:
    def __init__(self, hub: Hub, db: Database, settings: Settings, store: SettingsStore,
                 builtins: Sequence[type[Plugin]] | None = None, installed: InstalledPlugins | None = None,
                 metrics: Callable[[], Awaitable[SystemMetrics]] | None = None,
                 machine: MachineSources | None = None) -> None:
        self.hub = hub
        self.db = db
        self.settings = settings
        self.store = store
        self._builtins = list(builtins) if builtins is not None else None
        self._installed = installed or installed_plugins
        self._metrics = metrics  # a fresh reading on demand (MetricsSampler.current)
        self.machine = machine  # what plugins may read of the machine, the alerts and the models
        self.entries: dict[str, PluginEntry] = {}
        self._changing = asyncio.Lock()  # one toggle or settings change at a time

    def set_sources(self, builtins: Sequence[type[Plugin]], installed: Iterable[EntryPoint] = ()) -> None:
        """Which plugins ``discover`` finds (call it before ``start``). The app finds the built-ins and every
        installed package; a test names exactly the plugins it counts on."""
        self._builtins = list(builtins)
        chosen = list(installed)
        self._installed = lambda: chosen

    # --- discovery and lifecycle ------------------------------------------------------------

    def discover(self) -> None:
        """Instantiate the built-ins and every installed plugin; a broken one is listed with its error."""
        if self._builtins is None:
            from .builtin import BUILTIN_PLUGINS  # pylint: disable=import-outside-toplevel
            self._builtins = list(BUILTIN_PLUGINS)
        for plugin_class in self._builtins:
            self._add(plugin_class, 'built-in', f'{plugin_class.__module__}.{plugin_class.__qualname__}')
        for entry_point in self._installed():
            try:
                plugin_class = entry_point.load()
                if not (isinstance(plugin_class, type) and issubclass(plugin_class, Plugin)):
                    raise TypeError(f'{entry_point.value} is not a jarvis Plugin class')
            except Exception as error:  # a broken third-party package must not stop the app
                log.exception('plugin %s could not be loaded', entry_point.name)
                self._add_broken(entry_point.name, f'from {entry_point.value}', 'installed',
                                 f'could not be loaded: {_describe(error)}')
                continue
            self._add(plugin_class, 'installed', entry_point.value)
        enabled = self.store.get(ENABLED_KEY, {})
        for entry in self.entries.values():
            entry.enabled = bool(enabled.get(entry.name, entry.enabled)) and entry.plugin is not None
            self._warn_about_stored_settings(entry)

    def _add(self, plugin_class: type[Plugin], source: Source, origin: str) -> None:
        name = getattr(plugin_class, 'name', '') or plugin_class.__name__
        if name in self.entries:
            log.warning('plugin name %r is taken; %s is not loaded', name, origin)
            return
        try:
            specs = declared_settings(plugin_class.settings)
        except SettingError as error:
            self._add_broken(name, str(getattr(plugin_class, 'description', '')), source,
                             f'declares an invalid setting: {error}')
            return
        try:
            plugin = plugin_class()
        except Exception as error:  # e.g. a pattern that is not a valid regular expression
            log.exception('plugin %s could not be created', name)
            self._add_broken(name, str(getattr(plugin_class, 'description', '')), source,
                             f'could not be loaded: {_describe(error)}')
            return
        self.entries[name] = PluginEntry(name=name, description=plugin.description, version=plugin.version,
                                         source=source, plugin=plugin, specs=specs)

    def _add_broken(self, name: str, description: str, source: Source, error: str) -> None:
        self.entries.setdefault(name, PluginEntry(name=name, description=description, version='?', source=source,
                                                  plugin=None, enabled=False, error=error))

    async def start(self) -> None:
        if not self.entries:
            await asyncio.to_thread(self.discover)
        await asyncio.gather(*(self._start(entry) for entry in self.entries.values() if entry.enabled))

    async def stop(self) -> None:
        await asyncio.gather(*(self._stop(entry) for entry in self.entries.values()))

    async def _start(self, entry: PluginEntry) -> None:
        if entry.started or entry.plugin is None:
            return
        timeout = self._timeout(entry.plugin)
        try:
            await self._worker(entry).call(partial(entry.plugin.start, self._context(entry)), timeout)
            entry.started = True
        except WorkerTimeout:
            self._fail(entry, f'did not start within {timeout:g} s')
        except Exception as error:
            self._fail(entry, f'failed to start: {_describe(error)}')

    async def _stop(self, entry: PluginEntry) -> None:
        """Stop the plugin on its own loop, then end its thread (one that is blocked is left to end alone)."""
        if entry.worker is not None and entry.worker.stuck:  # its stop would only queue behind what blocks it
            log.warning('plugin %s is still blocked; it is not asked to stop', entry.name)
        elif entry.started and entry.plugin is not None and entry.worker is not None:
            try:
                await entry.worker.call(entry.plugin.stop, self._timeout(entry.plugin))
            except Exception as error:
                log.warning('plugin %s did not stop cleanly: %s', entry.name, _describe(error))
        entry.started = False
        if entry.worker is not None:
            worker, entry.worker = entry.worker, None
            await worker.close()

    def _worker(self, entry: PluginEntry) -> PluginWorker:
        if entry.worker is None:
            entry.worker = PluginWorker(entry.name)
        return entry.worker

    # --- the first word on a message --------------------------------------------------------

    async def handle(self, message: str, conversation_id: str = '') -> PluginReply | None:
        """The first enabled plugin that matches and answers; None lets the model answer."""
        language = guess_language(message)
        for entry in list(self.entries.values()):
            plugin = entry.plugin
            if not entry.enabled or plugin is None:
                continue
            worker = self._worker(entry)
            if worker.stuck:  # still blocked on a message it did not answer in time: the others answer
                continue
            timeout = self._timeout(plugin)
            offer = partial(_offer, plugin, message, self._context(entry, language, conversation_id))
            try:
                matched, reply = await worker.call(offer, timeout)
            except WorkerTimeout:
                reason = f'did not answer within {timeout:g} s'
                self._fail(entry, reason)
                return PluginReply(entry.name, f'The {entry.name} plugin {reason}.', error=True)
            except PatternTimeout as error:  # a pattern that backtracks: not this plugin's message after all
                self._fail(entry, str(error))
                continue
            except Exception as error:  # isolated: the chat and the other plugins carry on
                log.warning('plugin %s failed', entry.name, exc_info=error)
                reason = _describe(error)
                self._fail(entry, reason)
                return PluginReply(entry.name, f'The {entry.name} plugin failed: {reason}', error=True)
            if not matched:
                continue
            if entry.error:  # it works again
                entry.error = ''
                self._publish(entry)
            if reply is not None:
                return PluginReply(entry.name, str(reply))
        return None

    async def ask(self, name: object, request: str, conversation_id: str = '') -> PluginReply:
        """One plugin's answer to ``request``, by name, with the rules ``handle`` keeps: it runs on the plugin's
        thread within its timeout, a failure or a timeout marks it "error" and comes back as an error reply.

        What a model calls when the plugins are offered to it as tools. A disabled, broken or blocked plugin
        is refused (``PluginError``); a request its patterns do not match gets an error reply that says so,
        since a plugin's ``handle`` only knows the messages its patterns select.
        """
        entry = self._entry(name)
        plugin = entry.plugin
        if plugin is None or not entry.enabled:
            raise PluginError(f'The {entry.name} plugin is switched off; it cannot be used.')
        worker = self._worker(entry)
        if worker.stuck:
            raise PluginError(f'The {entry.name} plugin is still busy with an earlier request.')
        timeout = self._timeout(plugin)
        offer = partial(_offer, plugin, request, self._context(entry, guess_language(request), conversation_id))
        try:
            matched, reply = await worker.call(offer, timeout)
        except WorkerTimeout:
            reason = f'did not answer within {timeout:g} s'
            self._fail(entry, reason)
            return PluginReply(entry.name, f'The {entry.name} plugin {reason}.', error=True)
        except PatternTimeout as error:
            self._fail(entry, str(error))
            return PluginReply(entry.name, f'The {entry.name} plugin could not read that request.', error=True)
        except Exception as error:  # isolated: the chat and the other plugins carry on
            log.warning('plugin %s failed', entry.name, exc_info=error)
            reason = _describe(error)
            self._fail(entry, reason)
            return PluginReply(entry.name, f'The {entry.name} plugin failed: {reason}', error=True)
        if not matched or reply is None:
            return PluginReply(entry.name, f'The {entry.name} plugin does not understand "{shown(request, 200)}". '
                                           f'It handles: {entry.description}', error=True)
        if entry.error:  # it works again
            entry.error = ''
            self._publish(entry)
        return PluginReply(entry.name, str(reply))

    def _context(self, entry: PluginEntry, language: str = 'en', conversation_id: str = '') -> PluginContext:
        """What the plugin gets; built on the app's loop, where its two waiting helpers then run."""
        return PluginContext(hub=self.hub, db=self.db, settings=self.settings, language=language,
                             conversation_id=conversation_id, plugin_settings=self._settings_of(entry),
                             fresh_metrics=_on_this_loop(self._metrics) if self._metrics is not None else None,
                             window_connected=_on_this_loop(self.hub.wait_for_viewers),
                             machine=self.machine.carried(_called_at_home) if self.machine is not None else None)

    def _fail(self, entry: PluginEntry, reason: str) -> None:
        entry.error = reason
        log.warning('plugin %s: %s', entry.name, reason)
        self._publish(entry)

    def _timeout(self, plugin: Plugin) -> float:
        return plugin.timeout or self.settings.plugin_timeout

    # --- the facade for views and routes ----------------------------------------------------

    async def list(self) -> list[PluginInfo]:
        return [self._info(entry) for entry in self.entries.values()]

    async def get(self, name: object) -> PluginInfo:
        return self._info(self._entry(name))

    async def toggle(self, name: object, enabled: object) -> PluginInfo:
        """Switch a plugin on (it starts, on a fresh thread) or off (it stops); switching clears its error."""
        entry = self._entry(name)
        if not isinstance(enabled, bool):
            raise PluginError('enabled must be true or false.')
        if enabled and entry.plugin is None:
            raise PluginError(f'The {entry.name} plugin {entry.error}; it cannot be enabled.')
        async with self._changing:
            entry.enabled = enabled
            if entry.plugin is not None:
                entry.error = ''  # switching a plugin off and on is how a user clears its error
            if enabled:
                await self._start(entry)
            else:
                await self._stop(entry)
            await self.store.set(ENABLED_KEY, {e.name: e.enabled for e in self.entries.values() if e.plugin})
        self._publish(entry)
        return self._info(entry)

    async def configure(self, name: object, values: object) -> PluginInfo:
        """Change some of a plugin's settings. All are checked against what the plugin declares before
        any is stored; the answer (and a ``plugin_settings`` event to every window) has those in effect."""
        entry = self._entry(name)
        if not isinstance(values, dict):
            raise PluginError('settings must be an object of setting names and values, like {"sentences": 2}.')
        if len(values) > MAX_SETTINGS_PER_CALL:
            raise PluginError(f'At most {MAX_SETTINGS_PER_CALL} settings can be changed at once.')
        checked: dict[str, SettingValue] = {}
        for key, value in values.items():
            spec = entry.specs.get(key) if isinstance(key, str) else None
            if spec is None:
                known = ', '.join(entry.specs) or 'none'
                raise PluginError(f'The {entry.name} plugin has no setting "{shown(key)}" (it has: {known}).')
            try:
                checked[key] = spec.check(value, key)
            except SettingError as error:
                raise PluginError(str(error)) from None
        async with self._changing:
            stored = dict(self.store.get(SETTINGS_KEY) or {})
            own = stored.get(entry.name)
            stored[entry.name] = {**(own if isinstance(own, dict) else {}), **checked}
            await self.store.set(SETTINGS_KEY, stored)
        info = self._info(entry)
        self.hub.publish(PluginSettingsChanged(plugin=entry.name, settings=dict(info.settings)))
        return info

    def _entry(self, name: object) -> PluginEntry:
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS:
            raise PluginError(f'A plugin name is required (at most {MAX_NAME_CHARS} characters).')
        entry = self.entries.get(name)
        if entry is None:
            raise PluginNotFound(f'There is no plugin called "{shown(name, MAX_NAME_CHARS)}".')
        return entry

    def _info(self, entry: PluginEntry) -> PluginInfo:
        return PluginInfo(name=entry.name, description=entry.description, version=entry.version,
                          source=entry.source, enabled=entry.enabled, state=entry.state, error=entry.error,
                          settings=self._settings_of(entry), specs=dict(entry.specs))

    def _settings_of(self, entry: PluginEntry) -> dict[str, SettingValue]:
        """The defaults with each stored value over them that still fits its declaration (a value stored
        by an older version, or before a plugin narrowed a range, is kept in the store but not used)."""
        values = {key: spec.default for key, spec in entry.specs.items()}
        for key, value in self._stored_settings(entry).items():
            if (spec := entry.specs.get(key)) is not None:
                try:
                    values[key] = spec.check(value, key)
                except SettingError:
                    pass
        return values

    def _stored_settings(self, entry: PluginEntry) -> dict[str, Any]:
        own = (self.store.get(SETTINGS_KEY) or {}).get(entry.name)
        return own if isinstance(own, dict) else {}

    def _warn_about_stored_settings(self, entry: PluginEntry) -> None:
        for key, value in self._stored_settings(entry).items():
            if (spec := entry.specs.get(key)) is None:
                continue
            try:
                spec.check(value, key)
            except SettingError as error:
                log.warning('plugin %s: the stored value of %s is not used: %s', entry.name, key, error)

    def _publish(self, entry: PluginEntry) -> None:
        self.hub.publish(PluginToggled(plugin=entry.name, enabled=entry.enabled, state=entry.state,
                                       error=entry.error))


async def _offer(plugin: Plugin, message: str, context: PluginContext) -> tuple[bool, str | None]:
    """On the plugin's own loop: whether its patterns match, and then its reply."""
    if plugin.match(message) is None:
        return False, None
    return True, await plugin.handle(message, context)


def _on_this_loop(make: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
    """``make`` as a coroutine function that a plugin awaits on its own loop while it runs on this one
    (the app's), where the hub's and the sampler's asyncio objects belong."""
    home = asyncio.get_running_loop()

    async def run_at_home() -> T:
        if asyncio.get_running_loop() is home:
            return await make()
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_awaited(make), home))

    return run_at_home


async def _awaited(make: Callable[[], Awaitable[T]]) -> T:
    return await make()


def _called_at_home(call: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Like ``_on_this_loop`` for a call with arguments: a plugin awaits it on its own loop, it runs on the app's."""
    home = asyncio.get_running_loop()

    async def run_at_home(*args: Any) -> T:
        if asyncio.get_running_loop() is home:
            return await call(*args)
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_awaited(partial(call, *args)), home))

    return run_at_home


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    return f'{type(error).__name__}: {text}' if text else type(error).__name__
