"""The machine's questions as plain async functions with typed parameters, each returning a dataclass.

They compute, they never word: the chat's answers (``answers.py``) and a tool layer for models both call
them and read the numbers from the result (``to_dict()`` gives plain JSON). Every number comes from the
monitor, the history, the alert log or the model catalog; nothing is estimated except a model's size from
its parameters, and that says which quantisation it assumes.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ..events import SystemMetrics
from ..metrics.history_store import FIELDS, RecordedProcess
from ..metrics.processes import ProcessInfo
from .sources import MachineSources

Resource = Literal['cpu', 'memory', 'gpu_memory']
Metric = Literal['cpu', 'memory', 'disk', 'gpu', 'gpu_memory', 'gpu_temperature']
RESOURCES: tuple[str, ...] = ('cpu', 'memory', 'gpu_memory')
METRICS: tuple[str, ...] = FIELDS
MAX_LIMIT = 20
ALERT_LOG_LIMIT = 1000  # the newest alerts the log gives at once (AlertManager.log's most)
HISTORY_POINTS = 1000
MINUTE_S = 60.0

# a model's size from its parameters: the quantisation most GGUF downloads use, and what comes on top
DEFAULT_QUANTIZATION = 'Q4_K_M'
BITS_PER_WEIGHT = {'Q2_K': 3.35, 'Q3_K_M': 3.9, 'Q4_0': 4.55, 'Q4_K_M': 4.85, 'Q5_K_M': 5.7, 'Q6_K': 6.6,
                   'Q8_0': 8.5, 'F16': 16.0}
CONTEXT_OVERHEAD_BYTES = 2**30  # a 4K context's KV cache and llama.cpp's working memory, roughly

# what "the machine feels slow" looks for
BUSY_CPU_PERCENT = 85.0
MEMORY_PRESSURE_PERCENT = 90.0
SWAP_IN_USE_BYTES = 256 * 2**20
DISK_FULL_PERCENT = 95.0
HOT_GPU_CELSIUS = 85.0


@dataclass(frozen=True)
class ProcessShare:
    """A process and its share: CPU in % of one core (200 % is two busy cores), memory in bytes and %."""

    name: str
    pid: int
    user: str
    cpu: float | None
    memory: int
    memory_percent: float | None
    gpu_memory: int | None

    @classmethod
    def of(cls, process: ProcessInfo) -> ProcessShare:
        return cls(process.name, process.pid, process.user,
                   None if process.cpu is None else round(process.cpu, 1), process.memory,
                   None if process.memory_percent is None else round(process.memory_percent, 1), process.gpu_memory)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TopProcesses:
    resource: str
    at: float  # when the scan was taken (Unix seconds)
    processes: list[ProcessShare]
    process_count: int
    cpu_count: int  # cores: a process at 100 % holds one of them
    memory_total: int
    gpu_status: str  # 'ok', or why GPU memory per process is not known

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), 'processes': [p.to_dict() for p in self.processes]}


@dataclass(frozen=True)
class NowReading:
    """A fresh reading of the machine (``SystemMetrics`` as the System view shows it)."""

    metrics: SystemMetrics

    def to_dict(self) -> dict[str, Any]:
        return self.metrics.to_dict()


@dataclass(frozen=True)
class Finding:
    """One reason the machine may feel slow, with the numbers that show it."""

    kind: Literal['cpu', 'memory', 'swap', 'disk', 'gpu_hot']
    value: float  # the reading (percent, bytes of swap, °C)
    limit: float  # what counts as a problem
    processes: list[ProcessShare] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), 'processes': [p.to_dict() for p in self.processes]}


@dataclass(frozen=True)
class Diagnosis:
    metrics: SystemMetrics
    findings: list[Finding]
    top_cpu: list[ProcessShare]
    top_memory: list[ProcessShare]

    def to_dict(self) -> dict[str, Any]:
        return {'metrics': self.metrics.to_dict(), 'findings': [f.to_dict() for f in self.findings],
                'top_cpu': [p.to_dict() for p in self.top_cpu], 'top_memory': [p.to_dict() for p in self.top_memory]}


@dataclass(frozen=True)
class HistorySummary:
    """One series over a time window: its mean, and its highest and lowest point with when they were."""

    metric: str
    start: float
    end: float
    points: int  # points with a reading of this series (0: none, e.g. no GPU, or the app was not running)
    recorded: int = 0  # points recorded at all in the window (0: the app was not running)
    mean: float | None = None
    peak: float | None = None
    peak_at: float | None = None
    low: float | None = None
    low_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RecordedShare:
    """A process as the history recorded it in a window: its highest and mean share, and when it peaked."""

    name: str
    pid: int
    peak: float  # CPU % of one core, or bytes
    peak_at: float  # the minute it peaked
    mean: float
    minutes: int  # the recorded minutes it was among the busiest

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BusyProcesses:
    resource: str
    start: float
    end: float
    minutes: int  # minutes with a recorded process list in the window
    processes: list[RecordedShare]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), 'processes': [p.to_dict() for p in self.processes]}


@dataclass(frozen=True)
class AlertRecord:
    rule_id: str
    summary: str  # "CPU above 90 %"
    metric: str
    severity: str
    threshold: float
    peak: float
    started_at: float
    ended_at: float | None  # None: still firing

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AlertsWindow:
    start: float
    end: float
    alerts: list[AlertRecord]  # oldest first: every alert that fired in the window or was still firing in it

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), 'alerts': [a.to_dict() for a in self.alerts]}


@dataclass(frozen=True)
class LoadedModel:
    name: str
    source: str
    size_bytes: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ModelFit:
    """Whether a model of ``params_b`` billion parameters fits the memory free now, and what holds the rest."""

    params_b: float
    quantization: str
    bits_per_weight: float
    weights_bytes: int
    needed_bytes: int  # weights and the context's overhead
    ram_free_bytes: int | None
    vram_free_bytes: int | None  # None: no GPU could be read
    fits_vram: bool
    fits_ram: bool
    shortfall_bytes: int  # how much more free RAM it needs (0 when it fits)
    holders: list[ProcessShare]  # the processes holding the most memory
    loaded: LoadedModel | None  # the model loaded now (unloading it frees its memory)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data['holders'] = [p.to_dict() for p in self.holders]
        data['loaded'] = self.loaded.to_dict() if self.loaded else None
        return data


@dataclass(frozen=True)
class AnswerSpeed:
    """How fast the loaded model answered last, and what on the machine slows it down."""

    model: LoadedModel | None
    tokens_per_s: float | None  # of the latest model answer in the chat
    first_token_s: float | None
    answered_by: str  # the model that gave that answer ('' when there was none)
    on_gpu: bool  # whether a GPU could be read at all
    diagnosis: Diagnosis

    def to_dict(self) -> dict[str, Any]:
        return {'model': self.model.to_dict() if self.model else None, 'tokens_per_s': self.tokens_per_s,
                'first_token_s': self.first_token_s, 'answered_by': self.answered_by, 'on_gpu': self.on_gpu,
                'diagnosis': self.diagnosis.to_dict()}


class MachineQueries:
    """The questions about this machine; each call reads the sources anew."""

    def __init__(self, sources: MachineSources) -> None:
        self.sources = sources

    def now(self) -> float:
        return self.sources.clock()

    async def reading(self) -> NowReading:
        return NowReading(await self.sources.current())

    async def top_processes(self, resource: Resource = 'cpu', limit: int = 3) -> TopProcesses:
        """The processes that use the most of ``resource`` now, from a fresh scan."""
        _check(resource, RESOURCES, 'resource')
        metrics = await self.sources.current()
        snapshot = await self.sources.top_processes(resource, max(1, min(limit, MAX_LIMIT)))
        chosen = [p for p in snapshot.processes if _holds(p, resource)]
        return TopProcesses(resource, snapshot.timestamp, [ProcessShare.of(p) for p in chosen], snapshot.count,
                            metrics.cpu_count or len(metrics.cpu_per_core), snapshot.memory_total or metrics.memory_total,
                            snapshot.gpu_status)

    async def diagnose(self) -> Diagnosis:
        """Why the machine may feel slow: a busy CPU, memory pressure, swap in use, a full disk, a hot GPU."""
        metrics = await self.sources.current()
        top_cpu = [ProcessShare.of(p) for p in (await self.sources.top_processes('cpu', 3)).processes if _holds(p, 'cpu')]
        top_memory = [ProcessShare.of(p) for p in (await self.sources.top_processes('memory', 3)).processes]
        findings: list[Finding] = []
        if metrics.cpu >= BUSY_CPU_PERCENT:
            findings.append(Finding('cpu', round(metrics.cpu, 1), BUSY_CPU_PERCENT, top_cpu))
        if metrics.memory >= MEMORY_PRESSURE_PERCENT:
            findings.append(Finding('memory', round(metrics.memory, 1), MEMORY_PRESSURE_PERCENT, top_memory))
        if metrics.swap_used >= SWAP_IN_USE_BYTES:
            findings.append(Finding('swap', float(metrics.swap_used), float(SWAP_IN_USE_BYTES)))
        if metrics.disk >= DISK_FULL_PERCENT:
            findings.append(Finding('disk', round(metrics.disk, 1), DISK_FULL_PERCENT))
        hot = [g.temperature for g in metrics.gpus if g.temperature is not None]
        if hot and max(hot) >= HOT_GPU_CELSIUS:
            findings.append(Finding('gpu_hot', max(hot), HOT_GPU_CELSIUS))
        return Diagnosis(metrics, findings, top_cpu, top_memory)

    async def history_summary(self, metric: Metric, start: float, end: float) -> HistorySummary:
        """Mean, highest and lowest of one recorded series from ``start`` to ``end`` (Unix seconds)."""
        _check(metric, METRICS, 'metric')
        if start >= end:
            raise ValueError('start must be before end.')
        recorded = await self.sources.history(start, end, HISTORY_POINTS)
        index = FIELDS.index(metric)
        means = [(p.t, p.means[index]) for p in recorded.points if p.means[index] is not None]
        if not means:
            return HistorySummary(metric, start, end, 0, len(recorded.points))
        peaks = [(p.t, p.maxima[index]) for p in recorded.points if p.maxima[index] is not None]
        peak_at, peak = max(peaks or means, key=lambda point: point[1])  # type: ignore[arg-type,return-value]
        if recorded.step_s is not None and recorded.step_s > MINUTE_S:
            # a long window comes in buckets of several minutes: look into the highest one for its minute
            inside = await self.sources.history(peak_at, min(end, peak_at + recorded.step_s), HISTORY_POINTS)
            finer = [(p.t, p.maxima[index]) for p in inside.points if p.maxima[index] is not None]
            if finer:
                peak_at, peak = max(finer, key=lambda point: point[1])  # type: ignore[arg-type,return-value]
        low_at, low = min(means, key=lambda point: point[1])  # type: ignore[arg-type,return-value]
        mean = sum(v for _, v in means) / len(means)  # type: ignore[misc]
        return HistorySummary(metric, start, end, len(means), len(recorded.points), round(mean, 1), round(peak, 1), peak_at,  # type: ignore[arg-type]
                              round(low, 1), low_at)  # type: ignore[arg-type]

    async def busy_between(self, resource: Resource, start: float, end: float, limit: int = 3) -> BusyProcesses:
        """The processes that used the most of ``resource`` from ``start`` to ``end``, from the minutes recorded."""
        _check(resource, RESOURCES, 'resource')
        rows = await self.sources.busy_processes(start, end)
        minutes = len({row.t for row in rows})
        by_process: dict[tuple[int, str], list[RecordedProcess]] = {}
        for row in rows:
            if _recorded_value(row, resource) is not None:
                by_process.setdefault((row.pid, row.name), []).append(row)
        shares = []
        for (pid, name), seen in by_process.items():
            values = [(row.t, float(_recorded_value(row, resource) or 0)) for row in seen]
            peak_at, peak = max(values, key=lambda v: v[1])
            if peak <= 0:
                continue
            shares.append(RecordedShare(name, pid, round(peak, 1), float(peak_at),
                                        round(sum(v for _, v in values) / max(1, minutes), 1), len(values)))
        shares.sort(key=lambda s: (-s.peak, s.pid))
        return BusyProcesses(resource, start, end, minutes, shares[:max(1, min(limit, MAX_LIMIT))])

    async def alerts_between(self, start: float, end: float) -> AlertsWindow:
        """Every alert that fired from ``start`` to ``end``, or fired before and still held then, oldest first."""
        entries = await self.sources.alert_log(ALERT_LOG_LIMIT)
        chosen = [e for e in entries
                  if e.started_at <= end and (e.ended_at is None or e.ended_at >= start)]
        records = [AlertRecord(e.rule_id, e.summary, e.metric, e.severity, e.threshold, e.peak, e.started_at,
                               e.ended_at) for e in sorted(chosen, key=lambda e: e.started_at)]
        return AlertsWindow(start, end, records)

    async def loaded_model(self) -> LoadedModel | None:
        catalog = await self.sources.model_catalog()
        return _loaded(catalog)

    async def model_fit(self, params_b: float, quantization: str = DEFAULT_QUANTIZATION) -> ModelFit:
        """Whether a model of ``params_b`` billion parameters at ``quantization`` fits the free RAM or VRAM now."""
        if not (isinstance(params_b, (int, float)) and 0 < params_b <= 2000 and math.isfinite(params_b)):
            raise ValueError('params_b must be a number of billions of parameters between 0 and 2000.')
        bits = BITS_PER_WEIGHT.get(quantization.upper())
        if bits is None:
            raise ValueError(f'Unknown quantization {quantization!r}; use one of {", ".join(BITS_PER_WEIGHT)}.')
        catalog = await self.sources.model_catalog()
        weights = int(params_b * 1e9 * bits / 8)
        needed = weights + CONTEXT_OVERHEAD_BYTES
        ram, vram = catalog.ram_free_bytes, catalog.vram_free_bytes
        fits_vram = vram is not None and needed <= vram
        fits_ram = ram is not None and needed <= ram
        shortfall = 0 if fits_ram or fits_vram or ram is None else needed - ram
        holders = [ProcessShare.of(p) for p in (await self.sources.top_processes('memory', 3)).processes]
        return ModelFit(float(params_b), quantization.upper(), bits, weights, needed, ram, vram, fits_vram, fits_ram,
                        shortfall, holders, _loaded(catalog))

    async def answer_speed(self) -> AnswerSpeed:
        """The latest model answer's speed (tokens/s), the loaded model, and what the machine is busy with."""
        catalog = await self.sources.model_catalog()
        answers = [m for m in await self.sources.recent_answers(50)
                   if m.role == 'assistant' and m.tokens_per_s is not None]
        latest = answers[-1] if answers else None
        diagnosis = await self.diagnose()
        return AnswerSpeed(_loaded(catalog), latest.tokens_per_s if latest else None,
                           latest.first_token_s if latest else None,
                           (latest.model or latest.source) if latest else '',
                           bool(diagnosis.metrics.gpus), diagnosis)


def _check(value: str, allowed: tuple[str, ...], name: str) -> None:
    if value not in allowed:
        raise ValueError(f'Unknown {name} {value!r}; use one of {", ".join(allowed)}.')


def _holds(process: ProcessInfo, resource: str) -> bool:
    """Whether a process holds any of ``resource`` (an idle process is not "using the CPU")."""
    value = getattr(process, resource)
    return value is not None and value > 0


def _recorded_value(row: RecordedProcess, resource: str) -> float | int | None:
    return getattr(row, resource)


def _loaded(catalog: Any) -> LoadedModel | None:
    active = catalog.active
    if active is None:
        return None
    size = active.size_bytes
    if size is None:  # the catalog's own entry of the loaded model may know its file size
        size = next((m.size_bytes for m in catalog.models if m.key == active.key and m.size_bytes), None)
    return LoadedModel(active.name, active.source, size)
