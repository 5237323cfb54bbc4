"""Field types whose every check is also written into the JSON Schema.

Teams in other languages validate messages against ``schemas/json`` and must get
the sender's verdict, so a rule enforced here in code is stated there too (a
``pattern``, a ``format``, bounds), from the same constant. Patterns use explicit
ASCII classes (``[0-9]``, never ``\\d`` or ``\\s``): Python's ``re``, pydantic's
Rust engine and ECMAScript (ajv) disagree on what those match beyond ASCII.
What only code can check (a number valid for its region) is said in the field's
``description`` instead.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    Strict,
    StringConstraints,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema


class JsonSchema:
    """Adds keywords to the JSON Schema of the type it annotates.

    For a rule that a validator function enforces, which pydantic cannot see.
    """

    __slots__ = ("_keywords",)

    def __init__(self, **keywords: Any) -> None:
        self._keywords = keywords

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {**handler(core_schema), **self._keywords}


class AlsoAccepts:
    """The JSON Schema of the annotated type, or any of these alternatives.

    For input that a before-validator converts into the type (Meta's epoch seconds).
    """

    __slots__ = ("_alternatives",)

    def __init__(self, *alternatives: JsonSchemaValue) -> None:
        self._alternatives = alternatives

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"anyOf": [handler(core_schema), *self._alternatives]}


class _Matching:
    """The string matches ``pattern``, or fails as a validator raising ``ValueError(why)``
    does (a ``value_error``, "Value error, " and ``why``; ``why`` as the context's error).

    pydantic-core checks the pattern itself: a Python validator cost a call out of the
    Rust validation per field, about a fifteenth of decoding a record. Its engine reads
    '$' as the end of the text, as ``re.fullmatch`` and ECMAScript do, and the patterns
    use explicit ASCII classes (see the module's docstring), so both engines agree.
    """

    __slots__ = ("_pattern", "_why")

    def __init__(self, pattern: str, why: str) -> None:
        self._pattern, self._why = pattern, why

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        # A string first, as before (its own error); only the pattern's failure is ours.
        checked = core_schema.custom_error_schema(
            core_schema.str_schema(pattern=self._pattern),
            "value_error",
            custom_error_context={"error": self._why},
        )
        return core_schema.chain_schema([handler(source), checked])


def _matching(pattern: str, why: str) -> _Matching:
    return _Matching(pattern, why)


# RFC 4122 text form in any case; stored lower-case. No braces, 'urn:uuid:' or
# missing hyphens: uuid.UUID() takes those, JSON Schema's format 'uuid' does not.
UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
Uuid = Annotated[
    str,
    _matching(UUID_PATTERN, "must be a UUID: 8-4-4-4-12 hex digits"),
    AfterValidator(str.lower),
    JsonSchema(format="uuid", pattern=UUID_PATTERN),
]

GRAPH_ID_PATTERN = "^[0-9]+$"
GraphId = Annotated[
    str,
    _matching(GRAPH_ID_PATTERN, "must be a numeric Graph API id (digits only)"),
    JsonSchema(pattern=GRAPH_ID_PATTERN),
]

# Meta's template names and language codes ('en', 'en_US', 'pt_BR', 'fil').
TEMPLATE_NAME_PATTERN = "^[a-z0-9_]+$"
TemplateName = Annotated[
    str, StringConstraints(min_length=1, max_length=512, pattern=TEMPLATE_NAME_PATTERN)
]
LANGUAGE_CODE_PATTERN = "^[a-z]{2,3}(_[A-Z]{2})?$"
LanguageCode = Annotated[
    str,
    _matching(
        LANGUAGE_CODE_PATTERN, "must look like 'en' or 'en_US' (Meta's template language code)"
    ),
    JsonSchema(pattern=LANGUAGE_CODE_PATTERN),
]

# How many digits a number valid for phonenumbers has, country code included:
# from Austria's 4-digit fixed lines (+43) to 17-digit toll-free numbers in Japan
# and Indonesia; the library's metadata, not E.164's 15, is what the sender
# accepts (test_schema_patterns checks these against it).
MSISDN_MIN_DIGITS, MSISDN_MAX_DIGITS = 6, 19
_COUNT = f"{{{MSISDN_MIN_DIGITS - 1},{MSISDN_MAX_DIGITS - 1}}}"
# A normalised number: digits only, country code first (never 0).
MSISDN_PATTERN = f"^[1-9][0-9]{_COUNT}$"
MsisdnDigits = Annotated[
    str,
    _matching(MSISDN_PATTERN, "must be a normalised number: digits only, country code first"),
    JsonSchema(pattern=MSISDN_PATTERN),
]
# A number as callers may write it: the separators phone.normalize_msisdn removes
# anywhere, an optional international prefix 00, then the digits.
_SEP = "[ ().+-]*"
MSISDN_INPUT_PATTERN = f"^{_SEP}(0{_SEP}0{_SEP})?[1-9]({_SEP}[0-9]){_COUNT}{_SEP}$"

# RFC 3339 with its time zone: what JSON Schema's 'date-time' means, narrowed to
# what pydantic parses (no leap second, no '24:00'); 't' and 'z' as RFC 3339 allows.
INSTANT_PATTERN = (
    "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    "[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]+)?"
    "([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
_INSTANT = re.compile(INSTANT_PATTERN)


def _instant(value: Any) -> Any:
    # pydantic alone would also take epoch numbers, a ' ' or '_' separator, '+0100'
    # and no seconds: spellings the schema's readers would refuse.
    if isinstance(value, str):
        if _INSTANT.fullmatch(value) is None:
            raise ValueError(
                "must be an RFC 3339 date-time with its timezone, e.g. 2026-03-02T09:15:04Z "
                "or 2026-03-02T10:15:04+01:00"
            )
    elif isinstance(value, int | float):
        raise ValueError("must be an RFC 3339 date-time string with its timezone, not a number")
    return value


Instant = Annotated[AwareDatetime, BeforeValidator(_instant), JsonSchema(pattern=INSTANT_PATTERN)]


def _json_integer(value: Any) -> Any:
    # Lax pydantic takes "12" and true for an int; JSON Schema's integer takes neither
    # (but does take 12.0, as pydantic does).
    if isinstance(value, str | bool):
        raise ValueError("must be a JSON integer, not a string or a boolean")
    return value


# Bounds go before it, as in Annotated[int, Field(ge=1), JSON_INTEGER]: put on a field
# of an optional JsonInt, pydantic writes them into the JSON Schema as 'ge'/'le',
# which no validator knows, instead of 'minimum'/'maximum'.
JSON_INTEGER = BeforeValidator(_json_integer)
JsonInt = Annotated[int, JSON_INTEGER]
# Strict: a number (an integer too), never "1.5" or true; a boolean, never "yes" or 1.
JsonFloat = Annotated[float, Strict()]
JsonBool = Annotated[bool, Strict()]


# Meta's timestamps: epoch seconds as a number or a string of digits, or RFC 3339.
# The epoch seconds datetime can hold: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
EPOCH_MIN_S, EPOCH_MAX_S = -62_135_596_800, 253_402_300_799
# Digits only (no sign, no spaces), and no more than the largest epoch has after any
# leading zeros; the bound itself is checked in code, as for numbers.
EPOCH_TEXT_PATTERN = "^0*[0-9]{1,12}$"
_EPOCH_TEXT = re.compile(EPOCH_TEXT_PATTERN)


def meta_time(value: Any) -> Any:
    """Meta timestamps: epoch seconds as a number or a string of digits, else left alone."""
    if isinstance(value, str) and _EPOCH_TEXT.fullmatch(value):
        value = int(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        # Checked here: beyond it datetime raises OverflowError, which is not a
        # validation error and would escape decode().
        if not EPOCH_MIN_S <= value <= EPOCH_MAX_S:
            raise ValueError(f"epoch seconds {value} are outside years 1 to 9999")
        return datetime.fromtimestamp(value, UTC)
    return value


MetaTimestamp = Annotated[
    Instant,
    BeforeValidator(meta_time),
    AlsoAccepts(
        {
            "type": "number",
            "minimum": EPOCH_MIN_S,
            "maximum": EPOCH_MAX_S,
            "description": "Epoch seconds, as Meta sends them.",
        },
        {
            "type": "string",
            "pattern": EPOCH_TEXT_PATTERN,
            "description": f"Epoch seconds as digits, as Meta sends them (at most {EPOCH_MAX_S}).",
        },
    ),
]
