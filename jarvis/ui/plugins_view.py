"""The Plugins view: every plugin with its state and a switch that follows in every window."""
from __future__ import annotations

from nicegui import events as ui_events
from nicegui import ui

from .. import events
from ..events import PluginToggled
from ..plugins.manager import PluginEntry, PluginError
from ..services import Services
from . import notifications
from .live import LiveWindow, use_hub
from .markers import mark

STATE_COLORS = {'enabled': 'positive', 'disabled': 'grey-7', 'error': 'negative'}


class PluginRow:
    def __init__(self, view: PluginsView, entry: PluginEntry) -> None:
        self.view = view
        self.name = entry.name
        with ui.card().classes('w-full').props('flat bordered'):
            with ui.row().classes('w-full items-center gap-3 no-wrap'):
                with ui.column().classes('gap-0 grow min-w-0'):
                    with ui.row().classes('items-center gap-2'):
                        ui.label(entry.name).classes('text-base font-medium')
                        ui.label(f'v{entry.version}').classes('text-xs opacity-60')
                        ui.badge(entry.source, color='indigo' if entry.source == 'built-in' else 'teal') \
                            .props('outline')
                    ui.label(entry.description).classes('text-sm opacity-80')
                    self.error = mark(ui.label('').classes('text-xs text-negative'), f'plugin-error:{entry.name}')
                self.state = mark(ui.badge(''), f'plugin-state:{entry.name}')
                self.switch = mark(ui.switch(value=entry.enabled, on_change=self.toggle), f'plugin-switch:{entry.name}')
        self.show(entry.enabled, entry.state, entry.error)

    def show(self, enabled: bool, state: str, error: str) -> None:
        if self.switch.value != enabled:
            self.switch.set_value(enabled)  # toggle() sees it matches the manager and does nothing
        self.state.set_text(state)
        self.state.props(f'color={STATE_COLORS.get(state, "grey")}')
        self.error.set_text(error)
        self.error.set_visibility(bool(error))

    async def toggle(self, event: ui_events.ValueChangeEventArguments) -> None:
        entry = self.view.services.plugins.entries.get(self.name)
        if entry is None or entry.enabled == event.value:
            return  # an update that came from the hub, not from the user
        try:
            await self.view.services.plugins.toggle(self.name, bool(event.value))
        except PluginError as error:
            notifications.notify(self.switch.client, str(error), type='warning')
            self.switch.set_value(entry.enabled)


class PluginsView:
    def __init__(self, services: Services, live: LiveWindow) -> None:
        self.services = services
        self.rows: dict[str, PluginRow] = {}
        with ui.column().classes('w-full gap-3 max-w-4xl') as self.root:
            ui.label('Plugins').classes('text-2xl font-semibold')
            ui.label('Plugins get the first word on every message; when none answers, the model does. '
                     'Install more with pip: they register under the "jarvis.plugins" entry point.') \
                .classes('text-sm opacity-70')
            for entry in services.plugins.list():
                self.rows[entry.name] = PluginRow(self, entry)
        live.on(events.PLUGIN_TOGGLED, self._on_toggled, owner=self.root)

    def _on_toggled(self, toggled: PluginToggled) -> None:
        if (row := self.rows.get(toggled.plugin)) is not None:
            row.show(toggled.enabled, toggled.state or ('enabled' if toggled.enabled else 'disabled'), toggled.error)


def plugins_page(services: Services) -> None:
    PluginsView(services, use_hub(services.hub))
