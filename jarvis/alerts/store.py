"""The rules and the alert log in SQLite. Blocking functions: call them through ``await db.run(...)``."""
from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from typing import Any

from ..storage.database import Database
from .metrics import METRICS
from .rules import AlertRule

# The log keeps this many alerts, newest first; a rule that flaps with no cooldown must not fill the disk.
MAX_LOG_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class AlertLogEntry:
    id: int
    rule_id: str
    metric: str
    severity: str
    threshold: float
    started_at: float
    ended_at: float | None  # None while it fires
    peak: float
    resolution: str  # '' while it fires; then 'cleared', 'no reading', 'rule changed' or 'app stopped'

    @property
    def summary(self) -> str:
        metric = METRICS.get(self.metric)
        label = metric.label if metric else self.metric
        return f'{label} above {metric.format(self.threshold) if metric else self.threshold}'

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), 'summary': self.summary, 'active': self.ended_at is None}


def _rule(row: sqlite3.Row) -> AlertRule:
    return AlertRule(row['id'], row['metric'], row['threshold'], row['duration_s'], row['cooldown_s'],
                     row['severity'], bool(row['enabled']))


def load_rules(db: Database) -> list[AlertRule]:
    """Every stored rule in the order it was added; rows of a metric this version does not know are left
    out (and kept: a later version may know it)."""
    rows = db.query('SELECT * FROM alert_rules ORDER BY position, id')
    return [_rule(row) for row in rows if row['metric'] in METRICS]


def add_rules(db: Database, rules: list[AlertRule]) -> None:
    """Add rules that are not there yet (the defaults on a fresh database)."""
    for rule in rules:
        _insert(db, rule, ignore_existing=True)


def save_rule(db: Database, rule: AlertRule) -> None:
    _insert(db, rule, ignore_existing=False)


def _insert(db: Database, rule: AlertRule, *, ignore_existing: bool) -> None:
    conflict = 'DO NOTHING' if ignore_existing else (
        'DO UPDATE SET metric = excluded.metric, threshold = excluded.threshold, duration_s = excluded.duration_s, '
        'cooldown_s = excluded.cooldown_s, severity = excluded.severity, enabled = excluded.enabled')
    db.execute('INSERT INTO alert_rules(id, metric, threshold, duration_s, cooldown_s, severity, enabled, position) '
               'VALUES(?, ?, ?, ?, ?, ?, ?, (SELECT COALESCE(MAX(position), 0) + 1 FROM alert_rules)) '
               f'ON CONFLICT(id) {conflict}',
               (rule.id, rule.metric, rule.threshold, rule.duration_s, rule.cooldown_s, rule.severity,
                int(rule.enabled)))


def delete_rule(db: Database, rule_id: str) -> bool:
    return db.execute('DELETE FROM alert_rules WHERE id = ?', (rule_id,)).rowcount > 0


def open_entry(db: Database, rule: AlertRule, started_at: float, peak: float, seen_at: float) -> int:
    """Log an alert that began to fire; returns its id. Trims the log to ``MAX_LOG_ENTRIES``."""
    cursor = db.execute(
        'INSERT INTO alert_log(rule_id, metric, severity, threshold, started_at, peak, last_seen_at) '
        'VALUES(?, ?, ?, ?, ?, ?, ?)', (rule.id, rule.metric, rule.severity, rule.threshold, started_at, peak, seen_at))
    entry_id = int(cursor.lastrowid or 0)
    db.execute('DELETE FROM alert_log WHERE id <= ?', (entry_id - MAX_LOG_ENTRIES,))
    return entry_id


def update_entries(db: Database, updates: list[tuple[float, float, int]]) -> None:
    """(peak, last seen, id) of alerts that still fire: what the log keeps should the app not stop cleanly."""
    db.executemany('UPDATE alert_log SET peak = ?, last_seen_at = ? WHERE id = ?', updates)


def close_entry(db: Database, entry_id: int, ended_at: float, peak: float, seen_at: float, resolution: str) -> None:
    db.execute('UPDATE alert_log SET ended_at = ?, peak = ?, last_seen_at = ?, resolution = ? WHERE id = ?',
               (ended_at, peak, seen_at, resolution, entry_id))


def close_left_open(db: Database) -> int:
    """Alerts that were firing when the app last stopped without closing them (a crash, a kill) end when
    they were last seen."""
    return db.execute("UPDATE alert_log SET ended_at = last_seen_at, resolution = 'app stopped' "
                      'WHERE ended_at IS NULL').rowcount


def read_log(db: Database, limit: int) -> list[AlertLogEntry]:
    rows = db.query('SELECT id, rule_id, metric, severity, threshold, started_at, ended_at, peak, resolution '
                    'FROM alert_log ORDER BY started_at DESC, id DESC LIMIT ?', (limit,))
    return [AlertLogEntry(**dict(row)) for row in rows]
