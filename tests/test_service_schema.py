"""Schemathesis against the service's /openapi.json (ASGI, in process): generated requests,
valid and invalid, to every operation; none may get a 5xx, and every refusal says why."""
from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the service needs the `serve` extra")
schemathesis = pytest.importorskip("schemathesis", reason="needs schemathesis (extra service-test)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

from facegender.api import load_model  # noqa: E402
from facegender.service import Settings, create_app  # noqa: E402

EXAMPLES = 30  # per operation and mode: bounded, so the test takes seconds


@pytest.fixture(scope="module")
def api_schema():
    app = create_app(Settings(max_files=8, max_request_bytes=1 << 20), classifier=load_model())
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def operations(schema) -> dict:
    return {f"{op.method.upper()} {op.path}": op for op in (r.ok() for r in schema.get_all_operations())}


def test_schema_lists_the_contract(api_schema):
    assert set(operations(api_schema)) == {"GET /healthz", "GET /readyz", "POST /v1/classify", "GET /v1/model", "GET /metrics"}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_no_request_gets_a_server_error(api_schema, mode):
    for name, op in operations(api_schema).items():
        if mode == GenerationMode.NEGATIVE and name != "POST /v1/classify":
            continue  # the others take no input, so nothing invalid can be made for them
        @given(case=op.as_strategy(mode))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        def check(case):
            response = case.call()
            assert response.status_code < 500, (name, response.status_code, response.text[:500])
            if response.status_code >= 400 and op.path != "/healthz":
                assert "detail" in response.json(), (name, response.text[:500])  # as JSON

        check()
