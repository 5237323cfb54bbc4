"""The envelope every command and event travels in.

A message class fixes ``type`` and ``version`` as literals and types ``data``;
everything else is the same for all of them. Messages are frozen: an event,
once written, is a fact.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from mmbus.contracts.fields import Instant

# Namespace of every id mmbus derives from content (uuid5), so that re-deriving
# an event from the same webhook yields the same id and consumers can de-duplicate.
MMBUS_NAMESPACE = uuid.UUID("5b0f5d0e-6d2a-4c1e-9a57-6d6d6275732e")


class Frozen(BaseModel):
    """Our own shapes: unknown fields are an error, values never change."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class MetaShape(BaseModel):
    """Shapes that come from Meta: unknown fields are kept, never dropped.

    Meta adds fields without notice; an auditor must see what Meta sent.
    """

    model_config = ConfigDict(frozen=True, extra="allow")


class Message(Frozen):
    """The envelope. Subclasses set ``type``, ``version`` and ``data``."""

    id: str = Field(
        description="Unique id of this message; derived from content for webhook events."
    )
    type: str
    version: int
    time: Instant = Field(
        description="When it happened: RFC 3339 with its timezone; written in UTC (Z)."
    )
    source: str = Field(description="Who produced it, e.g. 'mmbus/sender' or an upstream service.")
    subject: str = Field(description="The aggregate it is about: command id, wamid, WABA id...")
    correlation_id: str | None = Field(
        default=None, description="The originating send command id, when known."
    )
    causation_id: str | None = Field(
        default=None, description="The id of the message that caused this one."
    )
    data: Any

    # Where the record key comes from: a dotted path into ``data``.
    key_field: ClassVar[str] = ""
    # Events derived from several webhooks' content are keyed on these data fields.
    topic_stream: ClassVar[str] = ""

    @field_validator("version", mode="before")
    @classmethod
    def _integer_version(cls, value: Any) -> Any:
        # A Literal[1] alone takes true and 1.0; the codec's slow path and the schema's
        # readers see no version there, and the fast path must not either.
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("the version is a JSON integer")
        return value

    @field_serializer("time")
    def _utc_time(self, value: datetime) -> str:
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")

    def record_key(self) -> bytes:
        """The Kafka record key: the stream's partitioning key, from ``data``."""
        value: Any = self.data
        for part in self.key_field.split("."):
            value = value[part] if isinstance(value, dict) else getattr(value, part)
        return str(value).encode()


def derive_id(message_type: str, identity: dict[str, Any]) -> str:
    """A deterministic id from what identifies an event (not from when we saw it).

    Canonical JSON (sorted keys) of ``identity`` under the message type, hashed
    into a UUIDv5: the same webhook content always yields the same id.
    """
    try:
        canonical = orjson.dumps(identity, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        # Integers beyond 64 bits (orjson refuses them): the same content still gives
        # the same id. Every other identity keeps orjson's bytes, so no id changes.
        canonical = json.dumps(
            identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
        ).encode()
    return _uuid5(message_type.encode() + b"\n" + canonical)


_NAMESPACE_BYTES = MMBUS_NAMESPACE.bytes


def _uuid5(name: bytes) -> str:
    """``str(uuid.uuid5(MMBUS_NAMESPACE, name))`` without the UUID object (a hot path)."""
    return _uuid_text(hashlib.sha1(_NAMESPACE_BYTES + name, usedforsecurity=False).digest(), 5)


def _uuid_text(raw: bytes, version: int) -> str:
    """``str(uuid.UUID(bytes=raw[:16], version=version))``: the version and the RFC 4122
    variant written into the bits, as the uuid module does, then the 8-4-4-4-12 text."""
    digest = bytearray(raw[:16])
    digest[6] = (digest[6] & 0x0F) | (version << 4)
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_id() -> str:
    """``str(uuid.uuid4())``: 16 random bytes from the OS, without the UUID object (the
    sender makes one per attempt)."""
    return _uuid_text(os.urandom(16), 4)
