"""The Processes panel of the System view: the processes that use the most, sortable, with a filter box.

While the panel is in view in a connected window (in the viewport, in a page the browser does not
report as hidden) it holds a demand on the process scans (every 5 s, less often where a scan costs more
than its budget: ``jarvis/metrics/processes.py``): a panel scrolled out of sight or a hidden tab costs no
scan. Each scan arrives as a ``processes`` event and replaces the table's
rows in place. Sorting (a click on a
column) and filtering pick the rows on the server from the whole scan, so "the top 20 by memory" or
"every process called chrome" are right, not a re-ordering of the rows already shown.
"""
from __future__ import annotations

from typing import Any

from nicegui import background_tasks, ui

from ..metrics import SystemMonitor
from ..metrics.processes import PROCESSES, ProcessInfo, ProcessSnapshot, rank
from . import format as fmt
from .live import LiveWindow
from .markers import mark

ROWS = 20
CONNECT_TIMEOUT_S = 30.0
VISIBILITY_EVENT = 'panelvisibility'

# Reports to the server whether the panel is in view: when it scrolls in or out of the viewport, and when the
# tab or window is hidden or shown. It stops by itself once the panel has left the page.
_WATCH_VISIBILITY_JS = '''
(() => {
  const element = getHtmlElement(%d);
  if (!element) return;
  let inViewport = false;
  let last = null;
  const report = () => {
    if (!element.isConnected) { observer.disconnect(); document.removeEventListener('visibilitychange', report); return; }
    const shown = inViewport && document.visibilityState === 'visible';
    if (shown !== last) { last = shown; element.dispatchEvent(new CustomEvent('%s', {detail: shown})); }
  };
  const observer = new IntersectionObserver(entries => { inViewport = entries[entries.length - 1].isIntersecting; report(); });
  observer.observe(element);
  document.addEventListener('visibilitychange', report);
})()
'''

# Quasar sorts the rows it is given by ``field`` (the raw number) and shows ``format`` (the text)
_COLUMNS: list[dict[str, Any]] = [
    {'name': 'name', 'label': 'Name', 'field': 'name', 'align': 'left', 'sortable': True},
    {'name': 'pid', 'label': 'PID', 'field': 'pid', 'align': 'right', 'sortable': True},
    {'name': 'user', 'label': 'User', 'field': 'user', 'align': 'left', 'sortable': True},
    {'name': 'cpu', 'label': 'CPU', 'field': 'cpu', 'align': 'right', 'sortable': True, 'sortOrder': 'da',
     ':format': '(value, row) => row.cpu_text'},
    {'name': 'memory', 'label': 'Memory', 'field': 'memory', 'align': 'right', 'sortable': True, 'sortOrder': 'da',
     ':format': '(value, row) => row.memory_text'},
    {'name': 'gpu_memory', 'label': 'GPU memory', 'field': 'gpu_memory', 'align': 'right', 'sortable': True,
     'sortOrder': 'da', ':format': '(value, row) => row.gpu_memory_text'},
]


class ProcessesPanel:
    def __init__(self, system: SystemMonitor, live: LiveWindow) -> None:
        self.sort = 'cpu'
        self.descending = True
        self.filter = ''
        self.snapshot: ProcessSnapshot | None = None
        self.in_view = False  # until the page says so
        self._gpu_column: bool | None = None
        with mark(ui.card().classes('w-full'), 'processes-panel') as self.root:
            with ui.row().classes('w-full items-center gap-3'):
                ui.label('Processes').classes('text-base font-medium')
                self.summary = mark(ui.label('Reading the processes…').classes('text-xs opacity-60'),
                                    'processes-summary')
                ui.space()
                self.filter_box = mark(ui.input(placeholder='Filter: name, user or PID',
                                                on_change=lambda e: self.set_filter(e.value or ''))
                                       .props('dense clearable debounce=150').classes('w-64'), 'processes-filter')
            self.table = mark(ui.table(
                columns=_columns(gpu=False), rows=[], row_key='pid',
                pagination={'rowsPerPage': 0, 'sortBy': self.sort, 'descending': self.descending},
                on_pagination_change=lambda e: self.set_sort(e.value.get('sortBy'), e.value.get('descending')),
            ).props('flat dense hide-pagination').classes('w-full'), 'processes-table')
        self.demand = system.watch_processes(name=f'processes panel {live.client.id[:8]}',
                                             active=lambda: live.connected and self.in_view,
                                             ended=lambda: self.root.is_deleted)
        live.on_connection(self.demand.changed, owner=self.root)  # the demand counts only while connected
        self.root.on(VISIBILITY_EVENT, lambda e: self.set_in_view(_detail(e.args)), ['detail'])
        live.on(PROCESSES, self.show, owner=self.root)
        latest = system.latest_processes()
        if latest is not None:
            self.show(latest)
        background_tasks.create(self._watch_visibility(live.client), name='processes: watch visibility')

    async def _watch_visibility(self, client: Any) -> None:
        """Once the window's socket is up, the page reports whether the panel is in view."""
        try:
            await client.connected(timeout=CONNECT_TIMEOUT_S)
        except TimeoutError:  # NiceGUI's ClientConnectionTimeout: the window never connected
            return
        if not self.root.is_deleted:
            client.run_javascript(_WATCH_VISIBILITY_JS % (self.root.id, VISIBILITY_EVENT))

    def set_in_view(self, in_view: bool) -> None:
        """The panel came into view (scans start at once) or left it (they stop)."""
        self.in_view = in_view
        self.demand.changed()

    def show(self, snapshot: ProcessSnapshot) -> None:
        self.snapshot = snapshot
        self._draw()

    def set_sort(self, sort: Any, descending: Any) -> None:
        if not isinstance(sort, str) or sort not in {c['name'] for c in _COLUMNS}:
            sort = self.sort
        self.sort, self.descending = sort, bool(descending)
        self._draw()

    def set_filter(self, text: str) -> None:
        self.filter = text
        self._draw()

    def _draw(self) -> None:
        snapshot = self.snapshot
        if snapshot is None:
            return
        if snapshot.has_gpu_memory != self._gpu_column:
            self._gpu_column = snapshot.has_gpu_memory
            self.table.columns = _columns(gpu=snapshot.has_gpu_memory)
        chosen = choose(snapshot.processes, self.sort, self.descending, self.filter)
        rows = [row(p) for p in chosen[:ROWS]]
        if rows != self.table.rows:
            self.table.rows = rows
        self.summary.set_text(summary(snapshot, len(chosen), min(len(chosen), ROWS), self.sort, self.filter))


def _detail(args: Any) -> bool:
    return bool(args.get('detail')) if isinstance(args, dict) else bool(args)


def _columns(*, gpu: bool) -> list[dict[str, Any]]:
    return [dict(c) for c in _COLUMNS if gpu or c['name'] != 'gpu_memory']


def choose(processes: list[ProcessInfo], sort: str, descending: bool, text: str) -> list[ProcessInfo]:
    """The processes that match the filter (a plain piece of name, user or PID, any case), sorted."""
    needle = text.strip().casefold()
    if needle:
        processes = [p for p in processes
                     if needle in p.name.casefold() or needle in p.user.casefold() or needle in str(p.pid)]
    return rank(processes, sort, descending=descending)


def row(process: ProcessInfo) -> dict[str, Any]:
    return {
        'pid': process.pid,
        'name': process.name,
        'user': process.user,
        'cpu': process.cpu if process.cpu is not None else -1,
        'cpu_text': fmt.process_cpu(process.cpu),
        'memory': process.memory,
        'memory_text': fmt.bytes_(process.memory),
        'gpu_memory': process.gpu_memory if process.gpu_memory is not None else -1,
        'gpu_memory_text': fmt.gpu_memory(process.gpu_memory),
    }


def summary(snapshot: ProcessSnapshot, matching: int, shown: int, sort: str, text: str) -> str:
    label = next(c['label'] for c in _COLUMNS if c['name'] == sort)
    if text.strip():
        found = f'{matching} of {snapshot.count} processes match'
    else:
        found = f'Top {shown} of {snapshot.count} processes'
    seconds = snapshot.cpu_window_s  # a tenth where it matters: the first scan averages over a quarter second
    window = f'CPU % of one core over {seconds:.{1 if seconds < 10 else 0}f} s' if seconds else 'CPU % n/a'
    gpu = '' if snapshot.has_gpu_memory else f' · GPU memory n/a: {snapshot.gpu_status}'
    return f'{found}, by {label.lower()} · {window} · {fmt.clock(snapshot.timestamp)}{gpu}'
