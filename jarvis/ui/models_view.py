"""The Models view: every local GGUF, Ollama model and model of an OpenAI-compatible server, load/unload,
import, pull with progress, the servers added (add, remove, whether each answers), settings.

Built from the model manager alone. The table is a refreshable drawn from one ``ModelCatalog``; it
is redrawn only when the list of models changes; a model's state (loading, loaded, error) and pull
progress update in place from hub events, in every window.
"""
from __future__ import annotations

import logging
from dataclasses import asdict

from nicegui import background_tasks, ui

from .. import events
from ..events import ModelLoaded, ModelStatus, PullProgress
from ..models.base import ModelError, ModelInfo
from ..models.gguf import GGUFError
from ..models.keep_alive import FOREVER
from ..models.manager import ModelCatalog, ModelManager
from ..models.remote import server_of
from ..models.servers import ServerStatus
from ..services import Services
from . import format as fmt
from . import notifications
from .live import LiveWindow, use_hub
from .markers import mark

log = logging.getLogger(__name__)

STATE_COLORS = {'available': 'grey-7', 'standby': 'blue-grey-5', 'loading': 'info', 'loaded': 'positive',
                'error': 'negative'}
STATE_HINTS = {'standby': 'Not loaded: loads with the next message that needs it.'}
# the keep-alive choices offered (seconds; -1: forever); a value set elsewhere is offered too
KEEP_ALIVE_CHOICES = (60, 300, 600, 1800, 3600, 4 * 3600, FOREVER)


COLUMNS = ('Model', 'Source', 'Size', 'Quantisation', 'Parameters', 'Context', 'State', '')
GRID = 'minmax(14rem, 2fr) repeat(5, minmax(5rem, 1fr)) minmax(6rem, 1fr) auto'


class ModelRow:
    """One row of the models table (its cells take part in the table's grid)."""

    def __init__(self, view: ModelsView, info: ModelInfo) -> None:
        self.view = view
        self.info = info  # the manager's snapshot the row was drawn from; the row's state lives in .state
        self.state: str = info.state
        with ui.element('div').classes('contents') as self.row:
            mark(self.row, f'model-row:{info.key}')
            with ui.column().classes('gap-0 min-w-0 py-2'):
                ui.label(info.name).classes('text-sm font-medium break-all')
                self.memory = mark(ui.label(fmt.memory_need(info.memory)).classes('text-xs opacity-60'),
                                   'model-memory')
                self.error = mark(ui.label('').classes('text-xs text-negative'), 'model-error')
            server = server_of(info.source)
            badge = ui.badge(server or ('local' if info.source == 'local' else 'Ollama'),
                             color='deep-purple' if server else 'indigo' if info.source == 'local' else 'teal') \
                .props('outline').classes('self-center w-fit')
            if server:
                badge.tooltip(f'On the server {server}')
            for value in (fmt.bytes_(info.size_bytes) if info.size_bytes else '–', info.quantization or '–',
                          info.parameters or '–', f'{info.context_length:,}' if info.context_length else '–'):
                ui.label(value).classes('text-sm self-center')
            with ui.row().classes('items-center gap-1 no-wrap self-center'):
                self.spinner = ui.spinner(size='sm')
                self.state_badge = mark(ui.badge(''), 'model-state')
                with self.state_badge:
                    self.state_hint = ui.tooltip('')
            with ui.row().classes('items-center gap-1 no-wrap self-center'):
                self.load_button = mark(ui.button('Load', icon='play_arrow', on_click=self.load)
                                        .props('unelevated dense'), 'model-load')
                self.unload_button = mark(ui.button('Unload', icon='eject', on_click=self.view.unload)
                                          .props('outline dense'), 'model-unload')
                if not server:  # a server's models are the server's to delete
                    delete = mark(ui.button(icon='delete', on_click=self.delete).props('flat round dense')
                                  .tooltip('Delete'), 'model-delete')
                    delete.props['aria-label'] = f'Delete {info.name}'  # a name may hold quotes: not in a props string
        self.show_state(info.state, info.error)

    def show_state(self, state: str, error: str = '') -> None:
        self.state = state
        self.state_badge.set_text(state)
        self.state_badge.props(f'color={STATE_COLORS.get(state, "grey")}')
        self.state_hint.set_text(STATE_HINTS.get(state, ''))
        self.spinner.set_visibility(state == 'loading')
        self.load_button.set_visibility(state in ('available', 'standby', 'error'))
        self.unload_button.set_visibility(state == 'loaded')
        self.error.set_text(error)
        self.error.set_visibility(bool(error))

    async def load(self) -> None:
        await self.view.load(self.info)

    async def delete(self) -> None:
        await self.view.delete(self.info)


class ModelsView:
    def __init__(self, models: ModelManager, live: LiveWindow) -> None:
        self.models = models
        self.live = live
        self.rows: dict[str, ModelRow] = {}
        with ui.column().classes('w-full gap-4 max-w-5xl') as self.root:
            with ui.row().classes('w-full items-center'):
                ui.label('Models').classes('text-2xl font-semibold')
                ui.space()
                mark(ui.button('Refresh', icon='refresh', on_click=self.refresh).props('flat'), 'models-refresh')
                mark(ui.button('Import GGUF…', icon='upload_file', on_click=self.import_dialog).props('flat'),
                     'models-import')
            mark(ui.label('').classes('text-sm'), 'active-model').bind_text_from(live, 'model',
                                                                                  backward=fmt.model_caption)
            self.resources = mark(ui.label('').classes('text-xs opacity-70'), 'memory-free')
            with ui.card().classes('w-full overflow-x-auto'):
                self.list = mark(ui.column().classes('w-full gap-2'), 'model-list')
                with self.list:
                    self.table(None)
            self._build_ollama()
            self._build_servers()
            self._build_settings()
        live.on(events.MODEL_STATUS, self._on_status, owner=self.root)
        live.on(events.MODEL_LOADED, self._on_loaded, owner=self.root)
        live.on(events.PULL_PROGRESS, self._on_pull, owner=self.root)
        background_tasks.create(self.refresh(), name='models: list')

    # --- building ---------------------------------------------------------------------------

    def _build_ollama(self) -> None:
        with ui.card().classes('w-full'):
            with ui.row().classes('w-full items-center gap-2'):
                ui.label('Ollama').classes('text-base font-medium')
                self.ollama_status = mark(ui.label('').classes('text-sm opacity-80'), 'ollama-status')
                ui.space()
                self.retry = mark(ui.button('Retry', icon='refresh', on_click=self.refresh).props('flat dense'),
                                  'ollama-retry')
            with ui.row().classes('w-full items-end gap-2 no-wrap'):
                self.pull_name = mark(ui.input('Pull a model by name', placeholder='e.g. llama3.2:1b')
                                      .props('dense outlined').classes('grow'), 'pull-name')
                self.pull_name.on('keydown.enter', self.pull)
                mark(ui.button('Pull', icon='download', on_click=self.pull).props('unelevated'), 'pull-button')
            self.pull_status = mark(ui.label('').classes('text-xs opacity-80'), 'pull-status')
            self.pull_bar = mark(ui.linear_progress(value=0, show_value=False, size='8px').props('rounded'),
                                 'pull-progress')
            self.pull_bar.set_visibility(False)

    def _build_servers(self) -> None:
        with ui.card().classes('w-full'):
            ui.label('OpenAI-compatible servers').classes('text-base font-medium')
            ui.label('vLLM, llama.cpp\'s server, LM Studio, Ollama\'s /v1 or a hosted API: their models list above, '
                     'with the server as source. An API key is kept in a file only you can read.') \
                .classes('text-xs opacity-70')
            with ui.row().classes('w-full items-end gap-2 no-wrap'):
                self.server_url = mark(ui.input('Address', placeholder='http://gpu-box:8000/v1')
                                       .props('dense outlined').classes('grow'), 'server-url')
                self.server_key = mark(ui.input('API key (optional)', password=True)
                                       .props('dense outlined autocomplete=off').classes('w-56'), 'server-key')
                self.server_name = mark(ui.input('Name (optional)').props('dense outlined').classes('w-40'),
                                        'server-name')
                self.server_url.on('keydown.enter', self.add_server)
                mark(ui.button('Add', icon='add', on_click=self.add_server).props('unelevated'), 'server-add')
            self.server_list = mark(ui.column().classes('w-full gap-1'), 'server-list')
            with self.server_list:
                self.servers_table(())

    @ui.refreshable_method
    def servers_table(self, servers: tuple[ServerStatus, ...]) -> None:
        for server in servers:
            with mark(ui.row().classes('w-full items-center gap-2 no-wrap'), f'server-row:{server.name}'):
                ui.label(server.name).classes('text-sm font-medium')
                ui.label(server.url).classes('text-xs opacity-70 break-all')
                if server.has_key:
                    ui.badge('key set', color='grey-7').props('outline')
                status = f'answers, {len(server.models)} model{"s" if len(server.models) != 1 else ""}' \
                    if server.reachable else server.error
                mark(ui.label(status).classes('text-xs grow ' + ('text-negative' if server.error else 'opacity-80')),
                     'server-status')
                remove = mark(ui.button(icon='delete', on_click=lambda name=server.name: self.remove_server(name))
                              .props('flat round dense').tooltip('Remove'), 'server-remove')
                remove.props['aria-label'] = f'Remove the server {server.name}'

    def _build_settings(self) -> None:
        options = self.models.options
        with ui.card().classes('w-full'):
            ui.label('Settings').classes('text-base font-medium')
            ui.label('Context length, GPU layers and CPU threads apply to the next load. The model loads with the '
                     'first message that needs it (or when the Chat view opens, with "Preload" on) and is unloaded '
                     'after the keep-alive without use; the next message loads it again.') \
                .classes('text-xs opacity-70')
            with ui.row().classes('w-full items-center gap-4'):
                self.context = mark(ui.number('Context length (tokens)', value=options.context_length, min=256,
                                              max=131072, step=256, precision=0).props('dense outlined')
                                    .classes('w-48'), 'setting-context')
                self.gpu_layers = mark(ui.number('GPU layers (-1: all)', value=options.gpu_layers, min=-1, max=1000,
                                                 precision=0).props('dense outlined').classes('w-40'),
                                       'setting-gpu-layers')
                self.max_tokens = mark(ui.number('Answer length (tokens)', value=options.max_tokens, min=1, max=8192,
                                                 precision=0).props('dense outlined').classes('w-48'),
                                       'setting-max-tokens')
                self.threads = mark(ui.number('CPU threads (0: auto)', value=options.threads, min=0, max=512,
                                              precision=0).props('dense outlined').classes('w-40'),
                                    'setting-threads')
                choices = {seconds: fmt.keep_alive(seconds)
                           for seconds in sorted({*KEEP_ALIVE_CHOICES, options.keep_alive_s}, key=_forever_last)}
                self.keep_alive = mark(ui.select(choices, value=options.keep_alive_s, label='Unload after no use for')
                                       .props('dense outlined').classes('w-48'), 'setting-keep-alive')
                self.preload = mark(ui.switch('Preload when the chat opens', value=options.preload),
                                    'setting-preload')
                with ui.column().classes('gap-0 w-56'):
                    self.temperature_label = ui.label(f'Temperature {options.temperature:.2f}').classes('text-xs')
                    self.temperature = mark(ui.slider(min=0, max=2, step=0.05, value=options.temperature),
                                            'setting-temperature')
                    self.temperature.on_value_change(
                        lambda e: self.temperature_label.set_text(f'Temperature {e.value:.2f}'))
            # the default for conversations; a conversation can have its own (its menu, "Answering")
            self.system_prompt = mark(ui.textarea('System prompt (empty: J.A.R.V.I.S.\'s own)',
                                                  value=options.system_prompt)
                                      .props('dense outlined autogrow maxlength=4000').classes('w-full'),
                                      'setting-system-prompt')
            mark(ui.button('Save', icon='save', on_click=self.save_settings).props('unelevated'), 'settings-save')

    # --- listing ----------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Ask the manager for the catalog, then redraw the table and the status lines from it."""
        catalog = await self.models.catalog()
        if self.root.is_deleted:
            return
        self.table.refresh(catalog)
        self.servers_table.refresh(catalog.servers)
        self.ollama_status.set_text(catalog.ollama_status or f'running at {catalog.ollama_url}')
        self.retry.set_visibility(bool(catalog.ollama_status))
        self.resources.set_text(fmt.free_memory(catalog.ram_free_bytes, catalog.vram_free_bytes))

    @ui.refreshable_method
    def table(self, catalog: ModelCatalog | None) -> None:
        self.rows = {}
        if catalog is None:
            ui.spinner().classes('self-center')  # the first catalog is on its way
        elif not catalog.models:
            ui.label(f'No models yet. Put GGUF files into {catalog.models_dir}, import one, '
                     'or pull one from Ollama.').classes('text-sm opacity-70')
        else:
            with ui.element('div').classes('w-full grid gap-x-4 items-start').style(f'grid-template-columns: {GRID}'):
                for title in COLUMNS:
                    ui.label(title).classes('text-xs uppercase tracking-wide opacity-60 border-b pb-1')
                for info in catalog.models:
                    self.rows[info.key] = ModelRow(self, info)

    # --- actions ----------------------------------------------------------------------------

    async def load(self, info: ModelInfo) -> None:
        try:
            await self.models.load(info.name, info.source)
        except ModelError as error:
            notifications.notify(self.root.client, str(error), type='negative', multi_line=True)

    async def unload(self) -> None:
        await self.models.unload()

    async def delete(self, info: ModelInfo) -> None:
        with ui.dialog() as dialog, ui.card():
            where = 'from disk' if info.source == 'local' else 'from Ollama'
            ui.label(f'Delete {info.name} {where}?')
            with ui.row().classes('w-full justify-end'):
                ui.button('Cancel', on_click=lambda: dialog.submit(False)).props('flat')
                mark(ui.button('Delete', color='negative', on_click=lambda: dialog.submit(True)), 'model-delete-confirm')
        if not await dialog:
            return
        try:
            if info.source == 'local':
                await self.models.delete_local(info.name)
            else:
                await self.models.delete_ollama(info.name)
        except ModelError as error:
            notifications.notify(self.root.client, str(error), type='negative')
            return
        await self.refresh()

    async def add_server(self) -> None:
        url = (self.server_url.value or '').strip()
        if not url:
            notifications.notify(self.root.client, 'Type the server\'s address, e.g. http://gpu-box:8000/v1.',
                                 type='warning')
            return
        try:
            status = await self.models.add_server(url, self.server_key.value or None,
                                                  (self.server_name.value or '').strip() or None)
        except ModelError as error:  # an address, name or key that cannot be used; a keys file not writable
            notifications.notify(self.root.client, str(error), type='negative', multi_line=True)
            return
        for field in (self.server_url, self.server_key, self.server_name):
            field.set_value('')  # the key leaves the page as soon as it is stored
        if status.reachable:
            notifications.notify(self.root.client, f'Added {status.name}.', type='positive')
        else:
            notifications.notify(self.root.client, f'Added {status.name}, but: {status.error}', type='warning',
                                 multi_line=True)
        await self.refresh()

    async def remove_server(self, name: str) -> None:
        try:
            await self.models.remove_server(name)
        except ModelError as error:
            notifications.notify(self.root.client, str(error), type='negative')
        await self.refresh()

    async def pull(self) -> None:
        name = (self.pull_name.value or '').strip()
        if not name:
            notifications.notify(self.root.client, 'Type the name of an Ollama model, e.g. llama3.2:1b.',
                                 type='warning')
            return
        try:
            async for _ in self.models.pull(name):
                pass  # progress reaches every window through the hub
        except ModelError as error:
            notifications.notify(self.root.client, f'Pull of {name} failed: {error}', type='negative')
            return
        self.pull_name.set_value('')

    async def import_dialog(self) -> None:
        with ui.dialog() as dialog, ui.card().classes('min-w-96'):
            ui.label('Import a GGUF model').classes('text-lg')
            path = mark(ui.input('Path of the .gguf file').props('outlined autofocus').classes('w-full'),
                        'import-path')
            name = mark(ui.input('Name (optional)').props('outlined').classes('w-full'), 'import-name')
            with ui.row().classes('w-full justify-end'):
                ui.button('Cancel', on_click=lambda: dialog.submit(None)).props('flat')
                mark(ui.button('Import', on_click=lambda: dialog.submit((path.value, name.value))), 'import-confirm')
        result = await dialog
        if not result:
            return
        source, target = result
        if not (source or '').strip():
            notifications.notify(self.root.client, 'Give the path of a .gguf file.', type='warning')
            return
        try:
            info = await self.models.import_gguf(source.strip(), (target or '').strip() or None)
        except (ModelError, GGUFError) as error:
            notifications.notify(self.root.client, str(error), type='negative', multi_line=True)
            return
        notifications.notify(self.root.client, f'Imported {info.name}.', type='positive')
        await self.refresh()

    async def save_settings(self) -> None:
        try:
            options = await self.models.set_options(
                context_length=int(self.context.value or 0), gpu_layers=int(self.gpu_layers.value or 0),
                max_tokens=int(self.max_tokens.value or 0), temperature=float(self.temperature.value),
                threads=int(self.threads.value or 0), keep_alive_s=int(self.keep_alive.value),
                preload=bool(self.preload.value), system_prompt=str(self.system_prompt.value or ''))
        except (ValueError, TypeError) as error:
            notifications.notify(self.root.client, str(error), type='warning')
            return
        notifications.notify(self.root.client, 'Model settings saved.', type='positive')
        log.debug('model settings: %s', asdict(options))

    # --- hub events -------------------------------------------------------------------------

    def _on_status(self, status: ModelStatus) -> None:
        row = self.rows.get(f'{status.source}:{status.model}')
        if row is not None:
            row.show_state(status.state, status.error)

    def _on_loaded(self, loaded: ModelLoaded) -> None:
        for key, row in self.rows.items():
            if loaded.model and key == f'{loaded.source}:{loaded.model}':
                row.show_state('loaded')
            elif row.state == 'loaded':
                row.show_state('available')

    def _on_pull(self, progress: PullProgress) -> None:
        self.pull_bar.set_visibility(not progress.done)
        if progress.total:
            self.pull_bar.set_value((progress.completed or 0) / progress.total)
        if progress.error:
            self.pull_status.set_text(f'{progress.model}: {progress.error}')
        elif progress.done:
            self.pull_status.set_text(f'{progress.model}: pulled')
            background_tasks.create(self.refresh(), name='models: list after pull')
        else:
            done = f' {fmt.bytes_(progress.completed)} / {fmt.bytes_(progress.total)}' if progress.total else ''
            self.pull_status.set_text(f'{progress.model}: {progress.status}{done}')


def _forever_last(seconds: int) -> float:
    return float('inf') if seconds == FOREVER else seconds


def models_page(services: Services) -> None:
    ModelsView(services.models, use_hub(services.hub))
