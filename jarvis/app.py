"""Wires the domain, the HTTP API and the UI onto NiceGUI's app, and runs it."""
from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from nicegui import app, ui

from . import api, framework
from .api.errors import install_error_handlers
from .config import Settings
from .resources import asset, assets_dir
from .services import Services
from .ui.chat_view import chat_page
from .ui.models_view import models_page
from .ui.plugins_view import plugins_page
from .ui.shell import View, build_root
from .ui.system_view import system_page
from .web_guard import GuardPolicy, WebGuard

log = logging.getLogger(__name__)

TITLE = 'J.A.R.V.I.S.'


def views() -> list[View]:
    return [
        View('/', 'System', 'monitor_heart', system_page),
        View('/chat', 'Chat', 'forum', chat_page),
        View('/models', 'Models', 'psychology', models_page),
        View('/plugins', 'Plugins', 'extension', plugins_page),
    ]


def create_app(settings: Settings) -> tuple[Services, Callable[[], None]]:
    """Build the services and register their lifecycle, the API and the assets on NiceGUI's app.

    Returns the services and the root page function for ``ui.run``.
    """
    services = Services(settings)
    app.on_startup(services.start)
    app.on_shutdown(services.stop)
    # Host, Origin, the access token, JSON bodies and the body limit, before every route and socket
    app.add_middleware(WebGuard, policy=GuardPolicy.from_settings(settings))
    api.register(app, services)
    install_error_handlers(app)
    app.add_static_files('/assets', str(assets_dir()))
    ui.add_css(asset('styles.css').read_text(encoding='utf-8'), shared=True)  # read once, for every page
    return services, build_root(services, views())


def run(settings: Settings, *, native: bool, show: bool, native_port: int | None = None) -> None:
    _, root = create_app(settings)
    framework.calm_server_loop()
    if native and sys.platform.startswith('linux'):
        framework.use_qt_backend(min_size=(720, 560))
    ui.run(
        root,
        title=TITLE,
        host=settings.host,
        port=native_port if native else settings.port,
        native=native,
        window_size=(1280, 860) if native else None,
        show=show and not native,
        reload=False,
        favicon=asset('icon.png'),
        show_welcome_message=False,
        uvicorn_logging_level='warning',
        # compressing every frame costs more CPU than it saves on a local connection
        ws_per_message_deflate=False,
    )
