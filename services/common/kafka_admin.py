"""Create the project's topics, idempotently, and say clearly when they do not fit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aiokafka import errors
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from mmbus.contracts.topics import TopicSpec, catalogue
from services.common.settings import CommonSettings


class TopicMismatchError(RuntimeError):
    """An existing topic differs from the catalogue in a way that breaks a guarantee."""


@dataclass(frozen=True)
class EnsureResult:
    created: tuple[str, ...]
    existing: tuple[str, ...]


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
    admin = AIOKafkaAdminClient(client_id="mmbus-admin", **client_options)
    await admin.start()
    try:
        existing_names = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing_names]
        created = await _create(admin, missing) if missing else set()
        # Metadata can lag a creation by another process: anything we did not
        # create ourselves is checked against the catalogue.
        present = [s for s in specs if s.name not in created]
        await _check_partitions(admin, present)
        return EnsureResult(
            created=tuple(s.name for s in specs if s.name in created),
            existing=tuple(s.name for s in present),
        )
    finally:
        await admin.close()


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


async def ensure_project_topics(
    settings: CommonSettings, prefix: str | None = None
) -> EnsureResult:
    return await ensure_topics(project_topics(settings, prefix), settings.kafka_client_options())
