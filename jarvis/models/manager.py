"""Every model the app can use (local GGUF files and an Ollama server), and the one active for chat.

Exactly one model is active; loading another replaces it only once the new one is ready, so a
failed load leaves the previous model active. Loading runs off the event loop.
"""
from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import psutil

from .. import events
from ..config import Settings
from ..events import ModelLoaded, ModelStatus, PullProgress
from ..hub import Hub
from ..storage import SettingsStore
from .base import ChatModel, GenerationOptions, ModelError, ModelInfo
from .default_model import DEFAULT_MODEL_FILE, ensure_default_model
from .gguf import GGUFError, GGUFInfo, read_gguf
from .local import LlamaCppModel
from .ollama import OllamaClient, OllamaError, OllamaUnavailable

log = logging.getLogger(__name__)

ACTIVE_KEY = 'models.active'
OPTIONS_KEY = 'models.options'
MAX_NAME_CHARS = 200


@dataclass
class ModelOptions:
    """The active model's settings; they persist."""

    context_length: int = 4096
    temperature: float = 0.7
    gpu_layers: int = 0
    max_tokens: int = 512
    threads: int = 0  # CPU threads for local models; 0: all cores but one

    def validated(self) -> ModelOptions:
        if not 256 <= int(self.context_length) <= 131_072:
            raise ValueError('The context length must be between 256 and 131072 tokens.')
        if not 0.0 <= float(self.temperature) <= 2.0:
            raise ValueError('The temperature must be between 0 and 2.')
        if not -1 <= int(self.gpu_layers) <= 1000:
            raise ValueError('GPU layers must be between -1 (all) and 1000.')
        if not 1 <= int(self.max_tokens) <= 8192:
            raise ValueError('The answer length must be between 1 and 8192 tokens.')
        if not 0 <= int(self.threads) <= 512:
            raise ValueError('CPU threads must be between 0 (automatic) and 512.')
        return ModelOptions(int(self.context_length), float(self.temperature), int(self.gpu_layers),
                            int(self.max_tokens), int(self.threads))


@dataclass(frozen=True)
class MemoryNeed:
    needed_bytes: int
    ram_free_bytes: int
    vram_free_bytes: int | None  # None: no GPU could be read

    @property
    def fits(self) -> bool:
        return self.needed_bytes <= self.ram_free_bytes or (
            self.vram_free_bytes is not None and self.needed_bytes <= self.vram_free_bytes)


class ModelManager:
    def __init__(self, hub: Hub, settings: Settings, store: SettingsStore) -> None:
        self.hub = hub
        self.settings = settings
        self.store = store
        self.models_dir = settings.models_dir
        self.ollama = OllamaClient(settings.ollama_host)
        self.ollama_status = ''  # why Ollama cannot be used right now ('' when it answers)
        self.options = ModelOptions()
        self._active: ChatModel | None = None
        self._active_info: ModelInfo | None = None
        self._states: dict[str, tuple[str, str]] = {}  # key -> (state, error)
        self._load_lock = asyncio.Lock()

    # --- what the chat uses -----------------------------------------------------------------

    @property
    def active(self) -> ChatModel | None:
        return self._active

    @property
    def active_info(self) -> ModelInfo | None:
        return self._active_info

    @property
    def generation_options(self) -> GenerationOptions:
        return GenerationOptions(max_tokens=self.options.max_tokens, temperature=self.options.temperature)

    # --- start and stop ---------------------------------------------------------------------

    def load_options(self) -> None:
        saved = self.store.get(OPTIONS_KEY) or {}
        known = {f.name for f in fields(ModelOptions)}
        try:
            self.options = ModelOptions(**{k: v for k, v in saved.items() if k in known}).validated()
        except (TypeError, ValueError):
            log.warning('ignoring invalid saved model settings %r', saved)

    async def restore(self) -> None:
        """Load the last active model (or, on a fresh machine, the default one). Runs in the background."""
        saved = self.store.get(ACTIVE_KEY)
        try:
            if saved:
                await self.load(saved['name'], saved.get('source', 'local'))
            elif self.settings.load_default_model:
                await self.install_default()
                await self.load(Path(DEFAULT_MODEL_FILE).stem, 'local')
        except (ModelError, KeyError, TypeError) as error:
            log.warning('could not restore the last model: %s', error)

    async def install_default(self) -> Path:
        return await asyncio.to_thread(ensure_default_model, self.models_dir)

    async def close(self) -> None:
        model, self._active = self._active, None
        if model is not None:
            await asyncio.to_thread(model.close)
        await self.ollama.aclose()

    # --- listing ----------------------------------------------------------------------------

    async def list_models(self) -> list[ModelInfo]:
        local = await asyncio.to_thread(self._scan_local)
        remote: list[ModelInfo] = []
        try:
            remote = await self.ollama.list_models()
            running = {m['name'] for m in await self.ollama.running()}
            for info in remote:
                info.extra['in_memory'] = info.name in running
                info.extra['memory_needed'] = int((info.size_bytes or 0) * 1.15) or None
            self.ollama_status = ''
        except OllamaUnavailable as error:
            self.ollama_status = str(error)
        except OllamaError as error:
            self.ollama_status = f'Ollama answered with an error: {error}'
        models = local + remote
        for info in models:
            state, error = self._states.get(info.key, (info.state, info.error))
            if self._active_info is not None and info.key == self._active_info.key:
                state, error = 'loaded', ''
            info.state, info.error = state, error  # type: ignore[assignment]
        return models

    def _scan_local(self) -> list[ModelInfo]:
        models = []
        for path in sorted(self.models_dir.glob('*.gguf')):
            try:
                gguf = read_gguf(path)
                info = _local_info(path, gguf)
                info.extra['memory_needed'] = estimate_memory(gguf, info.size_bytes or 0, self.options.context_length)
                models.append(info)
            except GGUFError as error:
                models.append(ModelInfo(name=path.stem, source='local', size_bytes=_size(path), state='error',
                                        error=str(error), path=str(path)))
        return models

    # --- loading ----------------------------------------------------------------------------

    async def load(self, name: str, source: str = 'local') -> ModelInfo:
        """Make a model the active one. On failure the previous model stays active."""
        name = validate_name(name)
        if source not in ('local', 'ollama'):
            raise ModelError(f'Unknown model source "{source}" (local or ollama).')
        key = f'{source}:{name}'
        async with self._load_lock:
            self._set_state(key, name, source, 'loading')
            try:
                model, info = await (self._load_local(name) if source == 'local' else self._load_ollama(name))
            except Exception as error:
                message = str(error) if isinstance(error, (ModelError, GGUFError)) else \
                    f'{name} could not be loaded: {type(error).__name__}: {error}'
                self._set_state(key, name, source, 'error', message)
                raise ModelError(message) from error
            await self._activate(model, info)
            return info

    async def activate(self, model: ChatModel, info: ModelInfo) -> None:
        """Make an already loaded model the active one (for embedders; ``load`` is the usual way)."""
        async with self._load_lock:
            await self._activate(model, info)

    async def _activate(self, model: ChatModel, info: ModelInfo) -> None:
        previous, previous_info = self._active, self._active_info
        self._active, self._active_info = model, info
        if previous_info is not None and previous_info.key != info.key:
            self._states.pop(previous_info.key, None)
            self.hub.publish(ModelStatus(model=previous_info.name, source=previous_info.source, state='available'))
        if previous is not None and previous is not model:
            await self._release(previous, previous_info)
        await self.store.set(ACTIVE_KEY, {'name': info.name, 'source': info.source})
        # both events back to back: no window shows the row loaded while its header has no model
        self._set_state(info.key, info.name, info.source, 'loaded')
        self.hub.publish(ModelLoaded(model=info.name, source=info.source, details=_details(info)))
        log.info('model %s (%s) loaded', info.name, info.source)

    async def _load_local(self, name: str) -> tuple[ChatModel, ModelInfo]:
        path = self.local_path(name)
        if not path.is_file():
            raise ModelError(f'The model file {path.name} is missing from {self.models_dir}.')
        gguf = await asyncio.to_thread(read_gguf, path)
        need = self.memory_need_for(gguf, path)
        if need.needed_bytes > need.ram_free_bytes and not need.fits:
            raise ModelError(f'{name} needs about {need.needed_bytes / 2**30:.1f} GiB of memory, '
                             f'but only {need.ram_free_bytes / 2**30:.1f} GiB is free.')
        model = await asyncio.to_thread(LlamaCppModel, path, name=name, context_length=self.options.context_length,
                                        gpu_layers=self.options.gpu_layers, threads=self.options.threads)
        return model, _local_info(path, gguf)

    async def _load_ollama(self, name: str) -> tuple[ChatModel, ModelInfo]:
        # the same num_ctx for loading and chatting: Ollama reloads a model when it changes
        await self.ollama.load(name, num_ctx=self.options.context_length)
        model = await self.ollama.chat_model(name, num_ctx=self.options.context_length)
        info = next((m for m in await self.ollama.list_models() if m.name == name),
                    ModelInfo(name=name, source='ollama'))
        info.context_length = model.details.get('trained_context_length') or info.context_length
        return model, info

    async def _release(self, model: ChatModel, info: ModelInfo | None) -> None:
        await asyncio.to_thread(model.close)
        if info is not None and info.source == 'ollama':
            try:
                await self.ollama.unload(info.name)  # free the server's memory too
            except OllamaError as error:
                log.info('could not unload %s from Ollama: %s', info.name, error)

    async def unload(self) -> None:
        async with self._load_lock:
            model, info = self._active, self._active_info
            self._active, self._active_info = None, None
            if model is not None:
                await self._release(model, info)
            if info is not None:
                self._states.pop(info.key, None)
                self.hub.publish(ModelStatus(model=info.name, source=info.source, state='available'))
            await self.store.set(ACTIVE_KEY, None)
            self.hub.publish(ModelLoaded(model=None))

    def _set_state(self, key: str, name: str, source: str, state: str, error: str = '') -> None:
        self._states[key] = (state, error)
        self.hub.publish(ModelStatus(model=name, source=source, state=state, error=error))

    # --- settings ---------------------------------------------------------------------------

    async def set_options(self, **changes: Any) -> ModelOptions:
        """Change and persist the model settings; context and GPU layers apply at the next load."""
        try:
            options = ModelOptions(**{**asdict(self.options), **changes}).validated()
        except (TypeError, ValueError) as error:
            raise ValueError(str(error)) from error
        self.options = options
        await self.store.set(OPTIONS_KEY, asdict(options))
        return options

    # --- memory -----------------------------------------------------------------------------

    def memory_need_for(self, gguf: GGUFInfo, path: Path) -> MemoryNeed:
        return MemoryNeed(needed_bytes=estimate_memory(gguf, _size(path) or 0, self.options.context_length),
                          ram_free_bytes=psutil.virtual_memory().available,
                          vram_free_bytes=self.vram_free())

    async def memory_need(self, info: ModelInfo) -> MemoryNeed:
        if info.source == 'local' and info.path:
            gguf = await asyncio.to_thread(read_gguf, Path(info.path))
            return self.memory_need_for(gguf, Path(info.path))
        size = info.size_bytes or 0
        return MemoryNeed(needed_bytes=int(size * 1.15), ram_free_bytes=psutil.virtual_memory().available,
                          vram_free_bytes=self.vram_free())

    def vram_free(self) -> int | None:
        """Free GPU memory from the latest metrics sample (None: no GPU could be read)."""
        latest = self.hub.latest(events.SYSTEM_METRICS)
        gpus = latest.data.gpus if latest is not None else []  # type: ignore[union-attr]
        free = [g.memory_total - g.memory_used for g in gpus if g.memory_total is not None and g.memory_used is not None]
        return sum(free) if free else None

    # --- files and the Ollama library -------------------------------------------------------

    def local_path(self, name: str) -> Path:
        name = validate_name(name)
        if '/' in name or ':' in name:
            raise ModelError(f'"{name[:60]}" is not a valid local model name (no path separators).')
        return self.models_dir / (name if name.endswith('.gguf') else f'{name}.gguf')

    async def import_gguf(self, source: str | Path, name: str | None = None) -> ModelInfo:
        """Copy a GGUF file into the models directory after checking its header."""
        source_path = Path(str(source)).expanduser()
        if not source_path.is_file():
            raise ModelError(f'There is no file at {source_path}.')
        gguf = await asyncio.to_thread(read_gguf, source_path)  # GGUFError (a ModelError-like ValueError) if bad
        target = self.local_path(name or source_path.stem)
        if target.exists():
            raise ModelError(f'A model called {target.stem} already exists.')
        partial = target.with_name(target.name + '.partial')
        await asyncio.to_thread(shutil.copyfile, source_path, partial)
        await asyncio.to_thread(partial.replace, target)
        return _local_info(target, gguf)

    async def delete_local(self, name: str) -> None:
        path = self.local_path(name)
        if self._active_info is not None and self._active_info.key == f'local:{path.stem}':
            raise ModelError('Unload the model before deleting it.')
        if not path.is_file():
            raise ModelError(f'There is no local model called {path.stem}.')
        await asyncio.to_thread(path.unlink)

    async def pull(self, name: str) -> AsyncIterator[PullProgress]:
        """Pull from the Ollama library, publishing progress on the hub for every window."""
        name = validate_name(name)
        try:
            async for step in self.ollama.pull(name):
                progress = PullProgress(model=name, status=step.status, completed=step.overall_completed,
                                        total=step.overall_total)
                self.hub.publish(progress)
                yield progress
        except OllamaError as error:
            failed = PullProgress(model=name, status='error', done=True, error=str(error))
            self.hub.publish(failed)
            raise
        done = PullProgress(model=name, status='success', done=True)
        self.hub.publish(done)
        yield done

    async def delete_ollama(self, name: str) -> None:
        name = validate_name(name)
        if self._active_info is not None and self._active_info.key == f'ollama:{name}':
            await self.unload()
        await self.ollama.delete(name)


def validate_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ModelError('A model name is required.')
    name = name.strip()
    if len(name) > MAX_NAME_CHARS:
        raise ModelError('That model name is too long.')
    if '..' in name or '\\' in name or name.startswith('/') or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ModelError(f'"{name[:60]}" is not a valid model name (no path separators, ".." or control characters).')
    return name


def estimate_memory(gguf: GGUFInfo, file_size: int, context_length: int) -> int:
    """Weights plus the KV cache (f16) plus a little working memory."""
    arch = gguf.architecture or ''
    meta = gguf.metadata
    layers = meta.get(f'{arch}.block_count')
    heads = meta.get(f'{arch}.attention.head_count')
    kv_heads = meta.get(f'{arch}.attention.head_count_kv', heads)
    embedding = meta.get(f'{arch}.embedding_length')
    key_length = meta.get(f'{arch}.attention.key_length') or (embedding // heads if embedding and heads else None)
    value_length = meta.get(f'{arch}.attention.value_length') or key_length
    context = min(context_length, gguf.context_length or context_length)
    kv_cache = 0
    if all(isinstance(v, int) for v in (layers, kv_heads, key_length, value_length)):
        kv_cache = context * layers * kv_heads * (key_length + value_length) * 2
    return int(file_size + kv_cache + 64 * 2**20)


def _local_info(path: Path, gguf: GGUFInfo) -> ModelInfo:
    return ModelInfo(name=path.stem, source='local', size_bytes=_size(path), quantization=gguf.quantization,
                     parameters=gguf.parameters, context_length=gguf.context_length, path=str(path),
                     family=gguf.architecture,
                     extra={'title': gguf.name, 'chat_template': gguf.has_chat_template})


def _details(info: ModelInfo) -> dict[str, Any]:
    return {'size_bytes': info.size_bytes, 'quantization': info.quantization, 'parameters': info.parameters,
            'context_length': info.context_length, 'family': info.family}


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None
