"""What a local cluster records about itself, and where each node keeps its files.

``$MMBUS_HOME/brokers/<name>/instance.json`` records the cluster and every node
(ports, pid); ``node-<i>/`` holds that node's ``server.properties``,
``log4j2.xml``, ``data/`` and ``logs/``, the same files a single broker keeps in
its own directory.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from services.localkafka.broker import CLUSTER_MARKER, layout, read_state
from services.localkafka.config import LOOPBACK, BrokerLayout, NodeAddress, node_ports
from services.localkafka.process import BrokerError


@dataclass(frozen=True)
class NodeRecord:
    node_id: int
    port: int
    controller_port: int
    pid: int | None = None
    started_at: float | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def address(self) -> NodeAddress:
        return NodeAddress(self.node_id, self.port, self.controller_port)


@dataclass(frozen=True)
class ClusterInstance:
    name: str
    version: str
    cluster_id: str
    heap: str
    nodes: tuple[NodeRecord, ...]

    @property
    def bootstrap_servers(self) -> str:
        """Every node: a client that knows only a dead node could not start."""
        return ",".join(n.bootstrap_servers for n in self.nodes)

    @property
    def node_ids(self) -> set[int]:
        return {n.node_id for n in self.nodes}

    def node(self, node_id: int) -> NodeRecord:
        for n in self.nodes:
            if n.node_id == node_id:
                return n
        raise BrokerError(
            f"cluster {self.name!r} has nodes {', '.join(str(i) for i in sorted(self.node_ids))}, "
            f"not {node_id}"
        )

    def with_node(self, node: NodeRecord) -> ClusterInstance:
        return replace(
            self, nodes=tuple(node if n.node_id == node.node_id else n for n in self.nodes)
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "bootstrap_servers": self.bootstrap_servers}


@dataclass(frozen=True)
class NodeStatus:
    node: NodeRecord
    root: Path
    running: bool
    # The broker ids this node's metadata lists; None when it does not answer.
    sees: frozenset[int] | None

    @property
    def answering(self) -> bool:
        return self.sees is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self.node),
            "root": str(self.root),
            "running": self.running,
            "answering": self.answering,
            "sees": sorted(self.sees) if self.sees is not None else None,
        }


@dataclass(frozen=True)
class ClusterStatus:
    name: str
    root: Path
    instance: ClusterInstance
    nodes: tuple[NodeStatus, ...]

    @property
    def running(self) -> bool:
        return any(n.running for n in self.nodes)

    @property
    def ready(self) -> bool:
        """Every node runs, answers, and lists every node as a live broker."""
        every = self.instance.node_ids
        return all(n.running and n.sees is not None and every <= n.sees for n in self.nodes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "root": str(self.root),
            "running": self.running,
            "ready": self.ready,
            "bootstrap_servers": self.instance.bootstrap_servers,
            "instance": self.instance.as_dict(),
            "nodes": [n.as_dict() for n in self.nodes],
        }


def node_layout(name: str, node_id: int) -> BrokerLayout:
    return BrokerLayout(layout(name).root / f"node-{node_id}")


def read_cluster(name: str) -> ClusterInstance | None:
    lay = layout(name)
    raw = read_state(lay)
    if raw is None:
        return None
    if CLUSTER_MARKER not in raw:
        raise BrokerError(
            f"instance {name!r} is a single broker; stop it with "
            f"`mmbus kafka down --name {name}` or pick another --name"
        )
    try:
        nodes = tuple(NodeRecord(**n) for n in raw.pop(CLUSTER_MARKER))
        return ClusterInstance(**raw, nodes=nodes)
    except TypeError as exc:
        raise BrokerError(f"{lay.state_file} is unreadable ({exc}); remove the directory") from exc


def write_cluster(inst: ClusterInstance) -> None:
    lay = layout(inst.name)
    lay.root.mkdir(parents=True, exist_ok=True)
    tmp = lay.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(inst), indent=2))
    os.replace(tmp, lay.state_file)


def update_node(name: str, node: NodeRecord) -> ClusterInstance:
    """Record one node's new state over what is on disk now, not over a stale copy.

    Locked: a test restarting one node while killing another, or two commands
    at once, must not lose either pid (a lost pid is a JVM `down` cannot stop).
    """
    root = layout(name).root
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".instance.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = read_cluster(name)
        if current is None:
            raise BrokerError(f"cluster {name!r} vanished while node {node.node_id} changed")
        updated = current.with_node(node)
        write_cluster(updated)
    return updated


def plan_nodes(
    count: int, *, port: int | None, free: bool, default_port: int, pick: Callable[[], int]
) -> tuple[NodeRecord, ...]:
    """The nodes of a new cluster: from ``port`` on, on free ports, or from the default port."""
    pairs: Sequence[tuple[int, int]]
    if port is not None:
        pairs = node_ports(port, count)
    elif free:
        pairs = [(pick(), pick()) for _ in range(count)]
    else:
        pairs = node_ports(default_port, count)
    return tuple(NodeRecord(i + 1, p, c) for i, (p, c) in enumerate(pairs))
