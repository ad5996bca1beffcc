"""The Plugins view: every plugin with its state, a switch and its settings; all follow in every window.

Built from the plugin manager's facade alone (``list``, ``toggle``, ``configure``); what another
window or a script changes arrives as ``plugin_toggled`` and ``plugin_settings`` hub events.
"""
from __future__ import annotations

from typing import Any

from nicegui import background_tasks, ui
from nicegui import events as ui_events

from .. import events
from ..events import PluginSettingsChanged, PluginToggled
from ..plugins.manager import PluginError, PluginInfo, PluginManager
from ..plugins.settings import Setting, SettingError, SettingValue
from ..services import Services
from . import notifications
from .live import LiveWindow, use_hub
from .markers import mark

STATE_COLORS = {'enabled': 'positive', 'disabled': 'grey-7', 'error': 'negative'}


class SettingField:
    """The input for one setting, by what the plugin declares: a switch, a choice, a number or text.

    A number field is not clamped to its range (a clamped field would show a value other than the one
    the user typed and saved); what does not fit is said under the field at once, and again on Save."""

    def __init__(self, plugin: str, key: str, spec: Setting, value: SettingValue) -> None:
        self.key = key
        self.spec = spec
        label = key.replace('_', ' ')
        with ui.column().classes('gap-0 w-72'):
            if spec.kind == 'bool':
                self.input: Any = ui.switch(label, value=bool(value))
            elif spec.choices:
                self.input = ui.select(list(spec.choices), label=label, value=value).classes('w-full')
            elif spec.kind in ('int', 'float'):
                whole = spec.kind == 'int'
                self.input = ui.number(label, value=value, step=1 if whole else None,
                                       precision=0 if whole else None, validation=self.problem).classes('w-full')
            else:
                self.input = ui.input(label, value=str(value), validation=self.problem).classes('w-full')
            mark(self.input, f'plugin-setting:{plugin}:{key}')
            if spec.description:  # plain text from the plugin, never HTML
                if spec.kind == 'bool':
                    ui.label(spec.description).classes('text-xs opacity-60')
                else:
                    self.input.props['hint'] = spec.description  # Quasar shows it as text; an error replaces it

    @property
    def value(self) -> object:
        return self._as_declared(self.input.value)

    def _as_declared(self, value: object) -> object:
        """A number field gives 3.0 for a whole 3."""
        if self.spec.kind == 'int' and isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    def problem(self, value: object) -> str | None:
        try:
            self.spec.check(self._as_declared(value), self.key)
        except SettingError as error:
            return str(error)
        return None

    def show(self, value: SettingValue) -> None:
        if self.value != value:
            self.input.set_value(value)


class PluginRow:
    def __init__(self, view: PluginsView, info: PluginInfo) -> None:
        self.view = view
        self.name = info.name
        self.enabled = info.enabled
        self.fields: dict[str, SettingField] = {}
        with ui.card().classes('w-full').props('flat bordered'):
            with ui.row().classes('w-full items-center gap-3 no-wrap'):
                with ui.column().classes('gap-0 grow min-w-0'):
                    with ui.row().classes('items-center gap-2'):
                        ui.label(info.name).classes('text-base font-medium')
                        ui.label(f'v{info.version}').classes('text-xs opacity-60')
                        ui.badge(info.source, color='indigo' if info.source == 'built-in' else 'teal') \
                            .props('outline')
                    ui.label(info.description).classes('text-sm opacity-80')
                    self.error = mark(ui.label('').classes('text-xs text-negative'), f'plugin-error:{info.name}')
                self.state = mark(ui.badge(''), f'plugin-state:{info.name}')
                self.switch = mark(ui.switch(value=info.enabled, on_change=self.toggle), f'plugin-switch:{info.name}')
            if info.specs:
                with ui.row().classes('w-full items-start gap-4'):
                    for key, spec in info.specs.items():
                        self.fields[key] = SettingField(info.name, key, spec, info.settings[key])
                with ui.row().classes('items-center gap-3'):
                    mark(ui.button('Save settings', icon='save', on_click=self.save).props('outline dense'),
                         f'plugin-settings-save:{info.name}')
                    self.settings_error = mark(ui.label('').classes('text-xs text-negative'),
                                               f'plugin-settings-error:{info.name}')
                    self.settings_error.set_visibility(False)
        self.show(info.enabled, info.state, info.error)

    def show(self, enabled: bool, state: str, error: str) -> None:
        self.enabled = enabled
        if self.switch.value != enabled:
            self.switch.set_value(enabled)  # toggle() sees it matches and does nothing
        self.state.set_text(state)
        self.state.props(f'color={STATE_COLORS.get(state, "grey")}')
        self.error.set_text(error)
        self.error.set_visibility(bool(error))

    def show_settings(self, values: dict[str, SettingValue]) -> None:
        for key, value in values.items():
            if (field := self.fields.get(key)) is not None:
                field.show(value)

    async def toggle(self, event: ui_events.ValueChangeEventArguments) -> None:
        if bool(event.value) == self.enabled:
            return  # an update that came from the hub, not from the user
        try:
            info = await self.view.plugins.toggle(self.name, bool(event.value))
        except PluginError as error:
            notifications.notify(self.switch.client, str(error), type='warning')
            self.switch.set_value(self.enabled)
            return
        self.show(info.enabled, info.state, info.error)

    async def save(self) -> None:
        values = {key: field.value for key, field in self.fields.items()}
        try:
            info = await self.view.plugins.configure(self.name, values)
        except PluginError as error:  # nothing was stored: the field keeps what the user typed, to correct it
            self.settings_error.set_text(str(error))
            self.settings_error.set_visibility(True)
            return
        self.settings_error.set_visibility(False)
        self.show_settings(info.settings)
        notifications.notify(self.switch.client, f'{self.name}: settings saved.', type='positive', group='plugins')


class PluginsView:
    def __init__(self, plugins: PluginManager, live: LiveWindow) -> None:
        self.plugins = plugins
        self.rows: dict[str, PluginRow] = {}
        with ui.column().classes('w-full gap-3 max-w-4xl') as self.root:
            ui.label('Plugins').classes('text-2xl font-semibold')
            ui.label('Plugins get the first word on every message; when none answers, the model does. '
                     'Install more with pip: they register under the "jarvis.plugins" entry point.') \
                .classes('text-sm opacity-70')
            background_tasks.create(self.plugin_list(), name='plugins: list')
        live.on(events.PLUGIN_TOGGLED, self._on_toggled, owner=self.root)
        live.on(events.PLUGIN_SETTINGS, self._on_settings, owner=self.root)

    @ui.refreshable_method
    async def plugin_list(self) -> None:
        self.rows = {info.name: PluginRow(self, info) for info in await self.plugins.list()}

    def _on_toggled(self, toggled: PluginToggled) -> None:
        if (row := self.rows.get(toggled.plugin)) is not None:
            row.show(toggled.enabled, toggled.state or ('enabled' if toggled.enabled else 'disabled'), toggled.error)

    def _on_settings(self, changed: PluginSettingsChanged) -> None:
        if (row := self.rows.get(changed.plugin)) is not None:
            row.show_settings(changed.settings)


def plugins_page(services: Services) -> None:
    PluginsView(services.plugins, use_hub(services.hub))
