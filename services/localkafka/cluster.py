"""A local multi-node KRaft cluster on loopback: every node a broker and a voter.

Like the single broker: ``up`` is idempotent (a running cluster is reused, nodes
that are down are started again with their data), ``down`` only signals JVMs
this module started, ports are kept across restarts. For fault tests,
``kill_node`` is a crash (SIGKILL) and ``restart_node`` brings a node back with
its data and waits until the cluster sees it again.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Collection
from dataclasses import dataclass, replace

from services.common.ports import free_port
from services.localkafka.broker import DEFAULT_PORT, is_cluster, layout, new_cluster_id
from services.localkafka.cluster_state import (
    ClusterInstance,
    ClusterStatus,
    NodeRecord,
    NodeStatus,
    node_layout,
    plan_nodes,
    read_cluster,
    update_node,
    write_cluster,
)
from services.localkafka.distribution import DEFAULT_KAFKA_VERSION
from services.localkafka.nodes import (
    is_running,
    seen_brokers,
    start_nodes,
    wait_until_seen,
    write_configs,
)
from services.localkafka.process import BrokerError, stop_pids

DEFAULT_NODES = 3
# Three JVMs share the machine with everything else a developer runs.
DEFAULT_HEAP = "512m"
# Three JVMs start on as few as two cores, and each waits for a quorum of the others.
READY_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class ClusterUpResult:
    instance: ClusterInstance
    reused: bool
    formatted: bool
    seconds: float


def up(
    name: str = "default",
    *,
    nodes: int = DEFAULT_NODES,
    version: str = DEFAULT_KAFKA_VERSION,
    port: int | None = None,
    free_ports: bool = False,
    heap: str | None = None,
    ready_timeout_s: float = READY_TIMEOUT_S,
) -> ClusterUpResult:
    """Start cluster ``name`` (or reuse it) and wait until every node sees every other.

    ``heap`` is each node's maximum heap: the recorded one (or 512m) unless given.
    """
    started = time.monotonic()
    if nodes < 2:
        raise BrokerError("a cluster has at least 2 nodes; one node is `mmbus kafka up`")
    existing = read_cluster(name)
    if existing is not None:
        if len(existing.nodes) != nodes:
            raise BrokerError(
                f"cluster {name!r} has {len(existing.nodes)} nodes, not {nodes}; "
                f"use --brokers {len(existing.nodes)} or `mmbus kafka down --name {name} --purge`"
            )
        if existing.version != version:
            raise BrokerError(
                f"cluster {name!r} holds data of Kafka {existing.version}, not {version}; "
                f"use that version or `mmbus kafka down --name {name} --purge` first"
            )
        if port is not None and port != existing.nodes[0].port:
            raise BrokerError(
                f"cluster {name!r} keeps its ports (node 1 on {existing.nodes[0].port}); "
                f"`mmbus kafka down --name {name} --purge` to move it"
            )
        inst = replace(existing, heap=heap) if heap else existing
    else:
        inst = ClusterInstance(
            name=name,
            version=version,
            cluster_id=new_cluster_id(),
            heap=heap or DEFAULT_HEAP,
            nodes=plan_nodes(
                nodes,
                port=port,
                free=free_ports or name != "default",
                default_port=DEFAULT_PORT,
                pick=free_port,
            ),
        )
        write_cluster(inst)
    stopped = [n for n in inst.nodes if not is_running(name, n)]
    formatted = write_configs(inst) if stopped else False
    write_cluster(inst)
    procs = start_nodes(inst, stopped)
    wait_until_seen(
        inst,
        procs,
        members=inst.node_ids,
        observers=inst.node_ids,
        timeout_s=ready_timeout_s,
    )
    return ClusterUpResult(
        read_cluster(name) or inst,
        reused=not stopped,
        formatted=formatted,
        seconds=time.monotonic() - started,
    )


def recorded_nodes(name: str) -> int | None:
    """How many nodes instance ``name`` has: 1 for a single broker, None if never started."""
    if not is_cluster(name):
        return 1 if layout(name).state_file.exists() else None
    inst = read_cluster(name)
    return len(inst.nodes) if inst else None


def _require(name: str) -> ClusterInstance:
    inst = read_cluster(name)
    if inst is None:
        raise BrokerError(f"no cluster {name!r} here; start it with `mmbus kafka up --brokers 3`")
    return inst


def kill_node(name: str, node_id: int) -> int:
    """SIGKILL one node's JVM, as a crash would; return the pid that was killed."""
    inst = _require(name)
    node = inst.node(node_id)
    if not (node.pid and is_running(name, node)):
        raise BrokerError(f"node {node_id} of cluster {name!r} is not running")
    stop_pids([(node.pid, node_layout(name, node_id))], kill=True)
    update_node(name, replace(node, pid=None))
    return node.pid


@dataclass(frozen=True)
class NodeRestart:
    node: NodeRecord
    seconds: float


def restart_nodes(
    name: str, node_ids: Collection[int], *, ready_timeout_s: float = READY_TIMEOUT_S
) -> list[NodeRestart]:
    """Start nodes again with their data, together (stopping cleanly those that run).

    Returns once every running node lists each of them as a live broker again:
    it has registered, caught up with the metadata and been unfenced. Nodes
    that lost their quorum come back faster side by side than one by one.
    """
    started = time.monotonic()
    inst = _require(name)
    nodes = [inst.node(i) for i in sorted(set(node_ids))]
    stop_pids([(n.pid, node_layout(name, n.node_id)) for n in nodes if n.pid])
    write_configs(inst)
    procs = start_nodes(inst, nodes)
    members = {n.node_id for n in nodes}
    observers = [n.node_id for n in inst.nodes if n.node_id in members or is_running(name, n)]
    wait_until_seen(inst, procs, members=members, observers=observers, timeout_s=ready_timeout_s)
    seconds = time.monotonic() - started
    now = _require(name)
    return [NodeRestart(now.node(i), seconds) for i in sorted(members)]


def restart_node(
    name: str, node_id: int, *, ready_timeout_s: float = READY_TIMEOUT_S
) -> NodeRestart:
    """Start one node again with its data; see ``restart_nodes``."""
    [restarted] = restart_nodes(name, [node_id], ready_timeout_s=ready_timeout_s)
    return restarted


def wait_ready(name: str, *, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Wait until every node of a running cluster answers and sees every other."""
    inst = _require(name)
    wait_until_seen(inst, {}, members=inst.node_ids, observers=inst.node_ids, timeout_s=timeout_s)


def down(name: str = "default", *, purge: bool = False, kill: bool = False) -> list[int]:
    """Stop every node this module started; return the ids of the nodes that were running."""
    inst = read_cluster(name)
    stopped: list[int] = []
    if inst is not None:
        running = [n for n in inst.nodes if n.pid and is_running(name, n)]
        stop_pids([(n.pid, node_layout(name, n.node_id)) for n in running if n.pid], kill=kill)
        stopped = [n.node_id for n in running]
        write_cluster(replace(inst, nodes=tuple(replace(n, pid=None) for n in inst.nodes)))
    root = layout(name).root
    if purge and root.exists():
        shutil.rmtree(root)
    return stopped


def status(name: str = "default", *, probe_timeout_s: float = 3.0) -> ClusterStatus:
    inst = _require(name)
    nodes = []
    for node in inst.nodes:
        running = is_running(name, node)
        nodes.append(
            NodeStatus(
                node=node,
                root=node_layout(name, node.node_id).root,
                running=running,
                sees=seen_brokers(node, probe_timeout_s) if running else None,
            )
        )
    return ClusterStatus(name=name, root=layout(name).root, instance=inst, nodes=tuple(nodes))
