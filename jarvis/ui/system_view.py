"""The System view: four live cards, the details under them and a five-minute history chart.

Elements are created once. Labels and bars are bound to the window's latest metrics; the chart,
the core bars, the GPU table and the bar colours are updated in place on each ``system_metrics``.
"""
from __future__ import annotations

import json
from collections.abc import Callable

from nicegui import ui

from .. import events
from ..events import GpuReading, SystemMetrics
from ..metrics import MetricsSampler
from ..services import Services
from . import format as fmt
from .core_bars import CoreBars
from .live import LiveWindow, use_hub
from .live_indicator import LiveIndicator
from .markers import mark

SERIES = (('CPU', 'cpu'), ('Memory', 'memory'), ('GPU', 'gpu'))


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
    def __init__(self, sampler: MetricsSampler, live: LiveWindow) -> None:
        self.sampler = sampler
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
            self._build_chart()
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

    def _build_chart(self) -> None:
        history = self.sampler.recent()
        with ui.card().classes('w-full'):
            ui.label('Last 5 minutes').classes('text-base font-medium')
            self.chart = mark(ui.echart({
                'animation': False,
                'tooltip': {'trigger': 'axis'},
                'legend': {'top': 0, 'data': [name for name, _ in SERIES], 'textStyle': {'color': '#94a3b8'}},
                'grid': {'left': 8, 'right': 16, 'top': 32, 'bottom': 8, 'containLabel': True},
                'xAxis': {'type': 'time', 'axisLabel': {'color': '#94a3b8'}},
                'yAxis': {'type': 'value', 'min': 0, 'max': 100,
                          'axisLabel': {'color': '#94a3b8', 'formatter': '{value}%'},
                          'splitLine': {'lineStyle': {'color': 'rgba(148, 163, 184, 0.2)'}}},
                'series': [{'name': name, 'type': 'line', 'showSymbol': False, 'connectNulls': False,
                            'data': [_point(m, key) for m in history]} for name, key in SERIES],
            }).classes('w-full h-64'), 'history-chart')

    # --- updating (every tick, in place): what bindings cannot express ----------------------

    def update(self, metrics: SystemMetrics) -> None:
        for card in self.cards:
            card.colour(metrics)
        self.cores.show(metrics.cpu_per_core)
        self._update_gpus(metrics)
        self._update_chart(metrics)

    def _update_gpus(self, metrics: SystemMetrics) -> None:
        rows = [_gpu_row(gpu) for gpu in metrics.gpus]
        if rows != self.gpu_table.rows:
            self.gpu_table.rows = rows
            self.gpu_table.update()

    def _update_chart(self, metrics: SystemMetrics) -> None:
        # The server-side options stay complete (a re-rendered page starts from them), but the
        # browser only gets the new point: resending five minutes of history every 2 s would make
        # each tick cost more the longer the window stays open.
        limit = self.sampler.recent_limit
        points = [_point(metrics, key) for _, key in SERIES]
        for series, point in zip(self.chart.options['series'], points):
            data = series['data']
            data.append(point)
            del data[:-limit]
        self.chart.run_chart_method(':setOption', _append_points_js(self.chart.id, points, limit))


def system_page(services: Services) -> None:
    SystemView(services.sampler, use_hub(services.hub))


def _point(metrics: SystemMetrics, key: str) -> list:
    return [int(metrics.timestamp * 1000), getattr(metrics, key)]


def _append_points_js(chart_id: int, points: list[list], limit: int) -> str:
    """A JavaScript expression: the chart's series with one new point each, trimmed to ``limit``.

    A point the chart already has is not added again: a chart created just before the window's
    socket connected is sent with the options as they are then, which may hold it already.
    """
    return (f'(() => {{ const chart = getElement({chart_id})?.chart; if (!chart) return {{}}; '
            f'const points = {json.dumps(points)}; '
            'return {series: chart.getOption().series.map((s, i) => { const last = s.data[s.data.length - 1]; '
            f'return {{data: last && last[0] >= points[i][0] ? s.data : s.data.concat([points[i]]).slice(-{limit})}}; }})}}; }})()')


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
