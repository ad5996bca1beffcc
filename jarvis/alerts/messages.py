"""An alert in words: the same sentence in every window, script and desktop notification."""
from __future__ import annotations

from ..events import Alert
from ..units import format_duration
from .evaluator import ActiveAlert, AlertChange


def firing(alert: ActiveAlert) -> Alert:
    return _payload(alert, 'firing', alert.value, None, '')


def payload(change: AlertChange) -> Alert:
    return _payload(change.alert, change.state, change.value, change.ended_at, change.resolution or '')


def _payload(alert: ActiveAlert, state: str, value: float | None, ended_at: float | None, resolution: str) -> Alert:
    rule = alert.rule
    return Alert(rule_id=rule.id, metric=rule.metric, severity=rule.severity, state=state,  # type: ignore[arg-type]
                 threshold=rule.threshold, value=value, peak=alert.peak, started_at=alert.started_at,
                 ended_at=ended_at, log_id=alert.log_id, summary=rule.summary,
                 message=_message(alert, state, value, ended_at, resolution), resolution=resolution)


def _message(alert: ActiveAlert, state: str, value: float | None, ended_at: float | None, resolution: str) -> str:
    metric = alert.rule.watched
    label, threshold, peak = metric.label, metric.format(alert.rule.threshold), metric.format(alert.peak)
    if state == 'firing':
        held = alert.fired_at - alert.started_at
        if held < 1:
            return f'{label} is at {metric.format(value)}, above {threshold}.'
        return f'{label} has been above {threshold} for {format_duration(held)}: now {metric.format(value)}, ' \
               f'peak {peak}.'
    lasted = format_duration((ended_at or alert.last_seen_at) - alert.started_at)
    if resolution == 'cleared':
        return f'{label} is back to {metric.format(value)} after {lasted} above {threshold} (peak {peak}).'
    if resolution == 'no reading':
        return f'{label} can no longer be read; it was above {threshold} for {lasted} (peak {peak}).'
    if resolution == 'rule changed':
        return f'The rule changed; {label} was above {threshold} for {lasted} (peak {peak}).'
    return f'{label} was above {threshold} for {lasted} (peak {peak}) when the app stopped.'
