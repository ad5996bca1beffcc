"""A schema-driven fuzzer (Schemathesis) against the real app: whatever it sends to a route of
/api/openapi.json, the answer is never a server error, and every error is {"error": "..."} (under /v1/,
OpenAI's {"error": {"message": "...", "type": "...", "param": ..., "code": ...}})."""
from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error

from .helpers.server import OFFLINE, AppServer

pytestmark = pytest.mark.fuzz

# Bounded so that the whole run takes a minute or two on two cores: examples per route, method and
# mode (valid requests, and requests that break the schema).
EXAMPLES_PER_OPERATION = 40


# The fuzzer posts any address as an OpenAI-compatible server (POST /api/models/servers), which the app asks
# for its models at once: every address but a loopback one goes through this proxy, a closed local port,
# so the app never connects anywhere else (nor looks a host name up).
NO_WAY_OUT = {name: OFFLINE for name in ('HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY', 'http_proxy', 'https_proxy',
                                         'all_proxy')} | {'NO_PROXY': '', 'no_proxy': ''}


@pytest.fixture(scope='module')
def fuzzed_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    with AppServer(Path(tmp_path_factory.mktemp('fuzzed')), env=NO_WAY_OUT) as server:
        yield server


@schemathesis.check
def errors_are_one_json_sentence(ctx: schemathesis.CheckContext, response: schemathesis.Response,
                                 case: schemathesis.Case) -> bool | None:
    if response.status_code < 400:
        return None
    body = response.json()
    if case.path.startswith('/v1/'):
        error = body.get('error') if isinstance(body, dict) else None
        if not (isinstance(body, dict) and set(body) == {'error'} and isinstance(error, dict)
                and set(error) == {'message', 'type', 'param', 'code'} and isinstance(error['message'], str)
                and error['message'] and isinstance(error['type'], str)):
            raise AssertionError(f'{response.status_code} is not OpenAI\'s error shape: {response.text[:200]}')
        return True
    if not (isinstance(body, dict) and set(body) == {'error'} and isinstance(body['error'], str) and body['error']):
        raise AssertionError(f'{response.status_code} is not {{"error": "..."}}: {response.text[:200]}')
    return True


def test_no_request_gets_a_server_error(fuzzed_app: AppServer) -> None:
    schema = schemathesis.openapi.from_url(fuzzed_app.url + '/api/openapi.json')
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15, 'every route is in the schema'
    assert {'/v1/models', '/v1/chat/completions'} <= {operation.path for operation in operations}
    for operation, mode in itertools.product(operations, schemathesis.GenerationMode):

        @given(case=operation.as_strategy(mode))
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)
        def fuzz(case: schemathesis.Case) -> None:
            response = case.call(base_url=fuzzed_app.url, timeout=30)
            case.validate_response(response, checks=[not_a_server_error, errors_are_one_json_sentence])

        try:
            fuzz()
        except Unsatisfiable:
            assert mode is schemathesis.GenerationMode.NEGATIVE, 'a valid request can always be made'
            # a route without parameters or body: there is no invalid request to make
