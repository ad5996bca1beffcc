"""The app shell: header, navigation, theme and the views as client-side sub pages.

One shell per window. Switching views keeps the window's connection (and its hub
subscription); only the view's own elements are replaced.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from nicegui import background_tasks, ui

from .. import events, framework, tray
from ..events import Alert, ChatMessage, ModelLoaded, Notification, ThemeChanged
from ..preferences import CLOSE_TO_TRAY, CloseToTrayChanged, Preferences
from ..services import Services, StartupError
from . import format as fmt
from . import notifications
from .live import LiveWindow, use_hub
from .live_indicator import LiveIndicator
from .markers import mark

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class View:
    path: str
    title: str
    icon: str
    build: Callable[[Services], None]


def build_root(services: Services, views: list[View]) -> Callable[[], None]:
    """The root page function, given to ``ui.run``."""
    routes = {view.path: _bind(view, services) for view in views}

    async def root() -> None:
        ui.page_title('J.A.R.V.I.S.')
        try:
            await services.wait_ready()
        except StartupError as error:  # the app is quitting; say why instead of an error page
            ui.label(f'J.A.R.V.I.S. could not start. {error}').classes('m-8 text-lg').mark('startup-error')
            return
        ui.colors(primary='#0ea5e9', secondary='#6366f1', accent='#22d3ee')
        dark = ui.dark_mode(services.preferences.dark_mode)
        live = use_hub(services.hub)
        if not services.sampler.is_fresh(live.metrics):
            # without a window the sampler is calm (every 10 s): take a fresh sample for this one right away
            background_tasks.create(services.sampler.current(), name='first sample')
        ui.on_exception(_notify_exception)  # an error in one handler is reported in this window only
        for notice in services.startup_notices():  # published before any window was there to see it
            if isinstance(note := notice.data, Notification):
                notifications.notify(live.client, note.message, type=note.level, timeout=0, close_button='OK',
                                     multi_line=True)

        # open where the window is wide enough to show it beside the page; in a narrow one it waits to be opened
        with ui.left_drawer(bordered=True).props('width=210').classes('px-0') as drawer:
            nav_items = _navigation(views)
            if tray.running():  # without a tray icon nothing could bring a hidden window back: closing quits
                _desktop_preferences(services.preferences, live)
        # one line down to 360 px: narrower gaps and letters on a small screen, the model's name only in its views
        with ui.header(elevated=True).classes('items-center gap-3 max-sm:gap-2 px-4 max-sm:px-3 bg-slate-900 '
                                              'text-white no-wrap'):
            ui.button(icon='menu', on_click=drawer.toggle).props('flat round dense color=white aria-label=Navigation') \
                .tooltip('Navigation')
            ui.image('/assets/icon.png').classes('w-8 h-8 shrink-0')
            ui.label('J.A.R.V.I.S.').classes('text-xl max-sm:text-lg font-semibold tracking-widest max-sm:tracking-wide')
            ui.space()
            ui.label().bind_text_from(live, 'model', backward=fmt.model_caption) \
                .classes('text-sm opacity-80 truncate min-w-0 max-sm:hidden').mark('header-model')  # the Chat view names it too
            mark(LiveIndicator('Connected', 'Offline'), 'connection-indicator')
            theme_button = mark(ui.button(on_click=lambda: services.preferences.set_dark_mode(not dark.value))
                                .props('flat round dense color=white'), 'theme-toggle')
            with theme_button:
                theme_tooltip = ui.tooltip('')
            _show_theme(theme_button, theme_tooltip, dark.value)

        def follow_theme(change: ThemeChanged) -> None:  # this window's choice or another's: all follow at once
            dark.set_value(change.dark)
            _show_theme(theme_button, theme_tooltip, change.dark)

        live.on(events.THEME, follow_theme)

        framework.on_path_changed(lambda path: _highlight(nav_items, path))
        _highlight(nav_items, framework.current_path())
        ui.sub_pages(routes).classes('w-full')
        _window_notifications(live)

    return root


CLOSE_TO_TRAY_LABEL = 'Close to tray'
CLOSE_TO_TRAY_HINT = 'Closing the window hides it to the tray icon, which shows it again or quits the app'


def _desktop_preferences(preferences: Preferences, live: LiveWindow) -> None:
    """How the app behaves on the desktop, below the navigation: closing the window hides it to the tray."""

    async def choose(enabled: bool) -> None:
        if enabled != preferences.close_to_tray:  # not again when this switch only follows another window
            await preferences.set_close_to_tray(enabled)

    ui.separator().classes('my-2')
    with ui.element('div').classes('px-4'):
        # the accessible name starts with the visible label, and says what the switch does
        switch = mark(ui.switch(CLOSE_TO_TRAY_LABEL, value=preferences.close_to_tray,
                                on_change=lambda change: choose(bool(change.value)))
                      .props(f'dense aria-label="{CLOSE_TO_TRAY_LABEL}: {CLOSE_TO_TRAY_HINT.lower()}"'), 'close-to-tray')
        with switch:
            ui.tooltip(CLOSE_TO_TRAY_HINT)

    def follow(change: CloseToTrayChanged) -> None:  # another window's choice: this switch shows it at once
        switch.set_value(change.enabled)

    live.on(CLOSE_TO_TRAY, follow)


def _window_notifications(live: LiveWindow) -> None:
    """Toasts every window shows, whichever view it is on."""
    client = live.client

    def answer_finished(message: ChatMessage) -> None:
        # the Chat view shows the answer itself; elsewhere a toast says it is there
        if message.role != 'assistant' or message.status == 'streaming' or _on_chat(framework.current_path()):
            return
        preview = ' '.join(message.text.split())[:80]
        notifications.notify(client, f'J.A.R.V.I.S. answered: {preview}', type='info', group='chat-answer')

    def notify_all(note: Notification) -> None:
        notifications.notify(client, note.message, type=note.level, timeout=0 if note.level == 'warning' else 5000,
                             close_button='OK' if note.level == 'warning' else None)

    def model_loaded(loaded: ModelLoaded) -> None:
        if loaded.model:
            notifications.notify(client, f'Model loaded: {loaded.model}', type='positive', group='model')

    def alert(alert: Alert) -> None:
        # a critical alert stays until it is dismissed; each alert also stays listed in the Alerts view
        if alert.state == 'firing':
            critical = alert.severity == 'critical'
            notifications.notify(client, f'Alert: {alert.summary}', caption=alert.message, icon='warning',
                                 type='negative' if critical else 'warning', timeout=0 if critical else 15000,
                                 close_button='OK', multi_line=True)
        else:
            notifications.notify(client, f'Resolved: {alert.summary}', caption=alert.message, type='positive',
                                 multi_line=True)

    live.on(events.CHAT_MESSAGE, answer_finished)
    live.on(events.ALERT, alert)
    live.on(events.NOTIFICATION, notify_all)
    live.on(events.MODEL_LOADED, model_loaded)


def _on_chat(path: str) -> bool:
    return (path.split('?')[0].rstrip('/') or '/') == '/chat'


def _bind(view: View, services: Services) -> Callable[[], None]:
    def page() -> None:
        view.build(services)
    return page


def _navigation(views: list[View]) -> dict[str, ui.item]:
    items: dict[str, ui.item] = {}
    with ui.list().classes('w-full pt-2'):
        for view in views:
            with ui.item(on_click=lambda path=view.path: ui.navigate.to(path)) \
                    .classes('rounded-r-full mr-2').mark(f'nav-{view.title.lower()}') as item:
                with ui.item_section().props('avatar'):
                    ui.icon(view.icon)
                with ui.item_section():
                    ui.label(view.title)
            items[view.path] = item
    return items


def _highlight(items: dict[str, ui.item], path: str) -> None:
    current = path.split('?')[0].rstrip('/') or '/'
    for view_path, item in items.items():
        if view_path == current:
            item.props('active active-class="bg-sky-500/20 text-sky-500"')
        else:
            item.props(remove='active')


def _show_theme(button: ui.button, tooltip: ui.tooltip, is_dark: bool | None) -> None:
    """The icon shows what a click switches to; its accessible name and tooltip say it in words."""
    label = 'Switch to light theme' if is_dark else 'Switch to dark theme'
    button.props(f'icon={"light_mode" if is_dark else "dark_mode"} aria-label="{label}"')
    tooltip.text = label


def _notify_exception(error: Exception) -> None:
    if framework.is_window_timeout(error):  # closed or busy: nothing to tell it
        log.debug('a window did not answer in time: %s', error)
        return
    log.error('error in a view: %s', error, exc_info=error)
    ui.notify(f'Something went wrong: {error}', type='negative', group='view-error', **notifications.PLACEMENT)
