"""The one place that turns messages into Kafka records and back.

Value: the whole envelope as JSON (orjson). Key: the stream's partitioning key.
Headers: the CloudEvents Kafka binary-mode attributes (``ce_*`` and
``content-type``), so routers and tools can act without parsing the value.

Decoding never raises: it returns the message, or a :class:`DecodeFailure`
that says precisely what was wrong, for a dead-letter record.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from pydantic import ValidationError
from pydantic_core import SchemaValidator

from mmbus.contracts.catalogue import BY_TYPE_VERSION, LATEST, latest_version, upcast
from mmbus.contracts.commands import TRUSTED_LOG
from mmbus.contracts.envelope import Message

CONTENT_TYPE = "application/json"
SPEC_VERSION = "1.0"

Headers = list[tuple[str, bytes]]

FailureReason = Literal[
    "invalid_json",
    "not_an_envelope",
    "unknown_type",
    "newer_version",
    "unknown_version",
    "invalid_message",
    "header_mismatch",
]


@dataclass(frozen=True)
class KafkaRecord:
    key: bytes
    value: bytes
    headers: Headers


@dataclass(frozen=True)
class DecodeFailure:
    reason: FailureReason
    detail: str
    errors: tuple[str, ...] = ()
    message_type: str | None = None
    version: int | None = None


def cloudevent_headers(message: Message, time: str) -> Headers:
    """The record headers of ``message``; ``time`` as its value spells it."""
    attributes: list[tuple[str, str | None]] = [
        ("ce_specversion", SPEC_VERSION),
        ("ce_id", message.id),
        ("ce_type", message.type),
        ("ce_source", message.source),
        ("ce_subject", message.subject),
        ("ce_time", time),  # as the value spells it
        # CloudEvents extension attributes: lower-case letters and digits only.
        ("ce_schemaversion", str(message.version)),
        ("ce_correlationid", message.correlation_id),
        ("ce_causationid", message.causation_id),
        ("content-type", CONTENT_TYPE),
    ]
    return [(name, value.encode()) for name, value in attributes if value is not None]


def dumps(obj: Any) -> bytes:
    """orjson, or the standard library for what orjson refuses (integers beyond 64 bits)."""
    try:
        return orjson.dumps(obj)
    except TypeError:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


# A JSON number with 19 or more integer digits: where a value may start (after '[', ':'
# or ',' and any whitespace), so digits inside strings rarely match (a match there only
# costs the slower exact parse). 19 digits: -2**63 - 1 has 19, 2**64 has 20.
_LONG_INTEGER = re.compile(rb"(?:^|[\[:,])[ \t\r\n]*-?[0-9]{19,}")


def loads(value: bytes) -> Any:
    """JSON to Python, integers exact at any size (JSON allows them, Meta may send them)."""
    if _LONG_INTEGER.search(value):
        # orjson reads an integer beyond 64 bits as a float, silently: 2**64 would come
        # back as 1.8446744073709552e+19. The standard library keeps it exact.
        return json.loads(value)
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        # What orjson refuses that JSON allows (a BOM, UTF-16), the standard library reads.
        return json.loads(value)


def encode(message: Message) -> KafkaRecord:
    dumped = message.model_dump(mode="json", by_alias=True, exclude_none=False)
    return KafkaRecord(
        key=message.record_key(),
        value=dumps(dumped),
        headers=cloudevent_headers(message, dumped["time"]),
    )


def header_attributes(headers: Sequence[tuple[str, bytes]] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, raw in headers or ():
        try:
            out[name] = raw.decode()
        except UnicodeDecodeError:
            out[name] = raw.decode(errors="replace")
    return out


Validate = Callable[..., Any]


def _validator(cls: type[Message]) -> Validate:
    """The model's own JSON validator, called directly: ``model_validate_json`` only adds
    a Python frame and argument checks around it (about 1 µs of a record's decode)."""
    validator = cls.__pydantic_validator__
    if isinstance(validator, SchemaValidator):
        return validator.validate_json
    return cls.model_validate_json  # pragma: no cover - a model not built yet


# ce_type header bytes -> (the newest model's JSON validator, its version as header
# bytes, type name).
_FAST: dict[bytes, tuple[Validate, bytes, str]] = {
    name.encode(): (_validator(cls), str(latest_version(name)).encode(), name)
    for name, cls in LATEST.items()
}
_TRUSTED: dict[str, Any] = {TRUSTED_LOG: True}
# The only headers decode reads (the fast path's three, and the two it checks against
# the value): a record passed on with only these decodes as the original does.
DECODE_HEADERS = ("ce_type", "ce_schemaversion", "ce_id")
_NO_HEADERS: dict[str, bytes] = {}


def _errors(exc: ValidationError) -> tuple[str, ...]:
    return tuple(
        f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
        for err in exc.errors(include_url=False)
    )


def _fast(
    value: bytes, headers: Sequence[tuple[str, bytes]] | None, context: dict[str, Any] | None
) -> Message | None:
    """The common case in one step: the headers name the newest version of a known type.

    pydantic parses and validates the bytes directly (no intermediate dict). Anything
    unusual returns None and goes the long way, which explains failures precisely.
    Only the three headers it needs are read, from a dict built in one C call (a
    loop comparing every header's name cost more); the last of a repeated header
    counts, as before.
    """
    found = dict(headers) if headers else _NO_HEADERS
    message_type = found.get("ce_type")
    version = found.get("ce_schemaversion")
    message_id = found.get("ce_id")
    entry = _FAST.get(message_type) if message_type is not None else None
    if entry is None or version != entry[1]:
        return None
    validate, _, type_name = entry
    try:
        message: Message = validate(value, context=context)
    except (ValidationError, ValueError):
        return None
    if message.type != type_name or (message_id is not None and message.id.encode() != message_id):
        return None
    return message


def decode(
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]] | None = None,
    *,
    trusted: bool = False,
) -> Message | DecodeFailure:
    """Bytes (and headers) to the newest version of the message; never raises.

    ``trusted``: the record is re-read from mmbus's own log (projections, replay),
    so checks that were made when it was acted on (phone-number validity) are
    not repeated.
    """
    if value is None:
        return DecodeFailure("invalid_json", "the record has no value (a tombstone?)")
    context = _TRUSTED if trusted else None
    fast = _fast(value, headers, context)
    if fast is not None:
        return fast
    attributes = header_attributes(headers)
    try:
        raw: Any = loads(value)
    except (ValueError, RecursionError) as exc:
        return DecodeFailure("invalid_json", f"value is not JSON: {exc}")
    if not isinstance(raw, dict):
        return DecodeFailure(
            "not_an_envelope", f"value is JSON {type(raw).__name__}, not an object"
        )
    message_type, version = raw.get("type"), raw.get("version")
    if (
        not isinstance(message_type, str)
        or not isinstance(version, int)
        or isinstance(version, bool)
    ):
        return DecodeFailure(
            "not_an_envelope", "the envelope needs a string 'type' and an integer 'version'"
        )
    known = latest_version(message_type)
    if known is None:
        return DecodeFailure(
            "unknown_type", f"unknown message type {message_type!r}", message_type=message_type
        )
    if version > known:
        return DecodeFailure(
            "newer_version",
            f"{message_type} v{version} is newer than the v{known} this build knows; upgrade mmbus",
            message_type=message_type,
            version=version,
        )
    if (message_type, version) not in BY_TYPE_VERSION:
        return DecodeFailure(
            "unknown_version",
            f"{message_type} v{version} was never defined",
            message_type=message_type,
            version=version,
        )
    for header, field in (("ce_id", "id"), ("ce_type", "type")):
        if header in attributes and attributes[header] != raw.get(field):
            return DecodeFailure(
                "header_mismatch",
                f"header {header}={attributes[header]!r} "
                f"but the value has {field}={raw.get(field)!r}",
                message_type=message_type,
                version=version,
            )
    try:
        if version < known:
            # Valid for the version it claims, or an upcast could make it so: a v1
            # record with a v2-only value must fail as the v1 schema says it does.
            BY_TYPE_VERSION[(message_type, version)].model_validate(raw, context=context)
        current = upcast(raw)
        return LATEST[message_type].model_validate(current, context=context)
    except ValidationError as exc:
        errors = _errors(exc)
        return DecodeFailure(
            "invalid_message",
            f"{message_type} v{version} is invalid: {'; '.join(errors[:5])}",
            errors=errors,
            message_type=message_type,
            version=version,
        )
    except (LookupError, TypeError, ValueError) as exc:
        return DecodeFailure(
            "invalid_message",
            f"{message_type} v{version} could not be read: {exc}",
            message_type=message_type,
            version=version,
        )
