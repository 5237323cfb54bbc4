"""How the query API says no: 404 for what it does not know, 400 naming a bad query parameter.

FastAPI answers a request that fails validation with 422 and its own body;
this API has always answered 400 with ``{"error": ...}``, so validation
errors are mapped to that, with the parameter named, and the OpenAPI
document says 400 where FastAPI would have said 422.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from services.projections.models import MAX_LIMIT, Problem


class BadQuery(ValueError):
    """A query parameter FastAPI's types let through but the API cannot use."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


class NotFound(LookupError):
    """Nothing known by that id; the message names what was asked for."""


NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "Nothing known by that id; `error` names it."}
}
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_BAD_REQUEST = {
    "description": "A malformed query parameter, named in `parameter`.",
    "content": {"application/json": {"schema": _PROBLEM_REF}},
}
# The API's own words for its commonest mistakes (kept from before FastAPI).
_WORDS = {
    "limit": f"limit must be a whole number from 1 to {MAX_LIMIT}",
    "tracking_token": "tracking_token is required",
}


def validation_problem(errors: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The 400 body for FastAPI's validation errors: the first bad parameter, named."""
    first = errors[0] if errors else {}
    where = tuple(first.get("loc", ()))
    parameter = str(where[1]) if len(where) > 1 else "request"
    words = _WORDS.get(parameter)
    if words is None:
        words = f"{parameter} is invalid: {first.get('msg', 'not understood')}"
    return {"error": words, "parameter": parameter}


def without_validation_errors(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with each 422 answer replaced by the 400 the API gives."""
    out = copy.deepcopy(dict(schema))
    for operations in out.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if responses.pop("422", None) is not None:
                responses.setdefault("400", copy.deepcopy(_BAD_REQUEST))
    schemas = out.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas.setdefault("Problem", Problem.model_json_schema())
    return out


def install_error_handlers(app: FastAPI) -> None:
    async def invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return JSONResponse(validation_problem(exc.errors()), status_code=400)

    async def bad_query(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, BadQuery)
        return JSONResponse({"error": str(exc), "parameter": exc.parameter}, status_code=400)

    async def not_found(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=404)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        # Unknown paths and methods answer in the API's shape, not Starlette's.
        assert isinstance(exc, HTTPException)
        return JSONResponse(
            {"error": f"{exc.detail}: {request.method} {request.url.path}"},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(BadQuery, bad_query)
    app.add_exception_handler(NotFound, not_found)
    app.add_exception_handler(HTTPException, http_error)
