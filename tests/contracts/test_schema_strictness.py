"""The JSON Schema gives the sender's verdict: as strict as the models, never stricter.

Every positive example (schemas/examples/*.json), and spellings of them the models
also accept, must pass; every negative example (schemas/examples/invalid/) must fail,
at the place it names, and pass once that place is put back. Three judges must
agree: pydantic (the codec's decode, as the sender reads a record, and the model of
the exact version), Python's jsonschema, and ajv under node, which shares no code
with either.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from jsonschema import ValidationError as SchemaError
from pydantic import ValidationError

from mmbus.contracts.catalogue import BY_TYPE_VERSION
from mmbus.contracts.codec import DecodeFailure, decode, dumps
from tests.contracts import ajv
from tests.contracts.examples import (
    EXAMPLES,
    INVALID,
    load_examples,
    load_invalid,
    schema_of,
    schema_validator,
)

POSITIVE = load_examples()
NEGATIVE = load_invalid()
_GONE = object()

# (example, place, value): spellings the models accept that the examples do not use.
SPELLINGS: list[tuple[str, str, Any]] = [
    ("send.template.v1", "data.to", "+44 7911 123456"),
    ("send.template.v1", "data.to", "0044 7911 123456"),
    ("send.template.v1", "data.to", "(+44) 7911-123.456"),
    ("send.template.v1", "data.to", "+1 (650) 555-0123"),
    ("send.template.v1", "data.command_id", "6F1C1A52-1D5A-4BB8-8F7C-1C9B3E0E9D11"),
    ("send.template.v1", "time", "2026-03-02T10:15:04.123+01:00"),
    ("send.template.v1", "time", "2026-03-02t09:15:04z"),
    ("send.template.v1", "time", "2026-03-02T09:15:04.123456789-00:00"),
    ("send.template.v1", "data.not_after", None),
    ("send.template.v1", "data.bid_multiplier", 2),
    ("send.template.v1", "data.ttl_seconds", 86400.0),
    ("send.template.v1", "data.template.language.code", "fil"),
    ("send.template.v1", "data.template.components", []),
    ("send.template.v1", "data.template.category", _GONE),
    ("message.status.v1", "data.timestamp", 1772442910),
    ("message.status.v1", "data.timestamp", 1772442910.5),
    ("message.status.v1", "data.timestamp", "1772442910"),
    ("message.status.v1", "data.timestamp", "0001772442910"),
    ("message.status.v1", "data.conversation.expiration_timestamp", "1772529310"),
    ("message.status.v1", "data.meta_added_this", {"any": ["thing"]}),
    ("send.accepted.v2", "data.message_status", "held_for_quality_assessment"),
    ("send.accepted.v2", "data.message_status", "queued"),
    ("send.rejected.v1", "data.command_id", "order-8812"),
    ("dead_letter.recorded.v1", "data.partition", -1),
    ("webhook.received.v1", "data.received_at", "2026-03-02T10:14:58+01:00"),
]


def _put(message: dict[str, Any], place: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(message)
    *parents, last = place.split(".")
    node = changed
    for part in parents:
        node = node[part]
    if value is _GONE:
        node.pop(last, None)
    else:
        node[last] = value
    return changed


def _at(message: dict[str, Any], place: str) -> Any:
    node: Any = message
    for part in place.split("."):
        if not isinstance(node, dict) or part not in node:
            return _GONE
        node = node[part]
    return node


def _restored(negative: dict[str, Any]) -> dict[str, Any]:
    """The negative example with the place it names as the positive example has it."""
    message = negative["message"]
    example = POSITIVE[f"{message['type']}.v{message['version']}"]
    return _put(message, negative["path"], _at(example, negative["path"]))


def _spelling_name(i: int) -> str:
    example, place, _ = SPELLINGS[i]
    return f"{i:02d}.{example}.{place}"


def _spelling(i: int) -> dict[str, Any]:
    example, place, value = SPELLINGS[i]
    return _put(POSITIVE[example], place, value)


# ----------------------------------------------------------------- the judges
def _pydantic(message: dict[str, Any]) -> list[str]:
    """Where the sender's decoding finds errors (dotted places); empty when it accepts."""
    raw = dumps(message)
    headers = [
        ("ce_type", str(message["type"]).encode()),
        ("ce_schemaversion", str(message["version"]).encode()),
        ("ce_id", str(message["id"]).encode()),
    ]
    places: list[str] = []
    for decoded in (decode(raw), decode(raw, headers)):  # the slow path, the fast path
        if isinstance(decoded, DecodeFailure):
            assert decoded.reason == "invalid_message", decoded
            places += [error.split(": ", 1)[0] for error in decoded.errors]
    model = BY_TYPE_VERSION[(message["type"], message["version"])]
    try:
        model.model_validate_json(raw)
    except ValidationError as exc:
        places += [".".join(str(p) for p in e["loc"]) for e in exc.errors()]
    return places


def _jsonschema(message: dict[str, Any]) -> list[str]:
    places = []
    for error in schema_validator(schema_of(message)).iter_errors(message):
        place = ".".join(str(p) for p in error.absolute_path)
        named = _named_properties(error)
        places += [f"{place}.{n}".lstrip(".") for n in named] if named else [place]
    return places


def _named_properties(error: SchemaError) -> list[str]:
    """The property a 'required' or 'additionalProperties' error is about, as ajv names it."""
    if not isinstance(error.instance, dict):
        return []
    if error.validator == "required" and isinstance(error.validator_value, list):
        return [n for n in error.validator_value if n not in error.instance]
    if error.validator == "additionalProperties" and isinstance(error.schema, dict):
        return [k for k in error.instance if k not in error.schema.get("properties", {})]
    return []


def _ajv(verdict: dict[str, Any]) -> list[str]:
    if verdict["valid"]:
        return []
    return [e["path"].lstrip("/").replace("/", ".") for e in verdict["errors"]]


def _within(places: list[str], path: str) -> bool:
    return bool(places) and all(p == path or p.startswith(path + ".") for p in places)


@pytest.fixture(scope="module")
def ajv_says(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, dict[str, Any]]:
    """ajv's verdicts on every file, from one node process."""
    folder = tmp_path_factory.mktemp("ajv")
    made = {folder / f"restored.{name}": _restored(n) for name, n in NEGATIVE.items()}
    made |= {folder / f"{_spelling_name(i)}.json": _spelling(i) for i in range(len(SPELLINGS))}
    for path, message in made.items():
        path.write_bytes(dumps(message))
    files = [EXAMPLES / f"{name}.json" for name in POSITIVE]
    return ajv.validate(files + [INVALID / name for name in NEGATIVE] + list(made))


def _ajv_verdict(says: dict[Path, dict[str, Any]], name: str) -> dict[str, Any]:
    matches = [verdict for path, verdict in says.items() if path.name == name]
    assert len(matches) == 1, name
    return matches[0]


# ------------------------------------------------------------------- the tests
def test_there_are_negative_examples_for_commands_and_events() -> None:
    types = {n["message"]["type"] for n in NEGATIVE.values()}
    assert "send.template" in types
    assert len(types) >= 8, types
    for name, negative in NEGATIVE.items():
        assert set(negative) == {"reason", "path", "message"}, name
        assert negative["reason"].strip(), name
        assert name.startswith(f"{negative['message']['type']}.v{negative['message']['version']}.")
    assert (INVALID / "README.md").exists()


@pytest.mark.parametrize("name", sorted(POSITIVE))
def test_positive_example_passes_every_judge(
    name: str, ajv_says: dict[Path, dict[str, Any]]
) -> None:
    message = POSITIVE[name]
    assert _pydantic(message) == []
    assert _jsonschema(message) == []
    assert _ajv(_ajv_verdict(ajv_says, f"{name}.json")) == []


@pytest.mark.parametrize("name", sorted(NEGATIVE))
def test_negative_example_fails_every_judge_where_it_says(
    name: str, ajv_says: dict[Path, dict[str, Any]]
) -> None:
    negative = NEGATIVE[name]
    path, message = negative["path"], negative["message"]
    judges = {
        "pydantic": _pydantic(message),
        "jsonschema": _jsonschema(message),
        "ajv": _ajv(_ajv_verdict(ajv_says, name)),
    }
    for judge, places in judges.items():
        assert _within(places, path), f"{judge} on {name}: errors at {places}, expected {path}"


@pytest.mark.parametrize("name", sorted(NEGATIVE))
def test_negative_example_is_otherwise_valid(
    name: str, ajv_says: dict[Path, dict[str, Any]]
) -> None:
    restored = _restored(NEGATIVE[name])
    assert _pydantic(restored) == []
    assert _jsonschema(restored) == []
    assert _ajv(_ajv_verdict(ajv_says, f"restored.{name}")) == []


@pytest.mark.parametrize("i", range(len(SPELLINGS)), ids=_spelling_name)
def test_spelling_the_models_accept_passes_every_judge(
    i: int, ajv_says: dict[Path, dict[str, Any]]
) -> None:
    message = _spelling(i)
    assert _pydantic(message) == []
    assert _jsonschema(message) == []
    assert _ajv(_ajv_verdict(ajv_says, f"{_spelling_name(i)}.json")) == []
