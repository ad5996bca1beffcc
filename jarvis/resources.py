"""Where the app's own files (icon, styles) are: in a bundle, an installed wheel or a source tree."""
from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@cache
def assets_dir() -> Path:
    candidates = [
        Path(getattr(sys, '_MEIPASS', '')) / 'assets' if getattr(sys, '_MEIPASS', None) else None,  # PyInstaller
        _PACKAGE / 'assets',  # a wheel: pyproject maps the top-level assets/ into the package
        _PACKAGE.parent / 'assets',  # a source tree or an editable install
    ]
    for candidate in candidates:
        if candidate is not None and (candidate / 'styles.css').is_file():
            return candidate
    raise FileNotFoundError('the assets folder (icon, styles) is missing from this installation')


def asset(name: str) -> Path:
    return assets_dir() / name
