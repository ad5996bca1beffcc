"""Every model the app can use (local GGUF files, an Ollama server, OpenAI-compatible servers), and the one
active for chat.

At most one model is loaded; loading another replaces it only once the new one is ready, so a
failed load leaves the previous model active. Loading runs off the event loop. Nothing is loaded at
start: the chat's model (the last one used, else the default Gemma) is on standby and loads with
the first message that needs it (``use``), or when the Chat view opens with "preload" on, and it is
unloaded again after the keep-alive without use. Views and routes use this class's methods and the
value objects they return (``ModelCatalog``, ``ModelInfo``, ``MemoryNeed``); nothing outside it
changes its state.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Protocol

from .. import events
from ..config import Settings
from ..events import ModelLoaded, ModelStatus, PullProgress, SystemMetrics
from ..hub import Hub
from ..metrics.system import free_memory_bytes
from ..storage import SettingsStore
from .base import ChatModel, GenerationOptions, MemoryNeed, ModelError, ModelInfo, ModelLoadError
from .default_model import DEFAULT_MODEL_FILE, default_model_available, default_model_path, ensure_default_model
from .fit import HOLDERS_NAMED, MemoryHolder, plan_offload
from .gguf import GGUFError, GGUFInfo, read_gguf
from .keep_alive import FOREVER, Clock, KeepAlive
from .local import LlamaCppModel
from .names import validate_name
from .ollama import OllamaClient, OllamaError, OllamaUnavailable
from .remote import RemoteChatModel, RemoteModel, ServerError, list_server_models, server_of, server_source
from .servers import KEYS_FILE, Server, ServerRegistry, ServerStatus

log = logging.getLogger(__name__)

ACTIVE_KEY = 'models.active'
OPTIONS_KEY = 'models.options'
DEFAULT_MODEL = Path(DEFAULT_MODEL_FILE).stem
# Ollama reports a model's file size; running it takes about this much more (KV cache, buffers)
OLLAMA_MEMORY_FACTOR = 1.15
NO_MODEL_HINT = 'Open Models and load one (the default Gemma model needs no download).'
NO_DEFAULT_HINT = 'Open Models and load, import or pull one.'
DEFAULT_KEEP_ALIVE_S = 600  # as long as a model stays loaded without use (Ollama's default is 5 min)
MAX_KEEP_ALIVE_S = 7 * 24 * 3600
MAX_SYSTEM_PROMPT = 4000  # characters

# Called with a model about to be released (unloaded, replaced, or at shutdown), before it is closed:
# whoever still uses it lets go (the assistant stops the answers it is streaming).
ReleaseListener = Callable[[ChatModel], Awaitable[None]]


class MachineMemory(Protocol):
    """The live readings the fit check needs (the system monitor offers them)."""

    async def current(self) -> SystemMetrics: ...

    async def top_processes(self, sort: str, limit: int) -> Any: ...  # a ProcessSnapshot


@dataclass
class ModelOptions:
    """The active model's settings; they persist."""

    context_length: int = 4096
    temperature: float = 0.7
    gpu_layers: int = 0
    max_tokens: int = 512
    threads: int = 0  # CPU threads for local models; 0: automatic (local.default_threads)
    keep_alive_s: int = DEFAULT_KEEP_ALIVE_S  # unload after this long without use; -1 (FOREVER): never
    preload: bool = False  # load the model when the Chat view opens, not with the first message
    system_prompt: str = ''  # the default for conversations without their own; '': the assistant's own

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
        if not (int(self.keep_alive_s) == FOREVER or 0 <= int(self.keep_alive_s) <= MAX_KEEP_ALIVE_S):
            raise ValueError(f'The keep-alive must be between 0 and {MAX_KEEP_ALIVE_S} seconds (7 days), '
                             f'or {FOREVER} to keep the model loaded.')
        if not isinstance(self.preload, bool):
            raise ValueError('Preload is true or false.')
        if not isinstance(self.system_prompt, str) or len(self.system_prompt) > MAX_SYSTEM_PROMPT:
            raise ValueError(f'The system prompt is text of at most {MAX_SYSTEM_PROMPT} characters.')
        return ModelOptions(context_length=int(self.context_length), temperature=float(self.temperature),
                            gpu_layers=int(self.gpu_layers), max_tokens=int(self.max_tokens),
                            threads=int(self.threads), keep_alive_s=int(self.keep_alive_s), preload=self.preload,
                            system_prompt=self.system_prompt.strip())

    @property
    def keep_alive(self) -> float | None:
        """Seconds without use before the model is unloaded; None: never."""
        return None if self.keep_alive_s == FOREVER else float(self.keep_alive_s)


@dataclass(frozen=True)
class ModelCatalog:
    """Every model the app can use now, the active one, and whether Ollama answers (one snapshot)."""

    models: list[ModelInfo]
    active: ModelInfo | None
    ollama_status: str  # why Ollama cannot be used right now; '' when it answers
    ollama_url: str
    models_dir: str
    ram_free_bytes: int | None
    vram_free_bytes: int | None  # None: no GPU could be read
    servers: tuple[ServerStatus, ...] = ()  # the OpenAI-compatible servers added, whether each answers

    def to_dict(self) -> dict[str, Any]:
        return {'models': [m.to_dict() for m in self.models],
                'active': self.active.to_dict() if self.active else None,
                'ollama': self.ollama_status or 'ok', 'ollama_url': self.ollama_url,
                'ram_free_bytes': self.ram_free_bytes, 'vram_free_bytes': self.vram_free_bytes,
                'servers': [server.to_dict() for server in self.servers]}


class ModelManager:
    def __init__(self, hub: Hub, settings: Settings, store: SettingsStore, clock: Clock | None = None,
                 machine: MachineMemory | None = None) -> None:
        self.hub = hub
        self._machine = machine  # fresh GPU readings and the processes that hold memory
        self.settings = settings
        self.store = store
        self.models_dir = settings.models_dir
        self.options = ModelOptions()
        self._ollama = OllamaClient(settings.ollama_host)
        self._servers = ServerRegistry(store, settings.data_dir / KEYS_FILE)  # OpenAI-compatible servers
        self._active: ChatModel | None = None
        self._active_info: ModelInfo | None = None
        self._states: dict[str, tuple[str, str]] = {}  # key -> (state, error) set by loads and failures
        self._default_problem = ''  # why the default model could not be installed ('' while it can)
        self._release_listeners: list[ReleaseListener] = []
        self._headers: dict[Path, tuple[tuple[int, int], GGUFInfo | GGUFError]] = {}  # read once per file version
        self._load_lock = asyncio.Lock()
        # the chat's model while none is loaded: (name, source) of the one the next message loads
        self._standby: tuple[str, str] | None = None
        self._loading: tuple[str, str] | None = None  # the model being loaded now
        self._preload: asyncio.Task | None = None
        self.keep_alive = KeepAlive(self._expire, clock, self.options.keep_alive)

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

    @property
    def system_prompt(self) -> str:
        """The default system prompt from the settings ('': the assistant's own)."""
        return self.options.system_prompt

    @property
    def no_model_hint(self) -> str:
        """What to do while no model is active; it promises the default model only while it can be had."""
        if self._default_problem:  # it says what to do
            return self._default_problem
        return NO_MODEL_HINT if default_model_available(self.models_dir) else NO_DEFAULT_HINT

    @property
    def standby(self) -> tuple[str, str] | None:
        """(name, source) of the model that the next message loads while none is loaded; None when none does."""
        return self._standby

    def on_release(self, listener: ReleaseListener) -> None:
        """Call ``listener(model)`` before a model is released, so that whoever uses it can let go first."""
        self._release_listeners.append(listener)

    @asynccontextmanager
    async def use(self, prefer: str | None = None) -> AsyncIterator[ChatModel | None]:
        """The model to answer with, held for one answer.

        ``prefer`` ("source:name", a conversation's own model) is loaded first when another one is
        active. Otherwise, while none is loaded, the model on standby (the last one used, else the
        default) is loaded first; a load already under way (another message, the Load button, a
        preload) is waited for. The keep-alive never unloads a model that is held. Yields None when
        no model is loaded and none loads by itself; raises ``ModelLoadError`` when the model cannot
        be loaded.
        """
        async with self._load_lock:
            if prefer is not None and (self._active_info is None or self._active_info.key != prefer):
                source, name = _split_key(prefer)
                try:
                    await self._load_locked(validate_name(name, source), source)
                except (ModelError, ValueError) as error:
                    raise ModelLoadError(f'This conversation answers with {name}, which cannot be loaded: '
                                         f'{error}') from error
            elif self._active is None and self._standby is not None:
                name, source = self._standby
                try:
                    await self._load_locked(name, source)
                except ModelError as error:
                    raise ModelLoadError(str(error)) from error
            model = self._active
            if model is not None:
                self.keep_alive.begin()  # under the lock: an expiring keep-alive sees it
        try:
            yield model
        finally:
            if model is not None:
                self.keep_alive.end()

    def preload(self) -> None:
        """Load the model on standby in the background, if the "preload" setting is on (the Chat view
        opened): the first message then finds it loaded."""
        if not self.options.preload or self._active is not None or self._standby is None or self._loading:
            return
        if self._preload is not None and not self._preload.done():
            return
        self._preload = asyncio.get_running_loop().create_task(self._load_standby(), name='preload model')

    async def _load_standby(self) -> None:
        try:
            async with self.use():
                pass
        except ModelError as error:  # the Models view and the chat say why; the next message tries again
            log.warning('could not preload the model: %s', error)

    # --- start and stop ---------------------------------------------------------------------

    def load_options(self) -> None:
        saved = self.store.get(OPTIONS_KEY) or {}
        known = {f.name for f in fields(ModelOptions)}
        try:
            self.options = ModelOptions(**{k: v for k, v in saved.items() if k in known}).validated()
        except (TypeError, ValueError, AttributeError):
            log.warning('ignoring invalid saved model settings %r', saved)
        self.keep_alive.set_seconds(self.options.keep_alive)

    async def restore(self) -> None:
        """Put the chat's model on standby: the last one used, else (also when its file is gone) the
        default one, which is assembled now if it is missing, so that the first message does not wait
        for that. Nothing is loaded: the first message that needs the model loads it. Runs in the
        background at start.

        With ``load_default_model`` off (``--no-default-model``) no model is put on standby: none
        loads until one is loaded in Models.
        """
        standby: tuple[str, str] | None = None
        if self.settings.load_default_model:
            saved = self.store.get(ACTIVE_KEY)
            standby = (DEFAULT_MODEL, 'local')
            if isinstance(saved, dict) and isinstance(saved.get('name'), str):
                source = saved.get('source') or 'local'
                try:
                    name = validate_name(saved['name'], source) if _known_source(source) else ''
                except ModelError:
                    name = ''
                if name and (source == 'ollama' or (source == 'local' and self.local_path(name).is_file())
                             or await self._server_known(source)):
                    standby = (name, source)
            if standby == (DEFAULT_MODEL, 'local') and not default_model_path(self.models_dir).is_file():
                key = f'local:{DEFAULT_MODEL}'
                try:
                    await self._install_default()
                except ModelError as error:
                    self._set_state(key, DEFAULT_MODEL, 'local', 'error', str(error))
                    standby = None
        if standby is not None and standby[1] == 'local':  # the first load then reads only the weights
            await asyncio.to_thread(self._header, self.local_path(standby[0]))
        async with self._load_lock:  # a model loaded meanwhile (the Models view, the API) stays the chat's
            if self._active is None and self._loading is None:
                self._set_standby(standby)

    async def close(self) -> None:
        self.keep_alive.close()
        if self._preload is not None:
            self._preload.cancel()
        model, info = self._active, self._active_info
        self._active, self._active_info = None, None
        if model is not None:
            await self._release(model, info, free_ollama=False)
        await self._ollama.aclose()

    # --- listing ----------------------------------------------------------------------------

    async def catalog(self) -> ModelCatalog:
        """Every model with its state and memory verdict, the active one and Ollama's status."""
        servers = asyncio.ensure_future(self._server_statuses())  # meanwhile: they answer in parallel
        vram_free = await self._vram_free_now()
        local, ram_free = await asyncio.to_thread(self._scan_local, vram_free)
        remote: list[ModelInfo] = []
        status = ''
        try:
            remote = await self._ollama.list_models()
            running = {m['name'] for m in await self._ollama.running()}
            remote = [replace(info, extra={**info.extra, 'in_memory': info.name in running},
                              memory=MemoryNeed(int(info.size_bytes * OLLAMA_MEMORY_FACTOR), ram_free, vram_free,
                                                offload=None)
                              if info.size_bytes else None) for info in remote]
        except OllamaUnavailable as error:
            status = str(error)
        except OllamaError as error:
            status = f'Ollama answered with an error: {error}'
        statuses, on_servers = await servers
        models = await self._name_holders([self._with_state(info) for info in local + remote + on_servers])
        if self._default_problem and not any(m.key == f'local:{DEFAULT_MODEL}' for m in models):
            # the default model that could not be installed shows with what to do (and a Load to try again)
            models.insert(0, ModelInfo(name=DEFAULT_MODEL, source='local', state='error', error=self._default_problem))
        return ModelCatalog(models=models, active=self._active_info, ollama_status=status,
                            ollama_url=self._ollama.url, models_dir=str(self.models_dir),
                            ram_free_bytes=ram_free, vram_free_bytes=vram_free, servers=tuple(statuses))

    async def _server_statuses(self) -> tuple[list[ServerStatus], list[ModelInfo]]:
        """Every server added, whether it answers, and the models it offers (the servers asked in parallel)."""
        results = await asyncio.gather(*(self._server_status(s) for s in await self._servers.servers()))
        return [status for status, _ in results], [info for _, infos in results for info in infos]

    async def _server_status(self, server: Server) -> tuple[ServerStatus, list[ModelInfo]]:
        source = server_source(server.name)
        try:
            offered = await list_server_models(server.name, server.url, await self._servers.api_key(server.name))
        except ServerError as error:
            # the model in use stays listed, with why its server cannot be used now
            chosen = self._active_info if self._active_info is not None else \
                ModelInfo(name=self._standby[0], source=self._standby[1]) if self._standby is not None else None
            shown = [replace(chosen, state='error', error=str(error))] \
                if chosen is not None and chosen.source == source else []
            return ServerStatus(server.name, server.url, server.has_key, error=str(error)), shown
        return (ServerStatus(server.name, server.url, server.has_key, models=tuple(m.id for m in offered)),
                [_server_info(server, m) for m in offered])

    async def _server_known(self, source: str) -> bool:
        name = server_of(source)
        return name is not None and any(s.name == name for s in await self._servers.servers())

    def _with_state(self, info: ModelInfo) -> ModelInfo:
        if self._active_info is not None and info.key == self._active_info.key:
            return replace(info, state='loaded', error='')
        state, error = self._states.get(info.key, (info.state, info.error))
        if self._standby is not None and info.key == _key(*self._standby) and state in ('available', 'standby'):
            state, error = 'standby', ''
        elif state == 'standby':
            state = 'available'
        return replace(info, state=state, error=error)  # type: ignore[arg-type]

    def _scan_local(self, vram_free: int | None) -> tuple[list[ModelInfo], int | None]:
        """The GGUF files of the models folder, and the RAM free now (blocking: runs in a worker thread)."""
        ram_free = free_memory_bytes()
        models = []
        paths = sorted(self.models_dir.glob('*.gguf'))
        self._headers = {path: header for path, header in self._headers.items() if path in paths}
        for path in paths:
            header = self._header(path)
            if isinstance(header, GGUFError):
                models.append(ModelInfo(name=path.stem, source='local', size_bytes=_size(path), state='error',
                                        error=str(header), path=str(path)))
                continue
            info = _local_info(path, header)
            models.append(replace(info, memory=self._need(header, info.size_bytes or 0, ram_free, vram_free)))
        return models, ram_free

    def _header(self, path: Path) -> GGUFInfo | GGUFError:
        """The file's header, read again only when the file changed (a listing rereads every file)."""
        try:
            stat = path.stat()
            version = (stat.st_size, stat.st_mtime_ns)
        except OSError:
            version = (-1, -1)
        cached = self._headers.get(path)
        if cached is not None and cached[0] == version:
            return cached[1]
        try:
            header: GGUFInfo | GGUFError = read_gguf(path)
        except GGUFError as error:
            header = error
        self._headers[path] = (version, header)
        return header

    # --- loading ----------------------------------------------------------------------------

    async def find(self, key: str) -> ModelInfo | None:
        """The model listed under ``key`` ("source:name"), or None."""
        return next((m for m in (await self.catalog()).models if m.key == key and m.state != 'error'), None)

    async def load(self, name: str, source: str | None = None) -> ModelInfo:
        """Make a model the active one; without ``source`` it is guessed. On failure the previous model stays."""
        # a server's model is never a file: its name may look like a path ("/models/x.gguf" on llama-server)
        name = validate_name(name.strip() if isinstance(name, str) else name,
                             source if isinstance(source, str) and server_of(source) else None)
        source = source if source is not None else await self.guess_source(name)
        if not _known_source(source):
            raise ModelError(f'Unknown model source "{str(source)[:50]}" (local, ollama or server:<name>).')
        name = validate_name(name, source)
        async with self._load_lock:
            return await self._load_locked(name, source)

    async def _load_locked(self, name: str, source: str) -> ModelInfo:
        key = _key(name, source)
        self._loading = (name, source)
        self._set_state(key, name, source, 'loading')
        if self._active is None:  # every window shows that the chat's model is loading
            self._announce()
        try:
            model, info = await (self._load_local(name) if source == 'local' else
                                 self._load_ollama(name) if source == 'ollama' else self._load_server(name, source))
        except Exception as error:
            message = str(error) if isinstance(error, (ModelError, GGUFError)) else \
                f'{name} could not be loaded: {type(error).__name__}: {error}'
            self._loading = None
            self._set_state(key, name, source, 'error', message)
            if self._standby == (name, source):  # it would fail again: the chat says what to do instead
                self._standby = None
            if self._active is None:
                self._announce()
            raise ModelError(message) from error
        self._loading = None
        return await self._activate(model, info)

    async def guess_source(self, name: str) -> str:
        """'ollama' for a name with a tag or a namespace ("llama3:8b", "library/x") or one only Ollama has;
        'local' otherwise (a local model is a file name, which has neither)."""
        if ':' in name or '/' in name:
            return 'ollama'
        if (self.models_dir / f'{name.removesuffix(".gguf")}.gguf').is_file() or name == DEFAULT_MODEL:
            return 'local'
        try:
            remote = {m.name for m in await self._ollama.list_models()}
        except OllamaError:
            return 'local'
        return 'ollama' if name in remote or f'{name}:latest' in remote else 'local'

    async def activate(self, model: ChatModel, info: ModelInfo) -> None:
        """Make an already loaded model the active one (for embedders; ``load`` is the usual way)."""
        async with self._load_lock:
            await self._activate(model, info)

    async def _activate(self, model: ChatModel, info: ModelInfo) -> ModelInfo:
        info = replace(info, state='loaded', error='')
        previous, previous_info = self._active, self._active_info
        self._active, self._active_info = model, info
        if previous_info is not None and previous_info.key != info.key:
            self._states.pop(previous_info.key, None)
            self.hub.publish(ModelStatus(model=previous_info.name, source=previous_info.source, state='available'))
        if previous is not None and previous is not model:
            await self._release(previous, previous_info)
        await self.store.set(ACTIVE_KEY, {'name': info.name, 'source': info.source})
        self._standby = (info.name, info.source)  # what the next message loads once the keep-alive unloaded it
        self.keep_alive.started()
        # both events back to back: no window shows the row loaded while its header has no model
        self._set_state(info.key, info.name, info.source, 'loaded')
        self._announce()
        log.info('model %s (%s) loaded', info.name, info.source)
        return info

    async def _load_local(self, name: str) -> tuple[ChatModel, ModelInfo]:
        path = self.local_path(name)
        if not path.is_file() and path.stem == DEFAULT_MODEL:
            await self._install_default()
        if not path.is_file():
            raise ModelError(f'The model file {path.name} is missing from {self.models_dir}.')
        gguf = await asyncio.to_thread(self._header, path)  # read once per version of the file
        if isinstance(gguf, GGUFError):
            raise GGUFError(str(gguf))  # a fresh one: the cached error is raised for every load
        need = await self._memory_need_for(gguf, path)
        if not need.fits:
            need = await self._with_holders(need)
            raise ModelError(f'{name} does not fit the memory free now. {need.describe()}')
        model = await asyncio.to_thread(LlamaCppModel, path, name=name, context_length=self.options.context_length,
                                        gpu_layers=self.options.gpu_layers, threads=self.options.threads, gguf=gguf)
        return model, _local_info(path, gguf)

    async def _install_default(self) -> None:
        """Assemble the default model; a failure is remembered, so that nothing keeps promising it."""
        try:
            await asyncio.to_thread(ensure_default_model, self.models_dir)
        except ModelError as error:
            self._default_problem = str(error)
            log.warning('%s', error)
            raise
        self._default_problem = ''

    async def _load_ollama(self, name: str) -> tuple[ChatModel, ModelInfo]:
        # the same num_ctx for loading and chatting: Ollama reloads a model when it changes
        await self._ollama.load(name, num_ctx=self.options.context_length)
        model = await self._ollama.chat_model(name, num_ctx=self.options.context_length)
        info = next((m for m in await self._ollama.list_models() if m.name == name),
                    ModelInfo(name=name, source='ollama'))
        return model, replace(info, context_length=model.details.get('trained_context_length') or info.context_length)

    async def _load_server(self, name: str, source: str) -> tuple[ChatModel, ModelInfo]:
        """Nothing to load into memory: check that the server answers and still offers the model."""
        server = await self._servers.get(server_of(source) or '')
        api_key = await self._servers.api_key(server.name)
        offered = await list_server_models(server.name, server.url, api_key)
        found = next((m for m in offered if m.id == name), None)
        if found is None:
            listed = ', '.join(m.id for m in offered[:5]) + (', ...' if len(offered) > 5 else '')
            raise ServerError(f'The server {server.name} does not offer {name} (any more)'
                              + (f'; it offers {listed}.' if listed else '; it lists no model.'))
        # the context the server runs the model with, where it says; else the one set in Models
        model = RemoteChatModel(name, server.name, server.url, api_key,
                                context_length=found.context_length or self.options.context_length)
        return model, _server_info(server, found)

    async def _release(self, model: ChatModel, info: ModelInfo | None, *, free_ollama: bool = True) -> None:
        for listener in self._release_listeners:
            try:
                await listener(model)
            except Exception:  # pylint: disable=broad-except  # the model is released all the same
                log.warning('a release listener failed', exc_info=True)
        await asyncio.to_thread(model.close)
        if self._active is None:
            self.keep_alive.stopped()
        if free_ollama and info is not None and info.source == 'ollama':
            try:
                await self._ollama.unload(info.name)  # free the server's memory too
            except OllamaError as error:
                log.info('could not unload %s from Ollama: %s', info.name, error)

    async def unload(self) -> None:
        """Release the active model; an answer it is streaming stops first (kept as "stopped").

        The user's choice: no model loads by itself afterwards, until one is loaded again."""
        async with self._load_lock:
            await self._unload_locked(standby=False)

    async def _expire(self) -> None:
        """The keep-alive ran out: unload the model, which stays on standby for the next message."""
        async with self._load_lock:
            if self._active is None or self.keep_alive.in_use or not self.keep_alive.expired():
                return  # used again, or unloaded, while this waited for the lock
            log.info('unloading %s after %s without use', self._active.name, _duration(self.keep_alive.seconds))
            await self._unload_locked(standby=True)

    async def _unload_locked(self, *, standby: bool) -> None:
        model, info = self._active, self._active_info
        self._active, self._active_info = None, None
        if model is not None:
            await self._release(model, info)
        self.keep_alive.stopped()
        if info is not None:
            self._states.pop(info.key, None)
        if not standby:
            await self.store.set(ACTIVE_KEY, None)
        self._set_standby((info.name, info.source) if standby and info is not None else None)

    def _set_standby(self, standby: tuple[str, str] | None) -> None:
        """Make ``standby`` the model that the next message loads, and tell every window."""
        previous, self._standby = self._standby, standby
        if previous is not None and previous != standby and self._states.get(_key(*previous), ('',))[0] != 'error':
            self._states.pop(_key(*previous), None)
            self.hub.publish(ModelStatus(model=previous[0], source=previous[1], state='available'))
        if standby is not None:
            self._states.pop(_key(*standby), None)
            self.hub.publish(ModelStatus(model=standby[0], source=standby[1], state='standby'))
        self._announce()

    def _announce(self) -> None:
        """Publish the chat's model: the loaded one, or the one on standby (and whether it is loading)."""
        info = self._active_info
        if info is not None:
            self.hub.publish(ModelLoaded(model=info.name, source=info.source, details=_details(info)))
            return
        waiting = self._loading or self._standby
        self.hub.publish(ModelLoaded(model=None, standby=waiting[0] if waiting else '',
                                     standby_source=waiting[1] if waiting else '', loading=self._loading is not None))

    def _set_state(self, key: str, name: str, source: str, state: str, error: str = '') -> None:
        self._states[key] = (state, error)
        self.hub.publish(ModelStatus(model=name, source=source, state=state, error=error))

    # --- OpenAI-compatible servers ----------------------------------------------------------

    async def servers(self) -> list[ServerStatus]:
        """The servers added, each with whether it answers (or why not) and its models."""
        statuses, _ = await self._server_statuses()
        return statuses

    async def add_server(self, url: object, api_key: object = None, name: object = None) -> ServerStatus:
        """Add an OpenAI-compatible server (or replace the one of that name) and say whether it answers; its
        models then list with the others, with ``server:<name>`` as their source. Raises ServerConfigError
        for an address, name or key that cannot be used; a server that does not answer is added all the
        same (the status says why), so that one that is down for now need not be added again."""
        server, replaced = await self._servers.add(url, api_key, name)
        source = server_source(server.name)
        if replaced:  # the model loaded from it used the old address and key: the next message loads it again
            async with self._load_lock:
                if self._active_info is not None and self._active_info.source == source:
                    await self._unload_locked(standby=True)
            self._forget_states(source)
        status, _ = await self._server_status(server)
        return status

    async def remove_server(self, name: str) -> None:
        """Remove a server and its key; a model of it that is loaded is unloaded first. Raises ServerNotFound."""
        await self._servers.get(name)
        source = server_source(name)
        async with self._load_lock:
            if self._active_info is not None and self._active_info.source == source:
                await self._unload_locked(standby=False)
            elif self._standby is not None and self._standby[1] == source and self._loading is None:
                await self.store.set(ACTIVE_KEY, None)
                self._set_standby(None)
            self._forget_states(source)
            await self._servers.remove(name)

    def _forget_states(self, source: str) -> None:
        for key in [key for key in self._states if key.startswith(f'{source}:')]:
            del self._states[key]

    # --- settings ---------------------------------------------------------------------------

    async def set_options(self, **changes: Any) -> ModelOptions:
        """Change and persist the model settings; context and GPU layers apply at the next load."""
        try:
            options = ModelOptions(**{**asdict(self.options), **changes}).validated()
        except (TypeError, ValueError, OverflowError) as error:
            raise ValueError(str(error)) from error
        self.options = options
        self.keep_alive.set_seconds(options.keep_alive)
        await self.store.set(OPTIONS_KEY, asdict(options))
        return options

    # --- memory -----------------------------------------------------------------------------

    async def memory_need(self, info: ModelInfo) -> MemoryNeed:
        """Whether a model fits the memory free right now; when it does not, who holds the memory."""
        if info.source == 'local' and info.path:
            gguf = await asyncio.to_thread(read_gguf, Path(info.path))
            need = await self._memory_need_for(gguf, Path(info.path))
        else:
            need = MemoryNeed(int((info.size_bytes or 0) * OLLAMA_MEMORY_FACTOR),
                              await asyncio.to_thread(free_memory_bytes), await self._vram_free_now())
        return need if need.fits else await self._with_holders(need)

    async def _memory_need_for(self, gguf: GGUFInfo, path: Path) -> MemoryNeed:
        return self._need(gguf, _size(path) or 0, await asyncio.to_thread(free_memory_bytes),
                          await self._vram_free_now())

    def _need(self, gguf: GGUFInfo, file_size: int, ram_free: int | None, vram_free: int | None) -> MemoryNeed:
        needed = estimate_memory(gguf, file_size, self.options.context_length)
        return MemoryNeed(needed, ram_free, vram_free, offload=plan_offload(needed, _layers(gguf), vram_free))

    def vram_free(self) -> int | None:
        """Free GPU memory from the latest metrics sample (None: no GPU could be read)."""
        latest = self.hub.latest(events.SYSTEM_METRICS)
        return _vram_free(latest.data if latest is not None else None)  # type: ignore[arg-type]

    async def _vram_free_now(self) -> int | None:
        """Free GPU memory from a fresh sample (the monitor takes one when the latest is old)."""
        if self._machine is None:
            return self.vram_free()
        try:
            return _vram_free(await self._machine.current())
        except Exception:  # pylint: disable=broad-except  # the verdict goes on without a GPU reading
            log.debug('no fresh GPU reading for the fit check', exc_info=True)
            return self.vram_free()

    async def _name_holders(self, models: list[ModelInfo]) -> list[ModelInfo]:
        """Name the processes that hold the memory on the models that do not fit (one scan for all)."""
        if not any(m.memory is not None and not m.memory.fits for m in models):
            return models
        holders = await self._holders()
        return [replace(m, memory=replace(m.memory, holders=holders[0], gpu_holders=holders[1]))
                if m.memory is not None and not m.memory.fits else m for m in models]

    async def _with_holders(self, need: MemoryNeed) -> MemoryNeed:
        ram, gpu = await self._holders()
        return replace(need, holders=ram, gpu_holders=gpu)

    async def _holders(self) -> tuple[tuple[MemoryHolder, ...], tuple[MemoryHolder, ...]]:
        """The processes holding the most RAM and (with a GPU) the most GPU memory, from a fresh scan."""
        if self._machine is None:
            return (), ()
        try:
            by_memory = await self._machine.top_processes('memory', HOLDERS_NAMED)
            by_gpu = await self._machine.top_processes('gpu_memory', HOLDERS_NAMED) \
                if by_memory.has_gpu_memory else None
        except Exception:  # pylint: disable=broad-except  # the verdict stands without the names
            log.debug('no process scan for the fit check', exc_info=True)
            return (), ()
        ram = tuple(MemoryHolder(p.name, p.pid, p.memory) for p in by_memory.processes if p.memory)
        gpu = tuple(MemoryHolder(p.name, p.pid, p.gpu_memory) for p in by_gpu.processes if p.gpu_memory) \
            if by_gpu is not None else ()
        return ram, gpu

    # --- files and the Ollama library -------------------------------------------------------

    def local_path(self, name: str) -> Path:
        name = validate_name(name, 'local')
        return self.models_dir / (name if name.endswith('.gguf') else f'{name}.gguf')

    async def import_gguf(self, source: str | Path, name: str | None = None) -> ModelInfo:
        """Copy a GGUF file into the models directory after checking its header."""
        source_path = Path(str(source)).expanduser()
        if not source_path.is_file():
            raise ModelError(f'There is no file at {source_path}.')
        gguf = await asyncio.to_thread(read_gguf, source_path)  # GGUFError (a ModelError-like ValueError) if bad
        target = self.local_path(name.strip() if name else source_path.stem)
        if target.exists():
            raise ModelError(f'A model called {target.stem} already exists.')
        partial = target.with_name(target.name + '.partial')
        try:
            await asyncio.to_thread(_copy_into_place, source_path, partial, target)
        except OSError as error:
            raise ModelError(f'{source_path.name} could not be copied into {self.models_dir} '
                             f'({error.strerror or error}). Make that folder writable or free some space.') from error
        return _local_info(target, gguf)

    async def delete_local(self, name: str) -> None:
        path = self.local_path(name)
        if self._active_info is not None and self._active_info.key == f'local:{path.stem}':
            raise ModelError('Unload the model before deleting it.')
        if not path.is_file():
            raise ModelError(f'There is no local model called {path.stem}.')
        try:
            await asyncio.to_thread(path.unlink)
        except OSError as error:
            raise ModelError(f'{path.name} could not be deleted ({error.strerror or error}).') from error
        if self._standby == (path.stem, 'local'):
            async with self._load_lock:
                if self._active is None and self._loading is None:
                    self._set_standby(None)

    async def pull(self, name: str) -> AsyncIterator[PullProgress]:
        """Pull from the Ollama library, publishing progress on the hub for every window."""
        name = validate_name(name.strip() if isinstance(name, str) else name, 'ollama')
        try:
            async for step in self._ollama.pull(name):
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
        name = validate_name(name.strip() if isinstance(name, str) else name, 'ollama')
        if self._active_info is not None and self._active_info.key == f'ollama:{name}':
            await self.unload()
        await self._ollama.delete(name)
        if self._standby == (name, 'ollama'):
            async with self._load_lock:
                if self._active is None and self._loading is None:
                    self._set_standby(None)


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


def _layers(gguf: GGUFInfo) -> int | None:
    layers = gguf.metadata.get(f'{gguf.architecture or ""}.block_count')
    return layers if isinstance(layers, int) and layers > 0 else None


def _vram_free(metrics: SystemMetrics | None) -> int | None:
    gpus = metrics.gpus if metrics is not None else []
    free = [g.memory_total - g.memory_used for g in gpus if g.memory_total and g.memory_used is not None]
    return sum(free) if free else None


def _local_info(path: Path, gguf: GGUFInfo) -> ModelInfo:
    return ModelInfo(name=path.stem, source='local', size_bytes=_size(path), quantization=gguf.quantization,
                     parameters=gguf.parameters, context_length=gguf.context_length, path=str(path),
                     family=gguf.architecture,
                     extra={'title': gguf.name, 'chat_template': gguf.has_chat_template})


def _server_info(server: Server, model: RemoteModel) -> ModelInfo:
    return ModelInfo(name=model.id, source=server_source(server.name), context_length=model.context_length,
                     extra={'server': server.name, 'url': server.url, 'owned_by': model.owned_by})


def _split_key(key: str) -> tuple[str, str]:
    """(source, name) of a model's key "source:name"; a server's source is "server:<name>" itself."""
    source, _, name = key.partition(':')
    if source == 'server':
        server, _, name = name.partition(':')
        source = server_source(server)
    return source, name


def _known_source(source: object) -> bool:
    return source in ('local', 'ollama') or (isinstance(source, str) and server_of(source) is not None)


def _copy_into_place(source: Path, partial: Path, target: Path) -> None:
    """Copy next to the target and rename: a failed copy never leaves a half file under the real name."""
    try:
        shutil.copyfile(source, partial)
        partial.replace(target)
    except OSError:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise


def _key(name: str, source: str) -> str:
    return f'{source}:{name}'


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return 'ever'
    return f'{seconds / 60:g} min' if seconds >= 60 else f'{seconds:g} s'


def _details(info: ModelInfo) -> dict[str, Any]:
    return {'size_bytes': info.size_bytes, 'quantization': info.quantization, 'parameters': info.parameters,
            'context_length': info.context_length, 'family': info.family}


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None
