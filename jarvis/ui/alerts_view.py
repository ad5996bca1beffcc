"""The Alerts view: the alerts firing now, the rules (changed here, in another window or by a script,
shown the same in all), a form for a new rule, and the alert log.

Built from the alert manager's facade alone (``rules``, ``save``, ``remove``, ``active``, ``log``);
what changes elsewhere arrives as ``alert`` and ``alert_rules`` hub events.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import background_tasks, ui
from nicegui import events as ui_events

from .. import events
from ..alerts import AlertManager, AlertRule, RuleError, WatchedMetric
from ..alerts.rules import DEFAULT_COOLDOWN_S, SEVERITIES
from ..events import Alert, AlertRulesChanged
from ..services import Services
from . import format as fmt
from . import notifications
from .live import LiveWindow, use_hub
from .markers import mark

SEVERITY_COLORS = {'warning': 'warning', 'critical': 'negative'}
LOG_LIMIT = 50
LOG_COLUMNS = [
    {'name': 'started', 'label': 'Started', 'field': 'started', 'align': 'left'},
    {'name': 'ended', 'label': 'Ended', 'field': 'ended', 'align': 'left'},
    {'name': 'alert', 'label': 'Alert', 'field': 'alert', 'align': 'left'},
    {'name': 'severity', 'label': 'Severity', 'field': 'severity', 'align': 'left'},
    {'name': 'peak', 'label': 'Peak', 'field': 'peak', 'align': 'right'},
    {'name': 'how', 'label': 'Ended because', 'field': 'how', 'align': 'left'},
]


class RuleFields:
    """The inputs of one rule: metric, threshold, duration, cooldown, severity.

    The numbers are not clamped to their ranges (a clamped field would show a value other than the one
    the user typed): the alert manager checks them and its sentence says what fits."""

    def __init__(self, metrics: list[WatchedMetric], rule: AlertRule | None, marker: Callable[[str], str]) -> None:
        self.metrics = {metric.name: metric for metric in metrics}
        metric = rule.metric if rule else 'cpu'
        self.metric = mark(ui.select({m.name: m.label for m in metrics}, value=metric, label='Metric',
                                     on_change=self._show_unit).classes('w-44'), marker('metric'))
        self.threshold = mark(ui.number('Above', value=rule.threshold if rule else 90).classes('w-28'),
                              marker('threshold'))
        self.duration = mark(ui.number('For (s)', value=rule.duration_s if rule else 60).classes('w-28'),
                             marker('duration'))
        self.cooldown = mark(ui.number('Cooldown (s)', value=rule.cooldown_s if rule else DEFAULT_COOLDOWN_S)
                             .classes('w-32'), marker('cooldown'))
        self.severity = mark(ui.select(list(SEVERITIES), value=rule.severity if rule else 'warning',
                                       label='Severity').classes('w-32'), marker('severity'))
        self._show_unit()

    def values(self) -> dict[str, Any]:
        """What the fields hold; raises ``RuleError`` for an empty number (the manager would keep the old one)."""
        numbers = {'threshold': self.threshold.value, 'duration_s': self.duration.value,
                   'cooldown_s': self.cooldown.value}
        if any(value is None for value in numbers.values()):
            raise RuleError('Give a number for the threshold, the duration and the cooldown.')
        return {'metric': self.metric.value, **numbers, 'severity': self.severity.value}

    def show(self, rule: AlertRule) -> None:
        for field, value in ((self.metric, rule.metric), (self.threshold, rule.threshold),
                             (self.duration, rule.duration_s), (self.cooldown, rule.cooldown_s),
                             (self.severity, rule.severity)):
            if field.value != value:
                field.set_value(value)

    def _show_unit(self) -> None:
        metric = self.metrics.get(self.metric.value)
        self.threshold.props(f'suffix="{metric.unit if metric else ""}"')


class RuleRow:
    def __init__(self, view: AlertsView, rule: AlertRule, metrics: list[WatchedMetric]) -> None:
        self.view = view
        self.rule = rule
        with ui.column().classes('w-full gap-1') as self.element:
            with ui.row().classes('w-full items-center gap-3'):
                self.enabled = mark(ui.switch(value=rule.enabled, on_change=self.toggle), f'alert-rule-enabled:{rule.id}')
                self.fields = RuleFields(metrics, rule, lambda field: f'alert-{field}:{rule.id}')
                mark(ui.button(icon='save', on_click=self.save).props('flat round dense aria-label="Save"').tooltip('Save'),
                     f'alert-rule-save:{rule.id}')
                mark(ui.button(icon='delete', on_click=self.remove).props('flat round dense aria-label="Remove"').tooltip('Remove'),
                     f'alert-rule-remove:{rule.id}')
            self.caption = mark(ui.label(_caption(rule)).classes('text-xs opacity-60 pl-14'),
                                f'alert-rule-condition:{rule.id}')
            self.error = mark(ui.label('').classes('text-xs text-negative pl-14'), f'alert-rule-error:{rule.id}')
            self.error.set_visibility(False)
        mark(self.element, f'alert-rule:{rule.id}')

    def show(self, rule: AlertRule) -> None:
        """The rule as stored (saved here, in another window or by a script)."""
        if rule == self.rule:
            return  # unsaved edits of this row stay
        self.rule = rule
        if self.enabled.value != rule.enabled:
            self.enabled.set_value(rule.enabled)  # toggle() sees it matches and does nothing
        self.fields.show(rule)
        self.caption.set_text(_caption(rule))
        self.error.set_visibility(False)

    async def save(self) -> None:
        await self._save(self.fields.values)

    async def toggle(self, event: ui_events.ValueChangeEventArguments) -> None:
        if bool(event.value) == self.rule.enabled:
            return  # an update that came from the hub, not from the user
        await self._save(lambda: {'enabled': bool(event.value)})

    async def _save(self, changes: Callable[[], dict[str, Any]]) -> None:
        try:
            rule = await self.view.alerts.save(changes(), self.rule.id)
        except RuleError as error:  # nothing was stored: the fields keep what the user typed, to correct it
            self.error.set_text(str(error))
            self.error.set_visibility(True)
            if self.enabled.value != self.rule.enabled:
                self.enabled.set_value(self.rule.enabled)
            return
        self.error.set_visibility(False)
        self.show(rule)
        notifications.notify(self.element.client, f'Alert rule "{rule.id}" saved: {rule.condition}.',
                             type='positive', group='alert-rules')

    async def remove(self) -> None:
        try:
            await self.view.alerts.remove(self.rule.id)
        except RuleError as error:  # removed meanwhile in another window
            notifications.notify(self.element.client, str(error), type='warning')


class AlertsView:
    def __init__(self, alerts: AlertManager, live: LiveWindow) -> None:
        self.alerts = alerts
        self.metrics = alerts.metrics()
        self.rows: dict[str, RuleRow] = {}
        with ui.column().classes('w-full gap-4 max-w-6xl') as self.root:
            ui.label('Alerts').classes('text-2xl font-semibold')
            ui.label('J.A.R.V.I.S. checks every reading of the machine against these rules. A firing alert shows '
                     'in every window and, while no window of the app is visible, as a desktop notification.') \
                .classes('text-sm opacity-70')
            with ui.card().classes('w-full').props('flat bordered'):
                ui.label('Firing now').classes('text-lg font-medium')
                background_tasks.create(self.active_list(), name='alerts: active')
            with ui.card().classes('w-full').props('flat bordered'):
                ui.label('Rules').classes('text-lg font-medium')
                background_tasks.create(self.rule_list(), name='alerts: rules')
                ui.separator()
                ui.label('New rule').classes('text-sm font-medium')
                with ui.row().classes('w-full items-center gap-3'):
                    self.new_fields = RuleFields(self.metrics, None, lambda field: f'alert-new-{field}')
                    mark(ui.button('Add', icon='add', on_click=self.add).props('outline dense'), 'alert-new-add')
                self.new_error = mark(ui.label('').classes('text-xs text-negative'), 'alert-new-error')
                self.new_error.set_visibility(False)
            with ui.card().classes('w-full').props('flat bordered'):
                ui.label('Log').classes('text-lg font-medium')
                background_tasks.create(self.log_table(), name='alerts: log')
        live.on(events.ALERT, self._on_alert, owner=self.root)
        live.on(events.ALERT_RULES, self._on_rules, owner=self.root)

    @ui.refreshable_method
    async def active_list(self) -> None:
        alerts = await self.alerts.active()
        if not alerts:
            mark(ui.label('No alert is firing.').classes('text-sm opacity-70'), 'alerts-none-firing')
        for alert in alerts:
            with mark(ui.row().classes('w-full items-center gap-3 no-wrap'), f'alert-firing:{alert.rule_id}'):
                ui.badge(alert.severity, color=SEVERITY_COLORS.get(alert.severity, 'grey'))
                with ui.column().classes('gap-0'):
                    ui.label(alert.summary).classes('font-medium')
                    # the peak, not the latest value: the list is drawn when an alert starts or ends, not per sample
                    ui.label(f'Since {fmt.date_time(alert.started_at)}; peak so far '
                             f'{_format_peak(self.metrics, alert.metric, alert.peak)}.').classes('text-sm opacity-80')

    @ui.refreshable_method
    async def rule_list(self) -> None:
        rules = await self.alerts.rules()
        if not rules:
            ui.label('No rules: add one below.').classes('text-sm opacity-70')
        self.rows = {rule.id: RuleRow(self, rule, self.metrics) for rule in rules}

    @ui.refreshable_method
    async def log_table(self) -> None:
        rows = [{'id': entry.id, 'started': fmt.date_time(entry.started_at),
                 'ended': fmt.date_time(entry.ended_at, none='firing'), 'alert': f'{entry.summary} ({entry.rule_id})',
                 'severity': entry.severity, 'peak': _format_peak(self.metrics, entry.metric, entry.peak),
                 'how': entry.resolution} for entry in await self.alerts.log(LOG_LIMIT)]
        mark(ui.table(columns=LOG_COLUMNS, rows=rows, row_key='id').classes('w-full').props('flat dense'), 'alert-log')

    async def add(self) -> None:
        try:
            rule = await self.alerts.save(self.new_fields.values())  # values() too may say what is missing
        except RuleError as error:
            self.new_error.set_text(str(error))
            self.new_error.set_visibility(True)
            return
        self.new_error.set_visibility(False)
        notifications.notify(self.root.client, f'Alert rule "{rule.id}" added: {rule.condition}.', type='positive',
                             group='alert-rules')

    async def _on_alert(self, _: Alert) -> None:
        await self.active_list.refresh()
        await self.log_table.refresh()

    async def _on_rules(self, _: AlertRulesChanged) -> None:
        rules = await self.alerts.rules()
        if [rule.id for rule in rules] != list(self.rows):
            await self.rule_list.refresh()  # added or removed: drawn anew
            return
        for rule in rules:
            self.rows[rule.id].show(rule)


def _format_peak(metrics: list[WatchedMetric], name: str, value: float) -> str:
    for metric in metrics:
        if metric.name == name:
            return metric.format(value)
    return f'{value:g}'


def alerts_page(services: Services) -> None:
    AlertsView(services.alerts, use_hub(services.hub))


def _caption(rule: AlertRule) -> str:
    return f'{rule.id}: {rule.condition}' + ('' if rule.enabled else ' (off)')
