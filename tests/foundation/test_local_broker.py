"""The local broker manager: idempotent up, safe down, crash recovery, no second download."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.localkafka import broker
from services.localkafka.distribution import DEFAULT_KAFKA_VERSION, fetch_distribution

MMBUS = [sys.executable, "-m", "services.cli"]


def _mmbus(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MMBUS, *args], capture_output=True, text=True, timeout=180, check=False, env=env
    )


@pytest.fixture
def own_broker() -> Iterator[str]:
    """A broker of this test's own, so killing it harms no other test."""
    name = f"pytest-{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        broker.down(name, purge=True, kill=True)


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for v in values:
            await producer.send_and_wait(topic, v)
    finally:
        await producer.stop()


async def _read_all(bootstrap: str, topic: str, count: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    out: list[bytes] = []
    try:
        consumer.assign([TopicPartition(topic, 0)])
        async with asyncio.timeout(30):
            while len(out) < count:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    out.extend(r.value for r in records if r.value is not None)
    finally:
        await consumer.stop()
    return out


def test_killed_broker_comes_back_with_its_data(own_broker: str) -> None:
    first = broker.up(own_broker, free_ports=True)
    assert not first.reused
    bootstrap = first.instance.bootstrap_servers
    values = [f"v{i}".encode() for i in range(50)]
    asyncio.run(_produce(bootstrap, "durable", values))

    assert first.instance.pid is not None
    os.kill(first.instance.pid, signal.SIGKILL)
    assert broker.wait_exited(first.instance.pid)
    assert not broker.status(own_broker).running

    again = _mmbus("kafka", "up", "--name", own_broker, "--json")
    assert again.returncode == 0, again.stderr
    assert bootstrap in again.stdout, "the restarted broker must keep its address"
    assert asyncio.run(_read_all(bootstrap, "durable", 50)) == values


def test_up_is_idempotent_and_down_stops_only_its_own(own_broker: str) -> None:
    first = broker.up(own_broker, free_ports=True)
    second = broker.up(own_broker)
    assert second.reused
    assert second.instance.pid == first.instance.pid

    status = _mmbus("kafka", "status", "--name", own_broker)
    assert status.returncode == 0
    assert "ready" in status.stdout

    assert broker.down(own_broker) is True
    assert broker.down(own_broker) is False, "nothing left to stop"
    stopped = _mmbus("kafka", "status", "--name", own_broker)
    assert stopped.returncode == 1
    assert "stopped" in stopped.stdout


def test_down_never_signals_a_process_it_did_not_start(tmp_path: Path) -> None:
    name = f"pytest-foreign-{uuid.uuid4().hex[:8]}"
    stranger = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
    try:
        lay = broker.layout(name)
        lay.root.mkdir(parents=True)
        lay.state_file.write_text(
            f'{{"name": "{name}", "version": "{DEFAULT_KAFKA_VERSION}", "port": 1, '
            f'"controller_port": 2, "cluster_id": "x", "pid": {stranger.pid}}}'
        )
        assert broker.down(name, purge=True) is False
        assert stranger.poll() is None, "a recorded pid that is not our broker must survive"
    finally:
        stranger.kill()
        stranger.wait()


def test_cached_jars_are_not_downloaded_again() -> None:
    fetch_distribution(DEFAULT_KAFKA_VERSION)  # ensure the cache holds them
    env = {**os.environ, "PATH": "/nonexistent"}  # no mvn: any download attempt would fail
    result = _mmbus("kafka", "fetch", env=env)
    assert result.returncode == 0, result.stderr
    assert "jars in" in result.stdout


def test_cli_errors_are_one_clear_line_without_traceback() -> None:
    bad = _mmbus("kafka", "up", "--name", "../escape")
    assert bad.returncode == 1
    assert "invalid broker name" in bad.stderr
    assert "Traceback" not in bad.stderr + bad.stdout
    unknown = _mmbus("kafka", "status", "--name", f"never-{uuid.uuid4().hex[:6]}")
    assert unknown.returncode == 1
    assert "never started" in unknown.stdout


def test_cluster_ids_never_start_with_a_dash() -> None:
    # A CI run failed when a random id began with '-': kafka-storage read it as an option.
    ids = [broker.new_cluster_id() for _ in range(5000)]
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(i) == 22 for i in ids)
