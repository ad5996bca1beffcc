"""Rules against samples: when an alert starts, how high it goes and when it ends.

Pure and clock-free: time is the samples' own ``timestamp`` (or a ``now`` given by the caller), so a
test drives it with samples of any date, and it does no I/O. Each sample costs one reading and a few
comparisons per rule (at most ``MAX_RULES``), so it runs on the event loop.

For each rule: the condition (the metric above the threshold) must hold on every sample for the
rule's duration; then the alert fires, once, and ``started_at`` is when the condition began to hold.
While it fires its peak is tracked. It ends on the first sample where the condition no longer holds
(or the metric cannot be read: a GPU that is gone), and the rule is then quiet for its cooldown: it
fires again only once the cooldown has passed and the condition has held for the duration again.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from ..events import SystemMetrics
from .rules import AlertRule

# Two samples further apart than this (the sampler was stopped or the machine slept) say nothing of the
# time between them: the condition must begin to hold afresh. Well above the calmest sampling rate.
MAX_SAMPLE_GAP_S = 120.0

Resolution = Literal['cleared', 'no reading', 'rule changed', 'app stopped']


@dataclass
class ActiveAlert:
    """A firing alert (mutable: its value, peak and last sighting follow the samples)."""

    rule: AlertRule
    started_at: float
    fired_at: float
    value: float
    peak: float
    last_seen_at: float
    log_id: int | None = None  # its row in the alert log, once written
    peak_saved: float | None = None  # the peak the log holds


@dataclass(frozen=True)
class AlertChange:
    """An alert began to fire, or ended."""

    alert: ActiveAlert
    state: Literal['firing', 'resolved']
    value: float | None
    ended_at: float | None = None
    resolution: Resolution | None = None


@dataclass
class _RuleState:
    held_since: float | None = None  # when the condition began to hold, in the current run of samples
    held_peak: float = float('-inf')  # the highest reading since then
    last_sample_at: float | None = None
    quiet_until: float = float('-inf')  # the end of the cooldown
    active: ActiveAlert | None = None


@dataclass
class Evaluator:
    _rules: dict[str, AlertRule] = field(default_factory=dict)
    _states: dict[str, _RuleState] = field(default_factory=dict)

    @classmethod
    def of(cls, rules: Iterable[AlertRule]) -> Evaluator:
        evaluator = cls()
        for rule in rules:
            evaluator.put(rule, now=0.0)
        return evaluator

    @property
    def rules(self) -> list[AlertRule]:
        return list(self._rules.values())

    def active(self) -> list[ActiveAlert]:
        return [state.active for state in self._states.values() if state.active is not None]

    def put(self, rule: AlertRule, *, now: float) -> list[AlertChange]:
        """Add or replace a rule. A firing alert whose condition changed (metric, threshold, duration, or
        the rule switched off) ends as "rule changed"; one whose severity or cooldown changed goes on."""
        old = self._rules.get(rule.id)
        self._rules[rule.id] = rule
        state = self._states.get(rule.id)
        if old is None or state is None:
            self._states[rule.id] = _RuleState()
            return []
        if old.same_condition(rule):
            if state.active is not None:
                state.active.rule = rule
            return []
        changes = self._end(state, now, None, 'rule changed') if state.active is not None else []
        self._states[rule.id] = _RuleState()  # the new condition starts from nothing, with no cooldown
        return changes

    def remove(self, rule_id: str, *, now: float) -> list[AlertChange]:
        self._rules.pop(rule_id, None)
        state = self._states.pop(rule_id, None)
        if state is None or state.active is None:
            return []
        return self._end(state, now, None, 'rule changed')

    def end_all(self, resolution: Resolution) -> list[AlertChange]:
        """End every firing alert at its last sighting (the app stops: nothing is known after that)."""
        changes: list[AlertChange] = []
        for state in self._states.values():
            if state.active is not None:
                changes += self._end(state, state.active.last_seen_at, None, resolution)
        return changes

    def observe(self, sample: SystemMetrics) -> list[AlertChange]:
        now = sample.timestamp
        changes: list[AlertChange] = []
        for rule in self._rules.values():
            state = self._states[rule.id]
            if state.last_sample_at is not None and now <= state.last_sample_at:
                continue  # a sample seen already (or older): its time is accounted for
            gap = state.last_sample_at is not None and now - state.last_sample_at > MAX_SAMPLE_GAP_S
            state.last_sample_at = now
            if not rule.enabled:
                continue
            value = rule.watched.read(sample)
            holds = value is not None and value > rule.threshold
            if state.active is not None:
                if holds:
                    assert value is not None
                    state.active.value = value
                    state.active.peak = max(state.active.peak, value)
                    state.active.last_seen_at = now
                else:
                    changes += self._end(state, now, value, 'cleared' if value is not None else 'no reading')
                continue
            if not holds:
                state.held_since, state.held_peak = None, float('-inf')
                continue
            assert value is not None
            if state.held_since is None or gap:
                state.held_since, state.held_peak = now, value
            state.held_peak = max(state.held_peak, value)
            if now - state.held_since >= rule.duration_s and now >= state.quiet_until:
                state.active = ActiveAlert(rule, started_at=state.held_since, fired_at=now, value=value,
                                           peak=state.held_peak, last_seen_at=now)
                changes.append(AlertChange(state.active, 'firing', value))
        return changes

    def _end(self, state: _RuleState, now: float, value: float | None, resolution: Resolution) -> list[AlertChange]:
        alert = state.active
        assert alert is not None
        state.active = None
        state.held_since, state.held_peak = None, float('-inf')
        state.quiet_until = now + alert.rule.cooldown_s
        return [AlertChange(alert, 'resolved', value, ended_at=now, resolution=resolution)]
