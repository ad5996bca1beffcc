"""GET/POST /api/alerts, DELETE /api/alerts/{id} and GET /api/alerts/log: the rules and the log for
scripts, under the same rules as every route (JSON bodies only, every error one JSON sentence)."""
from __future__ import annotations

import time
import typing

import pytest

from jarvis.alerts import METRICS
from jarvis.api.schemas import AlertMetric
from jarvis.events import SystemMetrics

from .conftest import Harness


async def test_get_lists_the_rules_what_they_can_watch_and_the_desktop_state(jarvis: Harness) -> None:
    async with jarvis.http() as http:
        body = (await http.get('/api/alerts')).json()
    assert [rule['id'] for rule in body['rules']] == ['cpu-high', 'memory-high', 'disk-full', 'gpu-hot',
                                                      'gpu-memory-full']
    cpu = body['rules'][0]
    assert cpu == {'id': 'cpu-high', 'metric': 'cpu', 'threshold': 90.0, 'duration_s': 120.0, 'cooldown_s': 600.0,
                   'severity': 'warning', 'enabled': True, 'summary': 'CPU above 90 %',
                   'condition': 'CPU above 90 % for 2 min'}
    assert body['active'] == []
    assert {'name': 'gpu_temperature', 'label': 'GPU temperature', 'unit': '°C', 'min': 0, 'max': 150} \
        in body['metrics']
    assert body['desktop_notifications'] == {'enabled': False, 'unavailable': None, 'sent': 0, 'failed': 0}  # the tests' settings


def test_the_schema_names_every_metric_the_domain_knows() -> None:
    assert typing.get_args(AlertMetric) == tuple(METRICS)


async def test_post_adds_a_rule_or_changes_the_fields_given(jarvis: Harness) -> None:
    async with jarvis.http() as http:
        added = await http.post('/api/alerts', json={'metric': 'swap', 'threshold': 50, 'duration_s': 30})
        assert added.status_code == 200, added.text
        assert added.json()['id'] == 'swap-1' and added.json()['condition'] == 'Swap above 50 % for 30 s'
        changed = (await http.post('/api/alerts', json={'id': 'cpu-high', 'enabled': False})).json()
        assert (changed['enabled'], changed['threshold'], changed['duration_s']) == (False, 90.0, 120.0)
        named = await http.post('/api/alerts', json={'id': 'my-rule', 'metric': 'disk', 'threshold': 80,
                                                     'severity': 'critical', 'cooldown_s': 0})
        assert named.status_code == 200 and named.json()['id'] == 'my-rule'
        rules = {rule['id']: rule for rule in (await http.get('/api/alerts')).json()['rules']}
    assert rules['cpu-high']['enabled'] is False and rules['my-rule']['severity'] == 'critical'
    assert list(rules)[-2:] == ['swap-1', 'my-rule'], 'new rules come last, in the order they were added'


@pytest.mark.parametrize(('body', 'status', 'words'), [
    ({'id': 'cpu-high', 'threshold': 120}, 422, 'The threshold for CPU must be a number from 0 to 100 %.'),
    ({'metric': 'load', 'threshold': 1}, 422, 'field metric is not valid'),
    ({'id': 'nope', 'threshold': 1}, 422, 'There is no rule "nope" yet: to add it, give its metric and threshold.'),
    ({'id': 'Not An Id', 'enabled': False}, 422, 'field id is not valid'),
    ({'id': 'cpu-high', 'enabled': 'yes'}, 422, 'field enabled must be true or false'),
    ({'id': 'cpu-high', 'duration_s': -5}, 422, 'field duration_s is not valid'),
    ({'id': 'cpu-high', 'colour': 'red'}, 200, ''),  # unknown fields are ignored, as in every route
])
async def test_post_refuses_what_does_not_fit_in_one_sentence(jarvis: Harness, body: dict, status: int,
                                                              words: str) -> None:
    async with jarvis.http() as http:
        before = (await http.get('/api/alerts')).json()['rules']
        response = await http.post('/api/alerts', json=body)
        after = (await http.get('/api/alerts')).json()['rules']
    assert response.status_code == status, response.text
    if status != 200:
        assert set(response.json()) == {'error'} and words in response.json()['error']
        assert after == before


async def test_post_takes_json_only_and_a_non_finite_threshold_is_refused(jarvis: Harness) -> None:
    async with jarvis.http() as http:
        form = await http.post('/api/alerts', data={'id': 'cpu-high', 'threshold': '10'})
        assert form.status_code == 415
        nan = await http.post('/api/alerts', content=b'{"id": "cpu-high", "threshold": NaN}',
                              headers={'Content-Type': 'application/json'})
        assert nan.status_code == 422 and set(nan.json()) == {'error'}


async def test_more_rules_than_the_bound_is_a_conflict(jarvis: Harness) -> None:
    from jarvis.alerts.rules import MAX_RULES

    async with jarvis.http() as http:
        for _ in range(MAX_RULES - 5):
            assert (await http.post('/api/alerts', json={'metric': 'cpu', 'threshold': 99})).status_code == 200
        refused = await http.post('/api/alerts', json={'metric': 'cpu', 'threshold': 99})
    assert refused.status_code == 409
    assert refused.json() == {'error': 'There are 50 alert rules already: remove one before adding another.'}


async def test_delete_removes_a_rule_and_an_unknown_one_is_404(jarvis: Harness) -> None:
    async with jarvis.http() as http:
        assert (await http.delete('/api/alerts/disk-full')).json() == {'removed': 'disk-full'}
        missing = await http.delete('/api/alerts/disk-full')
        assert missing.status_code == 404
        assert missing.json() == {'error': 'There is no alert rule "disk-full"; GET /api/alerts lists them.'}
        assert (await http.delete('/api/alerts/NOT%20AN%20ID')).status_code == 422
        rules = [rule['id'] for rule in (await http.get('/api/alerts')).json()['rules']]
    assert 'disk-full' not in rules


async def test_the_log_lists_alerts_newest_first_with_start_end_and_peak(jarvis: Harness) -> None:
    alerts, hub = jarvis.services.alerts, jarvis.services.hub
    await alerts.save({'metric': 'memory', 'threshold': 80, 'duration_s': 0, 'cooldown_s': 0}, 'memory-test')
    now = time.time() + 3600  # ahead of the real sampler's samples, which the alerts then take for stale
    for at, memory in ((0, 85), (1, 97), (2, 10), (3, 88)):
        hub.publish(SystemMetrics(cpu=1, memory=memory, disk=1, gpu=None, timestamp=now + at))
    await alerts.settled()
    async with jarvis.http() as http:
        log = (await http.get('/api/alerts/log')).json()
        newest = (await http.get('/api/alerts/log?limit=1')).json()
        active = (await http.get('/api/alerts')).json()['active']
        bad = await http.get('/api/alerts/log?limit=0')
    assert [(e['rule_id'], e['peak'], e['active'], e['resolution']) for e in log] == [
        ('memory-test', 88, True, ''), ('memory-test', 97, False, 'cleared')]
    assert log[1]['started_at'] == pytest.approx(now) and log[1]['ended_at'] == pytest.approx(now + 2)
    assert log[0]['ended_at'] is None and log[0]['summary'] == 'Memory above 80 %'
    assert newest == log[:1]
    assert [(a['rule_id'], a['state'], a['value'], a['log_id']) for a in active] == \
        [('memory-test', 'firing', 88, log[0]['id'])]
    assert bad.status_code == 422 and set(bad.json()) == {'error'}
