"""Phone numbers, parsed by a real phone-number library (no prefix tables)."""

from __future__ import annotations

import functools
import re

import phonenumbers
from phonenumbers import phonenumberutil as u

# ASCII only, like fields.MSISDN_INPUT_PATTERN that states these rules in the JSON
# Schema: other whitespace and non-ASCII digits ('٤٤') are refused, not converted.
_NOT_DIGITS = re.compile(r"[ ().+-]")


class InvalidPhoneNumberError(ValueError):
    pass


def normalize_msisdn(raw: str) -> str:
    """International number as Meta wants it: digits only, country code first.

    Accepts '+44 7911 123456', '447911123456', '(+1) 650-555-0123'. A number is
    rejected when it does not parse or is not a valid number for its country.
    """
    msisdn, region = _validated(raw)
    _remember(msisdn, region)
    return msisdn


# Keyed by the raw text, so the answer is the one computed for exactly that input; a
# refusal raises and is not kept. A campaign sends to many distinct numbers, but
# retries, re-publications and the same recipients across campaigns repeat them.
@functools.lru_cache(maxsize=65_536)
def _validated(raw: str) -> tuple[str, str]:
    cleaned = _NOT_DIGITS.sub("", raw)
    if cleaned.startswith("00"):
        cleaned = cleaned[2:]
    if not cleaned:
        raise InvalidPhoneNumberError("is empty; give the number in international format")
    if not (cleaned.isascii() and cleaned.isdigit()):
        raise InvalidPhoneNumberError(f"{raw!r} has characters other than digits and separators")
    try:
        country_code, national = _split_international(cleaned)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumberError(f"{raw!r} is not a phone number: {exc}") from exc
    region = _region_if_valid(country_code, national)
    if region is None:
        raise InvalidPhoneNumberError(
            f"{raw!r} is not a valid number in international format (country code first)"
        )
    # E.164 without its '+': the country code, then the national significant number.
    return f"{country_code}{national}", region


def _split_international(digits: str) -> tuple[int, str]:
    """The country code and national significant number of '+' and ``digits``.

    What ``phonenumbers.parse('+' + digits, None)`` and
    ``national_significant_number`` give, without building the PhoneNumber in
    between: from a string of digits, the national significant number is that
    string (the Italian leading zeros the library records are the zeros it
    starts with), so the fast parse's string is the answer.
    """
    national = _fast_national(digits)
    if national is None:
        parsed = phonenumbers.parse("+" + digits, None)
        # No country code (never after a '+' the library accepted): no region has it.
        return parsed.country_code or 0, phonenumbers.national_significant_number(parsed)
    return national


def _parse_international(digits: str) -> phonenumbers.PhoneNumber:
    """``phonenumbers.parse('+' + digits, None)`` for a string of ASCII digits."""
    split = _fast_national(digits)
    if split is None:
        return phonenumbers.parse("+" + digits, None)
    country_code, national = split
    number = phonenumbers.PhoneNumber(country_code=country_code)
    u._set_italian_leading_zeros_for_phone_number(national, number)
    number.national_number = int(national)
    return number


def _fast_national(digits: str) -> tuple[int, str] | None:
    """The country code and national number the library's parse finds in '+' and
    ``digits``, or None where only the library's parse can tell (or raise).

    The library's parse first takes free text apart (RFC 3966, extensions, letters,
    an IDD prefix): 30 µs of the 70 a command's validation took. For '+' and digits
    none of that applies; what remains is the library's own steps, in its order,
    through its helpers: the country code, the national prefix stripped where the
    region's lengths allow it. Anything else (no country code, too short or too
    long) goes to the library's parse, which raises as it always did.
    test_phone_fast_parse holds the two equal on every region's example numbers
    and thousands of variations, valid or not.
    """
    if not _FAST_PARSE or len(digits) <= u._MIN_LENGTH_FOR_NSN:
        return None
    country_code, national = u._extract_country_code(digits)
    metadata = (
        phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
            country_code, phonenumbers.region_code_for_country_code(country_code)
        )
        if country_code
        else None
    )
    if metadata is None or len(national) < u._MIN_LENGTH_FOR_NSN:
        return None
    _, stripped, _ = u._maybe_strip_national_prefix_carrier_code(national, metadata)
    # Nothing stripped (most numbers): keeping it or not is the same number.
    if stripped != national and u._test_number_length(stripped, metadata) not in _KEEP_PREFIX:
        national = stripped  # a region's transform rule may also lengthen it
    if not u._MIN_LENGTH_FOR_NSN <= len(national) <= u._MAX_LENGTH_FOR_NSN:
        return None
    return country_code, national


# The library's helpers the fast parse uses are private: if a release renames one,
# every number goes the library's public way again.
_FAST_PARSE = all(
    hasattr(u, name)
    for name in (
        "_MIN_LENGTH_FOR_NSN",
        "_MAX_LENGTH_FOR_NSN",
        "_extract_country_code",
        "_maybe_strip_national_prefix_carrier_code",
        "_test_number_length",
        "_set_italian_leading_zeros_for_phone_number",
        "ValidationResult",
    )
)
_KEEP_PREFIX = (
    frozenset(
        {
            u.ValidationResult.TOO_SHORT,
            u.ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
            u.ValidationResult.INVALID_LENGTH,
        }
    )
    if _FAST_PARSE
    else frozenset()
)


def _region_if_valid(country_code: int, national: str) -> str | None:
    """The number's region if the number is valid there, else None.

    The answer of ``is_valid_number`` with the region kept (routing asks for it
    next), in one pass over the region's patterns. The library's own pair of calls,
    ``region_code_for_number`` then ``is_valid_number_for_region``, matches the
    patterns twice for a country code that several regions share (+1, +44, +7...):
    once to pick the region, once to validate for it (for a UK number 120 µs
    became 78 µs here, of the sender's 1.2 ms per command). The region is picked
    by the library's rule, in the library's order: a region with leading digits by
    those digits alone, any other by being valid there. test_commands checks the
    two agree on every region's example numbers and thousands of variations.
    """
    regions = phonenumbers.region_codes_for_country_code(country_code)
    if len(regions) == 1:
        return regions[0] if _valid_for_region(country_code, national, regions[0]) else None
    for region in regions:
        rules = _rules(country_code, region)
        if rules is None:
            continue
        if rules.leading_digits is not None:
            if rules.leading_digits.match(national):
                return region if rules.valid(national) else None
        elif rules.valid(national):
            return region
    return None


# (possible lengths, the pattern): one of a region's number descriptions, compiled.
_Desc = tuple[frozenset[int], re.Pattern[str] | None]


def _desc(desc: phonenumbers.PhoneNumberDesc | None) -> _Desc | None:
    if desc is None:
        return None
    pattern = desc.national_number_pattern
    return frozenset(desc.possible_length), re.compile(pattern) if pattern else None


def _matches(national: str, desc: _Desc | None) -> bool:
    """The library's ``_is_number_matching_desc``: the length first, then the pattern."""
    if desc is None:
        return False
    lengths, pattern = desc
    if lengths and len(national) not in lengths:
        return False
    return pattern is not None and pattern.fullmatch(national) is not None


class _RegionRules:
    """What ``is_valid_number_for_region`` checks for one region, compiled once.

    The library asks for each pattern by its text on every call (a look-up in the
    ``re`` module's cache), matches each twice (a prefix match, then the full one),
    and goes through the number types in the order that tells which type a number
    is: premium rate first, mobile last. Validity only asks whether some type
    matches, so here the common types go first and each pattern is matched once.
    The verdict is the library's: the general description must match, then any
    type (mobile only where its pattern is not the fixed-line one, as the library
    skips it there).
    """

    __slots__ = ("_general", "_types", "leading_digits")

    def __init__(self, metadata: phonenumbers.PhoneMetadata) -> None:
        self._general = _desc(metadata.general_desc)
        kinds = [metadata.fixed_line]
        if not metadata.same_mobile_and_fixed_line_pattern:
            kinds.append(metadata.mobile)
        kinds += [
            metadata.premium_rate,
            metadata.toll_free,
            metadata.shared_cost,
            metadata.voip,
            metadata.personal_number,
            metadata.pager,
            metadata.uan,
            metadata.voicemail,
        ]
        self._types = [d for d in map(_desc, kinds) if d is not None]
        leading = metadata.leading_digits
        self.leading_digits = re.compile(leading) if leading is not None else None

    def valid(self, national: str) -> bool:
        if not _matches(national, self._general):
            return False
        return any(_matches(national, desc) for desc in self._types)


# Per (country code, region); None where the library finds no metadata or the code is
# not the region's. Bounded by the library's regions (a few hundred).
_RULES: dict[tuple[int, str], _RegionRules | None] = {}


def _rules(country_code: int, region: str) -> _RegionRules | None:
    try:
        return _RULES[country_code, region]
    except KeyError:
        pass
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
        country_code, region.upper()
    )
    rules = None
    if metadata is not None and (
        region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY
        or country_code == phonenumbers.country_code_for_valid_region(region)
    ):
        rules = _RegionRules(metadata)
    _RULES[country_code, region] = rules
    return rules


def _valid_for_region(country_code: int, national: str, region: str) -> bool:
    """``phonenumbers.is_valid_number_for_region`` for a number whose national
    significant number is ``national``."""
    rules = _rules(country_code, region)
    return rules is not None and rules.valid(national)


# Any whitespace: commands in the log from before the ASCII-only rule were accepted
# with it, and re-reading them must give the number the sender used.
_LOGGED_SEPARATORS = re.compile(r"[\s().+-]")


def digits_only(raw: str) -> str:
    """The separators and a leading 00 removed, without the library's validity check."""
    cleaned = _LOGGED_SEPARATORS.sub("", raw.strip())
    return cleaned[2:] if cleaned.startswith("00") else cleaned


# Regions of numbers validated lately. Recipients of a campaign are mostly distinct,
# so the sender would otherwise parse each number twice: to validate the command,
# then to route it. Bounded: emptied when full (refilling costs one parse a number).
_KNOWN_REGIONS: dict[str, str | None] = {}
_KNOWN_MAX = 65_536


def _remember(msisdn: str, region: str | None) -> None:
    if len(_KNOWN_REGIONS) >= _KNOWN_MAX:
        _KNOWN_REGIONS.clear()
    _KNOWN_REGIONS[msisdn] = region if region and region != "ZZ" else None


def forget() -> None:
    """Drop every number validated so far (a benchmark's sender must not start warm)."""
    _validated.cache_clear()
    _KNOWN_REGIONS.clear()
    _region_lookup.cache_clear()


def region_of(msisdn: str) -> str | None:
    """ISO 3166 region of a normalised number ('US', 'GB', ...), or None if unknown."""
    try:
        return _KNOWN_REGIONS[msisdn]
    except KeyError:
        return _region_lookup(msisdn)


@functools.lru_cache(maxsize=65_536)
def _region_lookup(msisdn: str) -> str | None:
    try:
        parsed = phonenumbers.parse("+" + msisdn, None)
    except phonenumbers.NumberParseException:
        return None
    region: str | None = phonenumbers.region_code_for_number(parsed)
    return region if region and region != "ZZ" else None
