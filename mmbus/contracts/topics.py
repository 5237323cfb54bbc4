"""The topic catalogue: every stream mmbus reads or writes, its key and its retention.

Names carry a configurable prefix so several deployments can share a cluster.
All streams keep their log (``retention.ms=-1`` by default) because audits
replay them; none is compacted, since compaction would rewrite history.
Send commands and send events have the same partition count and key, so a
command and its results always land on the same partition number
(co-partitioning): the sender rebuilds its idempotency state per partition.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mmbus.contracts.sizes import WEBHOOK_MAX_MESSAGE_BYTES


class Stream(StrEnum):
    SEND_COMMANDS = "send.commands"
    SEND_EVENTS = "send.events"
    RAW_WEBHOOKS = "webhooks.raw"
    MESSAGE_STATUS = "message.status"
    MARKETING_CLICKS = "marketing.clicks"
    ACCOUNT = "account"
    PREFERENCES = "preferences"
    TEMPLATES = "templates"
    INBOUND_MESSAGES = "messages.inbound"
    ECHOES = "messages.echoes"
    UNRECOGNIZED = "webhooks.unrecognized"
    WEBHOOK_ERRORS = "webhooks.errors"
    DEAD_LETTERS = "dead-letters"


@dataclass(frozen=True)
class TopicSpec:
    stream: Stream
    name: str
    key: str
    carries: tuple[str, ...]
    partitions: int
    replication_factor: int
    config: dict[str, str]


_KEYS: dict[Stream, tuple[str, tuple[str, ...]]] = {
    Stream.SEND_COMMANDS: ("business phone number id", ("send.template",)),
    Stream.SEND_EVENTS: (
        "business phone number id",
        (
            "send.attempted",
            "send.attempt_failed",
            "send.accepted",
            "send.failed",
            "send.suppressed",
            "send.rejected",
            "send.indeterminate",
        ),
    ),
    Stream.RAW_WEBHOOKS: ("WABA id", ("webhook.received",)),
    Stream.MESSAGE_STATUS: ("wamid", ("message.status",)),
    Stream.MARKETING_CLICKS: (
        "business phone number id",
        ("marketing.link_clicked", "marketing.user_action_recorded"),
    ),
    Stream.ACCOUNT: ("WABA id", ("account.updated", "account.onboarding_observed")),
    Stream.PREFERENCES: ("user id", ("user.marketing_preference_changed",)),
    Stream.TEMPLATES: (
        "WABA id + template name",
        (
            "template.status_changed",
            "template.category_changed",
            "template.quality_changed",
            "template.components_changed",
            "template.category_observed",
        ),
    ),
    Stream.INBOUND_MESSAGES: ("business phone number id", ("message.received",)),
    Stream.ECHOES: ("business phone number id", ("message.echoed",)),
    Stream.UNRECOGNIZED: ("WABA id", ("webhook.unrecognized",)),
    Stream.WEBHOOK_ERRORS: ("WABA id", ("webhook.errors_reported",)),
    Stream.DEAD_LETTERS: ("original record key", ("dead_letter.recorded",)),
}


# Streams that carry a webhook body or what is derived from one: each must hold the
# largest record a body within ingest's limit can become (mmbus.contracts.sizes).
WEBHOOK_STREAMS = frozenset(set(Stream) - {Stream.SEND_COMMANDS, Stream.SEND_EVENTS})


def _stream_config(stream: Stream) -> dict[str, str]:
    if stream not in WEBHOOK_STREAMS:
        return {}
    config = {"max.message.bytes": str(WEBHOOK_MAX_MESSAGE_BYTES)}
    if stream is Stream.RAW_WEBHOOKS:
        # Kept forever and JSON: compressed by the broker (ingest's hot path does not pay
        # for it) with gzip, the codec every client reads without extra libraries
        # (aiokafka needs cramjam for lz4, snappy and zstd). Sizes are checked before
        # compression, so it changes no limit.
        config["compression.type"] = "gzip"
    return config


def topic_name(stream: Stream, prefix: str) -> str:
    return f"{prefix}{stream.value}"


def catalogue(
    prefix: str, *, partitions: int, replication_factor: int = 1, retention_ms: int = -1
) -> list[TopicSpec]:
    """Every topic of the project with the settings it is created with."""
    config = {
        "cleanup.policy": "delete",
        "retention.ms": str(retention_ms),
        # The sender's producer is idempotent with acks=all; with replicas, require
        # two in sync so an acknowledged record survives the loss of one broker.
        "min.insync.replicas": "2" if replication_factor >= 3 else "1",
    }
    return [
        TopicSpec(
            stream=stream,
            name=topic_name(stream, prefix),
            key=key,
            carries=carries,
            partitions=partitions,
            replication_factor=replication_factor,
            config={**config, **_stream_config(stream)},
        )
        for stream, (key, carries) in _KEYS.items()
    ]
