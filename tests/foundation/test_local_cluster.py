"""A real three-node KRaft cluster from the project's launcher: the replication users rely on.

Users run replication factor 3, ``min.insync.replicas=2`` and idempotent
``acks=all`` producers. One cluster serves the module (three JVMs take a while to
start) and is stopped and purged at the end, whatever happened.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from mmbus.contracts.topics import Stream, catalogue
from services.localkafka import cluster
from services.localkafka.cluster_state import ClusterInstance, node_layout
from tests.waiting import eventually

# Three JVMs take 30-50 s to start on two busy cores and the fault run about a
# minute more: part of `make test-slow`, not `make test`.
pytestmark = [pytest.mark.kafka, pytest.mark.slow]

MMBUS = [sys.executable, "-m", "services.cli"]
PARTITIONS = 6


def _mmbus(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MMBUS, *args], capture_output=True, text=True, timeout=300, check=False, env=env
    )


@pytest.fixture(scope="module")
def three_nodes() -> Iterator[ClusterInstance]:
    name = f"pytest-cluster-{uuid.uuid4().hex[:8]}"
    try:
        yield cluster.up(name, nodes=3, free_ports=True).instance
    finally:
        cluster.down(name, purge=True, kill=True)


@pytest.fixture(scope="module")
def rf3_prefix(three_nodes: ClusterInstance) -> str:
    """The project's topics, created by `mmbus topics create` with replication factor 3."""
    prefix = f"test-{uuid.uuid4().hex[:12]}."
    env = {
        **os.environ,
        "MMBUS_KAFKA_BOOTSTRAP_SERVERS": three_nodes.bootstrap_servers,
        "MMBUS_REPLICATION_FACTOR": "3",
        "MMBUS_PARTITIONS": str(PARTITIONS),
        "MMBUS_TOPIC_PREFIX": prefix,
    }
    created = _mmbus("topics", "create", env=env)
    assert created.returncode == 0, created.stderr
    assert f"created {len(Stream)} topics" in created.stdout
    return prefix


@dataclass(frozen=True)
class Partition:
    leader: int
    replicas: tuple[int, ...]
    isr: frozenset[int]


async def _partitions(bootstrap: str, topic: str) -> dict[int, Partition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return {
        p["partition"]: Partition(p["leader"], tuple(p["replicas"]), frozenset(p["isr"]))
        for p in described["partitions"]
    }


async def _min_insync(bootstrap: str, topics: list[str]) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, t, {"min.insync.replicas": None})
                for t in topics
            ]
        )
    finally:
        await admin.close()
    out: dict[str, str] = {}
    for resource in response.to_object()["resources"]:
        [entry] = resource["config_entries"]
        out[resource["resource_name"]] = entry["config_value"]
    return out


async def _settled(
    bootstrap: str, topic: str, ok: Callable[[Partition], bool], timeout_s: float = 30.0
) -> dict[int, Partition]:
    """The topic's partitions once ``ok`` holds for all of them (fails at the deadline)."""
    latest: dict[int, Partition] = {}

    async def settled() -> bool:
        latest.clear()
        latest.update(await _partitions(bootstrap, topic))
        return all(ok(p) for p in latest.values())

    await eventually(settled, within_s=timeout_s, poll_s=0.2, what=f"{topic}'s partitions settled")
    return latest


def test_up_reuses_the_cluster_and_status_shows_every_node(three_nodes: ClusterInstance) -> None:
    name = three_nodes.name
    again = _mmbus("kafka", "up", "--name", name, "--brokers", "3", "--json")
    assert again.returncode == 0, again.stderr
    reused = json.loads(again.stdout)
    assert reused["reused"] is True
    assert [n["pid"] for n in reused["nodes"]] == [n.pid for n in three_nodes.nodes]
    assert reused["bootstrap_servers"] == three_nodes.bootstrap_servers

    status = _mmbus("kafka", "status", "--name", name, "--json")
    assert status.returncode == 0, status.stdout
    nodes = json.loads(status.stdout)["nodes"]
    assert [(n["node_id"], n["running"], n["sees"]) for n in nodes] == [
        (1, True, [1, 2, 3]),
        (2, True, [1, 2, 3]),
        (3, True, [1, 2, 3]),
    ]
    for node in three_nodes.nodes:
        lay = node_layout(name, node.node_id)
        assert f"node.id={node.node_id}\n" in lay.server_properties.read_text()
        assert (lay.data / "meta.properties").exists(), "each node formats its own data dir"
        assert lay.server_log.exists()


def test_topics_get_three_replicas_and_two_in_sync(
    three_nodes: ClusterInstance, rf3_prefix: str
) -> None:
    names = [s.name for s in catalogue(rf3_prefix, partitions=PARTITIONS)]
    for topic in names:
        partitions = asyncio.run(_partitions(three_nodes.bootstrap_servers, topic))
        assert len(partitions) == PARTITIONS
        assert all(sorted(p.replicas) == [1, 2, 3] for p in partitions.values()), topic
    min_isr = asyncio.run(_min_insync(three_nodes.bootstrap_servers, names))
    assert min_isr == dict.fromkeys(names, "2")


def test_kill_and_restart_one_node_from_the_command_line(three_nodes: ClusterInstance) -> None:
    name = three_nodes.name
    killed = _mmbus("kafka", "kill", "--name", name, "--node", "3")
    assert killed.returncode == 0, killed.stderr
    assert f"node 3: killed (pid {three_nodes.node(3).pid})" in killed.stdout

    degraded = _mmbus("kafka", "status", "--name", name)
    assert degraded.returncode == 1
    assert "degraded, 2 of 3 nodes answer" in degraded.stdout
    assert f"node 3: stopped on {three_nodes.node(3).bootstrap_servers}" in degraded.stdout

    restarted = _mmbus("kafka", "restart", "--name", name, "--node", "3")
    assert restarted.returncode == 0, restarted.stderr
    assert "node 3: back in" in restarted.stdout
    assert three_nodes.node(3).bootstrap_servers in restarted.stdout, "ports are kept"
    assert _mmbus("kafka", "status", "--name", name).returncode == 0


CHUNK = 50


@dataclass
class Run:
    """One producer's records: a unique id in every value, and the ids acknowledged."""

    producer: AIOKafkaProducer
    topic: str
    tag: str
    next_id: int = 0
    acked: set[str] = field(default_factory=set)

    def record(self) -> tuple[str, bytes, bytes]:
        rid = f"{self.tag}-{self.next_id}"
        self.next_id += 1
        # Keys spread the records over every partition, whoever leads it.
        return rid, f"k{self.next_id % 64}".encode(), json.dumps({"id": rid}).encode()

    async def send(self, count: int) -> None:
        """Send ``count`` records at once and wait for every acknowledgement."""
        pending: list[tuple[str, Any]] = []
        for _ in range(count):
            rid, key, value = self.record()
            pending.append((rid, await self.producer.send(self.topic, value=value, key=key)))
        for rid, ack in pending:
            await ack  # raises if the record was not acknowledged: the test fails
            self.acked.add(rid)

    async def during(self, task: asyncio.Future[Any], *, then: int) -> Any:
        """Keep producing while ``task`` (a kill, a restart) runs, then ``then`` records more."""
        while not task.done():
            await self.send(CHUNK)
            # A few thousand records in all, not as many as the machine can take: a chunk
            # every half second, and not one more once the task is done.
            await asyncio.wait({task}, timeout=0.5)
        result = await task
        await self.send(then)
        return result


async def _read_ids(bootstrap: str, topic: str) -> Counter[str]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    seen: Counter[str] = Counter()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        async with asyncio.timeout(120):
            while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    seen.update(json.loads(r.value)["id"] for r in records if r.value)
    finally:
        await consumer.stop()
    return seen


async def test_acknowledged_records_survive_a_killed_leader_exactly_once(
    three_nodes: ClusterInstance, rf3_prefix: str
) -> None:
    name, bootstrap = three_nodes.name, three_nodes.bootstrap_servers
    topic = f"{rf3_prefix}{Stream.SEND_COMMANDS.value}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    run = Run(producer, topic, tag=uuid.uuid4().hex[:8])
    try:
        await run.send(1000)  # three of three

        # SIGKILL the leader of partition 0 while records are in flight to it.
        victim = (await _partitions(bootstrap, topic))[0].leader
        kill = asyncio.ensure_future(asyncio.to_thread(cluster.kill_node, name, victim))
        await run.during(kill, then=1000)  # two of three: every record acknowledged
        # The node that answers may apply the controller's last change a moment later.
        after_kill = await _settled(
            bootstrap, topic, lambda p: p.leader != victim and p.isr == set(p.replicas) - {victim}
        )
        assert all(p.leader != victim for p in after_kill.values()), "leadership moved"
        assert all(p.isr == set(p.replicas) - {victim} for p in after_kill.values()), (
            "the dead node left every ISR; the other two stayed in sync"
        )

        restart = asyncio.ensure_future(asyncio.to_thread(cluster.restart_node, name, victim))
        await run.during(restart, then=500)

        # One of three: the survivor leads partition 0 but no follower can confirm a
        # write, and there is no controller quorum to shrink the ISR either, so an
        # acks=all record must not be acknowledged. The idempotent producer keeps it.
        survivor = (await _partitions(bootstrap, topic))[0].leader
        others = sorted(three_nodes.node_ids - {survivor})
        for node_id in others:
            await asyncio.to_thread(cluster.kill_node, name, node_id)
        rid, _, value = run.record()
        held = await producer.send(topic, value=value, partition=0)
        done, _ = await asyncio.wait({held}, timeout=10)
        assert not done or held.exception() is not None, "acknowledged with one replica"
        if done:
            assert isinstance(held.exception(), KafkaError)

        await asyncio.to_thread(cluster.restart_nodes, name, others)
        await asyncio.to_thread(cluster.wait_ready, name)
        if not done:
            # Not lost either: once two nodes are back the same record goes through, once.
            await asyncio.wait_for(held, 120)
            run.acked.add(rid)
    finally:
        # A producer still holding records for a dead cluster would wait forever to flush.
        with suppress(TimeoutError):
            await asyncio.wait_for(producer.stop(), 60)

    seen = await _read_ids(bootstrap, topic)
    assert len(run.acked) > 2500
    assert {rid: n for rid, n in seen.items() if n > 1} == {}, "no record written twice"
    assert run.acked - seen.keys() == set(), "no acknowledged record lost"
