"""The history chart of the System view: 5 min to 30 days, with zoom.

A range is loaded from the machine's history (already averaged on the server to at most 1,000 points per
series); the short ranges (5 min, 1 h) then follow each new sample, the browser getting only the new
point. Series: CPU, memory, GPU utilisation and GPU memory in percent (left axis), the hottest GPU's
temperature in °C (right axis). A series without readings (no GPU) has no line, and a time without
samples (the app was closed) is a gap, never a line drawn across it.
"""
from __future__ import annotations

import json
from typing import Any

from nicegui import background_tasks, ui

from ..events import SystemMetrics
from ..metrics import SystemMonitor
from ..metrics.history import RANGES
from ..metrics.history_store import HistoryRange, HistorySample
from ..metrics.sampler import CALM_INTERVAL_S
from .live import LiveWindow
from .markers import mark

RANGE_LABELS = {'5m': '5 min', '1h': '1 h', '24h': '24 h', '7d': '7 d', '30d': '30 d'}
LIVE_RANGES = frozenset(('5m', '1h'))  # these follow each sample; the longer ones are averages
MAX_POINTS = 600  # per series: about one every 2 px of a wide chart; fewer points draw faster

# (legend, history field, y axis: 0 = percent, 1 = °C)
SERIES: tuple[tuple[str, str, int], ...] = (
    ('CPU', 'cpu', 0), ('Memory', 'memory', 0), ('GPU', 'gpu', 0), ('GPU memory', 'gpu_memory', 0),
    ('GPU °C', 'gpu_temperature', 1))
_AXIS_COLOR = '#94a3b8'


class HistoryChart:
    def __init__(self, system: SystemMonitor, live: LiveWindow) -> None:
        self.system = system
        self.range = '5m'
        self.loaded: str | None = None  # the range the chart shows (None while the first one loads)
        self.chart: ui.echart | None = None
        with ui.card().classes('w-full') as self.root:
            with ui.row().classes('w-full items-center gap-3'):
                ui.label('History').classes('text-base font-medium') \
                    .tooltip('Zoom with the slider under the chart, or Ctrl and the mouse wheel; drag to move')
                self.caption = mark(ui.label('Loading…').classes('text-xs opacity-60'), 'history-caption')
                ui.space()
                self.toggle = mark(ui.toggle(RANGE_LABELS, value=self.range,
                                             on_change=lambda e: self.select(e.value))
                                   .props('dense no-caps unelevated'), 'history-range')
            self._place = ui.element('div').classes('w-full h-72')
        # ECharts is the largest script of the page, and starting it the largest share of a page load: the
        # chart comes once the window is live, so that a new window shows its values without waiting for it
        if live.connected:
            self._show_chart()
        else:
            live.on_connection(self._show_chart, owner=self.root)

    def _show_chart(self) -> None:
        if self.chart is not None or self.root.is_deleted:
            return
        with self._place:
            self.chart = mark(ui.echart(chart_options()).classes('w-full h-full'), 'history-chart')
        background_tasks.create(self.select(self.range), name='history: first range')

    async def select(self, name: str | None) -> None:
        """Show a range: its history from the server, then (for the short ones) each new sample."""
        if name not in RANGES:
            return
        self.range = name
        if self.chart is None:  # the chart is not there yet: it opens on this range
            return
        history = await self.system.history_range(name, max_points=MAX_POINTS)
        if self.range != name or self.chart.is_deleted:  # another range was chosen meanwhile, or the view closed
            return
        changes = range_options(history, live=name in LIVE_RANGES)
        first = self.loaded is None
        # NiceGUI sends the whole options on every change of them: the server's copy is changed silently,
        # so that a re-rendered page starts from it, and the browser gets the new range once
        with self.chart.props.suspend_updates():
            _merge(self.chart.options, changes)
        if first:  # the chart may not be in the page yet: it draws from the options when it is
            self.chart.update()
        else:  # plain data for ECharts, not the page's reactive copy of the options: much faster to draw
            self.chart.run_chart_method('setOption', changes)
        self.loaded = name
        self.caption.set_text(caption(history))

    def follow(self, metrics: SystemMetrics) -> None:
        """Add a sample to a short range. The server's options stay complete (a re-rendered page starts from
        them), the browser only gets the new point: resending the range every 2 s would cost more the longer
        the window stays open."""
        if self.chart is None or self.loaded not in LIVE_RANGES or self.loaded != self.range:
            return
        sample = HistorySample.from_metrics(metrics)
        time_ms = int(sample.t * 1000)
        cutoff_ms = time_ms - int(RANGES[self.loaded] * 1000)
        points = [[time_ms, _value(getattr(sample, key))] for _, key, _axis in SERIES]
        with self.chart.props.suspend_updates():  # a change of the options would send them whole
            for series, point in zip(self.chart.options['series'], points):
                data = series['data']
                if data and data[-1][0] >= time_ms:
                    continue
                data.append(point)
                if data[0][0] < cutoff_ms:
                    series['data'] = [p for p in data if p[0] >= cutoff_ms]
        self.chart.run_chart_method(':setOption', _append_points_js(self.chart.id, points, cutoff_ms))


def range_options(history: HistoryRange, *, live: bool) -> dict[str, Any]:
    """What changes in the chart's options for a range: the data, the time axis, the temperature axis, the zoom."""
    has_temperature = any(p.value('gpu_temperature') is not None for p in history.points)
    return {
        'series': [{'data': series_data(history, key)} for _, key, _axis in SERIES],
        # a live range's axis follows the data as it comes; the others show the whole range asked for
        'xAxis': {'min': None, 'max': None} if live else {'min': int(history.start * 1000),
                                                          'max': int(history.end * 1000)},
        'yAxis': [{}, {'show': has_temperature}],
        'dataZoom': [{'start': 0, 'end': 100}, {'start': 0, 'end': 100}],  # a new range starts unzoomed
    }


def _merge(options: Any, changes: Any) -> None:
    """Apply ``range_options`` to the server's options as ECharts' setOption merges them into its own."""
    for key, value in changes.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value) \
                and isinstance(options.get(key), list):  # series, axes, zooms: each merged into its own
            for target, change in zip(options[key], value):
                _merge(target, change)
        elif isinstance(value, dict) and isinstance(options.get(key), dict):
            _merge(options[key], value)
        elif value is None:
            options.pop(key, None)
        else:
            options[key] = value


def chart_options() -> dict[str, Any]:
    grey = {'color': _AXIS_COLOR}
    return {
        'animation': False,
        'tooltip': {'trigger': 'axis'},
        # scrolls where the window is too narrow for all five names (390 px), instead of cutting the last one off
        'legend': {'type': 'scroll', 'top': 0, 'data': [name for name, _, _ in SERIES], 'textStyle': grey,
                   'pageTextStyle': grey, 'pageIconColor': _AXIS_COLOR},
        'grid': {'left': 8, 'right': 16, 'top': 32, 'bottom': 36, 'containLabel': True},
        # a narrow window (390 px) has room for a few times only: the others are left out, not drawn over each other
        'xAxis': {'type': 'time', 'axisLabel': {**grey, 'hideOverlap': True}},
        'yAxis': [
            {'type': 'value', 'min': 0, 'max': 100, 'axisLabel': {**grey, 'formatter': '{value}%'},
             'splitLine': {'lineStyle': {'color': 'rgba(148, 163, 184, 0.2)'}}},
            {'type': 'value', 'min': 0, 'position': 'right', 'show': False,
             'axisLabel': {**grey, 'formatter': '{value} °C'}, 'splitLine': {'show': False}},
        ],
        # the mouse wheel zooms only with Ctrl held: without it, it scrolls the page past the chart
        'dataZoom': [{'type': 'inside', 'start': 0, 'end': 100, 'zoomOnMouseWheel': 'ctrl'},
                     {'type': 'slider', 'start': 0, 'end': 100, 'height': 16, 'bottom': 4}],
        'series': [{'name': name, 'type': 'line', 'showSymbol': False, 'connectNulls': False, 'yAxisIndex': axis,
                    'sampling': 'lttb', 'data': []} for name, _, axis in SERIES],
    }


def gap_seconds(history: HistoryRange) -> float:
    """Points further apart than this have a gap between them (the app was not running)."""
    step = history.step_s or 0.0
    return max(3 * CALM_INTERVAL_S, 2.5 * step)


def series_data(history: HistoryRange, key: str) -> list[list[Any]]:
    """``[[time in ms, value or None], ...]`` with a None point in each gap, so that ECharts breaks the line."""
    gap = gap_seconds(history)
    data: list[list[Any]] = []
    previous: float | None = None
    for point in history.points:
        if previous is not None and point.t - previous > gap:
            data.append([int((previous + point.t) / 2 * 1000), None])
        data.append([int(point.t * 1000), _value(point.value(key))])
        previous = point.t
    return data


def caption(history: HistoryRange) -> str:
    if not history.points:
        return 'No history for this range yet'
    if history.step_s is None:
        what = 'every sample'
    elif history.tier == 'samples':
        what = f'means per {history.step_s:.0f} s'
    else:
        what = f'means per {_duration(history.step_s)}'
    gpu = '' if any(p.value('gpu') is not None for p in history.points) else ' · GPU n/a'
    return f'{len(history.points):,} points, {what}{gpu}'


def _duration(seconds: float) -> str:
    minutes = seconds / 60
    return f'{minutes:.0f} min' if minutes < 120 else f'{minutes / 60:.0f} h'


def _value(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _append_points_js(chart_id: int, points: list[list], cutoff_ms: int) -> str:
    """A JavaScript expression: the chart's series with one new point each, without points before ``cutoff_ms``.

    A point the chart already has is not added again: a chart created just before the window's socket
    connected is sent with the options as they are then, which may hold it already.
    """
    return (f'(() => {{ const chart = getElement({chart_id})?.chart; if (!chart) return {{}}; '
            f'const points = {json.dumps(points)}; const cutoff = {cutoff_ms}; '
            'return {series: chart.getOption().series.map((s, i) => { const last = s.data[s.data.length - 1]; '
            'if (last && last[0] >= points[i][0]) return {data: s.data}; '
            'return {data: s.data.filter(p => p[0] >= cutoff).concat([points[i]])}; })}; })()')
