"""Alerts: rules on the machine's metrics, evaluated on every sample, logged in SQLite, shown in every
window and, when no window is visible, on the desktop."""
from .desktop import DesktopNotifications
from .manager import AlertManager, TooManyRules
from .metrics import METRICS, WatchedMetric
from .rules import DEFAULT_RULES, AlertRule, RuleError, RuleNotFound
from .store import AlertLogEntry

__all__ = ['DEFAULT_RULES', 'METRICS', 'AlertLogEntry', 'AlertManager', 'AlertRule', 'DesktopNotifications',
           'RuleError', 'RuleNotFound', 'TooManyRules', 'WatchedMetric']
