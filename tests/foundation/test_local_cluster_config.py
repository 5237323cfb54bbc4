"""The local cluster's files and records, written from a few values; no JVM is started here."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.localkafka import broker, cluster
from services.localkafka.cluster_state import (
    ClusterInstance,
    NodeRecord,
    plan_nodes,
    read_cluster,
    write_cluster,
)
from services.localkafka.config import NodeAddress, node_ports, replication_for, server_properties
from services.localkafka.distribution import DEFAULT_KAFKA_VERSION

MMBUS = [sys.executable, "-m", "services.cli"]
DATA = Path("/data")
THREE = [NodeAddress(1, 9092, 9093), NodeAddress(2, 9094, 9095), NodeAddress(3, 9096, 9097)]


def _mmbus(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MMBUS, *args], capture_output=True, text=True, timeout=60, check=False)


def _settings(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return dict(pairs)


# What a single broker's server.properties has always said; a cluster node differs in these.
SINGLE = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "controller.quorum.voters": "1@127.0.0.1:9093",
    "listeners": "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
    "advertised.listeners": "PLAINTEXT://127.0.0.1:9092",
    "log.dirs": "/data",
    "auto.create.topics.enable": "false",
    "default.replication.factor": "1",
    "min.insync.replicas": "1",
    "offsets.topic.replication.factor": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "broker.session.timeout.ms": "2500",
}
NODE_2_OF_3 = {
    **SINGLE,
    "node.id": "2",
    "controller.quorum.voters": "1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097",
    "listeners": "PLAINTEXT://127.0.0.1:9094,CONTROLLER://127.0.0.1:9095",
    "advertised.listeners": "PLAINTEXT://127.0.0.1:9094",
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "offsets.topic.replication.factor": "3",
    "transaction.state.log.replication.factor": "3",
    "transaction.state.log.min.isr": "2",
    "share.coordinator.state.topic.replication.factor": "3",
    "share.coordinator.state.topic.min.isr": "2",
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (server_properties(port=9092, controller_port=9093, data_dir=DATA), SINGLE),
        (
            server_properties(
                port=9094, controller_port=9095, data_dir=DATA, node_id=2, voters=THREE
            ),
            NODE_2_OF_3,
        ),
    ],
    ids=["single broker, as before", "node 2 of 3"],
)
def test_server_properties(text: str, expected: dict[str, str]) -> None:
    settings = _settings(text)
    assert {key: settings.get(key) for key in expected} == expected


@pytest.mark.parametrize(
    ("size", "replicas", "min_isr"),
    [(1, 1, 1), (2, 2, 1), (3, 3, 2), (5, 3, 2)],
)
def test_internal_topics_replicate_like_the_catalogue(
    size: int, replicas: int, min_isr: int
) -> None:
    assert replication_for(size) == (replicas, min_isr)


@pytest.mark.parametrize(
    ("base", "count", "expected"),
    [
        (9092, 1, [(9092, 9093)]),
        (9092, 3, [(9092, 9093), (9094, 9095), (9096, 9097)]),
        (20000, 2, [(20000, 20001), (20002, 20003)]),
    ],
)
def test_node_ports(base: int, count: int, expected: list[tuple[int, int]]) -> None:
    assert node_ports(base, count) == expected


@pytest.mark.parametrize(
    ("port", "free", "expected"),
    [
        (None, False, [(1, 9092, 9093), (2, 9094, 9095), (3, 9096, 9097)]),
        (30000, True, [(1, 30000, 30001), (2, 30002, 30003), (3, 30004, 30005)]),
        (None, True, [(1, 100, 101), (2, 102, 103), (3, 104, 105)]),
    ],
    ids=["default ports", "an explicit port wins", "free ports"],
)
def test_plan_nodes(port: int | None, free: bool, expected: list[tuple[int, int, int]]) -> None:
    picks = iter(range(100, 200))
    nodes = plan_nodes(3, port=port, free=free, default_port=9092, pick=lambda: next(picks))
    assert [(n.node_id, n.port, n.controller_port) for n in nodes] == expected


@pytest.fixture
def recorded_cluster() -> Iterator[ClusterInstance]:
    """A cluster's instance file whose pids are strangers' processes, not our JVMs."""
    strangers = [
        subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"]) for _ in range(3)
    ]
    inst = ClusterInstance(
        name=f"pytest-recorded-{uuid.uuid4().hex[:8]}",
        version=DEFAULT_KAFKA_VERSION,
        cluster_id=broker.new_cluster_id(),
        heap="512m",
        nodes=tuple(
            NodeRecord(i + 1, 1 + 2 * i, 2 + 2 * i, pid=p.pid) for i, p in enumerate(strangers)
        ),
    )
    write_cluster(inst)
    try:
        yield inst
    finally:
        for p in strangers:
            p.kill()
            p.wait()
        cluster.down(inst.name, purge=True)


def test_the_instance_file_records_every_node(recorded_cluster: ClusterInstance) -> None:
    assert read_cluster(recorded_cluster.name) == recorded_cluster
    assert broker.is_cluster(recorded_cluster.name)
    assert cluster.recorded_nodes(recorded_cluster.name) == 3
    assert recorded_cluster.bootstrap_servers == "127.0.0.1:1,127.0.0.1:3,127.0.0.1:5"


def test_a_cluster_never_signals_processes_it_did_not_start(
    recorded_cluster: ClusterInstance,
) -> None:
    name = recorded_cluster.name
    status = _mmbus("kafka", "status", "--name", name)
    assert status.returncode == 1
    assert "(3 nodes): stopped" in status.stdout
    for node in recorded_cluster.nodes:
        assert f"node {node.node_id}: stopped on 127.0.0.1:{node.port}" in status.stdout
    kill = _mmbus("kafka", "kill", "--name", name, "--node", "2")
    assert kill.returncode == 1
    assert "node 2 of cluster" in kill.stderr
    assert "is not running" in kill.stderr
    down = _mmbus("kafka", "down", "--name", name)
    assert down.returncode == 0, down.stderr
    assert "was not running" in down.stdout
    assert all(n.pid and Path(f"/proc/{n.pid}").exists() for n in recorded_cluster.nodes), (
        "a recorded pid that is not our JVM must survive"
    )


def test_one_name_is_either_a_single_broker_or_a_cluster(recorded_cluster: ClusterInstance) -> None:
    single = _mmbus("kafka", "up", "--name", recorded_cluster.name, "--brokers", "1")
    assert single.returncode == 1
    assert "is a 3-node cluster, not a single broker" in single.stderr
    resized = _mmbus("kafka", "up", "--name", recorded_cluster.name, "--brokers", "5")
    assert resized.returncode == 1
    assert "has 3 nodes, not 5" in resized.stderr
    with pytest.raises(broker.BrokerError, match="is a 3-node cluster"):
        broker.status(recorded_cluster.name)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["kill", "--name", "never-started", "--node", "1"], "no cluster 'never-started' here"),
        (["restart", "--name", "never-started", "--node", "1"], "no cluster 'never-started' here"),
        (["kill", "--name", "x", "--node", "0"], "Invalid value for '--node'"),
        (["restart", "--name", "x"], "Missing option '--node'"),
    ],
)
def test_fault_commands_say_what_is_wrong_in_one_line(args: list[str], message: str) -> None:
    result = _mmbus("kafka", *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_fault_commands_refuse_a_single_broker() -> None:
    name = f"pytest-single-{uuid.uuid4().hex[:8]}"
    lay = broker.layout(name)
    lay.root.mkdir(parents=True)
    lay.state_file.write_text(
        f'{{"name": "{name}", "version": "{DEFAULT_KAFKA_VERSION}", "port": 1, '
        f'"controller_port": 2, "cluster_id": "x", "pid": null}}'
    )
    try:
        result = _mmbus("kafka", "kill", "--name", name, "--node", "1")
        assert result.returncode == 1
        assert "is a single broker" in result.stderr
    finally:
        broker.down(name, purge=True)
