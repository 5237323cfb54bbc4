"""The schema's patterns never refuse what the models accept, beyond the examples.

Phone numbers and date-times are where the models take many spellings; these tests
compare the patterns with the models over many of them (Python's ``re`` stands for
ECMAScript here: the patterns use only ASCII classes, on which the two agree).
"""

from __future__ import annotations

import re
from datetime import datetime

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneMetadata, PhoneNumberFormat
from pydantic import TypeAdapter, ValidationError

from mmbus.contracts.fields import (
    INSTANT_PATTERN,
    MSISDN_INPUT_PATTERN,
    MSISDN_MAX_DIGITS,
    MSISDN_MIN_DIGITS,
    MSISDN_PATTERN,
    Instant,
)
from mmbus.contracts.phone import InvalidPhoneNumberError, normalize_msisdn

MSISDN_INPUT = re.compile(MSISDN_INPUT_PATTERN)
MSISDN = re.compile(MSISDN_PATTERN)
INSTANT = re.compile(INSTANT_PATTERN)
_TYPES = (
    *("fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost"),
    *("personal_number", "voip", "pager", "uan", "voicemail"),
)


def _lengths() -> list[int]:
    """Every digit count, country code included, of a number type phonenumbers knows."""
    metadata = [PhoneMetadata.metadata_for_region(r, None) for r in phonenumbers.SUPPORTED_REGIONS]
    metadata += [
        PhoneMetadata.metadata_for_nongeo_region(cc, None)
        for cc in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS
    ]
    lengths = []
    for md in metadata:
        assert md is not None
        assert md.country_code is not None
        for kind in _TYPES:
            desc = getattr(md, kind)
            if desc is not None and desc.national_number_pattern:
                lengths += [len(str(md.country_code)) + n for n in desc.possible_length if n > 0]
    return lengths


def test_digit_bounds_are_the_librarys() -> None:
    lengths = _lengths()
    assert (min(lengths), max(lengths)) == (MSISDN_MIN_DIGITS, MSISDN_MAX_DIGITS), (
        "phonenumbers changed: update MSISDN_MIN/MAX_DIGITS and run `mmbus schemas export`"
    )


def _example_numbers() -> list[phonenumbers.PhoneNumber]:
    numbers = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in phonenumbers.PhoneNumberType.values():
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                numbers.append(example)
    return numbers


NUMBERS = _example_numbers()


def test_every_regions_numbers_in_every_international_spelling_match() -> None:
    accepted = 0
    for number in NUMBERS:
        e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
        spaced = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
        for raw in (e164, e164[1:], "00" + e164[1:], spaced, spaced.replace("+", "00 ")):
            try:
                digits = normalize_msisdn(raw)
            except InvalidPhoneNumberError:
                continue
            accepted += 1
            assert MSISDN_INPUT.fullmatch(raw), raw
            assert MSISDN.fullmatch(digits), digits
    assert accepted > 5_000


_SEPARATORS = st.lists(st.sampled_from(" ().+-"), max_size=2).map("".join)


@settings(max_examples=400, deadline=None)
@given(
    number=st.sampled_from(NUMBERS),
    prefix=st.sampled_from(["", "+", "00", "+00", "0 0"]),
    cuts=st.lists(_SEPARATORS, min_size=20, max_size=20),
    junk=st.sampled_from(["", "", "", "x", "\t", "\u0664", "/", "0"]),
    at=st.integers(min_value=0, max_value=20),
)
def test_any_spelling_the_sender_takes_matches_the_pattern(
    number: phonenumbers.PhoneNumber, prefix: str, cuts: list[str], junk: str, at: int
) -> None:
    digits = phonenumbers.format_number(number, PhoneNumberFormat.E164)[1:]
    raw = prefix + "".join(d + cut for d, cut in zip(digits, cuts, strict=False))
    raw = raw[:at] + junk + raw[at:]
    try:
        normalize_msisdn(raw)
    except InvalidPhoneNumberError:
        return
    assert MSISDN_INPUT.fullmatch(raw), raw


INSTANT_ADAPTER: TypeAdapter[datetime] = TypeAdapter(Instant)


def _calendar_valid(text: str) -> bool:
    try:
        datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


@settings(max_examples=600, deadline=None)
@given(
    year=st.sampled_from(["2026", "0000", "0001", "9999", "26"]),
    month=st.sampled_from(["01", "02", "12", "13", "00", "1"]),
    day=st.sampled_from(["01", "28", "29", "30", "31", "32"]),
    sep=st.sampled_from(["T", "t", " ", "_"]),
    clock=st.sampled_from(["09:15:04", "23:59:59", "23:59:60", "24:00:00", "09:15", "9:15:04"]),
    fraction=st.sampled_from(["", ".1", ".123456", ".123456789", ",5", "."]),
    zone=st.sampled_from(["Z", "z", "+01:00", "-00:00", "+23:59", "+24:00", "+0100", "+01", ""]),
)
def test_date_times_the_models_take_are_what_the_pattern_says(
    year: str, month: str, day: str, sep: str, clock: str, fraction: str, zone: str
) -> None:
    text = f"{year}-{month}-{day}{sep}{clock}{fraction}{zone}"
    try:
        INSTANT_ADAPTER.validate_python(text)
        accepted = True
    except ValidationError:
        accepted = False
    assert accepted == (INSTANT.fullmatch(text) is not None and _calendar_valid(text)), text


@pytest.mark.parametrize("value", [1772442904, 1772442904.5, True, "1772442904"])
def test_instants_are_strings_not_epoch_numbers(value: object) -> None:
    with pytest.raises(ValidationError, match="RFC 3339"):
        INSTANT_ADAPTER.validate_python(value)
