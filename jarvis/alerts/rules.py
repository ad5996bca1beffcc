"""Alert rules: a metric above a threshold for a while, then quiet for a cooldown; and the defaults."""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from ..units import format_duration
from .metrics import METRICS, WatchedMetric

Severity = Literal['warning', 'critical']
SEVERITIES: tuple[Severity, ...] = ('warning', 'critical')

MAX_RULES = 50  # each sample is checked against every rule: a bound keeps that cheap
MAX_ID_LENGTH = 40
ID_CHARACTERS = frozenset('abcdefghijklmnopqrstuvwxyz0123456789-_')
MAX_DURATION_S = 24 * 3600.0
MAX_COOLDOWN_S = 7 * 24 * 3600.0
DEFAULT_COOLDOWN_S = 600.0
FIELDS = ('metric', 'threshold', 'duration_s', 'cooldown_s', 'severity', 'enabled')


class RuleError(ValueError):
    """A rule that cannot be kept; the message says what fits."""


class RuleNotFound(RuleError):
    pass


@dataclass(frozen=True, slots=True)
class AlertRule:
    """Fires when ``metric`` stays above ``threshold`` for ``duration_s``; after it ends, stays quiet for
    ``cooldown_s``."""

    id: str
    metric: str
    threshold: float
    duration_s: float = 0.0
    cooldown_s: float = DEFAULT_COOLDOWN_S
    severity: Severity = 'warning'
    enabled: bool = True

    @property
    def watched(self) -> WatchedMetric:
        return METRICS[self.metric]

    @property
    def summary(self) -> str:
        """"CPU above 90 %"."""
        return f'{self.watched.label} above {self.watched.format(self.threshold)}'

    @property
    def condition(self) -> str:
        """"CPU above 90 % for 2 min"."""
        return self.summary + (f' for {format_duration(self.duration_s)}' if self.duration_s else '')

    def same_condition(self, other: AlertRule) -> bool:
        """Whether both fire on the same readings (severity and cooldown aside)."""
        return (self.metric, self.threshold, self.duration_s, self.enabled) == \
            (other.metric, other.threshold, other.duration_s, other.enabled)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), 'summary': self.summary, 'condition': self.condition}


DEFAULT_RULES: tuple[AlertRule, ...] = (
    AlertRule('cpu-high', 'cpu', 90, duration_s=120),
    AlertRule('memory-high', 'memory', 90, duration_s=60),
    AlertRule('disk-full', 'disk', 95, cooldown_s=3600, severity='critical'),
    AlertRule('gpu-hot', 'gpu_temperature', 85, duration_s=30, severity='critical'),
    AlertRule('gpu-memory-full', 'gpu_memory', 95, duration_s=30),
)


def check_id(rule_id: object) -> str:
    if not isinstance(rule_id, str) or not 1 <= len(rule_id) <= MAX_ID_LENGTH \
            or not set(rule_id) <= ID_CHARACTERS:
        raise RuleError(f'A rule id is 1 to {MAX_ID_LENGTH} characters of a-z, 0-9, "-" and "_" '
                        f'(such as "cpu-high").')
    return rule_id


def _number(name: str, value: object, low: float, high: float, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not low <= value <= high:
        raise RuleError(f'The {name} must be a number from {low:g} to {high:g}{unit}.')
    return float(value)


def build_rule(rule_id: str, current: AlertRule | None, changes: Mapping[str, Any]) -> AlertRule:
    """``current`` with ``changes`` (a new rule when it is None), checked; raises ``RuleError``."""
    unknown = set(changes) - set(FIELDS)
    if unknown:
        raise RuleError(f'A rule has no field {", ".join(sorted(unknown))}; its fields are {", ".join(FIELDS)}.')
    check_id(rule_id)
    if current is None:
        missing = [name for name in ('metric', 'threshold') if changes.get(name) is None]
        if missing:
            raise RuleError(f'There is no rule "{rule_id}" yet: to add it, give its metric and threshold.')
        current = AlertRule(rule_id, str(changes['metric']), float('nan'))
    values = {name: value for name, value in changes.items() if value is not None}
    metric_name = values.get('metric', current.metric)
    metric = METRICS.get(metric_name) if isinstance(metric_name, str) else None
    if metric is None:
        raise RuleError(f'There is no metric "{metric_name}"; alerts watch {", ".join(METRICS)}.')
    threshold = values.get('threshold', current.threshold)
    unit = f' {metric.unit}'
    rule = replace(
        current,
        metric=metric.name,
        threshold=_number(f'threshold for {metric.label}', threshold, metric.low, metric.high, unit),
        duration_s=_number('duration', values.get('duration_s', current.duration_s), 0, MAX_DURATION_S, ' s'),
        cooldown_s=_number('cooldown', values.get('cooldown_s', current.cooldown_s), 0, MAX_COOLDOWN_S, ' s'),
    )
    severity = values.get('severity', current.severity)
    if severity not in SEVERITIES:
        raise RuleError(f'The severity must be one of {", ".join(SEVERITIES)}.')
    enabled = values.get('enabled', current.enabled)
    if not isinstance(enabled, bool):
        raise RuleError('"enabled" must be true or false.')
    return replace(rule, severity=severity, enabled=enabled)


def new_id(metric: str, taken: Iterable[str]) -> str:
    """A free id for a new rule on ``metric``: "cpu-1", "cpu-2", ..."""
    used = set(taken)
    base = metric.replace('_', '-')[:MAX_ID_LENGTH - 4] if isinstance(metric, str) and metric in METRICS else 'rule'
    number = 1
    while f'{base}-{number}' in used:
        number += 1
    return f'{base}-{number}'
