"""The two events every send writes, built and encoded without validating again.

``send.attempted`` and ``send.accepted`` repeat the command's fields, which
were validated when the command was decoded, and add values the sender itself
made (the attempt number, the decision, the API's answer, the clock's time).
Validating the whole envelope again, then serialising it through pydantic,
cost about a fifth of the sender's CPU per send. Here the models are assembled
as ``model_construct`` would (all fields, the same ``model_fields_set``) after
checking only what did not come from a validated model, and :func:`encode`
writes their records straight from the fields.

They equal what :func:`services.sender.results.attempted` and
:func:`~services.sender.results.accepted` build through validation and what
:func:`mmbus.contracts.codec.encode` makes of them, field for field and byte
for byte: ``tests/sender/test_fast_events.py`` holds them to it over a table
of commands and answers. Any other event, or a value of a type not foreseen
here, goes the validated, generic way.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from mmbus.contracts import codec
from mmbus.contracts.commands import SendTemplate
from mmbus.contracts.envelope import Message, derive_id, new_id
from mmbus.contracts.send_events import (
    Decision,
    SendAccepted,
    SendAcceptedData,
    SendAttempted,
    SendAttemptedData,
)
from services.sender.outcomes import Delivered
from services.sender.results import SOURCE, reference

M = TypeVar("M", bound=BaseModel)
_set = object.__setattr__
# What model_validate records as set: the keys the builders in results pass.
_ENVELOPE_SET = frozenset(
    {"id", "time", "source", "subject", "correlation_id", "causation_id", "data"}
)


def _assembled(cls: type[M], values: dict[str, Any], fields_set: frozenset[str]) -> M:
    """``cls.model_construct(**values)`` for ``values`` that hold every field."""
    model = cls.__new__(cls)
    _set(model, "__dict__", values)
    _set(model, "__pydantic_fields_set__", set(fields_set))
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return model


def _checked(now: datetime, attempt: int) -> None:
    # What validation would refuse among the values that do not come from a model.
    if now.utcoffset() is None:
        raise ValueError("event time must carry its timezone")
    if type(attempt) is not int or attempt < 1:
        raise ValueError(f"attempt must be an integer from 1, not {attempt!r}")


def _envelope(kind: type[Message], event_id: str, now: datetime, cause: str, subject: str) -> Any:
    type_, version = _CONSTANTS[kind]
    return {
        "id": event_id,
        "type": type_,
        "version": version,
        "time": now,
        "source": SOURCE,
        "subject": subject,
        "correlation_id": subject,
        "causation_id": cause,
    }


def attempted(
    command: SendTemplate, attempt: int, decision: Decision, now: datetime
) -> SendAttempted:
    """:func:`services.sender.results.attempted`, without validating the command again."""
    _checked(now, attempt)
    if type(decision) is not Decision:
        raise TypeError("decision must be a Decision")
    data = command.data
    values = reference(data)
    values["attempt"] = attempt
    values["decision"] = decision
    event = _envelope(SendAttempted, new_id(), now, command.id, data.command_id)
    event["data"] = _assembled(SendAttemptedData, values, _ATTEMPTED_SET)
    return _assembled(SendAttempted, event, _ENVELOPE_SET)


def accepted(
    command: SendTemplate,
    attempt: SendAttempted,
    result: Delivered,
    requested_at: datetime,
    now: datetime,
) -> SendAccepted:
    """:func:`services.sender.results.accepted`, without validating the command again."""
    tried = attempt.data
    _checked(now, tried.attempt)
    if requested_at.utcoffset() is None:
        raise ValueError("requested_at must carry its timezone")
    # The API's answer: classify() took these from JSON, so check their types here.
    if not isinstance(result.wamid, str) or not (
        result.wa_id is None or isinstance(result.wa_id, str)
    ):
        raise ValueError("wamid and wa_id must be strings")
    if type(result.http_status) is not int or not (
        result.message_status is None or isinstance(result.message_status, str)
    ):
        raise ValueError("http_status must be an integer, message_status a string")
    data = command.data
    values = reference(data)
    values.update(
        attempt=tried.attempt,
        decision=tried.decision,
        wamid=result.wamid,
        wa_id=result.wa_id,
        http_status=result.http_status,
        message_status=result.message_status,
        requested_at=requested_at,
    )
    event_id = derive_id("send.accepted", {"command_id": data.command_id, "wamid": result.wamid})
    event = _envelope(SendAccepted, event_id, now, attempt.id, data.command_id)
    event["data"] = _assembled(SendAcceptedData, values, _ACCEPTED_SET)
    return _assembled(SendAccepted, event, _ENVELOPE_SET)


_CONSTANTS: dict[type[Message], tuple[str, int]] = {
    kind: (kind.model_fields["type"].default, kind.model_fields["version"].default)
    for kind in (SendAttempted, SendAccepted)
}
_ATTEMPTED_SET = frozenset(SendAttemptedData.model_fields)
_ACCEPTED_SET = frozenset(SendAcceptedData.model_fields)


# ------------------------------------------------------------------- encoding
def _utc_text(value: datetime) -> str:
    """An instant as the envelope's serializer spells it (``Message._utc_time``)."""
    if value.tzinfo is UTC:
        # isoformat() ends in '+00:00' here: the conversion to UTC has nothing to do.
        return value.isoformat()[:-6] + "Z"
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _instant_text(value: datetime) -> Any:
    """An instant inside ``data`` as pydantic's JSON mode spells it: isoformat, with 'Z'
    for UTC (checked equal over every microsecond pattern by test_fast_events)."""
    if value.tzinfo is UTC:
        return value.isoformat()[:-6] + "Z"
    return to_jsonable_python(value)


def _default(value: Any) -> Any:
    """What orjson leaves to us: a decision of some other making, an instant."""
    if type(value) is Decision:
        decision = value.__dict__
        if tuple(decision) == _DECISION_FIELDS:
            return decision
        return value.model_dump(mode="json")
    if isinstance(value, datetime):
        return to_jsonable_python(value)
    raise TypeError(f"not foreseen here: {type(value).__name__}")


_DECISION_FIELDS = tuple(Decision.model_fields)
_ENVELOPE_FIELDS = tuple(Message.model_fields)
_DATA_FIELDS: dict[type[Message], tuple[str, ...]] = {
    SendAttempted: tuple(SendAttemptedData.model_fields),
    SendAccepted: tuple(SendAcceptedData.model_fields),
}
# Instants go to _default: orjson's own spelling of one is not pydantic's.
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME
# The header values that are the same for every record of a type (as
# codec.cloudevent_headers writes them), made once.
_SPEC_VERSION = ("ce_specversion", codec.SPEC_VERSION.encode())
_CONTENT_TYPE = ("content-type", codec.CONTENT_TYPE.encode())
_TYPE_HEADERS = {
    kind: (("ce_type", type_.encode()), ("ce_schemaversion", str(version).encode()))
    for kind, (type_, version) in _CONSTANTS.items()
}
# Both events are keyed by the business number (Message.record_key reads this field).
_KEYED_BY_NUMBER = all(kind.key_field == "phone_number_id" for kind in _DATA_FIELDS)


def encode(event: Message) -> codec.KafkaRecord:
    """:func:`mmbus.contracts.codec.encode`, written directly for the two hot events.

    Their fields are strings, integers, None, a tuple of strings, a decision and
    instants: orjson writes what pydantic's JSON mode would give for each, in the
    models' field order (checked, not assumed). Anything else (another event, a
    field order of some other making, an integer beyond 64 bits) is the codec's.
    The instants and the decision are turned into their JSON values here, so orjson
    calls back into Python only for what is not foreseen.
    """
    kind = type(event)
    fields = _DATA_FIELDS.get(kind)
    values = event.__dict__
    if fields is None or tuple(values) != _ENVELOPE_FIELDS or not _KEYED_BY_NUMBER:
        return codec.encode(event)
    if (values["type"], values["version"]) != _CONSTANTS[kind]:  # the headers assume them
        return codec.encode(event)
    data = values["data"].__dict__
    if tuple(data) != fields:
        return codec.encode(event)
    time = _utc_text(values["time"])
    data = data.copy()
    decision = data["decision"]
    if type(decision) is Decision and tuple(decision.__dict__) == _DECISION_FIELDS:
        data["decision"] = decision.__dict__
    requested_at = data.get("requested_at")
    if type(requested_at) is datetime:
        data["requested_at"] = _instant_text(requested_at)
    body = values.copy()
    body["time"] = time
    body["data"] = data
    try:
        value = orjson.dumps(body, default=_default, option=_OPTIONS)
    except TypeError:
        return codec.encode(event)
    number = data["phone_number_id"]
    if type(number) is not str:
        return codec.encode(event)
    return codec.KafkaRecord(key=number.encode(), value=value, headers=_headers(kind, values, time))


def _headers(kind: type[Message], values: dict[str, Any], time: str) -> codec.Headers:
    """``codec.cloudevent_headers(event, time)`` for an event of ``kind`` with ``values``."""
    type_, version = _TYPE_HEADERS[kind]
    headers = [
        _SPEC_VERSION,
        ("ce_id", values["id"].encode()),
        type_,
        ("ce_source", values["source"].encode()),
        ("ce_subject", values["subject"].encode()),
        ("ce_time", time.encode()),
        version,
    ]
    correlation, causation = values["correlation_id"], values["causation_id"]
    if correlation is not None:
        headers.append(("ce_correlationid", correlation.encode()))
    if causation is not None:
        headers.append(("ce_causationid", causation.encode()))
    headers.append(_CONTENT_TYPE)
    return headers
