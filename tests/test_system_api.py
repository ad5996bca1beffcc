"""GET /api/system/processes and GET /api/system/history against the real app in its own process."""
from __future__ import annotations

from pathlib import Path

import httpx

from .helpers.browser import wait_for
from .helpers.server import AppServer
from .test_processes import start_burner, stop


def get(server: AppServer, path: str, **params: object) -> httpx.Response:
    return httpx.get(server.url + path, params=params, timeout=30)


def test_a_cpu_burner_shows_in_the_process_list(server: AppServer) -> None:
    burner = start_burner('api-burner')
    try:
        def busy() -> dict | None:
            answer = get(server, '/api/system/processes', sort='cpu', limit=1000).json()
            row = next((p for p in answer['processes'] if p['pid'] == burner.pid), None)
            # the first answer may average over the minute since the recorder's scan; the next ones over seconds
            return answer if row is not None and row['cpu'] >= 30 else None

        answer = wait_for(busy, timeout=30, message='the burner never showed as busy')
    finally:
        stop(burner)
    rows = answer['processes']
    mine = next(p for p in rows if p['pid'] == burner.pid)
    assert mine['name'] == 'api-burner' and mine['memory'] > 0 and mine['user']
    assert [p['cpu'] for p in rows] == sorted((p['cpu'] for p in rows), reverse=True)
    assert answer['sort'] == 'cpu' and answer['count'] == len(rows) > 10
    assert answer['gpu_status'] != 'ok' or 'gpu_memory' in mine
    top = get(server, '/api/system/processes', sort='memory', limit=3).json()
    assert len(top['processes']) == 3 and top['count'] > 3
    memory = [p['memory'] for p in top['processes']]
    assert memory == sorted(memory, reverse=True)


def test_process_list_refuses_what_it_cannot_sort_by(server: AppServer) -> None:
    for params in ({'sort': 'name'}, {'limit': 0}, {'limit': 'many'}):
        response = get(server, '/api/system/processes', **params)
        assert response.status_code == 422 and set(response.json()) == {'error'}, params


def test_history_answers_ranges_and_from_to(server: AppServer) -> None:
    # the app samples from its start, also with no window open: the first sample is there at once
    answer = wait_for(lambda: (a := get(server, '/api/system/history', range='5m').json())['points'] and a,
                      message='no history')
    assert answer['tier'] == 'samples' and answer['series'][:3] == ['cpu', 'memory', 'disk']
    point = answer['points'][0]
    assert set(point) == {'t', *answer['series'], *(f'{name}_max' for name in answer['series'])}
    assert 0 <= point['cpu'] <= 100 and answer['from'] <= point['t'] <= answer['to']
    window = get(server, '/api/system/history', **{'from': point['t'] - 1, 'to': point['t'] + 1}).json()
    assert window['points'][0]['t'] == point['t']
    month = get(server, '/api/system/history', range='30d').json()
    assert month['tier'] == 'minutes' and month['to'] - month['from'] == 30 * 86400
    times = [p['t'] for p in month['points']]
    assert times == sorted(times), 'oldest first'


def test_history_refuses_a_range_it_cannot_answer(server: AppServer) -> None:
    for params in ({'range': '2w'}, {'range': '1h', 'from': 1}, {'from': 200, 'to': 100}, {'from': 'nan'},
                   {'to': 'inf'}, {'from': -5}, {'max_points': 1}):
        response = get(server, '/api/system/history', **params)
        assert response.status_code == 422, params
        assert set(response.json()) == {'error'} and response.json()['error'].endswith('.'), params


def test_history_survives_a_restart(tmp_path: Path) -> None:
    data = tmp_path / 'data'
    with AppServer(data) as first:
        points = wait_for(lambda: get(first, '/api/system/history', range='1h').json()['points'],
                          message='no history')
    # the app has quit (SIGTERM): what it held in memory was written
    with AppServer(data) as second:
        oldest = points[0]
        again = get(second, '/api/system/history', **{'from': oldest['t'] - 0.5, 'to': oldest['t'] + 0.5}).json()
        assert again['points'] == [oldest]
