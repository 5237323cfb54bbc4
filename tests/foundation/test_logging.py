"""Secrets never reach a log line; phone numbers are masked; JSON when not on a terminal."""

from __future__ import annotations

import io
import logging

import orjson
import pytest

from services.common.logging import REDACTED, configure_logging, get_logger, mask_phone


@pytest.fixture
def json_log() -> io.StringIO:
    buffer = io.StringIO()
    configure_logging("DEBUG", "auto", stream=buffer, force=True)  # StringIO is no TTY: JSON
    return buffer


def _lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("fields", "secret"),
    [
        ({"access_token": "EAAGm0PX4ZCpsBA"}, "EAAGm0PX4ZCpsBA"),
        ({"headers": {"Authorization": "Bearer EAAGm0PX4ZCpsBA"}}, "EAAGm0PX4ZCpsBA"),
        ({"app_secret": "s3cr3t-app"}, "s3cr3t-app"),
        ({"D360-API-KEY": "d360key123"}, "d360key123"),
        ({"url": "/webhook?hub.mode=subscribe&hub.verify_token=vt-123&hub.challenge=9"}, "vt-123"),
        ({"note": "calling with Bearer EAAGm0PX4ZCpsBA now"}, "EAAGm0PX4ZCpsBA"),
        ({"x_hub_signature_256": "sha256=" + "ab" * 32}, "ab" * 32),
        ({"kafka_sasl_password": "pw-1"}, "pw-1"),
    ],
)
def test_secrets_are_redacted(
    json_log: io.StringIO, fields: dict[str, object], secret: str
) -> None:
    get_logger("t").info("call", **fields)
    text = json_log.getvalue()
    assert secret not in text
    assert REDACTED in text


def test_phone_numbers_are_masked_but_business_ids_stay(json_log: io.StringIO) -> None:
    get_logger("t").info(
        "sent to +4915112345678",
        to="4915112345678",
        contacts=[{"input": "+1 650 555 1234", "wa_id": "16505551234"}],
        phone_number_id="106540352242922",
        waba_id="102290129340398",
    )
    (line,) = _lines(json_log)
    text = orjson.dumps(line).decode()
    for raw in ("4915112345678", "16505551234", "650 555 1234"):
        assert raw not in text
    assert line["to"] == "49*********78"
    assert line["phone_number_id"] == "106540352242922"
    assert line["waba_id"] == "102290129340398"
    assert line["event"] == "sent to +49*********78"


def test_library_log_lines_are_scrubbed_too(json_log: io.StringIO) -> None:
    logging.getLogger("httpx").warning("GET /v23.0/1?access_token=EAAsecret HTTP/1.1 200")
    assert "EAAsecret" not in json_log.getvalue()
    assert _lines(json_log)[0]["logger"] == "httpx"


def test_json_lines_carry_level_time_and_bound_context(json_log: io.StringIO) -> None:
    get_logger("t").bind(command_id="c-1").warning("slow")
    (line,) = _lines(json_log)
    assert line["level"] == "warning"
    assert line["command_id"] == "c-1"
    assert str(line["timestamp"]).endswith("Z")


def test_console_format_is_human_readable() -> None:
    buffer = io.StringIO()
    configure_logging("INFO", "console", stream=buffer, force=True)
    get_logger("t").info("hello", to="4915112345678")
    text = buffer.getvalue()
    assert "hello" in text
    assert "49*********78" in text
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(text)


@pytest.mark.parametrize(
    ("raw", "masked"),
    [("4915112345678", "49*********78"), ("+1 (650) 555-1234", "16*******34"), ("123", "***")],
)
def test_mask_phone(raw: str, masked: str) -> None:
    assert mask_phone(raw) == masked
