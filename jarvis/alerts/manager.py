"""The alerts' facade: rules (stored, checked, changed in any window or by a script), evaluation of
every ``system_metrics`` sample the hub carries, the alert log, and desktop notifications.

Evaluation follows whatever samples arrive, with or without a window: it subscribes to the hub
without counting as a viewer, so it never keeps the sampler awake by itself. A firing or ended
alert is written to the log first, then published as an ``alert`` event (every window shows it);
a firing one also goes to the desktop when no window of the app is visible.
"""
from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Mapping
from typing import Any

from .. import events
from ..events import Alert, AlertRulesChanged, Event, SystemMetrics
from ..hub import Hub, Subscription
from ..storage.database import Database
from ..storage.settings_store import SettingsStore
from . import messages, store
from .desktop import DesktopNotifications
from .evaluator import AlertChange, Evaluator
from .metrics import METRICS, WatchedMetric
from .rules import DEFAULT_RULES, MAX_RULES, AlertRule, RuleError, RuleNotFound, build_rule, check_id, new_id

log = logging.getLogger(__name__)

# the default rules are added once per database: a default the user removed stays removed
DEFAULTS_ADDED_KEY = 'alerts.defaults_added'
# while alerts fire, their peak and last sighting reach the log this often (and when they end)
PEAK_SAVE_INTERVAL_S = 30.0
MAX_LOG_LIMIT = 1000


class TooManyRules(RuleError):
    pass


class AlertManager:
    def __init__(self, hub: Hub, db: Database, settings_store: SettingsStore, *,
                 desktop: DesktopNotifications | None = None, clock: Callable[[], float] = time.time) -> None:
        self.hub = hub
        self.desktop = desktop
        self._db = db
        self._settings = settings_store
        self._clock = clock
        self._evaluator = Evaluator()
        self._lock = asyncio.Lock()  # samples and rule changes, one at a time, each with its writes
        self._subscription: Subscription | None = None
        self._desktop_tasks: set[asyncio.Task] = set()
        self._peaks_saved_at = float('-inf')

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the rules (adding the defaults on a fresh database), close what a crash left open in the
        log, and start evaluating samples."""
        add_defaults = not self._settings.get(DEFAULTS_ADDED_KEY, False)
        rules, left_open = await self._db.run(self._load, add_defaults)
        if add_defaults:
            await self._settings.set(DEFAULTS_ADDED_KEY, True)
        if left_open:
            log.info('alerts: %d alert(s) still firing when the app last stopped are logged as ended then', left_open)
        for rule in rules:
            self._evaluator.put(rule, now=self._clock())
        if self._subscription is None:
            self._subscription = self.hub.subscribe(self._on_sample, name='alerts', types=[events.SYSTEM_METRICS])

    def _load(self, add_defaults: bool) -> tuple[list[AlertRule], int]:
        left_open = store.close_left_open(self._db)
        if add_defaults:
            store.add_rules(self._db, list(DEFAULT_RULES))
        return store.load_rules(self._db), left_open

    async def stop(self) -> None:
        """Stop evaluating; alerts still firing are logged as ended when last seen ("app stopped")."""
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
        for task in list(self._desktop_tasks):
            task.cancel()
        async with self._lock:
            for change in self._evaluator.end_all('app stopped'):
                await self._log_change(change)
        if self.desktop is not None:
            await self.desktop.close()

    # --- the facade -------------------------------------------------------------------------

    def metrics(self) -> list[WatchedMetric]:
        """What rules can watch, with the range of each threshold."""
        return list(METRICS.values())

    async def rules(self) -> list[AlertRule]:
        return self._evaluator.rules

    async def rule(self, rule_id: str) -> AlertRule:
        for rule in self._evaluator.rules:
            if rule.id == rule_id:
                return rule
        raise RuleNotFound(f'There is no alert rule "{rule_id}"; GET /api/alerts lists them.')

    async def save(self, changes: Mapping[str, Any], rule_id: str | None = None) -> AlertRule:
        """Add a rule, or change some fields of one (the others keep their values); checked before it is
        stored. Without an id, a new rule gets one ("cpu-1"). Raises ``RuleError``."""
        async with self._lock:
            rules = {rule.id: rule for rule in self._evaluator.rules}
            if rule_id is None:
                rule_id = new_id(changes.get('metric'), rules)  # type: ignore[arg-type]
            current = rules.get(check_id(rule_id))
            if current is None and len(rules) >= MAX_RULES:
                raise TooManyRules(f'There are {MAX_RULES} alert rules already: remove one before adding another.')
            rule = build_rule(rule_id, current, changes)
            await self._db.run(store.save_rule, self._db, rule)
            for change in self._evaluator.put(rule, now=self._clock()):
                await self._record(change)
        self.hub.publish(AlertRulesChanged(rule.id, 'saved'))
        return rule

    async def remove(self, rule_id: str) -> None:
        """Remove a rule (a firing alert of it ends); its alerts stay in the log. Raises ``RuleNotFound``."""
        await self.rule(rule_id)
        async with self._lock:
            await self._db.run(store.delete_rule, self._db, rule_id)
            for change in self._evaluator.remove(rule_id, now=self._clock()):
                await self._record(change)
        self.hub.publish(AlertRulesChanged(rule_id, 'removed'))

    async def active(self) -> list[Alert]:
        """The alerts firing now, oldest first."""
        return sorted((messages.firing(alert) for alert in self._evaluator.active()), key=lambda a: a.started_at)

    async def log(self, limit: int = 50) -> list[store.AlertLogEntry]:
        """The latest alerts, newest first, with start, end (None while firing) and peak."""
        return await self._db.run(store.read_log, self._db, max(1, min(limit, MAX_LOG_LIMIT)))

    def desktop_status(self) -> dict[str, Any]:
        """Whether desktop notifications can be shown (as far as the last try tells), and why not."""
        if self.desktop is None:
            return {'enabled': False, 'unavailable': None, 'sent': 0, 'failed': 0}
        return {'enabled': True, 'unavailable': self.desktop.unavailable, 'sent': self.desktop.sent,
                'failed': self.desktop.failed}

    async def settled(self, timeout: float = 10.0) -> None:
        """Return once every sample published so far has been evaluated and written (a script or a test
        that published samples itself reads the outcome after this)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while (self._subscription is not None and self._subscription.pending) or self._lock.locked():
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f'the alerts did not catch up with the samples within {timeout:.0f} s')
            await asyncio.sleep(0.005)

    # --- evaluation -------------------------------------------------------------------------

    async def _on_sample(self, event: Event) -> None:
        sample = event.data
        if not isinstance(sample, SystemMetrics):
            return
        async with self._lock:
            for change in self._evaluator.observe(sample):
                await self._record(change)
            await self._save_peaks(sample.timestamp)

    async def _record(self, change: AlertChange) -> None:
        await self._log_change(change)
        alert = messages.payload(change)
        self.hub.publish(alert)
        if change.state == 'firing' and self.desktop is not None and self.hub.visible_count == 0:
            self._notify_desktop(alert)

    async def _log_change(self, change: AlertChange) -> None:
        """Write the change to the log; a full or failing disk costs the log entry, never the alert."""
        alert = change.alert
        try:
            if change.state == 'firing':
                alert.log_id = await self._db.run(store.open_entry, self._db, alert.rule, alert.started_at,
                                                  alert.peak, alert.last_seen_at)
                alert.peak_saved = alert.peak
            elif alert.log_id is not None:
                await self._db.run(store.close_entry, self._db, alert.log_id, change.ended_at, alert.peak,
                                   alert.last_seen_at, change.resolution)
        except sqlite3.Error as error:
            log.warning('alerts: the alert log could not be written (%s); the alert is shown all the same', error)

    async def _save_peaks(self, now: float) -> None:
        if now - self._peaks_saved_at < PEAK_SAVE_INTERVAL_S:
            return
        self._peaks_saved_at = now
        updates = [(a.peak, a.last_seen_at, a.log_id) for a in self._evaluator.active() if a.log_id is not None]
        if updates:
            try:
                await self._db.run(store.update_entries, self._db, updates)
            except sqlite3.Error as error:
                log.warning('alerts: the alert log could not be written (%s)', error)

    def _notify_desktop(self, alert: Alert) -> None:
        assert self.desktop is not None
        task = asyncio.get_running_loop().create_task(
            self.desktop.send(alert.summary, alert.message, critical=alert.severity == 'critical'),
            name=f'desktop notification {alert.rule_id}')
        self._desktop_tasks.add(task)
        task.add_done_callback(self._desktop_tasks.discard)
