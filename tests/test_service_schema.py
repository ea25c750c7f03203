"""Schemathesis against the service's /openapi.json (ASGI, in process): generated requests,
valid and invalid, to every operation, each response validated with every check schemathesis
has (server errors, status codes, content types, headers, response schemas, acceptance of
valid and rejection of invalid data, auth): the schema says what the service does."""
from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the service needs the `serve` extra")
schemathesis = pytest.importorskip("schemathesis", reason="needs schemathesis (extra service-test)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import CHECKS, load_all_checks  # noqa: E402
from schemathesis.config import SchemathesisConfig  # noqa: E402
from schemathesis.core.failures import FailureGroup  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance  # noqa: E402

from facegender.api import load_model  # noqa: E402
from facegender.service import Settings, create_app  # noqa: E402

from .conftest import ROOT  # noqa: E402

EXAMPLES = 150  # per operation and mode: a few hundred requests in all, in well under a minute
KEY = "s3cret"
load_all_checks()
ALL_CHECKS = list(CHECKS.get_all())


@pytest.fixture(scope="module")
def classifier():
    return load_model()


def schema_of(classifier, **given):
    app = create_app(Settings(max_files=8, max_request_bytes=1 << 20, **given), classifier=classifier)
    config = SchemathesisConfig.from_path(ROOT / "deploy" / "schemathesis.toml")  # 413 = rejected
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=config)


def operations(schema) -> dict:
    return {f"{op.method.upper()} {op.path}": op for op in (r.ok() for r in schema.get_all_operations())}


def test_schema_lists_the_contract(classifier):
    ops = operations(schema_of(classifier))
    assert set(ops) == {"GET /healthz", "GET /readyz", "POST /v1/classify", "GET /v1/model", "GET /metrics"}


def test_security_is_declared_only_with_a_key(classifier):
    def secured(schema):
        return {name for name, op in operations(schema).items() if op.definition.raw.get("security")}

    assert secured(schema_of(classifier)) == set()
    assert secured(schema_of(classifier, api_key=KEY)) == {"POST /v1/classify", "GET /v1/model", "GET /metrics"}


def fuzz(schema, mode, headers=None) -> int:
    """Every operation, `EXAMPLES` cases in `mode`, each validated with all checks: cases run."""
    ran = 0
    for name, op in operations(schema).items():
        if mode == GenerationMode.NEGATIVE and name != "POST /v1/classify":
            continue  # the others take no input, so nothing invalid can be made for them

        @given(case=op.as_strategy(mode))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        def check(case):
            nonlocal ran
            ran += 1
            response = case.call_and_validate(headers=headers, checks=ALL_CHECKS)
            if response.status_code >= 400 and op.path != "/healthz" and op.path != "/readyz":
                assert "detail" in response.json(), (name, response.text[:500])  # as JSON, saying why

        check()
    return ran


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_every_check_passes_on_generated_requests(classifier, mode):
    assert fuzz(schema_of(classifier), mode) >= EXAMPLES


def test_every_check_passes_with_a_key(classifier):
    assert fuzz(schema_of(classifier, api_key=KEY), GenerationMode.POSITIVE, headers={"X-API-Key": KEY}) >= EXAMPLES


def test_every_record_has_a_file_and_the_check_would_see_it_missing(classifier):
    """The violation schemathesis found before: a per-file error without `file` (a part sent
    without a filename). Such a part is now refused as a whole; a JSON image without a name
    is answered with file \"\"."""
    import httpx
    from fastapi.testclient import TestClient

    schema = schema_of(classifier)
    case = operations(schema)["POST /v1/classify"].Case(media_type="application/json",
                                                        body={"images": [{"data": "eHg="}]})
    with TestClient(create_app(Settings(), classifier=classifier)) as client:  # its own app: schemathesis runs
        # the schema's app under a lifespan of its own
        body = b'--b\r\nContent-Disposition: form-data; name="files"\r\n\r\nxx\r\n--b--\r\n'
        nameless = client.post("/v1/classify", content=body, headers={"content-type": "multipart/form-data; boundary=b"})
        r = client.post("/v1/classify", json={"images": [{"data": "eHg="}]})
    assert nameless.status_code == 422 and "filename" in nameless.json()["detail"]
    assert r.json()["results"][0]["file"] == "" and r.json()["results"][0]["error"] == "not_an_image"
    case.validate_response(r, checks=[response_schema_conformance])
    without = httpx.Response(200, json={"results": [{"error": "not_an_image", "message": "m"}]}, request=r.request)
    without.read()
    without.elapsed = r.elapsed
    with pytest.raises(FailureGroup, match='"file" is a required property'):
        case.validate_response(without, checks=[response_schema_conformance])
