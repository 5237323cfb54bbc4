"""The broker's configuration files, written from a few values.

KRaft combined mode (broker and controller in one JVM), loopback only. A single
node is its own quorum and its internal topics have replication factor 1, as one
node requires. A cluster's nodes are all voters of one static quorum
(``controller.quorum.voters``: every node formats its storage with the same
cluster id and needs no further bootstrap) and replicate internal topics like
the project's own: three replicas, two in sync.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"
# A cluster replicates like the deployments it stands for; more nodes add no copies.
MAX_REPLICAS = 3


@dataclass(frozen=True)
class BrokerLayout:
    """Every file an instance owns, under one directory."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def server_properties(self) -> Path:
        return self.root / "server.properties"

    @property
    def log4j2_xml(self) -> Path:
        return self.root / "log4j2.xml"

    @property
    def state_file(self) -> Path:
        return self.root / "instance.json"

    @property
    def stdout_log(self) -> Path:
        return self.logs / "stdout.log"

    @property
    def server_log(self) -> Path:
        return self.logs / "server.log"


@dataclass(frozen=True)
class NodeAddress:
    """One node of a quorum: its id and the two ports it listens on."""

    node_id: int
    port: int
    controller_port: int


def node_ports(base: int, count: int) -> list[tuple[int, int]]:
    """Fixed ports of ``count`` nodes from ``base``: each node a client port and the next one.

    Node 1 gets the single broker's pair (9092, 9093), so a client configured
    for one local broker still reaches the cluster through its first node.
    """
    return [(base + 2 * i, base + 2 * i + 1) for i in range(count)]


def quorum_voters(nodes: Sequence[NodeAddress]) -> str:
    return ",".join(f"{n.node_id}@{LOOPBACK}:{n.controller_port}" for n in nodes)


def replication_for(cluster_size: int) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) of internal topics on a cluster of this size.

    The same rule as the topic catalogue: two replicas in sync once there are three,
    so an acknowledged ``acks=all`` write survives the loss of any one node.
    """
    replicas = max(1, min(cluster_size, MAX_REPLICAS))
    return replicas, (2 if replicas >= MAX_REPLICAS else 1)


def server_properties(
    *,
    port: int,
    controller_port: int,
    data_dir: Path,
    node_id: int = 1,
    voters: Sequence[NodeAddress] = (),
) -> str:
    """One node's ``server.properties``; without ``voters`` it is a quorum of its own."""
    quorum = voters or (NodeAddress(node_id, port, controller_port),)
    replicas, min_isr = replication_for(len(quorum))
    return f"""# Written by mmbus (services/localkafka); edits are overwritten on `mmbus kafka up`.
process.roles=broker,controller
node.id={node_id}
controller.quorum.voters={quorum_voters(quorum)}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs={data_dir}
# Topics are created explicitly by the project's admin helper, with their
# partitions and retention; a typo in a topic name must fail, not create one.
auto.create.topics.enable=false
num.partitions=1
default.replication.factor={replicas}
min.insync.replicas={min_isr}
offsets.topic.replication.factor={replicas}
offsets.topic.num.partitions=8
transaction.state.log.replication.factor={replicas}
transaction.state.log.min.isr={min_isr}
transaction.state.log.num.partitions=8
share.coordinator.state.topic.replication.factor={replicas}
share.coordinator.state.topic.min.isr={min_isr}
# A consumer group of one should not wait 3 s for members that never come.
group.initial.rebalance.delay.ms=0
# After a crash the controller waits out the dead incarnation's session before the
# restarted broker is unfenced, and in a cluster a killed leader keeps its
# partitions until its session ends; on loopback a short session is safe.
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=2500
"""


def log4j2_xml(*, logs_dir: Path) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by mmbus: the broker logs to files, never to the terminal that started it. -->
<Configuration status="WARN">
  <Appenders>
    <RollingFile name="server" fileName="{logs_dir}/server.log"
                 filePattern="{logs_dir}/server.log.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <SizeBasedTriggeringPolicy size="50 MB"/>
      <DefaultRolloverStrategy max="5"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Logger name="org.apache.kafka.clients" level="WARN"/>
    <Root level="INFO">
      <AppenderRef ref="server"/>
    </Root>
  </Loggers>
</Configuration>
"""
