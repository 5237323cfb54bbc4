"""The query API's answers to bad input, its OpenAPI document, the console and docs it serves."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.console import STATIC, operations_page, swagger_dir
from services.projections.errors import BadQuery, validation_problem, without_validation_errors
from services.projections.params import parse_time
from tests.console.support import golden_api


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with (
        golden_api(tmp_path_factory.mktemp("contract") / "golden.db") as base_url,
        httpx.Client(base_url=base_url, timeout=10) as client,
    ):
        yield client


@pytest.mark.parametrize(
    ("path", "status", "says", "parameter"),
    [
        ("/v1/campaigns/nope/funnel", 404, "no messages for campaign nope", None),
        ("/v1/campaigns/nope/timeline", 404, "no messages for campaign nope", None),
        ("/v1/billing?campaign_id=nope", 404, "no messages for campaign nope", None),
        ("/v1/billing/fell-back?campaign_id=nope", 404, "campaign nope", None),
        ("/v1/errors?campaign_id=nope", 404, "campaign nope", None),
        ("/v1/messages/nope", 404, "no message with command id or wamid nope", None),
        ("/v1/wabas/1", 404, "WABA 1", None),
        ("/v1/templates/1/spring_sale", 404, "template 1:spring_sale", None),
        ("/v1/nothing", 404, "GET /v1/nothing", None),
        ("/v1/messages?limit=0", 400, "limit must be a whole number from 1 to 1000", "limit"),
        ("/v1/messages?limit=ten", 400, "limit must be a whole number", "limit"),
        ("/v1/billing/fell-back?limit=1001", 400, "limit must be", "limit"),
        ("/v1/messages?since=yesterday", 400, "since must be an ISO 8601 date", "since"),
        ("/v1/campaigns/spring/funnel?until=soon", 400, "until must be an ISO 8601", "until"),
        ("/v1/messages?state=lost", 400, "state is invalid", "state"),
        ("/v1/wabas?status=lost", 400, "status is invalid", "status"),
        ("/v1/clicks", 400, "tracking_token is required", "tracking_token"),
        ("/v1/clicks?tracking_token=", 400, "tracking_token is required", "tracking_token"),
    ],
)
def test_unknown_ids_are_404_and_bad_parameters_400_naming_them(
    api: httpx.Client, path: str, status: int, says: str, parameter: str | None
) -> None:
    answer = api.get(path)
    assert answer.status_code == status
    body = answer.json()
    assert says in body["error"]
    assert body.get("parameter") == parameter


def test_an_empty_time_filter_still_means_no_filter(api: httpx.Client) -> None:
    everything = api.get("/v1/messages", params={"limit": 1000}).json()
    assert api.get("/v1/messages", params={"limit": 1000, "since": ""}).json() == everything


@pytest.mark.parametrize(
    ("value", "day", "expected"),
    [
        (None, False, None),
        ("", False, None),
        ("2026-11-21", False, "2026-11-21T00:00:00+00:00"),
        ("2026-11-21T10:00:00Z", False, "2026-11-21T10:00:00+00:00"),
        ("2026-11-21T12:00:00+02:00", False, "2026-11-21T10:00:00+00:00"),
        ("2026-11-21T23:30:00-02:00", True, "2026-11-22"),
    ],
)
def test_time_filters_read_iso_8601_as_utc(value: str | None, day: bool, expected: str) -> None:
    assert parse_time(value, "since", day=day) == expected


def test_a_time_filter_that_is_not_iso_8601_names_itself() -> None:
    with pytest.raises(BadQuery, match="until must be an ISO 8601") as raised:
        parse_time("next tuesday", "until")
    assert raised.value.parameter == "until"


@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        (
            [{"loc": ("query", "limit"), "msg": "Input should be less than or equal to 1000"}],
            {"error": "limit must be a whole number from 1 to 1000", "parameter": "limit"},
        ),
        (
            [{"loc": ("query", "state"), "msg": "Input should be 'read'"}],
            {"error": "state is invalid: Input should be 'read'", "parameter": "state"},
        ),
        ([], {"error": "request is invalid: not understood", "parameter": "request"}),
    ],
)
def test_validation_errors_become_the_apis_400(
    errors: list[dict[str, Any]], expected: dict[str, str]
) -> None:
    assert validation_problem(errors) == expected


def test_the_document_says_400_where_fastapi_says_422() -> None:
    schema: dict[str, Any] = {
        "paths": {"/x": {"get": {"responses": {"200": {}, "422": {}}}}},
        "components": {"schemas": {"HTTPValidationError": {}, "ValidationError": {}}},
    }
    cleaned = without_validation_errors(schema)
    assert set(cleaned["paths"]["/x"]["get"]["responses"]) == {"200", "400"}
    assert set(cleaned["components"]["schemas"]) == {"Problem"}
    assert "422" in schema["paths"]["/x"]["get"]["responses"], "the input is left as it was"


def test_the_openapi_document_is_3_1_and_documents_every_path_the_console_reads(
    api: httpx.Client,
) -> None:
    document = api.get("/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    assert "422" not in str(document["paths"])
    templates = [re.sub(r"\{[^}]+\}", "[^/]+", p) for p in document["paths"]]
    script = "\n".join(p.read_text() for p in STATIC.glob("*.js"))
    # Each `/v1/...` the views fetch, with its ${...} parts standing for ids.
    read = {
        re.sub(r"\$\{[^}]+\}", "ID", m) for m in re.findall(r"api\(\s*[`\"](/v1/[^`\"?]*)", script)
    }
    assert len(read) >= 9
    for path in read:
        assert any(re.fullmatch(t, path) for t in templates), path
    assert "/ready" in script
    assert "/ready" in document["paths"]


def test_the_console_and_the_docs_are_served_from_this_process(api: httpx.Client) -> None:
    page = api.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    docs = api.get("/docs").text
    for html in (page.text, docs):
        linked = re.findall(r"(?:src|href)=\"([^\"]+)\"", html)
        assert linked
        assert not [u for u in linked if "//" in u], "everything from this server"
        for url in linked:
            if url.startswith("/") and url != "/openapi.json":
                assert api.get(url).status_code == 200, url
    assert "validatorUrl" in docs, "Swagger UI must not call its online validator"
    assert api.get("/console/console.js").headers["content-type"].startswith("text/javascript")


def test_without_swagger_ui_the_docs_list_the_operations() -> None:
    schema: dict[str, object] = {"paths": {"/v1/x": {"get": {"summary": "An <x>"}}}}
    page = operations_page(schema)
    assert "<code>GET /v1/x</code> An &lt;x&gt;" in page
    found = swagger_dir()
    assert found is not None, "swagger-ui-bundle-v2 is a dependency of the services extra"
    assert (Path(found) / "swagger-ui.css").exists()
