"""Alerts, the domain: rules checked, evaluation on a simulated clock (samples with their own times),
the log and the rules in a real SQLite database across restarts, and the manager on a real hub."""
from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jarvis import events
from jarvis.alerts import DEFAULT_RULES, AlertManager, AlertRule, RuleError, RuleNotFound, TooManyRules
from jarvis.alerts import store as alert_store
from jarvis.alerts.evaluator import MAX_SAMPLE_GAP_S, Evaluator
from jarvis.alerts.rules import MAX_RULES, build_rule
from jarvis.events import Alert, GpuReading, SystemMetrics
from jarvis.hub import Hub
from jarvis.storage import Database, SettingsStore
from jarvis.storage.salvage import salvage

T0 = 1_800_000_000.0  # a simulated clock: every sample carries its own time


def sample(at: float, cpu: float = 10.0, *, memory: float = 40.0, disk: float = 50.0,
           gpus: list[GpuReading] | None = None) -> SystemMetrics:
    return SystemMetrics(cpu=cpu, memory=memory, disk=disk, gpu=None, timestamp=T0 + at, gpus=gpus or [])


def gpu(temperature: float | None, used: int | None = 1, total: int | None = 10) -> GpuReading:
    return GpuReading(index=0, name='Test GPU', utilization=None, memory_used=used, memory_total=total,
                      temperature=temperature, power=None, power_limit=None, fan=None)


CPU_RULE = AlertRule('cpu-high', 'cpu', 90, duration_s=120, cooldown_s=600)


def feed(evaluator: Evaluator, *samples: SystemMetrics) -> list[tuple[str, float, float | None]]:
    """(state, time since T0, value) of every change the samples bring."""
    return [(change.state, (change.ended_at or change.alert.fired_at) - T0, change.value)
            for s in samples for change in evaluator.observe(s)]


# --- evaluation on a simulated clock ------------------------------------------------------------

def test_a_rule_fires_once_when_its_condition_held_for_its_duration_and_ends_when_it_clears() -> None:
    evaluator = Evaluator.of([CPU_RULE])
    assert feed(evaluator, sample(0, 95), sample(60, 97), sample(118, 96)) == []  # not yet 2 min
    assert feed(evaluator, sample(120, 93)) == [('firing', 120, 93)]
    [alert] = evaluator.active()
    assert alert.started_at == T0 and alert.peak == 97  # since the condition began, the peak of that time
    assert feed(evaluator, sample(122, 99), sample(200, 95)) == []  # once: it fires, it does not fire again
    assert evaluator.active()[0].peak == 99
    [change] = evaluator.observe(sample(202, 40))
    assert (change.state, change.value, change.ended_at, change.resolution) == ('resolved', 40, T0 + 202, 'cleared')
    assert change.alert.peak == 99 and evaluator.active() == []


def test_a_dip_below_the_threshold_starts_the_duration_again() -> None:
    evaluator = Evaluator.of([CPU_RULE])
    assert feed(evaluator, sample(0, 95), sample(100, 95), sample(102, 80), sample(104, 95), sample(200, 95)) == []
    assert feed(evaluator, sample(224, 95)) == [('firing', 224, 95)]
    assert evaluator.active()[0].started_at == T0 + 104


def test_exactly_at_the_threshold_is_not_above_it() -> None:
    evaluator = Evaluator.of([AlertRule('disk', 'disk', 95)])
    assert feed(evaluator, sample(0, disk=95.0)) == []
    assert feed(evaluator, sample(2, disk=95.1)) == [('firing', 2, 95.1)]


def test_the_cooldown_keeps_the_rule_quiet_after_an_alert_ended() -> None:
    rule = AlertRule('cpu', 'cpu', 90, duration_s=0, cooldown_s=600)
    evaluator = Evaluator.of([rule])
    assert feed(evaluator, sample(0, 95), sample(10, 50)) == [('firing', 0, 95), ('resolved', 10, 50)]
    # back above within the cooldown (which runs from the end, t=10, to t=610): quiet
    assert feed(evaluator, *(sample(at, 95 + at / 1000) for at in range(20, 610, 100)), sample(609, 95)) == []
    # the cooldown is over and the condition still holds: it fires, as of when it began to hold again
    assert feed(evaluator, sample(610, 98)) == [('firing', 610, 98)]
    assert evaluator.active()[0].started_at == T0 + 20 and evaluator.active()[0].peak == 98
    assert feed(evaluator, sample(612, 10)) == [('resolved', 612, 10)]


def test_a_gap_between_samples_says_nothing_of_the_time_between() -> None:
    evaluator = Evaluator.of([CPU_RULE])
    later = 60 + MAX_SAMPLE_GAP_S + 1
    assert feed(evaluator, sample(0, 95), sample(60, 95), sample(later, 95)) == []  # not 2 min of evidence
    assert feed(evaluator, sample(later + 120, 95)) == [('firing', later + 120, 95)]


def test_a_sample_seen_twice_or_out_of_order_changes_nothing() -> None:
    evaluator = Evaluator.of([AlertRule('cpu', 'cpu', 90)])
    assert feed(evaluator, sample(10, 50)) == []
    assert feed(evaluator, sample(10, 99), sample(5, 99)) == []


def test_a_gpu_metric_without_a_gpu_never_fires() -> None:
    rules = [AlertRule('hot', 'gpu_temperature', 0), AlertRule('full', 'gpu_memory', 0),
             AlertRule('busy', 'gpu_utilization', 0), AlertRule('swap', 'swap', 0)]
    evaluator = Evaluator.of(rules)
    refused = GpuReading(0, 'Test GPU', None, None, None, None, None, None, None)  # every field refused
    no_reading = [sample(0), sample(2, gpus=[refused]), sample(4, gpus=[gpu(None, used=5, total=0)])]
    assert feed(evaluator, *no_reading) == []  # no GPU, fields the driver refuses, no swap: "n/a" is never a 0


def test_gpu_metrics_read_the_highest_gpu_and_an_alert_ends_when_the_gpu_can_no_longer_be_read() -> None:
    evaluator = Evaluator.of([AlertRule('hot', 'gpu_temperature', 85), AlertRule('full', 'gpu_memory', 95)])
    two = [gpu(60, used=10, total=10), GpuReading(1, 'Other', 5.0, 1, 10, 90.0, None, None, None)]
    assert sorted(feed(evaluator, sample(0, gpus=two))) == [('firing', 0, 90.0), ('firing', 0, 100.0)]
    changes = evaluator.observe(sample(2, gpus=[gpu(None, used=None)]))
    assert {(c.alert.rule.id, c.state, c.resolution) for c in changes} == \
        {('hot', 'resolved', 'no reading'), ('full', 'resolved', 'no reading')}


def test_changing_a_rule_ends_its_alert_unless_only_its_severity_or_cooldown_changed() -> None:
    rule = AlertRule('cpu', 'cpu', 90)
    evaluator = Evaluator.of([rule])
    feed(evaluator, sample(0, 95))
    assert evaluator.put(build_rule('cpu', rule, {'severity': 'critical', 'cooldown_s': 5}), now=T0 + 1) == []
    assert evaluator.active()[0].rule.severity == 'critical'
    [ended] = evaluator.put(build_rule('cpu', rule, {'threshold': 96}), now=T0 + 2)
    assert (ended.state, ended.resolution, ended.ended_at) == ('resolved', 'rule changed', T0 + 2)
    assert feed(evaluator, sample(4, 97)) == [('firing', 4, 97)]  # the new rule, without the old cooldown
    [ended] = evaluator.put(build_rule('cpu', rule, {'enabled': False}), now=T0 + 5)
    assert ended.resolution == 'rule changed'
    assert feed(evaluator, sample(6, 99)) == []
    [ended] = evaluator.put(build_rule('cpu', rule, {}), now=T0 + 7) or [None]
    assert ended is None and feed(evaluator, sample(8, 99)) == [('firing', 8, 99)]
    [removed] = evaluator.remove('cpu', now=T0 + 9)
    assert removed.resolution == 'rule changed' and evaluator.rules == []


# --- rules --------------------------------------------------------------------------------------

def test_the_defaults_are_the_ones_the_issue_names() -> None:
    conditions = {(r.metric, r.threshold, r.duration_s) for r in DEFAULT_RULES}
    assert {('cpu', 90, 120), ('memory', 90, 60), ('disk', 95, 0)} <= conditions
    assert {(r.metric, r.threshold) for r in DEFAULT_RULES} >= {('gpu_temperature', 85), ('gpu_memory', 95)}
    assert {r.severity for r in DEFAULT_RULES} == {'warning', 'critical'}
    assert [r.condition for r in DEFAULT_RULES][:2] == ['CPU above 90 % for 2 min', 'Memory above 90 % for 1 min']


@pytest.mark.parametrize(('changes', 'words'), [
    ({'metric': 'load', 'threshold': 1}, 'There is no metric "load"'),
    ({'metric': 'cpu', 'threshold': 101}, 'from 0 to 100 %'),
    ({'metric': 'cpu', 'threshold': -1}, 'from 0 to 100 %'),
    ({'metric': 'gpu_temperature', 'threshold': 151}, 'from 0 to 150 °C'),
    ({'metric': 'cpu', 'threshold': math.nan}, 'must be a number'),
    ({'metric': 'cpu', 'threshold': True}, 'must be a number'),
    ({'metric': 'cpu', 'threshold': '90'}, 'must be a number'),
    ({'metric': 'cpu', 'threshold': 90, 'duration_s': -1}, 'duration must be a number from 0'),
    ({'metric': 'cpu', 'threshold': 90, 'cooldown_s': math.inf}, 'cooldown must be a number from 0'),
    ({'metric': 'cpu', 'threshold': 90, 'severity': 'fatal'}, 'severity must be one of warning, critical'),
    ({'metric': 'cpu', 'threshold': 90, 'enabled': 'yes'}, 'must be true or false'),
    ({'metric': 'cpu', 'threshold': 90, 'colour': 'red'}, 'no field colour'),
    ({'metric': 'cpu'}, 'give its metric and threshold'),
])
def test_a_rule_that_cannot_be_kept_is_refused_with_a_sentence(changes: dict, words: str) -> None:
    with pytest.raises(RuleError, match=words):
        build_rule('new', None, changes)


@pytest.mark.parametrize('rule_id', ['', 'CPU', 'a b', 'x' * 41, 'ü', '../etc', None])
def test_a_rule_id_is_a_short_plain_word(rule_id: object) -> None:
    with pytest.raises(RuleError, match='A rule id is'):
        build_rule(rule_id, None, {'metric': 'cpu', 'threshold': 90})  # type: ignore[arg-type]


# --- the manager: a real hub, a real database, restarts -------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class App:
    """The parts the alerts use, on a database file that outlives each start."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.clock = Clock()
        self.db: Database | None = None
        self.manager: AlertManager | None = None

    async def start(self) -> AlertManager:
        self.hub = Hub()
        self.db = Database(self.path)
        settings = SettingsStore(self.db)
        await self.db.run(settings.load)
        self.manager = AlertManager(self.hub, self.db, settings, clock=self.clock)
        await self.manager.start()
        self.seen = self.hub.subscribe(name='test', types=[events.ALERT, events.ALERT_RULES])
        return self.manager

    async def stop(self, *, cleanly: bool = True) -> None:
        assert self.manager is not None and self.db is not None
        if cleanly:
            await self.manager.stop()
        else:  # a crash: nothing more is written
            assert self.manager._subscription is not None  # pylint: disable=protected-access
            self.manager._subscription.close()  # pylint: disable=protected-access
        self.seen.close()
        self.db.close()

    async def publish(self, *samples: SystemMetrics) -> None:
        for s in samples:
            self.hub.publish(s)
        await asyncio.sleep(0)  # the hub fans out on the loop
        await self.manager.settled()

    async def alerts(self, count: int) -> list[Alert]:
        """The next ``count`` alert events."""
        found: list[Alert] = []
        while len(found) < count:
            event = await asyncio.wait_for(self.seen.get(), 5)
            if isinstance(event.data, Alert):
                found.append(event.data)
        return found


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    app = App(tmp_path / 'jarvis.db')
    await app.start()
    yield app
    if app.db is not None:
        try:
            await app.manager.stop()
        finally:
            app.db.close()


async def test_samples_on_the_hub_fire_an_alert_event_and_a_log_entry_then_end_them(app: App) -> None:
    manager = app.manager
    assert app.hub.viewer_count == 0, 'no window: evaluation does not wait for one'
    await manager.save({'metric': 'cpu', 'threshold': 90, 'duration_s': 60, 'severity': 'critical'}, 'cpu-test')
    await app.publish(sample(0, 95), sample(30, 99), sample(60, 92))
    [firing] = await app.alerts(1)
    assert (firing.rule_id, firing.state, firing.severity, firing.value, firing.peak) == \
        ('cpu-test', 'firing', 'critical', 92, 99)
    assert firing.started_at == T0 and firing.ended_at is None and firing.summary == 'CPU above 90 %'
    assert firing.message == 'CPU has been above 90 % for 1 min: now 92 %, peak 99 %.'
    assert [a.rule_id for a in await manager.active()] == ['cpu-test']
    [entry] = await manager.log()
    assert (entry.id, entry.started_at, entry.ended_at, entry.peak) == (firing.log_id, T0, None, 99)

    await app.publish(sample(62, 100), sample(64, 12))
    [resolved] = await app.alerts(1)
    assert (resolved.state, resolved.value, resolved.peak, resolved.ended_at, resolved.resolution) == \
        ('resolved', 12, 100, T0 + 64, 'cleared')
    assert resolved.message == 'CPU is back to 12 % after 1 min 4 s above 90 % (peak 100 %).'
    [entry] = await manager.log()
    assert (entry.started_at, entry.ended_at, entry.peak, entry.resolution) == (T0, T0 + 64, 100, 'cleared')
    assert await manager.active() == []


async def test_rules_and_the_log_survive_a_restart(app: App) -> None:
    manager = app.manager
    await manager.save({'threshold': 80, 'duration_s': 0, 'cooldown_s': 0}, 'cpu-high')  # a default, changed
    await manager.remove('disk-full')  # a default, removed: it stays removed
    await manager.save({'metric': 'memory', 'threshold': 50})
    await app.publish(sample(0, 85), sample(2, 20), sample(4, 90), sample(6, 90, memory=60))
    await app.alerts(4)
    before = [rule.to_dict() for rule in await manager.rules()]
    await app.stop()

    manager = await app.start()
    assert [rule.to_dict() for rule in await manager.rules()] == before
    assert {r.id for r in await manager.rules()} == {r.id for r in DEFAULT_RULES} - {'disk-full'} | {'memory-1'}
    log = await manager.log()
    assert [(e.rule_id, e.ended_at is None, e.resolution) for e in log] == [
        ('memory-1', False, 'app stopped'), ('cpu-high', False, 'app stopped'), ('cpu-high', False, 'cleared')]
    assert log[1].ended_at == T0 + 6, 'an alert firing when the app stopped ends when it was last seen'
    assert await manager.active() == []


async def test_an_alert_left_firing_by_a_crash_is_closed_at_the_next_start(app: App, caplog) -> None:
    await app.manager.save({'threshold': 50, 'duration_s': 0}, 'cpu-high')
    await app.publish(sample(0, 60), sample(40, 70))  # the peak and last sighting reach the log every 30 s
    await app.publish(sample(41, 99))
    await app.stop(cleanly=False)
    with caplog.at_level(logging.INFO, logger='jarvis.alerts'):
        manager = await app.start()
    [entry] = await manager.log()
    assert (entry.ended_at, entry.peak, entry.resolution) == (T0 + 40, 70, 'app stopped')
    assert 'still firing when the app last stopped' in caplog.text


async def test_a_rule_saved_or_removed_is_an_event_and_bad_rules_change_nothing(app: App) -> None:
    manager = app.manager
    before = await manager.rules()
    with pytest.raises(RuleError, match='from 0 to 100 %'):
        await manager.save({'threshold': 120}, 'cpu-high')
    with pytest.raises(RuleNotFound):
        await manager.remove('nothing-here')
    assert await manager.rules() == before
    rule = await manager.save({'metric': 'gpu_temperature', 'threshold': 70})
    assert rule.id == 'gpu-temperature-1' and rule.duration_s == 0 and rule.severity == 'warning'
    await manager.remove(rule.id)
    seen = [(e.data.rule_id, e.data.action) for e in [await app.seen.get(), await app.seen.get()]]
    assert seen == [('gpu-temperature-1', 'saved'), ('gpu-temperature-1', 'removed')]
    assert app.seen.pending == 0, 'refused changes publish nothing'


async def test_rules_are_bounded(app: App) -> None:
    manager = app.manager
    for _ in range(MAX_RULES - len(await manager.rules())):
        await manager.save({'metric': 'cpu', 'threshold': 99})
    with pytest.raises(TooManyRules, match='remove one before adding another'):
        await manager.save({'metric': 'cpu', 'threshold': 99})
    await manager.save({'threshold': 98}, 'cpu-high')  # changing one still works


async def test_the_log_is_newest_first_limited_and_trimmed(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(alert_store, 'MAX_LOG_ENTRIES', 5)
    await app.manager.save({'threshold': 50, 'duration_s': 0, 'cooldown_s': 0}, 'cpu-high')
    for n in range(8):
        await app.publish(sample(10 * n, 60 + n), sample(10 * n + 1, 10))
    log = await app.manager.log(limit=3)
    assert [e.peak for e in log] == [67, 66, 65]
    assert len(await app.manager.log(limit=100)) == 5


async def test_salvage_keeps_the_rules_and_the_log_of_a_damaged_database(app: App, tmp_path: Path) -> None:
    await app.manager.save({'threshold': 42, 'duration_s': 0}, 'cpu-high')
    await app.publish(sample(0, 99), sample(2, 1))
    await app.stop()
    fresh = Database(tmp_path / 'fresh.db')
    copied = salvage(app.path, fresh)
    assert copied['alert_rules'] == len(DEFAULT_RULES) and copied['alert_log'] == 1
    assert [r.threshold for r in alert_store.load_rules(fresh) if r.id == 'cpu-high'] == [42]
    assert alert_store.read_log(fresh, 10)[0].peak == 99
    fresh.close()
    app.db = None


def test_thresholds_and_readings_read_with_a_tenth_at_most() -> None:
    cpu = AlertRule('cpu', 'cpu', 92.5).watched
    assert [cpu.format(v) for v in (92.5, 90.0, 6.66, 0.04, None)] == ['92.5 %', '90 %', '6.7 %', '0 %', 'n/a']
    assert AlertRule('hot', 'gpu_temperature', 85).summary == 'GPU temperature above 85 °C'
