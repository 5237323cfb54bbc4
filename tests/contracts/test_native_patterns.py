"""The patterns pydantic-core checks accept exactly what ``re.fullmatch`` accepts, and
fail with the error a Python validator raising ``ValueError(why)`` gave."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from mmbus.contracts.fields import (
    GRAPH_ID_PATTERN,
    LANGUAGE_CODE_PATTERN,
    MSISDN_PATTERN,
    UUID_PATTERN,
    _matching,
)

PATTERNS = [GRAPH_ID_PATTERN, LANGUAGE_CODE_PATTERN, MSISDN_PATTERN, UUID_PATTERN]
WHY = "must match"

# Near misses first: what the patterns are made of, plus what engines disagree on
# (a final newline, non-ASCII digits and letters).
pieces = st.sampled_from(["0", "1", "9", "a", "F", "z", "en", "_US", "-", "\n", "٤", "é", " "])
texts = st.lists(pieces, max_size=40).map("".join) | st.text(max_size=40)


def _adapter(pattern: str) -> TypeAdapter[Any]:
    return TypeAdapter(Annotated[str, _matching(pattern, WHY)])


ADAPTERS = {pattern: _adapter(pattern) for pattern in PATTERNS}


@pytest.mark.parametrize("pattern", PATTERNS)
@settings(max_examples=300, deadline=None)  # a shared machine: no timing
@given(text=texts)
@example(text="123\n")
@example(text="00000000-0000-4000-8000-000000000001")
@example(text="447911123456")
@example(text="en_US")
@example(text="1\ud800")  # a lone surrogate: no str for the Rust engine
def test_accepts_what_fullmatch_accepts(pattern: str, text: str) -> None:
    expected = re.fullmatch(pattern, text) is not None
    adapter = ADAPTERS[pattern]
    checks: list[tuple[Any, Any]] = [(adapter.validate_python, text)]
    if not any("\ud800" <= c <= "\udfff" for c in text):  # else not JSON at all
        checks.append((adapter.validate_json, json.dumps(text).encode()))
    for validate, value in checks:
        try:
            assert validate(value) == text
            accepted = True
        except ValidationError as exc:
            (error,) = exc.errors(include_url=False)
            assert error["type"] == "value_error"
            assert error["msg"] == f"Value error, {WHY}"
            assert str(error["ctx"]["error"]) == WHY
            accepted = False
        assert accepted == expected


@pytest.mark.parametrize("value", [5, None, True, ["1"]])
def test_a_value_that_is_not_a_string_keeps_pydantics_error(value: Any) -> None:
    with pytest.raises(ValidationError) as raised:
        ADAPTERS[GRAPH_ID_PATTERN].validate_python(value)
    assert raised.value.errors()[0]["type"] == "string_type"
