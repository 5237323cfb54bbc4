"""Create the project's topics, idempotently, and say clearly when they do not fit.

A topic created by an older catalogue with a smaller ``max.message.bytes`` is raised to
the catalogue's value (never lowered): webhook streams must hold the largest record a
body within ingest's limit can become, and a deployment that predates the setting
would otherwise refuse large webhooks. What a topic holds is read back with
:func:`topic_max_message_bytes` (ingest checks it at start).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aiokafka import errors
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from mmbus.contracts.topics import TopicSpec, catalogue
from services.common.admin_session import with_admin
from services.common.logging import get_logger
from services.common.settings import CommonSettings

log = get_logger("mmbus.topics")

MAX_MESSAGE_BYTES = "max.message.bytes"
# DescribeConfigs v1+ config_source: set on the topic itself (kafka-configs --alter).
_DYNAMIC_TOPIC_CONFIG = 1


class TopicMismatchError(RuntimeError):
    """An existing topic differs from the catalogue in a way that breaks a guarantee."""


@dataclass(frozen=True)
class EnsureResult:
    created: tuple[str, ...]
    existing: tuple[str, ...]
    raised: tuple[str, ...] = ()


def project_topics(settings: CommonSettings, prefix: str | None = None) -> list[TopicSpec]:
    return catalogue(
        settings.topic_prefix if prefix is None else prefix,
        partitions=settings.partitions,
        replication_factor=settings.replication_factor,
        retention_ms=settings.retention_ms,
    )


async def ensure_topics(
    specs: Sequence[TopicSpec], client_options: dict[str, object]
) -> EnsureResult:
    """Create missing topics; check existing ones have the partitions they must have.

    A partition count that differs from the catalogue is an error, not a warning:
    send commands and send events must stay co-partitioned.
    """

    async def ensure(admin: AIOKafkaAdminClient) -> EnsureResult:
        existing_names = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing_names]
        created = await _create(admin, missing) if missing else set()
        # Metadata can lag a creation by another process: anything we did not
        # create ourselves is checked against the catalogue.
        present = [s for s in specs if s.name not in created]
        await _check_partitions(admin, present)
        raised = await _raise_max_message_bytes(admin, present)
        return EnsureResult(
            created=tuple(s.name for s in specs if s.name in created),
            existing=tuple(s.name for s in present),
            raised=raised,
        )

    return await with_admin(client_options, ensure)


async def _create(admin: AIOKafkaAdminClient, specs: Sequence[TopicSpec]) -> set[str]:
    """Create topics; return the names this call created (others existed already)."""
    response = await admin.create_topics(
        [
            NewTopic(
                name=s.name,
                num_partitions=s.partitions,
                replication_factor=s.replication_factor,
                topic_configs=s.config,
            )
            for s in specs
        ]
    )
    created: set[str] = set()
    failures: list[str] = []
    for topic, code, *rest in response.topic_errors:
        if code == 0:
            created.add(topic)
        elif code != TopicAlreadyExistsError.errno:
            message = rest[0] if rest and rest[0] else errors.for_code(code).__name__
            failures.append(f"{topic}: {message}")
    if failures:
        raise TopicMismatchError("could not create topics: " + "; ".join(failures))
    return created


async def _check_partitions(
    admin: AIOKafkaAdminClient, specs: Iterable[TopicSpec], settle_s: float = 15.0
) -> None:
    specs = list(specs)
    if not specs:
        return
    # A topic created a moment ago (by us or another process) can be listed before
    # its partitions are: wait for them to appear before judging the count.
    deadline = time.monotonic() + settle_s
    while True:
        described = await admin.describe_topics([s.name for s in specs])
        counts = {d["topic"]: len(d["partitions"]) for d in described if not d.get("error_code")}
        settling = [s for s in specs if counts.get(s.name, 0) == 0]
        if not settling or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    wrong = [
        f"{s.name} has {counts.get(s.name, 0)} partitions, the catalogue says {s.partitions}"
        for s in specs
        if counts.get(s.name) != s.partitions
    ]
    if wrong:
        raise TopicMismatchError(
            "; ".join(wrong)
            + ". Set MMBUS_PARTITIONS to the existing count, or recreate the topics."
        )


Entries = dict[str, tuple[str | None, int | None]]


async def _describe(admin: AIOKafkaAdminClient, names: Sequence[str]) -> dict[str, Entries]:
    """Topic -> config name -> (value, source); source None when the broker's answer
    (DescribeConfigs v0) does not say where a value comes from. Unreadable topics left out."""
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    )
    found: dict[str, Entries] = {}
    for response in responses:
        sourced = getattr(response, "API_VERSION", 0) >= 1
        for code, _message, _type, name, entries in response.resources:
            if code == 0:
                found[name] = {e[0]: (e[1], e[3] if sourced else None) for e in entries}
    return found


async def _raise_max_message_bytes(
    admin: AIOKafkaAdminClient, specs: Sequence[TopicSpec]
) -> tuple[str, ...]:
    """Raise max.message.bytes of existing topics to the catalogue's; never lower it.

    Best effort: a broker that refuses (no ALTER_CONFIGS permission) leaves the topic as
    it is, and ingest's start-up check says what that means for its limit.
    """
    wanted = {
        s.name: int(s.config[MAX_MESSAGE_BYTES]) for s in specs if MAX_MESSAGE_BYTES in s.config
    }
    if not wanted:
        return ()
    try:
        current = await _describe(admin, list(wanted))
    except KafkaError as exc:
        log.warning("cannot read topic configs", error=repr(exc))
        return ()
    raised = []
    for name, size in wanted.items():
        entries = current.get(name)
        value = entries.get(MAX_MESSAGE_BYTES, (None, None))[0] if entries else None
        if entries is None or value is None or int(value) >= size:
            continue
        # AlterConfigs replaces every dynamic config of the topic: send the ones it has.
        dynamic = {k: v for k, (v, source) in entries.items() if source == _DYNAMIC_TOPIC_CONFIG}
        if any(v is None for v in dynamic.values()) or any(
            source is None for _, source in entries.values()
        ):
            log.warning("cannot raise max.message.bytes safely", topic=name, has=value, needs=size)
            continue
        dynamic[MAX_MESSAGE_BYTES] = str(size)
        try:
            (response, *_) = await admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, name, dynamic)]
            )
        except KafkaError as exc:
            log.warning("cannot raise max.message.bytes", topic=name, error=repr(exc))
            continue
        code = response.resources[0][0]
        if code == 0:
            log.info("raised max.message.bytes", topic=name, was=int(value), now=size)
            raised.append(name)
        else:
            log.warning(
                "cannot raise max.message.bytes",
                topic=name,
                error=errors.for_code(code).__name__,
            )
    await _settle_sizes(admin, {name: wanted[name] for name in raised})
    return tuple(raised)


async def _settle_sizes(
    admin: AIOKafkaAdminClient, wanted: dict[str, int], settle_s: float = 15.0
) -> None:
    """Wait until the brokers report the raised values: a config change applies a moment
    after it is accepted, and ingest's start-up check reads it right after."""
    deadline = time.monotonic() + settle_s
    while wanted and time.monotonic() < deadline:
        current = await _describe(admin, list(wanted))
        wanted = {
            name: size
            for name, size in wanted.items()
            if int(current.get(name, {}).get(MAX_MESSAGE_BYTES, ("0", None))[0] or 0) < size
        }
        if wanted:
            await asyncio.sleep(0.05)


async def topic_max_message_bytes(
    names: Sequence[str], client_options: dict[str, object]
) -> dict[str, int]:
    """The max.message.bytes each topic has (its own or the broker's default); topics
    whose config cannot be read are left out."""
    described = await with_admin(client_options, lambda admin: _describe(admin, names))
    return {
        name: int(value)
        for name, entries in described.items()
        if (value := entries.get(MAX_MESSAGE_BYTES, (None, None))[0]) is not None
    }


async def ensure_project_topics(
    settings: CommonSettings, prefix: str | None = None
) -> EnsureResult:
    return await ensure_topics(project_topics(settings, prefix), settings.kafka_client_options())
