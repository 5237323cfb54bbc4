"""Every message type has a golden example that both the model and the JSON Schema accept.

test_schema_strictness also runs them, and the negative examples, through ajv.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from mmbus.contracts.catalogue import BY_TYPE_VERSION, MODELS, type_of, version_of
from services.schema_export import schema_file_name
from tests.contracts.examples import SCHEMAS, load_examples, schema_validator

EXAMPLES = load_examples()


def test_every_model_has_exactly_one_example() -> None:
    expected = {f"{type_of(m)}.v{version_of(m)}" for m in MODELS}
    assert set(EXAMPLES) == expected


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_is_valid_for_model_and_schema(name: str) -> None:
    example: dict[str, Any] = EXAMPLES[name]
    model = BY_TYPE_VERSION[(example["type"], example["version"])]
    parsed = model.model_validate(example)
    assert parsed.type == example["type"]

    schema = orjson.loads((SCHEMAS / "json" / schema_file_name(model)).read_bytes())
    Draft202012Validator.check_schema(schema)
    errors = sorted(schema_validator(schema).iter_errors(example), key=str)
    assert not errors, [e.message for e in errors]


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_schema_rejects_an_example_without_its_type(name: str) -> None:
    example = dict(EXAMPLES[name])
    model = BY_TYPE_VERSION[(example["type"], example["version"])]
    schema = orjson.loads((SCHEMAS / "json" / schema_file_name(model)).read_bytes())
    del example["type"]
    assert not schema_validator(schema).is_valid(example)
