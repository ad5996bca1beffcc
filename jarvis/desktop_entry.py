"""Desktop integration on Linux (XDG): a launcher with the app's icon, and starting with the session.

``jarvis --install-desktop-entry`` writes ``applications/jarvis-desktop.desktop`` and the icon under
``$XDG_DATA_HOME`` (default ``~/.local/share``); ``--uninstall-desktop-entry`` removes them (and the
autostart entry). ``--autostart on`` writes ``autostart/jarvis-desktop.desktop`` under ``$XDG_CONFIG_HOME``
(default ``~/.config``), which desktops start with the session; ``--autostart off`` removes it. Nothing is
written unless asked: starting with the session is off by default.
"""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .resources import asset

APP_ID = 'jarvis-desktop'
ICON_SIZE = '256x256'  # assets/icon.png


@dataclass(frozen=True)
class Locations:
    entry: Path
    icon_png: Path
    icon_svg: Path
    autostart: Path

    @classmethod
    def from_environment(cls) -> Locations:
        data = _xdg('XDG_DATA_HOME', Path.home() / '.local' / 'share')
        config = _xdg('XDG_CONFIG_HOME', Path.home() / '.config')
        icons = data / 'icons' / 'hicolor'
        return cls(entry=data / 'applications' / f'{APP_ID}.desktop',
                   icon_png=icons / ICON_SIZE / 'apps' / f'{APP_ID}.png',
                   icon_svg=icons / 'scalable' / 'apps' / f'{APP_ID}.svg',
                   autostart=config / 'autostart' / f'{APP_ID}.desktop')


def _xdg(variable: str, default: Path) -> Path:
    value = os.environ.get(variable, '')
    return Path(value) if value and Path(value).is_absolute() else default  # the spec: relative ones are ignored


def launch_command() -> list[str]:
    """How a launcher starts this installation: the bundle, the ``jarvis`` script beside this Python, or
    this Python with ``-m jarvis``."""
    if getattr(sys, 'frozen', False):
        return [sys.executable]
    script = Path(sys.executable).with_name('jarvis')
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, '-m', 'jarvis']


def exec_line(command: list[str]) -> str:
    """The Exec= value: each argument quoted as the Desktop Entry spec asks when it holds a reserved character."""
    reserved = set(' \t\n"\'\\><~|&;$*?#()`')
    quoted = []
    for argument in command:
        if any(char in reserved for char in argument):
            escaped = ''.join(f'\\{c}' if c in '"`$\\' else c for c in argument)
            quoted.append(f'"{escaped}"')
        else:
            quoted.append(argument)
    return ' '.join(quoted).replace('%', '%%')


def entry_text(command: list[str], *, autostart: bool = False) -> str:
    lines = [
        '[Desktop Entry]',
        'Type=Application',
        'Version=1.4',
        'Name=J.A.R.V.I.S.',
        'GenericName=Desktop assistant',
        'Comment=A live system monitor and a chat with a local language model',
        f'Exec={exec_line(command)}',
        f'Icon={APP_ID}',
        'Terminal=false',
        'Categories=System;Monitor;',
        'Keywords=assistant;chat;monitor;llm;',
        'StartupNotify=true',
        f'StartupWMClass={APP_ID}',
        f'X-Jarvis-Version={__version__}',
    ]
    if autostart:
        lines.append('X-GNOME-Autostart-enabled=true')
    return '\n'.join(lines) + '\n'


def install(locations: Locations | None = None) -> list[Path]:
    """Write the launcher and its icon; returns what was written."""
    where = locations or Locations.from_environment()
    _write(where.entry, entry_text(launch_command()))
    where.icon_png.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(asset('icon.png'), where.icon_png)
    where.icon_svg.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(asset('icon.svg'), where.icon_svg)
    return [where.entry, where.icon_png, where.icon_svg]


def uninstall(locations: Locations | None = None) -> list[Path]:
    """Remove the launcher, the icon and the autostart entry; returns what was removed."""
    where = locations or Locations.from_environment()
    removed = []
    for path in (where.entry, where.icon_png, where.icon_svg, where.autostart):
        if path.exists():
            path.unlink()
            removed.append(path)
    return removed


def set_autostart(enabled: bool, locations: Locations | None = None) -> Path:
    """Start with the session (write the XDG autostart entry) or not (remove it); returns its path."""
    where = locations or Locations.from_environment()
    if enabled:
        _write(where.autostart, entry_text(launch_command(), autostart=True))
    elif where.autostart.exists():
        where.autostart.unlink()
    return where.autostart


def autostart_enabled(locations: Locations | None = None) -> bool:
    return (locations or Locations.from_environment()).autostart.exists()


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix('.tmp')
    temporary.write_text(text, encoding='utf-8')
    temporary.replace(path)
