"""Phone numbers, parsed by a real phone-number library (no prefix tables)."""

from __future__ import annotations

import functools
import re

import phonenumbers

_NOT_DIGITS = re.compile(r"[\s().+-]")


class InvalidPhoneNumberError(ValueError):
    pass


def normalize_msisdn(raw: str) -> str:
    """International number as Meta wants it: digits only, country code first.

    Accepts '+44 7911 123456', '447911123456', '(+1) 650-555-0123'. A number is
    rejected when it does not parse or is not a valid number for its country.
    """
    cleaned = _NOT_DIGITS.sub("", raw.strip())
    if cleaned.startswith("00"):
        cleaned = cleaned[2:]
    if not cleaned:
        raise InvalidPhoneNumberError("is empty; give the number in international format")
    if not cleaned.isdigit():
        raise InvalidPhoneNumberError(f"{raw!r} has characters other than digits and separators")
    try:
        parsed = phonenumbers.parse("+" + cleaned, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumberError(f"{raw!r} is not a phone number: {exc}") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumberError(
            f"{raw!r} is not a valid number in international format (country code first)"
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)[1:]


def digits_only(raw: str) -> str:
    """The separators and a leading 00 removed, without the library's validity check."""
    cleaned = _NOT_DIGITS.sub("", raw.strip())
    return cleaned[2:] if cleaned.startswith("00") else cleaned


@functools.lru_cache(maxsize=65_536)
def region_of(msisdn: str) -> str | None:
    """ISO 3166 region of a normalised number ('US', 'GB', ...), or None if unknown."""
    try:
        parsed = phonenumbers.parse("+" + msisdn, None)
    except phonenumbers.NumberParseException:
        return None
    region: str | None = phonenumbers.region_code_for_number(parsed)
    return region if region and region != "ZZ" else None
