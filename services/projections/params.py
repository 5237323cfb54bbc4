"""The query API's shared query parameters, and the parsing of its time filters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Query
from pydantic import WithJsonSchema

from services.projections.errors import BadQuery
from services.projections.models import MAX_LIMIT

# Documented as a date or a date-time, so generated clients (and schemathesis) send
# one; the parsing below is Python's ISO 8601 reader, which takes both. Empty has
# always meant "no filter", and still does.
_WHEN = {
    "anyOf": [
        {"type": "string", "format": "date-time"},
        {"type": "string", "format": "date"},
        {"type": "string", "maxLength": 0},
    ]
}

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Page size, 1 to {MAX_LIMIT}.")]
After = Annotated[
    str | None,
    Query(description="The `next` of the previous page: this page starts after that key."),
]
Since = Annotated[
    str | None,
    WithJsonSchema(_WHEN),
    Query(description="From this ISO 8601 date or time (UTC when no offset given), inclusive."),
]
Until = Annotated[
    str | None,
    WithJsonSchema(_WHEN),
    Query(description="Up to this ISO 8601 date or time (UTC when no offset given), exclusive."),
]


def parse_time(value: str | None, name: str, *, day: bool = False) -> str | None:
    """``value`` as a UTC ISO 8601 time (or date, for filters on days); None when not given."""
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadQuery(
            name, f"{name} must be an ISO 8601 date or time, e.g. 2026-11-21T10:00:00Z"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    parsed = parsed.astimezone(UTC)
    return parsed.date().isoformat() if day else parsed.isoformat()
