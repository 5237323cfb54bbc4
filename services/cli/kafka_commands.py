"""``mmbus kafka``: the local broker or cluster."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING

import click

from services.localkafka import DEFAULT_KAFKA_VERSION, BrokerError, broker
from services.localkafka.distribution import DistributionError, fetch_distribution

if TYPE_CHECKING:
    pass


@click.group()
def kafka() -> None:
    """Local Apache Kafka (KRaft) on 127.0.0.1 without Docker: one broker or a cluster."""


_name = click.option("--name", default="default", show_default=True, help="Instance name.")
kafka_version_option = click.option(
    "--version",
    "kafka_version",
    default=lambda: os.environ.get("MMBUS_KAFKA_VERSION", DEFAULT_KAFKA_VERSION),
    show_default=f"$MMBUS_KAFKA_VERSION or {DEFAULT_KAFKA_VERSION}",
    help="Apache Kafka version (org.apache.kafka:kafka_2.13 on Maven Central).",
)
_node = click.option(
    "--node",
    "node_ids",
    type=click.IntRange(1),
    multiple=True,
    required=True,
    help="Node number (1, 2, 3...); repeat it for several nodes.",
)


@kafka.command("up")
@_name
@kafka_version_option
@click.option(
    "--brokers",
    type=click.IntRange(1, 9),
    help="Nodes, each broker and controller (default 1, or what the instance has).",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    help="Broker port (default 9092); a cluster's node i gets P+2(i-1), its controller the next.",
)
@click.option("--free-ports", is_flag=True, help="Pick free ports on first start.")
@click.option("--heap", help="JVM maximum heap per node (default 1g; 512m per cluster node).")
@click.option("--json", "as_json", is_flag=True, help="Print the instance as JSON.")
def kafka_up(
    name: str,
    kafka_version: str,
    brokers: int | None,
    port: int | None,
    free_ports: bool,
    heap: str | None,
    as_json: bool,
) -> None:
    """Start the broker (every node of a cluster), or reuse it; wait until it answers."""
    from services.localkafka import cluster

    try:
        if brokers is None:
            brokers = cluster.recorded_nodes(name) or 1
        if brokers > 1:
            _kafka_cluster_up(name, brokers, kafka_version, port, free_ports, heap, as_json)
            return
        result = broker.up(
            name, version=kafka_version, port=port, free_ports=free_ports, heap=heap or "1g"
        )
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from exc
    inst = result.instance
    if as_json:
        click.echo(
            json.dumps(
                {
                    "reused": result.reused,
                    "seconds": result.seconds,
                    "bootstrap_servers": inst.bootstrap_servers,
                    "pid": inst.pid,
                    "version": inst.version,
                    "name": inst.name,
                }
            )
        )
        return
    how = "already running" if result.reused else f"started in {result.seconds:.1f}s"
    click.echo(
        f"kafka {inst.version} '{inst.name}' {how}: {inst.bootstrap_servers} (pid {inst.pid})"
    )
    click.echo(f"export MMBUS_KAFKA_BOOTSTRAP_SERVERS={inst.bootstrap_servers}")


def _kafka_cluster_up(
    name: str,
    nodes: int,
    kafka_version: str,
    port: int | None,
    free_ports: bool,
    heap: str | None,
    as_json: bool,
) -> None:
    from services.localkafka import cluster

    result = cluster.up(
        name, nodes=nodes, version=kafka_version, port=port, free_ports=free_ports, heap=heap
    )
    inst = result.instance
    if as_json:
        click.echo(
            json.dumps(
                {
                    "reused": result.reused,
                    "seconds": result.seconds,
                    "bootstrap_servers": inst.bootstrap_servers,
                    "version": inst.version,
                    "name": inst.name,
                    "nodes": [
                        {"node": n.node_id, "bootstrap_servers": n.bootstrap_servers, "pid": n.pid}
                        for n in inst.nodes
                    ],
                }
            )
        )
        return
    how = "already running" if result.reused else f"started in {result.seconds:.1f}s"
    click.echo(f"kafka {inst.version} '{inst.name}' ({len(inst.nodes)} nodes) {how}:")
    for n in inst.nodes:
        click.echo(f"  node {n.node_id}: {n.bootstrap_servers} (pid {n.pid})")
    click.echo(f"export MMBUS_KAFKA_BOOTSTRAP_SERVERS={inst.bootstrap_servers}")


@kafka.command("down")
@_name
@click.option("--all", "all_", is_flag=True, help="Every instance this tool started.")
@click.option("--purge", is_flag=True, help="Also delete the instance's data and logs.")
@click.option("--kill", is_flag=True, help="SIGKILL instead of a clean shutdown.")
def kafka_down(name: str, all_: bool, purge: bool, kill: bool) -> None:
    """Stop a broker or every node of a cluster this tool started (never anyone else's)."""
    from services.localkafka import cluster

    names = broker.instance_names() if all_ else [name]
    try:
        for each in names:
            if broker.is_cluster(each):
                nodes = cluster.down(each, purge=purge, kill=kill)
                stopped = bool(nodes)
                what = f"stopped node(s) {', '.join(map(str, nodes))}" if nodes else ""
            else:
                stopped = broker.down(each, purge=purge, kill=kill)
                what = "stopped"
            click.echo(
                f"kafka '{each}': {what if stopped else 'was not running'}"
                + (" (data purged)" if purge else "")
            )
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from exc


@kafka.command("status")
@_name
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def kafka_status(name: str, as_json: bool) -> None:
    """Say whether the broker (every node) runs and answers; exit 1 when it does not."""
    try:
        if broker.is_cluster(name):
            _kafka_cluster_status(name, as_json)
            return
        st = broker.status(name)
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(st.as_dict()))
    elif st.instance is None:
        click.echo(f"kafka '{name}': never started here (run `mmbus kafka up`)")
    else:
        state = "ready" if st.ready else ("running, not answering" if st.running else "stopped")
        click.echo(
            f"kafka {st.instance.version} '{name}': {state} on "
            f"{st.instance.bootstrap_servers}; logs in {st.root / 'logs'}"
        )
    sys.exit(0 if st.ready else 1)


def _kafka_cluster_status(name: str, as_json: bool) -> None:
    from services.localkafka import cluster

    st = cluster.status(name)
    if as_json:
        click.echo(json.dumps(st.as_dict()))
        sys.exit(0 if st.ready else 1)
    answering = sum(n.answering for n in st.nodes)
    state = (
        "ready"
        if st.ready
        else (f"degraded, {answering} of {len(st.nodes)} nodes answer" if st.running else "stopped")
    )
    click.echo(
        f"kafka {st.instance.version} '{name}' ({len(st.nodes)} nodes): {state} on "
        f"{st.instance.bootstrap_servers}; logs in {st.root}/node-<i>/logs"
    )
    for n in st.nodes:
        if not n.running:
            line = "stopped"
        elif n.sees is None:
            line = "running, not answering"
        elif st.ready:
            line = f"ready (pid {n.node.pid})"
        else:
            # A node that lost its quorum still lists the brokers it last knew.
            line = f"answers (pid {n.node.pid}), sees brokers {', '.join(map(str, sorted(n.sees)))}"
        click.echo(f"  node {n.node.node_id}: {line} on {n.node.bootstrap_servers}")
    sys.exit(0 if st.ready else 1)


@kafka.command("kill")
@_name
@_node
def kafka_kill(name: str, node_ids: tuple[int, ...]) -> None:
    """SIGKILL nodes of a cluster, as a crash would (for fault tests)."""
    from services.localkafka import cluster

    try:
        for node_id in node_ids:
            pid = cluster.kill_node(name, node_id)
            click.echo(f"kafka '{name}' node {node_id}: killed (pid {pid})")
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from exc


@kafka.command("restart")
@_name
@_node
def kafka_restart(name: str, node_ids: tuple[int, ...]) -> None:
    """Start nodes of a cluster again with their data; wait until the cluster sees them."""
    from services.localkafka import cluster

    try:
        results = cluster.restart_nodes(name, node_ids)
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from exc
    for result in results:
        node = result.node
        click.echo(
            f"kafka '{name}' node {node.node_id}: back in {result.seconds:.1f}s "
            f"on {node.bootstrap_servers} (pid {node.pid})"
        )


@kafka.command("fetch")
@kafka_version_option
def kafka_fetch(kafka_version: str) -> None:
    """Download the broker jars from Maven Central into the cache (once)."""
    try:
        path = fetch_distribution(kafka_version)
    except DistributionError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"kafka {kafka_version} jars in {path}")


# -------------------------------------------------------------------- topics
