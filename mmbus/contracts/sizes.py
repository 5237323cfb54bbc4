"""How large a webhook may be, and how large the records made of it can be: one arithmetic
for ingest's limit, its producer, the topics' ``max.message.bytes`` and the start-up check.

The raw record embeds the body as a JSON string, where every ``"`` and ``\\`` (and
the newline, tab and carriage return JSON allows between tokens) doubles; a body
that is not UTF-8 is stored as base64 (4/3). So a raw record is at most twice its
body plus the envelope. Every event derived from a body is smaller than that: it
carries parts of the body, re-encoded. Compression does not change the bound: the
producer checks a record before compressing it, and a body that does not compress
would not fit any better.
"""

from __future__ import annotations

# MMBUS_INGEST_MAX_BODY_BYTES's default. Meta's webhooks are a few KB; 4 MiB leaves
# room for batched changes and large inbound text or interactive payloads.
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024

# The envelope around the body (ids, times, path, a content type capped at
# CONTENT_TYPE_MAX_CHARS, a WABA id capped at KEY_MAX_CHARS, repeated in key,
# subject and headers) and Kafka's record and batch framing: well under this.
ENVELOPE_ALLOWANCE = 64 * 1024
CONTENT_TYPE_MAX_CHARS = 256
KEY_MAX_CHARS = 64

# How much a body can grow when stored as a JSON string.
EXPANSION = 2


def record_bound(max_body_bytes: int) -> int:
    """The largest record a body of at most ``max_body_bytes`` can become."""
    return EXPANSION * max_body_bytes + ENVELOPE_ALLOWANCE


def max_body_for(max_message_bytes: int) -> int:
    """The largest body limit whose records fit in ``max_message_bytes`` (0: none do)."""
    return max(0, (max_message_bytes - ENVELOPE_ALLOWANCE) // EXPANSION)


# max.message.bytes of every stream ingest writes, as the catalogue creates them:
# what the default limit needs (8,454,144 bytes).
WEBHOOK_MAX_MESSAGE_BYTES = record_bound(DEFAULT_MAX_BODY_BYTES)
