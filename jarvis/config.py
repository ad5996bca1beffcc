"""Where J.A.R.V.I.S. keeps its data and how it serves: one immutable settings object."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import platformdirs

APP_NAME = 'jarvis-desktop'
DEFAULT_HOST = '127.0.0.1'
DEFAULT_PORT = 8080
DEFAULT_OLLAMA_HOST = 'http://127.0.0.1:11434'


def default_data_dir() -> Path:
    """The user's data directory, unless ``JARVIS_DATA_DIR`` points elsewhere."""
    return Path(os.environ.get('JARVIS_DATA_DIR') or platformdirs.user_data_dir(APP_NAME, appauthor=False))


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=default_data_dir)
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    metrics_interval: float = 2.0
    buffer_size: int = 256
    max_message_chars: int = 32_000
    ollama_host: str = field(default_factory=lambda: os.environ.get('OLLAMA_HOST') or DEFAULT_OLLAMA_HOST)
    access_token: str | None = None  # required by every page and /api/ route when set
    # besides the app's own: origins (scheme, host, port) whose pages may use it, and host names it answers
    # to (jarvis.security parses --allow-origin and --allow-host into these)
    allowed_origins: tuple[tuple[str, str, int], ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    load_default_model: bool = True  # restore (or, on a fresh machine, install) the default model at start
    plugin_timeout: float = 10.0
    wikipedia_url: str = field(default_factory=lambda: os.environ.get('JARVIS_WIKIPEDIA_URL', ''))
    # a firing alert goes to the desktop's notification service while no window of the app is visible
    desktop_notifications: bool = True

    @property
    def db_path(self) -> Path:
        return self.data_dir / 'jarvis.db'

    @property
    def models_dir(self) -> Path:
        return Path(os.environ.get('JARVIS_MODELS_DIR') or self.data_dir / 'models')

    def with_changes(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]
