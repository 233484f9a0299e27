"""Property-based API testing from the OpenAPI schema (schemathesis, in-process ASGI).

Zero server errors and zero schema violations: every check schemathesis has
(``--checks all``: status codes and content types documented, responses matching
their schema, 5xx never, schema-valid data accepted, invalid data rejected, auth
enforced, headers, methods) must pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
import schemathesis.specs.openapi.checks  # registers the OpenAPI checks in CHECKS
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS

from tests.api.conftest import Template, build_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def _schemathesis_env(tmp_path_factory: pytest.TempPathFactory, template: Template):
    env = build_env(tmp_path_factory.mktemp("st"), template)
    yield env
    env.client.close()
    env.store.close()


@pytest.fixture(scope="module")
def api_schema(_schemathesis_env):
    return schemathesis.openapi.from_asgi("/openapi.json", _schemathesis_env.app)


@pytest.fixture(scope="module")
def admin_headers(_schemathesis_env) -> dict[str, str]:
    return _schemathesis_env.h("admin")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms_to_its_schema(case, admin_headers: dict[str, str]) -> None:
    case.call_and_validate(headers=admin_headers, checks=CHECKS.get_all())


def test_schema_loads(api_schema, tmp_path: Path) -> None:
    ops = [op.ok().label for op in api_schema.get_all_operations()]
    assert "POST /v1/signups/score" in ops and "GET /v1/audit" in ops and len(ops) == 13
    assert "GET /v1/review-queue" in ops and "POST /v1/share/export" in ops
    assert "GET /v1/accounts/{account_id}/action" in ops and "POST /v1/watermark/detect" in ops
    names = set(CHECKS.get_all_names())
    assert {"positive_data_acceptance", "negative_data_rejection", "ignored_auth"} <= names
