"""The query API against its own OpenAPI document, as served: schemathesis generates requests
for every operation (valid ones, and for operations with parameters, invalid ones) and checks
each answer: no server error, a documented status and content type, a body matching its schema,
valid input accepted and invalid input refused with 400."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode
from schemathesis.schemas import BaseSchema

from services.projections.api import query_app
from services.projections.store import Store
from tests.console.support import READY, golden_api

# Taken from the app itself, so a new endpoint is tested without editing this list.
DOCUMENT = query_app(cast(Store, None), ready=lambda: READY).openapi()
OPERATIONS = [
    (path, method.upper(), mode)
    for path, operations in sorted(DOCUMENT["paths"].items())
    for method, operation in operations.items()
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    # Any string is a valid id in a path: only query parameters can be malformed.
    if mode is GenerationMode.POSITIVE
    or any(p["in"] == "query" for p in operation.get("parameters", ()))
]


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaseSchema]:
    with golden_api(tmp_path_factory.mktemp("openapi") / "golden.db") as base_url:
        yield schemathesis.openapi.from_url(f"{base_url}/openapi.json")


@pytest.mark.parametrize(("path", "method", "mode"), OPERATIONS)
def test_operation_answers_as_documented(
    api_schema: BaseSchema, path: str, method: str, mode: GenerationMode
) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=25,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def answers(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate()

    answers()
