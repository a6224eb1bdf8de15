"""Property-based fuzzing of the control API from its own OpenAPI document (schemathesis).

Every operation is called with generated valid and invalid inputs, as an admin (the widest access). No answer
may be a 500, every status must be documented, and every body must match its documented schema and media type.
``/api/auth/logout`` is left out: it would end the fuzzer's own session (it has its own tests).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.control_api.conftest import sign_in_everyone

pytestmark = [pytest.mark.integration, pytest.mark.slow]
# Kept modest so the whole run takes about a minute on two cores.
EXAMPLES_PER_OPERATION = 12
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, str]]]:
    from control_api.app import create_app
    from tests.control_api.conftest import api_settings

    app = create_app(api_settings(tmp_path_factory.mktemp("fuzz")))
    with TestClient(app, raise_server_exceptions=False) as client:
        accounts = sign_in_everyone(client)
        yield client, accounts.headers("admin")


def _send(client: TestClient, headers: dict[str, str], case: Any) -> None:
    kwargs = case.as_transport_kwargs(base_url=str(client.base_url), headers=headers)
    kwargs.pop("cookies", None)
    if "data" in kwargs and isinstance(kwargs["data"], bytes | str):
        kwargs["content"] = kwargs.pop("data")
    if kwargs.get("files"):
        # requests-style multipart parts; httpx wants str/bytes contents.
        kwargs["files"] = [
            (name, (part[0], part[1] if isinstance(part[1], bytes | str) else json.dumps(part[1]), *part[2:]))
            for name, part in kwargs["files"]
        ]
    request = client.build_request(**kwargs)
    request.read()  # multipart bodies are streams; schemathesis reads the request back when it reports
    response = client.send(request)
    case.validate_response(response, checks=CHECKS)


def test_api_fuzz(fuzz_target: tuple[TestClient, dict[str, str]]) -> None:
    client, headers = fuzz_target
    spec = client.get("/api/openapi.json").json()
    schema = schemathesis.openapi.from_dict(spec).exclude(path="/api/auth/logout")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
            derandomize=True,
            database=None,
        )
        def fuzz(case: Any) -> None:
            _send(client, headers, case)

        try:
            fuzz()
        except (Exception, BaseExceptionGroup) as err:
            failures.append(f"{operation.label}: {type(err).__name__}: {err}"[:1500])
    assert operations >= 30
    assert not failures, "\n\n".join(failures)
