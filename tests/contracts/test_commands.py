"""send.template v1 validation, by table."""

from __future__ import annotations

import random
from typing import Any

import phonenumbers
import pytest
from pydantic import ValidationError

from mmbus.contracts.commands import SendTemplate
from mmbus.contracts.phone import InvalidPhoneNumberError, normalize_msisdn, region_of
from mmbus.publisher import send_template
from tests.contracts.examples import load_examples

BASE: dict[str, Any] = load_examples()["send.template.v1"]


def _with(**data: Any) -> dict[str, Any]:
    return {**BASE, "data": {**BASE["data"], **data}}


@pytest.mark.parametrize(
    ("raw", "digits", "region"),
    [
        ("+44 7911 123456", "447911123456", "GG"),
        ("0049 151 12345678", "4915112345678", "DE"),
        ("(+1) 650-555-0123", "16505550123", "US"),
        ("5511987654321", "5511987654321", "BR"),
        ("+39 312 345 6789", "393123456789", "IT"),
        ("+53 5 1234567", "5351234567", "CU"),
    ],
)
def test_phone_numbers_are_normalised_to_digits(raw: str, digits: str, region: str) -> None:
    assert normalize_msisdn(raw) == digits
    assert region_of(digits) == region


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("to", "12345", "not a valid number"),
        ("to", "+44 7911 12345a", "characters other than digits"),
        ("to", "", "is empty"),
        ("command_id", "order-8812", "must be a UUID"),
        ("waba_id", "waba-1", "numeric Graph API id"),
        ("phone_number_id", "", "numeric Graph API id"),
        ("bid_multiplier", 0.0, "greater than or equal to 0.01"),
        ("bid_multiplier", 11, "less than or equal to 10"),
        ("ttl_seconds", 3600, "greater than or equal to 43200"),
        ("ttl_seconds", 31 * 24 * 3600, "less than or equal to 2592000"),
        ("not_after", "2026-03-02T18:00:00", "timezone"),
        ("route", "sms", "'auto', 'marketing_messages' or 'cloud_api'"),
        ("product_policy", "LENIENT", "'CLOUD_API_FALLBACK' or 'STRICT'"),
        ("provider", "twilio", "'meta' or '360dialog'"),
        ("callback_data", "x" * 401, "at most 400"),
        ("surprise", 1, "Extra inputs are not permitted"),
    ],
)
def test_invalid_fields_are_rejected_with_a_reason(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SendTemplate.model_validate(_with(**{field: value}))
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ({"name": "Spring Sale", "language": {"code": "en"}}, "should match pattern"),
        ({"name": "spring_sale", "language": {"code": "english"}}, "'en' or 'en_US'"),
        ({"name": "spring_sale", "language": {"code": "en-US"}}, "'en' or 'en_US'"),
        (
            {"name": "spring_sale", "language": {"code": "en"}, "components": [{"text": "hi"}]},
            "string 'type'",
        ),
        ({"name": "spring_sale", "language": {"code": "en"}, "category": "PROMO"}, "'MARKETING'"),
    ],
)
def test_invalid_templates_are_rejected(template: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SendTemplate.model_validate(_with(template=template))
    assert message in str(caught.value)


def test_defaults_follow_the_design_brief() -> None:
    command = send_template(
        waba_id="102290129340398",
        phone_number_id="106540352242922",
        to="+49 151 12345678",
        template_name="spring_sale",
        language="de",
        source="tests",
    )
    data = command.data
    assert (data.provider, data.route, data.product_policy) == (
        "meta",
        "auto",
        "CLOUD_API_FALLBACK",
    )
    assert data.to == "4915112345678"
    assert command.id == command.subject == command.correlation_id == data.command_id
    assert command.record_key() == b"106540352242922"


def _numbers_to_compare() -> list[str]:
    """Every region's example numbers of every type, one digit shorter and longer, and
    seeded variations of their tails."""
    rnd = random.Random(5)
    numbers: list[str] = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in phonenumbers.PhoneNumberType.values():
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            digits = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)[1:]
            numbers += [digits, digits[:-1], digits + str(rnd.randrange(10))]
            for _ in range(3):
                k = rnd.randint(1, min(6, len(digits) - 2))
                numbers.append(digits[:-k] + "".join(rnd.choice("0123456789") for _ in range(k)))
    return numbers


def test_validation_and_region_agree_with_the_library_on_every_regions_numbers() -> None:
    """normalize_msisdn finds the region and validates in one pass; the library's
    is_valid_number and region_code_for_number must give the same answers."""
    compared = valid = 0
    for digits in _numbers_to_compare():
        try:
            parsed = phonenumbers.parse("+" + digits, None)
        except phonenumbers.NumberParseException:
            continue
        compared += 1
        expected = phonenumbers.is_valid_number(parsed)
        try:
            msisdn = normalize_msisdn(digits)
        except InvalidPhoneNumberError:
            assert not expected, f"{digits} is valid for the library but was refused"
            continue
        valid += 1
        assert expected, f"{digits} is invalid for the library but was accepted"
        assert msisdn == phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)[1:]
        assert region_of(msisdn) == phonenumbers.region_code_for_number(parsed), digits
    # Both outcomes must be well represented, or the comparison shows little.
    assert compared > 5_000
    assert 0.3 < valid / compared < 0.9, (compared, valid)
