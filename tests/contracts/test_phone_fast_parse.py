"""The phone check's shortcuts give the library's answers: its parse, and a cached verdict.

``phone._parse_international`` replaces ``phonenumbers.parse('+' + digits, None)``
for digit strings; ``normalize_msisdn`` keeps its verdicts by raw text. Both
must be invisible: the same PhoneNumber (every field), the same exception, the
same normalised number and region, cached or not.
"""

from __future__ import annotations

import random

import phonenumbers
import pytest

from mmbus.contracts import phone
from mmbus.contracts.phone import InvalidPhoneNumberError, normalize_msisdn, region_of
from tests.contracts.test_commands import _numbers_to_compare


def _digit_strings() -> list[str]:
    """Every region's example numbers and their variations, then random digits of every
    length from 1 to 22 after each country code and after none (most invalid)."""
    rnd = random.Random(11)
    numbers = _numbers_to_compare()
    codes = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
    for length in range(1, 23):
        for _ in range(60):
            tail = "".join(rnd.choice("0123456789") for _ in range(length))
            numbers += [tail, f"{rnd.choice(codes)}{tail}", f"{rnd.choice(codes)}0{tail}"]
    # National prefixes and transform rules: Argentina (0, 15), Russia (8), Italy (0...).
    numbers += ["5491123456789", "54011512345678", "5401115123456", "78123456789", "390612345678"]
    numbers += ["3900000000", "39000", "1", "12", "123", "0", "00", "7" * 20]
    return numbers


def _parsed(digits: str) -> phonenumbers.PhoneNumber | str:
    try:
        return phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException as exc:
        return f"{exc.error_type}: {exc}"


def _fast(digits: str) -> phonenumbers.PhoneNumber | str:
    try:
        return phone._parse_international(digits)
    except phonenumbers.NumberParseException as exc:
        return f"{exc.error_type}: {exc}"


def test_the_fast_parse_is_the_librarys_parse() -> None:
    assert phone._FAST_PARSE, "the library's helpers moved: the shortcut is off"
    numbers = _digit_strings()
    parsed = 0
    for digits in numbers:
        expected = _parsed(digits)
        assert _fast(digits) == expected, digits
        parsed += not isinstance(expected, str)
    assert len(numbers) > 10_000
    assert 0.3 < parsed / len(numbers) < 0.95, (len(numbers), parsed)


def _verdict(raw: str) -> tuple[str, str | None] | str:
    try:
        msisdn = normalize_msisdn(raw)
    except InvalidPhoneNumberError as exc:
        return f"refused: {exc}"
    return msisdn, region_of(msisdn)


@pytest.mark.parametrize(
    "raw",
    ["+44 7911 123456", "0049 151 12345678", "(+1) 650-555-0123", "+1 650 555", "", "+٤٤"],
)
def test_a_cached_verdict_is_the_verdict(raw: str) -> None:
    phone.forget()
    first = _verdict(raw)
    assert _verdict(raw) == first  # from the cache
    phone.forget()
    assert _verdict(raw) == first


def test_verdicts_survive_the_region_cache_being_emptied() -> None:
    phone.forget()
    assert normalize_msisdn("+44 7911 123456") == "447911123456"
    phone._KNOWN_REGIONS.clear()
    assert normalize_msisdn("+44 7911 123456") == "447911123456"
    assert region_of("447911123456") == "GG"


def _librarys_verdict(digits: str) -> tuple[str, str | None] | None:
    """The library's public answer: the normalised number and its region, or None if
    it does not parse or is not valid."""
    try:
        parsed = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    msisdn = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)[1:]
    return msisdn, phonenumbers.region_code_for_number(parsed)


def test_validity_and_region_are_the_librarys_on_valid_and_invalid_numbers() -> None:
    """Each region's rules compiled once (services' hot path) give the library's verdict,
    also on the random digit strings, most of them invalid in some region's way."""
    phone.forget()
    accepted = 0
    for digits in _digit_strings():
        # A leading 00 is the international prefix, which normalize_msisdn removes.
        expected = _librarys_verdict(digits.removeprefix("00"))
        try:
            msisdn = normalize_msisdn(digits)
        except InvalidPhoneNumberError:
            assert expected is None, f"{digits} is valid for the library but was refused"
            continue
        accepted += 1
        assert (msisdn, region_of(msisdn)) == expected, digits
    assert accepted > 3_000
