"""The golden examples under schemas/examples, loaded once for every contract test."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from jsonschema import Draft202012Validator, FormatChecker

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
EXAMPLES = SCHEMAS / "examples"
INVALID = EXAMPLES / "invalid"


def load_examples() -> dict[str, dict[str, Any]]:
    """'<type>.v<version>' -> the example envelope as JSON."""
    return {
        p.name.removesuffix(".json"): orjson.loads(p.read_bytes())
        for p in sorted(EXAMPLES.glob("*.json"))
    }


def load_invalid() -> dict[str, dict[str, Any]]:
    """File name -> {"reason", "path", "message"}: a message that must fail, and why."""
    return {p.name: orjson.loads(p.read_bytes()) for p in sorted(INVALID.glob("*.json"))}


def _calendar_date_time(instance: object) -> bool:
    # Only the calendar: the schema's pattern already fixes the RFC 3339 shape.
    if isinstance(instance, str):
        datetime.fromisoformat(instance.upper().replace("Z", "+00:00"))
    return True


def _format_checker() -> FormatChecker:
    checker = FormatChecker(Draft202012Validator.FORMAT_CHECKER.checkers)
    if "date-time" not in checker.checkers:
        # jsonschema checks date-time only when rfc3339-validator is installed, and
        # otherwise passes anything: check it here rather than not at all.
        checker.checks("date-time", raises=ValueError)(_calendar_date_time)
    return checker


FORMATS = _format_checker()


def schema_validator(schema: dict[str, Any]) -> Draft202012Validator:
    """jsonschema's 2020-12 validator, formats (uuid, date-time) checked, not just annotated."""
    return Draft202012Validator(schema, format_checker=FORMATS)


def schema_of(message: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema a consumer picks for a message: by its type and version."""
    path = SCHEMAS / "json" / f"{message['type']}.v{message['version']}.schema.json"
    schema: dict[str, Any] = orjson.loads(path.read_bytes())
    return schema
