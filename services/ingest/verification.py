"""Webhook authenticity and the raw record, as pure functions."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal, TypedDict, Unpack

from mmbus.contracts.codec import CONTENT_TYPE, SPEC_VERSION, KafkaRecord, dumps, loads
from mmbus.contracts.envelope import derive_id
from mmbus.contracts.sizes import CONTENT_TYPE_MAX_CHARS, KEY_MAX_CHARS
from mmbus.contracts.webhook_events import WebhookReceived

SOURCE = "mmbus/ingest"
Verdict = Literal["valid", "invalid", "missing", "not_required"]


def verify_signature(
    body: bytes, header: str | None, secrets: Sequence[str]
) -> tuple[Verdict, int | None]:
    """Check ``X-Hub-Signature-256`` against each secret (rotation); constant-time per secret."""
    if not header:
        return "missing", None
    scheme, _, given = header.partition("=")
    if scheme != "sha256" or not given:
        return "invalid", None
    for index, secret in enumerate(secrets):
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected, given.strip().lower()):
            return "valid", index
    return "invalid", None


def same_secret(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class _NotJson:
    def __repr__(self) -> str:
        return "NOT_JSON"


# What parse_json returns for a body that is not JSON: None is JSON (``null``).
NOT_JSON: Final = _NotJson()


def parse_json(body: bytes) -> Any:
    """The body as JSON (``null`` included, as None), or :data:`NOT_JSON`."""
    try:
        return loads(body)
    except (ValueError, RecursionError):
        return NOT_JSON


def waba_of(parsed: Any) -> str | None:
    """``entry[0].id``: the WABA the webhook is about (the raw stream's key).

    Only an id that looks like one (a string or number of at most KEY_MAX_CHARS):
    it is repeated in the key, subject and headers, so a record's size stays a
    function of its body (mmbus.contracts.sizes).
    """
    if isinstance(parsed, dict) and isinstance(parsed.get("entry"), list) and parsed["entry"]:
        first = parsed["entry"][0]
        if isinstance(first, dict) and isinstance(first.get("id"), str | int):
            text = str(first["id"])
            if 0 < len(text) <= KEY_MAX_CHARS:
                return text
    return None


def _content_type(value: str | None) -> str | None:
    # A content type is a few dozen characters; capped so a header cannot outgrow the
    # envelope allowance of the record's size bound.
    return value[:CONTENT_TYPE_MAX_CHARS] if value is not None else None


def _body_and_id(body: bytes, source: str) -> tuple[str, str, str, str]:
    """The body as text (UTF-8, else base64), its encoding, its sha256, and the record id:
    a hash of the body, so a redelivery of the same webhook carries the same id."""
    try:
        text, encoding = body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(body).decode(), "base64"
    digest = hashlib.sha256(body).hexdigest()
    return (
        text,
        encoding,
        digest,
        derive_id("webhook.received", {"sha256": digest, "source": source}),
    )


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Receipt(TypedDict):
    """What ingest knew when it took a webhook, besides the body."""

    received_at: datetime
    source: Literal["meta", "360dialog"]
    path: str
    verdict: Verdict
    key_index: int | None
    content_type: str | None


def raw_record_bytes(
    body: bytes, *, waba_id: str | None, **receipt: Unpack[Receipt]
) -> KafkaRecord:
    """The record of :func:`raw_record`, built straight to bytes (the receiver's hot path).

    Same envelope, same id, same key and headers as ``encode(raw_record(...))``
    (a test holds them equal), without the model round trip: the receiver's
    whole cost per webhook is this plus the signature check.
    """
    source, verdict = receipt["source"], receipt["verdict"]
    text, encoding, digest, record_id = _body_and_id(body, source)
    when = _utc(receipt["received_at"])
    subject = waba_id or digest[:16]
    value = {
        "id": record_id,
        "type": "webhook.received",
        "version": 1,
        "time": when,
        "source": SOURCE,
        "subject": subject,
        "correlation_id": None,
        "causation_id": None,
        "data": {
            "received_at": when,
            "source": source,
            "path": receipt["path"],
            "body": text,
            "body_encoding": encoding,
            "signature": verdict,
            "signature_key_index": receipt["key_index"],
            "content_type": _content_type(receipt["content_type"]),
            "waba_id": waba_id,
        },
    }
    headers = [
        ("ce_specversion", SPEC_VERSION.encode()),
        ("ce_id", record_id.encode()),
        ("ce_type", b"webhook.received"),
        ("ce_source", SOURCE.encode()),
        ("ce_subject", subject.encode()),
        ("ce_time", when.encode()),
        ("ce_schemaversion", b"1"),
        ("content-type", CONTENT_TYPE.encode()),
    ]
    return KafkaRecord(key=(waba_id or "unknown").encode(), value=dumps(value), headers=headers)


def raw_record(body: bytes, *, parsed: Any, **receipt: Unpack[Receipt]) -> WebhookReceived:
    """The raw webhook exactly as received. Its id is the hash of the body: a redelivery of
    the same webhook carries the same id, so consumers can tell it is the same."""
    source, received_at = receipt["source"], receipt["received_at"]
    text, encoding, digest, record_id = _body_and_id(body, source)
    waba_id = waba_of(parsed)
    return WebhookReceived.model_validate(
        {
            "id": record_id,
            "time": received_at,
            "source": SOURCE,
            "subject": waba_id or digest[:16],
            "data": {
                "received_at": received_at,
                "source": source,
                "path": receipt["path"],
                "body": text,
                "body_encoding": encoding,
                "signature": receipt["verdict"],
                "signature_key_index": receipt["key_index"],
                "content_type": _content_type(receipt["content_type"]),
                "waba_id": waba_id,
            },
        }
    )
