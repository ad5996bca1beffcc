"""Model names: the one check for every name the app accepts, before any file or request is touched."""
from __future__ import annotations

import re

from .base import ModelError

MAX_NAME_CHARS = 200
# what Ollama accepts: "llama3.2:3b", "namespace/model:tag", "model@sha256:..."
_OLLAMA_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9._:/@-]*')
# a local model is a file in the models folder: a name with a separator, a drive (":") or ".."
# could reach outside it
_LOCAL_FORBIDDEN = ('/', '\\', ':', '..')


class InvalidModelName(ModelError):
    """The name can name no model; the message says why."""


def validate_name(name: object, source: str | None = None) -> str:
    """Return ``name`` unchanged if it can name a model of ``source`` ('local', 'ollama' or None: either)."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidModelName('A model name is required.')
    if len(name) > MAX_NAME_CHARS:
        raise InvalidModelName(f'That model name is too long ({len(name)} characters, at most {MAX_NAME_CHARS}).')
    shown = name[:60]
    if any(not c.isprintable() for c in name) or name != name.strip():
        raise InvalidModelName(f'{shown!r} is not a valid model name (control characters or spaces around it).')
    if source == 'local' and any(part in name for part in _LOCAL_FORBIDDEN):
        raise InvalidModelName(f'"{shown}" is not a valid local model name (no path separators, ":" or "..").')
    if source == 'ollama' and not _OLLAMA_NAME.fullmatch(name):
        raise InvalidModelName(f'"{shown}" is not a valid model name for Ollama: use letters, digits and . _ - : / @ '
                               '(for example llama3.2:3b or namespace/model:tag).')
    if source is None and ('..' in name or '\\' in name or name.startswith('/')):
        raise InvalidModelName(f'"{shown}" is not a valid model name (no path separators or "..").')
    return name
