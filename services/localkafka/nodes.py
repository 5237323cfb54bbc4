"""The JVMs of a cluster's nodes: write their files, start them, wait until they see each other.

``cluster.py`` decides which nodes to start or stop; this module knows how.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from services.localkafka.cluster_state import (
    ClusterInstance,
    NodeRecord,
    node_layout,
    update_node,
)
from services.localkafka.config import log4j2_xml, server_properties
from services.localkafka.distribution import DistributionError, fetch_distribution
from services.localkafka.probe import live_broker_ids
from services.localkafka.process import (
    BrokerError,
    claim_ports,
    format_storage,
    is_ours,
    start_jvm,
    stop_pids,
    tail,
)

# The JVMs one call started, by node id.
Procs = dict[int, subprocess.Popen[bytes]]


def is_running(name: str, node: NodeRecord) -> bool:
    return bool(node.pid and is_ours(node.pid, node_layout(name, node.node_id)))


def _libs(version: str) -> Path:
    try:
        return fetch_distribution(version)
    except DistributionError as exc:
        raise BrokerError(str(exc)) from exc


def write_configs(inst: ClusterInstance) -> bool:
    """Write every node's files; format the storage of nodes that have none. True if any did."""
    voters = [n.address for n in inst.nodes]
    fresh = []
    for node in inst.nodes:
        lay = node_layout(inst.name, node.node_id)
        lay.logs.mkdir(parents=True, exist_ok=True)
        lay.data.mkdir(parents=True, exist_ok=True)
        lay.server_properties.write_text(
            server_properties(
                port=node.port,
                controller_port=node.controller_port,
                data_dir=lay.data,
                node_id=node.node_id,
                voters=voters,
            )
        )
        lay.log4j2_xml.write_text(log4j2_xml(logs_dir=lay.logs))
        if not (lay.data / "meta.properties").exists():
            fresh.append(lay)
    if fresh:
        libs = _libs(inst.version)
        # One JVM per node either way; side by side they take the time of one.
        with ThreadPoolExecutor(max_workers=len(fresh)) as pool:
            for done in [pool.submit(format_storage, libs, lay, inst.cluster_id) for lay in fresh]:
                done.result()
    return bool(fresh)


def start_nodes(inst: ClusterInstance, nodes: Sequence[NodeRecord]) -> Procs:
    procs: Procs = {}
    if not nodes:
        return procs
    libs = _libs(inst.version)
    for node in nodes:
        lay = node_layout(inst.name, node.node_id)
        claim_ports(
            (node.port, node.controller_port),
            f"stop it, or `mmbus kafka down --name {inst.name} --purge` and use --free-ports",
        )
        proc = start_jvm(libs, lay, inst.heap)
        procs[node.node_id] = proc
        update_node(inst.name, replace(node, pid=proc.pid, started_at=time.time()))
    return procs


def seen_brokers(node: NodeRecord, timeout_s: float) -> frozenset[int] | None:
    ids = live_broker_ids(node.bootstrap_servers, timeout_s)
    return None if ids is None else frozenset(ids)


def wait_until_seen(
    inst: ClusterInstance,
    procs: Procs,
    *,
    members: Collection[int],
    observers: Collection[int],
    timeout_s: float,
) -> None:
    """Wait until every observer node answers and lists every member as a live broker.

    A node that exits meanwhile fails at once, with its log; on a timeout the
    nodes started for this wait are stopped, so nothing half-started lingers.
    """
    deadline = time.monotonic() + timeout_s
    lagging = sorted(observers)
    while True:
        for node_id, proc in procs.items():
            if proc.poll() is not None:
                lay = node_layout(inst.name, node_id)
                update_node(inst.name, replace(inst.node(node_id), pid=None))
                raise BrokerError(
                    f"node {node_id} of cluster {inst.name!r} exited with code {proc.returncode} "
                    f"while starting; last lines of {lay.server_log}:\n"
                    f"{tail(lay.server_log)}\n{tail(lay.stdout_log)}"
                )
        lagging = [
            i
            for i in lagging
            if not set(members) <= (seen_brokers(inst.node(i), 2.0) or frozenset())
        ]
        if not lagging:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    stop_pids([(p.pid, node_layout(inst.name, i)) for i, p in procs.items()])
    for node_id in procs:
        update_node(inst.name, replace(inst.node(node_id), pid=None))
    logs = "\n".join(
        f"{node_layout(inst.name, i).server_log}:\n{tail(node_layout(inst.name, i).server_log, 8)}"
        for i in lagging
    )
    raise BrokerError(
        f"cluster {inst.name!r}: node(s) {', '.join(map(str, lagging))} did not list broker(s) "
        f"{', '.join(map(str, sorted(members)))} within {timeout_s:.0f}s\n{logs}"
    )
