from __future__ import annotations

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from mmbus.contracts.topics import Stream, catalogue
from services.common.kafka_admin import TopicMismatchError, ensure_project_topics, project_topics
from services.common.settings import CommonSettings


def test_catalogue_names_every_stream_once_with_the_prefix() -> None:
    specs = catalogue("acme.", partitions=4)
    assert [s.stream for s in specs] == list(Stream)
    assert all(s.name.startswith("acme.") for s in specs)
    assert len({s.name for s in specs}) == len(specs)


def test_send_streams_are_co_partitioned() -> None:
    specs = {s.stream: s for s in catalogue("p.", partitions=7)}
    commands, events = specs[Stream.SEND_COMMANDS], specs[Stream.SEND_EVENTS]
    assert commands.partitions == events.partitions
    assert commands.key == events.key == "business phone number id"


def test_the_log_is_kept_and_never_compacted() -> None:
    for spec in catalogue("p.", partitions=1):
        assert spec.config["cleanup.policy"] == "delete"
        assert spec.config["retention.ms"] == "-1"


async def test_topics_are_created_once_with_their_settings(kafka_settings: CommonSettings) -> None:
    first = await ensure_project_topics(kafka_settings)
    assert len(first.created) == len(Stream)
    assert not first.existing
    second = await ensure_project_topics(kafka_settings)
    assert not second.created
    assert len(second.existing) == len(Stream)

    admin = AIOKafkaAdminClient(**kafka_settings.kafka_client_options())
    await admin.start()
    try:
        names = [s.name for s in project_topics(kafka_settings)]
        described = await admin.describe_topics(names)
        assert {len(d["partitions"]) for d in described} == {3}
        configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, names[0])])
        entries = {c[0]: c[1] for c in configs[0].resources[0][4]}
        assert entries["retention.ms"] == "-1"
    finally:
        await admin.close()


async def test_partition_mismatch_is_a_clear_error(kafka_settings: CommonSettings) -> None:
    await ensure_project_topics(kafka_settings)
    wider = kafka_settings.model_copy(update={"partitions": 5})
    with pytest.raises(TopicMismatchError, match="MMBUS_PARTITIONS"):
        await ensure_project_topics(wider)


def test_every_message_type_has_one_home_stream() -> None:
    from mmbus.contracts.catalogue import MODELS, type_of

    carried = {t: s.stream.value for s in catalogue("", partitions=1) for t in s.carries}
    for model in MODELS:
        assert carried[type_of(model)] == model.topic_stream, type_of(model)


async def test_concurrent_creators_agree(kafka_settings: CommonSettings) -> None:
    import asyncio

    # Several processes start together (ingest, normalizer, sender): none may fail.
    results = await asyncio.gather(*(ensure_project_topics(kafka_settings) for _ in range(4)))
    created = [name for r in results for name in r.created]
    assert sorted(created) == sorted(s.name for s in project_topics(kafka_settings))
