"""Ingest's size limit against what its topics hold, checked before it takes a webhook.

A body within ``MMBUS_INGEST_MAX_BODY_BYTES`` becomes a raw record of up to
:func:`~mmbus.contracts.sizes.record_bound` bytes. A topic whose ``max.message.bytes``
is smaller would refuse such webhooks one by one at run time; ingest refuses to
start instead, naming both numbers.
"""

from __future__ import annotations

from mmbus.contracts.sizes import ENVELOPE_ALLOWANCE, EXPANSION, max_body_for, record_bound
from mmbus.contracts.topics import Stream, topic_name
from services.common.kafka_admin import topic_max_message_bytes
from services.common.logging import get_logger
from services.ingest.settings import IngestSettings

log = get_logger("mmbus.ingest")

# The typed streams the normalizer writes (under its output prefix).
_TYPED = (
    Stream.MESSAGE_STATUS,
    Stream.MARKETING_CLICKS,
    Stream.ACCOUNT,
    Stream.PREFERENCES,
    Stream.TEMPLATES,
    Stream.INBOUND_MESSAGES,
    Stream.ECHOES,
    Stream.UNRECOGNIZED,
    Stream.WEBHOOK_ERRORS,
)


class IngestCapacityError(RuntimeError):
    """A topic cannot hold the records ingest's body limit allows."""


def capacity_problem(max_body_bytes: int, topic: str, max_message_bytes: int) -> str | None:
    """Why ``topic`` cannot take ingest's records, naming both numbers; None when it can."""
    needed = record_bound(max_body_bytes)
    if max_message_bytes >= needed:
        return None
    return (
        f"MMBUS_INGEST_MAX_BODY_BYTES is {max_body_bytes}, so a raw record can reach {needed} "
        f"bytes (the body is stored as a JSON string, up to {EXPANSION} times its size, plus "
        f"{ENVELOPE_ALLOWANCE} for the envelope), but topic {topic} takes at most "
        f"{max_message_bytes} (max.message.bytes): lower MMBUS_INGEST_MAX_BODY_BYTES to at most "
        f"{max_body_for(max_message_bytes)}, or raise the topic's max.message.bytes to "
        f"{needed}"
    )


def ingest_topics(settings: IngestSettings, *, normalizer: bool) -> list[str]:
    """The topics a webhook's records go to: raw and dead letters, and the typed ones."""
    names = [
        topic_name(Stream.RAW_WEBHOOKS, settings.topic_prefix),
        topic_name(Stream.DEAD_LETTERS, settings.topic_prefix),
    ]
    if normalizer:
        prefix = settings.normalizer_output_prefix or settings.topic_prefix
        names += [topic_name(stream, prefix) for stream in _TYPED]
    return names


async def check_capacity(settings: IngestSettings, *, normalizer: bool) -> None:
    """Raise :class:`IngestCapacityError` when a topic cannot hold what the limit allows."""
    names = ingest_topics(settings, normalizer=normalizer)
    sizes = await topic_max_message_bytes(names, settings.kafka_client_options())
    unread = [name for name in names if name not in sizes]
    if unread:
        # Without DescribeConfigs permission the limit cannot be checked: said, not fatal.
        log.warning("cannot read max.message.bytes; size limit not checked", topics=unread)
    problems = [
        problem
        for name, size in sizes.items()
        if (problem := capacity_problem(settings.ingest_max_body_bytes, name, size))
    ]
    if problems:
        raise IngestCapacityError("; ".join(problems))
