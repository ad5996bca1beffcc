"""The tools the app offers: to a chat model that can call tools, and to MCP clients (``jarvis.api.mcp``).

Each tool is an async function with typed parameters; its JSON schema is read from them (as the MCP SDK
reads it), so the chat's models and MCP clients see the same tool and run the same code. Two kinds:

- the machine's queries: the live metrics, the busiest processes, the recorded history, the alerts;
- the enabled plugins, one tool each (``plugin_<name>``, one ``request`` string), run through the
  PluginManager with its rules: the plugin's thread and timeout, and its switch (a disabled plugin is
  not offered, and a call to it is refused).

A call never raises into the chat: a failure, a refusal or a timeout becomes a ``ToolResult`` with
``ok`` false and a sentence the model can read.
"""
from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from ..metrics.history import HistoryRangeError
from ..models.base import ToolCall, ToolSpec
from ..plugins.manager import PluginError, PluginManager

if TYPE_CHECKING:
    from ..alerts import AlertManager
    from ..machine.queries import MachineQueries
    from ..metrics import SystemMonitor

log = logging.getLogger(__name__)

MACHINE_TOOL_TIMEOUT_S = 10.0  # a process scan or a history query; plugins keep their own timeouts
MAX_RESULT_CHARS = 6_000  # what a model reads of one result: about 1,500 tokens of a 4,096-token context
PLUGIN_PREFIX = 'plugin_'

# the parameters' types: their Field descriptions go into the schema a model or an MCP client reads
ProcessSortKey = Annotated[Literal['cpu', 'memory', 'gpu_memory'], Field(description='What to rank by.')]
ProcessLimit = Annotated[int, Field(ge=1, le=100, description='How many processes.')]
HistoryRange = Annotated[Literal['5m', '1h', '24h', '7d', '30d'], Field(description='The time range ending now.')]
HistoryPoints = Annotated[int, Field(ge=2, le=2000, description='Most points per series (averaged down).')]
BusyAt = Annotated[float | None, Field(description='A Unix time: which processes were busy in that minute.')]
AlertLogLimit = Annotated[int, Field(ge=1, le=1000, description='How many of the latest logged alerts to return.')]
ModelBillions = Annotated[float, Field(gt=0, le=2000, description='The model\'s size in billions of parameters '
                                                                  '(7 for a 7B model).')]
Quantization = Annotated[Literal['Q2_K', 'Q3_K_M', 'Q4_0', 'Q4_K_M', 'Q5_K_M', 'Q6_K', 'Q8_0', 'F16'],
                         Field(description='The quantization of its weights (Q4_K_M is the usual download).')]
PluginRequest = Annotated[str, Field(min_length=1, max_length=2000, description=(
    "The request in the plugin's own words, in English or German, as the user would type it in the chat."))]


class ToolRefused(Exception):
    """A tool cannot do what it was asked (an unknown range, a plugin that is switched off); the text says why."""


@dataclass(frozen=True)
class Tool:
    """One tool: ``function`` takes its arguments as keywords and returns a JSON object."""

    name: str
    title: str
    description: str
    function: Callable[..., Awaitable[dict[str, Any]]]
    read_only: bool = True
    plugin: str = ''  # the plugin it runs ('' for the machine's queries): it keeps its own timeout

    @property
    def arguments(self) -> type[BaseModel]:
        return _arguments_model(self.name, self.function)

    @property
    def parameters(self) -> dict[str, Any]:
        """The JSON schema of the arguments (an object)."""
        schema = self.arguments.model_json_schema()
        schema.pop('title', None)
        schema.setdefault('properties', {})
        return schema

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.description, self.parameters)


@dataclass(frozen=True)
class ToolResult:
    """What a call gave: ``content`` is the text the model reads (JSON when it worked)."""

    name: str
    ok: bool
    content: str
    arguments: dict[str, Any]

    def label(self, limit: int = 60) -> str:
        """The call in a few words, as the chat shows which tool ran: ``top_processes(sort=cpu)``."""
        shown = ', '.join(f'{key}={_short(value)}' for key, value in self.arguments.items())
        text = f'{self.name}({shown})' if shown else self.name
        return text if len(text) <= limit else text[:limit - 1] + '…'

    def to_dict(self) -> dict[str, Any]:
        return {'name': self.name, 'arguments': self.label(), 'ok': self.ok}


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 24 else text[:23] + '…'


_models: dict[tuple[str, Callable[..., Any]], type[BaseModel]] = {}


def _arguments_model(name: str, function: Callable[..., Any]) -> type[BaseModel]:
    """A pydantic model of the function's keyword parameters (made once per function)."""
    key = (name, function)
    if key not in _models:
        fields: dict[str, Any] = {}
        for parameter in inspect.signature(function, eval_str=True).parameters.values():
            if parameter.name.startswith('_'):  # given by the app, never by the model
                continue
            default = ... if parameter.default is inspect.Parameter.empty else parameter.default
            fields[parameter.name] = (parameter.annotation, default)
        _models[key] = create_model(f'{name}_arguments', __config__=ConfigDict(extra='ignore'), **fields)
    return _models[key]


def machine_tools(system: SystemMonitor, alerts: AlertManager, queries: MachineQueries | None = None) -> list[Tool]:
    """The machine's queries, each one call to a domain part's interface (``queries``: also the diagnosis
    and the model fit that the System status plugin answers with)."""

    async def system_metrics() -> dict[str, Any]:
        """The machine right now (a sample at most one sampling interval old, taken at once otherwise):
        cpu, memory, disk and gpu are percentages in use (gpu is null without a readable GPU); cpu_per_core
        lists each core's percentage; memory_used, memory_total, swap_used, swap_total, disk_used and
        disk_total are bytes (disk is the one that holds the user's home, disk_path); net_sent_per_s and
        net_recv_per_s are bytes per second (null on the first sample); gpus lists each NVIDIA GPU's
        utilization and memory_utilization (%), memory_used and memory_total (bytes), temperature (°C),
        power_draw and power_limit (W) and fan_speed (%), null where the driver cannot tell; timestamp is
        Unix time."""
        return (await system.current()).to_dict()

    async def top_processes(sort: ProcessSortKey = 'cpu', limit: ProcessLimit = 10) -> dict[str, Any]:
        """The processes that use the most of the machine now, from a fresh scan: ranked by sort (cpu: % of
        one core since the previous scan; memory: resident bytes; gpu_memory: bytes of GPU memory, null where
        the driver does not tell), each with pid, name, user, cpu, memory and gpu_memory."""
        return (await system.top_processes(sort, limit)).to_dict()

    async def machine_history(range: HistoryRange = '1h', max_points: HistoryPoints = 120,  # noqa: A002
                              busy_at: BusyAt = None) -> dict[str, Any]:
        """The machine's recorded history (kept 30 days, also while no window was open), points oldest
        first, each with t (Unix time) and the mean and maximum (cpu_max, ...) of cpu, memory and disk (%),
        gpu, gpu_memory (%) and gpu_temperature (°C), null where there was no reading; gaps where the app was
        not running. With busy_at (Unix time), also busy_processes: the processes that used the most CPU,
        memory and GPU memory in the minute around that time."""
        try:
            answer = (await system.history_range(range, max_points=max_points)).to_dict()
        except HistoryRangeError as problem:
            raise ToolRefused(str(problem)) from None
        if busy_at is not None:
            answer['busy_processes'] = [p.to_dict() for p in await system.busy_processes_at(busy_at)]
        return answer

    async def alerts_overview(log_limit: AlertLogLimit = 20) -> dict[str, Any]:
        """The machine's alerts: firing (the alerts firing now, with their start, value and peak), rules (each
        rule's metric, threshold, how long it must hold, cooldown, severity and whether it is on) and log (the
        last log_limit alerts, newest first, with start, end, peak and why each ended). Times are Unix time."""
        return {'firing': [alert.to_dict() for alert in await alerts.active()],
                'rules': [rule.to_dict() for rule in await alerts.rules()],
                'log': [entry.to_dict() for entry in await alerts.log(log_limit)]}

    async def why_slow() -> dict[str, Any]:
        """Why the machine may feel slow now: findings (each with what, value and limit: a busy CPU, memory
        pressure, swap in use, a full disk, a hot GPU) and the processes behind them, from a fresh reading
        and scan; no findings means nothing stands out."""
        assert queries is not None
        return (await queries.diagnose()).to_dict()

    async def model_fit(params_b: ModelBillions, quantization: Quantization = 'Q4_K_M') -> dict[str, Any]:
        """Whether a model of params_b billion parameters at that quantization fits the memory free now:
        needed_bytes (weights and a 4K context), ram_free_bytes and vram_free_bytes (null without a GPU),
        fits_ram, fits_vram, shortfall_bytes, the processes holding the most memory, and the model loaded now."""
        assert queries is not None
        try:
            return (await queries.model_fit(params_b, quantization)).to_dict()
        except ValueError as problem:
            raise ToolRefused(str(problem)) from None

    titles: dict[Callable[..., Awaitable[dict[str, Any]]], str] = {
        system_metrics: 'Live system metrics', top_processes: 'Processes', machine_history: 'History',
        alerts_overview: 'Alerts'}
    if queries is not None:
        titles |= {why_slow: 'Why the machine is slow', model_fit: 'Model fit'}
    return [Tool(function.__name__, title, inspect.getdoc(function) or '', function)
            for function, title in titles.items()]


def plugin_tool_name(plugin: str) -> str:
    """``plugin_`` and the plugin's name in the letters a function name may have (``Time and date`` ->
    ``plugin_time_and_date``): what the OpenAI and Ollama APIs accept, at most 64 characters."""
    return (PLUGIN_PREFIX + re.sub(r'[^a-z0-9]+', '_', plugin.lower()).strip('_'))[:64]


class ToolRegistry:
    """The tools a model is offered now, and the one place a call runs."""

    def __init__(self, system: SystemMonitor, alerts: AlertManager, plugins: PluginManager, *,
                 queries: MachineQueries | None = None, timeout: float = MACHINE_TOOL_TIMEOUT_S) -> None:
        self.plugins = plugins
        self.machine = machine_tools(system, alerts, queries)
        self.timeout = timeout

    async def offered(self) -> list[Tool]:
        """The machine's tools and one per enabled plugin (a plugin switched off is not offered)."""
        tools = list(self.machine)
        taken = {tool.name for tool in tools}
        for info in await self.plugins.list():
            name = plugin_tool_name(info.name)
            # switched on: also after an error, as the chat's own route still offers it messages (one
            # still blocked by an earlier request is refused when called)
            if not info.enabled or name in taken:
                continue
            taken.add(name)
            tools.append(Tool(name, info.name, f'The {info.name} plugin: {info.description}',
                              self._plugin_function(info.name), read_only=False, plugin=info.name))
        return tools

    def _plugin_function(self, plugin: str) -> Callable[..., Awaitable[dict[str, Any]]]:
        async def ask_plugin(request: PluginRequest, _conversation_id: str = '') -> dict[str, Any]:
            try:
                reply = await self.plugins.ask(plugin, request, _conversation_id)
            except PluginError as refused:  # switched off since it was offered, or still blocked
                raise ToolRefused(str(refused)) from None
            if reply.error:
                raise ToolRefused(reply.text)
            return {'plugin': reply.plugin, 'answer': reply.text}

        return ask_plugin

    async def call(self, call: ToolCall, offered: list[Tool], conversation_id: str = '') -> ToolResult:
        """Run one call among the tools offered for this answer; never raises (but for cancellation)."""
        return await run_tool(call, offered, conversation_id, timeout=self.timeout)


async def run_tool(call: ToolCall, offered: list[Tool], conversation_id: str = '', *,
                   timeout: float = MACHINE_TOOL_TIMEOUT_S) -> ToolResult:
    """Run the call a model asked for, if it names one of the tools ``offered``: its arguments are checked
    against the tool's schema, a machine query is bounded by ``timeout`` (a plugin by its own), and every
    failure is a result the model reads. Never raises (but for cancellation)."""
    tool = next((t for t in offered if t.name == call.name), None)
    if tool is None:
        return ToolResult(call.name, False, f'There is no tool called "{call.name[:64]}".', call.arguments)
    if call.problem:
        return ToolResult(call.name, False, call.problem, call.arguments)
    try:
        arguments = tool.arguments.model_validate(call.arguments)
    except ValidationError as invalid:
        problems = '; '.join(f'{".".join(map(str, e["loc"])) or "arguments"}: {e["msg"]}'
                             for e in invalid.errors()[:5])
        return ToolResult(call.name, False, f'Invalid arguments: {problems}', call.arguments)
    keywords = dict(arguments)
    try:
        if tool.plugin:  # the plugin manager holds it to the plugin's own timeout, on its thread
            answer = await tool.function(**keywords, _conversation_id=conversation_id)
        else:
            answer = await asyncio.wait_for(tool.function(**keywords), timeout=timeout)
    except ToolRefused as refused:
        return ToolResult(call.name, False, str(refused), call.arguments)
    except asyncio.TimeoutError:
        return ToolResult(call.name, False, f'{call.name} did not answer in time.', call.arguments)
    except Exception as error:  # a tool's failure is the model's to read, the chat goes on
        log.warning('tool %s failed', call.name, exc_info=error)
        return ToolResult(call.name, False, f'{call.name} failed: {type(error).__name__}: {error}',
                          call.arguments)
    text = json.dumps(answer, ensure_ascii=False, default=str)
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + ' … (cut short)'
    return ToolResult(call.name, True, text, call.arguments)
