"""Finds plugins (built-ins and the ``jarvis.plugins`` entry points), keeps their toggles, and
gives them the first word on each message — each one isolated with a timeout."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Literal

from ..config import Settings
from ..events import PluginToggled
from ..hub import Hub
from ..storage import Database, SettingsStore
from .base import Plugin, PluginContext
from .language import guess_language

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = 'jarvis.plugins'
ENABLED_KEY = 'plugins.enabled'
SETTINGS_KEY = 'plugins.settings'  # {plugin name: {setting: value}}, over each plugin's defaults
MAX_NAME_CHARS = 100

State = Literal['enabled', 'disabled', 'error']


@dataclass
class PluginEntry:
    name: str
    description: str
    version: str
    source: Literal['built-in', 'installed']
    plugin: Plugin | None  # None when an installed plugin failed to load
    enabled: bool = True
    error: str = ''
    started: bool = False

    @property
    def state(self) -> State:
        if self.error:
            return 'error'
        return 'enabled' if self.enabled else 'disabled'

    def to_dict(self) -> dict:
        return {'name': self.name, 'description': self.description, 'version': self.version,
                'source': self.source, 'enabled': self.enabled, 'state': self.state, 'error': self.error,
                'settings': dict(self.plugin.settings) if self.plugin is not None else {}}


@dataclass(frozen=True)
class PluginReply:
    plugin: str
    text: str
    error: bool = False


class PluginError(ValueError):
    """A request about plugins that cannot be done (unknown name, ...)."""


class PluginManager:
    def __init__(self, hub: Hub, db: Database, settings: Settings, store: SettingsStore,
                 builtins: list[type[Plugin]] | None = None) -> None:
        self.hub = hub
        self.db = db
        self.settings = settings
        self.store = store
        self._builtins = builtins
        self.entries: dict[str, PluginEntry] = {}

    # --- discovery and lifecycle ------------------------------------------------------------

    def discover(self) -> None:
        """Instantiate the built-ins and every installed plugin; a broken one is listed with its error."""
        if self._builtins is None:
            from .builtin import BUILTIN_PLUGINS  # pylint: disable=import-outside-toplevel
            self._builtins = list(BUILTIN_PLUGINS)
        for plugin_class in self._builtins:
            self._add(plugin_class, 'built-in')
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            try:
                plugin_class = entry_point.load()
                if not (isinstance(plugin_class, type) and issubclass(plugin_class, Plugin)):
                    raise TypeError(f'{entry_point.value} is not a jarvis Plugin class')
                self._add(plugin_class, 'installed')
            except Exception as error:  # a broken third-party package must not stop the app
                log.exception('plugin %s could not be loaded', entry_point.name)
                self.entries.setdefault(entry_point.name, PluginEntry(
                    name=entry_point.name, description=f'from {entry_point.value}', version='?',
                    source='installed', plugin=None, enabled=False,
                    error=f'could not be loaded: {type(error).__name__}: {error}'))
        enabled = self.store.get(ENABLED_KEY, {})
        for entry in self.entries.values():
            entry.enabled = bool(enabled.get(entry.name, entry.enabled)) and entry.plugin is not None

    def _add(self, plugin_class: type[Plugin], source: Literal['built-in', 'installed']) -> None:
        plugin = plugin_class()
        name = plugin.name or plugin_class.__name__
        if name in self.entries:
            log.warning('plugin name %r is taken; %s is not loaded', name, plugin_class)
            return
        self.entries[name] = PluginEntry(name=name, description=plugin.description, version=plugin.version,
                                         source=source, plugin=plugin)

    async def start(self) -> None:
        if not self.entries:
            self.discover()
        for entry in self.entries.values():
            if entry.enabled:
                await self._start(entry)

    async def stop(self) -> None:
        for entry in self.entries.values():
            if entry.started and entry.plugin is not None:
                try:
                    await asyncio.wait_for(entry.plugin.stop(), self.settings.plugin_timeout)
                except Exception:
                    log.exception('plugin %s did not stop cleanly', entry.name)
                entry.started = False

    async def _start(self, entry: PluginEntry) -> None:
        if entry.started or entry.plugin is None:
            return
        try:
            await asyncio.wait_for(entry.plugin.start(self.context(plugin=entry.plugin)), self._timeout(entry.plugin))
            entry.started = True
        except Exception as error:
            self._fail(entry, f'failed to start: {_describe(error)}')

    # --- the first word on a message --------------------------------------------------------

    def context(self, message: str = '', conversation_id: str = '', plugin: Plugin | None = None) -> PluginContext:
        return PluginContext(hub=self.hub, db=self.db, settings=self.settings,
                             language=guess_language(message) if message else 'en',
                             conversation_id=conversation_id,
                             plugin_settings=self.settings_of(plugin) if plugin is not None else {})

    def settings_of(self, plugin: Plugin) -> dict[str, Any]:
        """A plugin's settings: its declared defaults with the user's changes over them."""
        return {**plugin.settings, **(self.store.get(SETTINGS_KEY) or {}).get(plugin.name, {})}

    async def handle(self, message: str, conversation_id: str = '') -> PluginReply | None:
        """The first enabled plugin that matches and answers; None lets the model answer."""
        for entry in list(self.entries.values()):
            plugin = entry.plugin
            if not entry.enabled or plugin is None or plugin.match(message) is None:
                continue
            try:
                reply = await asyncio.wait_for(plugin.handle(message, self.context(message, conversation_id, plugin)),
                                               self._timeout(plugin))
            except asyncio.TimeoutError:
                reason = f'did not answer within {self._timeout(plugin):g} s'
                self._fail(entry, reason)
                return PluginReply(entry.name, f'The {entry.name} plugin {reason}.', error=True)
            except Exception as error:  # isolated: the chat and the other plugins carry on
                log.exception('plugin %s failed', entry.name)
                reason = _describe(error)
                self._fail(entry, reason)
                return PluginReply(entry.name, f'The {entry.name} plugin failed: {reason}', error=True)
            if entry.error:  # it works again
                entry.error = ''
                self._publish(entry)
            if reply is not None:
                return PluginReply(entry.name, str(reply))
        return None

    def _fail(self, entry: PluginEntry, reason: str) -> None:
        entry.error = reason
        log.warning('plugin %s: %s', entry.name, reason)
        self._publish(entry)

    def _timeout(self, plugin: Plugin) -> float:
        return plugin.timeout or self.settings.plugin_timeout

    # --- the Plugins view and the API -------------------------------------------------------

    def list(self) -> list[PluginEntry]:
        return list(self.entries.values())

    def get(self, name: str) -> PluginEntry:
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS:
            raise PluginError('A plugin name is required (at most 100 characters).')
        entry = self.entries.get(name)
        if entry is None:
            raise PluginError(f'There is no plugin called "{name[:MAX_NAME_CHARS]}".')
        return entry

    async def toggle(self, name: str, enabled: bool) -> PluginEntry:
        entry = self.get(name)
        if enabled and entry.plugin is None:
            raise PluginError(f'The {entry.name} plugin {entry.error}; it cannot be enabled.')
        entry.enabled = bool(enabled)
        if entry.plugin is not None:
            entry.error = ''  # switching a plugin off and on is how a user clears its error
        if entry.enabled:
            await self._start(entry)
        elif entry.started and entry.plugin is not None:
            try:
                await asyncio.wait_for(entry.plugin.stop(), self._timeout(entry.plugin))
            except Exception as error:
                log.warning('plugin %s did not stop cleanly: %s', entry.name, error)
            entry.started = False
        await self.store.set(ENABLED_KEY, {e.name: e.enabled for e in self.entries.values() if e.plugin})
        self._publish(entry)
        return entry

    async def configure(self, name: str, values: dict[str, Any]) -> dict[str, Any]:
        """Change a plugin's settings; only the settings it declares, each of its default's type."""
        entry = self.get(name)
        declared = entry.plugin.settings if entry.plugin is not None else {}
        if not isinstance(values, dict):
            raise PluginError('settings must be an object of setting names and values.')
        for key, value in values.items():
            if key not in declared:
                known = ', '.join(sorted(declared)) or 'none'
                raise PluginError(f'The {entry.name} plugin has no setting "{str(key)[:60]}" (it has: {known}).')
            default = declared[key]
            if type(value) is not type(default) and not (isinstance(default, float) and type(value) is int):
                raise PluginError(f'{key} must be {type(default).__name__}, like its default {default!r}.')
        stored = dict(self.store.get(SETTINGS_KEY) or {})
        stored[entry.name] = {**stored.get(entry.name, {}), **values}
        await self.store.set(SETTINGS_KEY, stored)
        return {**declared, **stored[entry.name]}

    def _publish(self, entry: PluginEntry) -> None:
        self.hub.publish(PluginToggled(plugin=entry.name, enabled=entry.enabled, state=entry.state,
                                       error=entry.error))


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    return f'{type(error).__name__}: {text}' if text else type(error).__name__
