"""The System view: four live cards, the details under them, the processes and the history chart.

Built from the system monitor alone. Elements are created once. Labels and bars are bound to the
window's latest metrics; the chart, the core bars, the GPU table and the bar colours are updated in
place on each ``system_metrics``, the processes table on each ``processes`` scan.
"""
from __future__ import annotations

from collections.abc import Callable

from nicegui import ui

from .. import events
from ..events import GpuReading, SystemMetrics
from ..metrics import SystemMonitor
from ..services import Services
from . import format as fmt
from .core_bars import CoreBars
from .history_chart import HistoryChart
from .live import LiveWindow, use_hub
from .live_indicator import LiveIndicator
from .markers import mark
from .processes_panel import ProcessesPanel

Reading = Callable[[SystemMetrics], float | None]
Caption = Callable[[SystemMetrics], str]


class MetricCard:
    """A percentage with a colour-coded bar and a caption, bound to the window's latest metrics."""

    def __init__(self, live: LiveWindow, title: str, icon: str, key: str, reading: Reading, caption: Caption) -> None:
        with ui.card().classes('w-full gap-2').mark(f'{key}-card'):
            with ui.row().classes('items-center gap-2 w-full'):
                ui.icon(icon, size='sm').classes('opacity-70')
                ui.label(title).classes('text-sm uppercase tracking-wide opacity-70')
            mark(ui.label().classes('text-4xl font-bold jarvis-metric-value'), f'{key}-value') \
                .bind_text_from(live, 'metrics', backward=lambda m: fmt.percent(_read(m, reading)))
            self.bar = ui.linear_progress(show_value=False, size='10px', color='grey').props('rounded') \
                .mark(f'{key}-bar').bind_value_from(live, 'metrics', backward=lambda m: fmt.fraction(_read(m, reading)))
            ui.label().classes('text-sm opacity-70 truncate w-full').mark(f'{key}-caption') \
                .bind_text_from(live, 'metrics', backward=lambda m: caption(m) if m else '')
        self.reading = reading
        self._color = 'grey'

    def colour(self, metrics: SystemMetrics) -> None:
        """Quasar's colour is a prop, which has no binding: set it when the level changes."""
        color = fmt.level_color(self.reading(metrics))
        if color != self._color:
            self._color = color
            self.bar.props(f'color={color}')


class SystemView:
    def __init__(self, system: SystemMonitor, live: LiveWindow) -> None:
        self.system = system
        with ui.column().classes('w-full gap-4') as self.root:
            with ui.row().classes('w-full items-center'):
                ui.label('System').classes('text-2xl font-semibold')
                ui.space()
                mark(ui.label().classes('text-xs opacity-60'), 'updated-at').bind_text_from(
                    live, 'metrics', backward=lambda m: f'Updated {fmt.clock(m.timestamp)}' if m else '')
                mark(LiveIndicator(), 'system-live')
            with ui.grid().classes('w-full gap-4 grid-cols-1 sm:grid-cols-2 xl:grid-cols-4'):
                self.cards = [
                    MetricCard(live, 'CPU', 'memory', 'cpu', lambda m: m.cpu, lambda m: f'{m.cpu_count} cores'),
                    MetricCard(live, 'Memory', 'storage', 'memory', lambda m: m.memory,
                               lambda m: fmt.used_of(m.memory_used, m.memory_total)),
                    MetricCard(live, 'Disk', 'save', 'disk', lambda m: m.disk,
                               lambda m: fmt.used_of(m.disk_used, m.disk_total)),
                    MetricCard(live, 'GPU', 'developer_board', 'gpu', lambda m: m.gpu, _gpu_caption),
                ]
            with ui.grid().classes('w-full gap-4 grid-cols-1 lg:grid-cols-2'):
                self._build_cpu_details()
                self._build_memory_details(live)
                self._build_gpu_details(live)
            self.history = HistoryChart(system, live)
            self.processes = ProcessesPanel(system, live)
        live.on(events.SYSTEM_METRICS, self.update, owner=self.root)
        if live.metrics is not None:  # a fresh window shows the current values at once
            self.update(live.metrics)

    # --- building (once) --------------------------------------------------------------------

    def _build_cpu_details(self) -> None:
        with ui.card().classes('w-full'):
            ui.label('CPU cores').classes('text-base font-medium')
            self.cores = mark(CoreBars(), 'core-bars')

    def _build_memory_details(self, live: LiveWindow) -> None:
        rows: list[tuple[Caption, str, Caption]] = [
            (lambda m: 'Memory', 'memory-detail', lambda m: fmt.used_of(m.memory_used, m.memory_total)),
            (lambda m: 'Swap', 'swap-detail', lambda m: fmt.used_of(m.swap_used, m.swap_total)),
            (lambda m: f'Disk ({m.disk_path})', 'disk-detail', lambda m: fmt.used_of(m.disk_used, m.disk_total)),
            (lambda m: 'Network ↑', 'net-up', lambda m: fmt.rate(m.net_sent_per_s)),
            (lambda m: 'Network ↓', 'net-down', lambda m: fmt.rate(m.net_recv_per_s)),
        ]
        with ui.card().classes('w-full'):
            ui.label('Memory, disk and network').classes('text-base font-medium')
            with ui.grid(columns=2).classes('w-full gap-x-6 gap-y-1 text-sm'):
                for name, marker, value in rows:
                    ui.label().bind_text_from(live, 'metrics', backward=lambda m, name=name: name(m) if m else '')
                    ui.label().mark(marker).bind_text_from(
                        live, 'metrics', backward=lambda m, value=value: value(m) if m else fmt.NA)

    def _build_gpu_details(self, live: LiveWindow) -> None:
        with ui.card().classes('w-full lg:col-span-2'):
            ui.label('GPUs').classes('text-base font-medium')
            ui.label(fmt.NA).classes('text-sm opacity-70').mark('gpu-status').bind_text_from(
                live, 'metrics', backward=_gpu_status)
            self.gpu_table = ui.table(columns=[
                {'name': 'name', 'label': 'GPU', 'field': 'name', 'align': 'left'},
                {'name': 'utilization', 'label': 'Utilisation', 'field': 'utilization'},
                {'name': 'memory', 'label': 'Memory', 'field': 'memory'},
                {'name': 'temperature', 'label': 'Temperature', 'field': 'temperature'},
                {'name': 'power', 'label': 'Power', 'field': 'power'},
                {'name': 'fan', 'label': 'Fan', 'field': 'fan'},
            ], rows=[], row_key='index').props('flat dense').classes('w-full').mark('gpu-table')
            self.gpu_table.bind_visibility_from(live, 'metrics', backward=lambda m: bool(m and m.gpus))

    # --- updating (every tick, in place): what bindings cannot express ----------------------

    def update(self, metrics: SystemMetrics) -> None:
        for card in self.cards:
            card.colour(metrics)
        self.cores.show(metrics.cpu_per_core)
        self._update_gpus(metrics)
        self.history.follow(metrics)

    def _update_gpus(self, metrics: SystemMetrics) -> None:
        rows = [_gpu_row(gpu) for gpu in metrics.gpus]
        if rows != self.gpu_table.rows:
            self.gpu_table.rows = rows
            self.gpu_table.update()


def system_page(services: Services) -> None:
    SystemView(services.system, use_hub(services.hub))


def _gpu_caption(metrics: SystemMetrics) -> str:
    if not metrics.gpus:
        return metrics.gpu_status
    names = sorted({gpu.name or 'GPU' for gpu in metrics.gpus})
    return ', '.join(names) if len(metrics.gpus) == 1 else f'{len(metrics.gpus)}× {", ".join(names)}'


def _gpu_row(gpu: GpuReading) -> dict:
    return {
        'index': gpu.index,
        'name': f'#{gpu.index} {gpu.name or fmt.NA}',
        'utilization': fmt.percent(gpu.utilization),
        'memory': fmt.used_of(gpu.memory_used, gpu.memory_total),
        'temperature': fmt.temperature(gpu.temperature),
        'power': fmt.watts(gpu.power, gpu.power_limit),
        'fan': fmt.percent(gpu.fan),
    }


def _read(metrics: SystemMetrics | None, reading: Reading) -> float | None:
    return reading(metrics) if metrics is not None else None


def _gpu_status(metrics: SystemMetrics | None) -> str:
    if metrics is None:
        return fmt.NA
    return f'{len(metrics.gpus)} GPU(s)' if metrics.gpus else f'n/a: {metrics.gpu_status}'
