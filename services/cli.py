"""``mmbus``: one console script that starts every part of the system."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from mmbus.connection import KafkaConnection
from services.common.logging import configure_logging
from services.common.settings import CommonSettings
from services.localkafka import DEFAULT_KAFKA_VERSION, BrokerError, broker
from services.localkafka.distribution import DistributionError, fetch_distribution, libs_dir

if TYPE_CHECKING:
    from datetime import datetime

    from services.common.lifecycle import Main

S = TypeVar("S", bound=BaseSettings)
T = TypeVar("T")


def _load(cls: type[S]) -> S:
    """Settings from the environment; what is wrong with them in one line."""
    prefix = cls.model_config.get("env_prefix", "")
    try:
        return cls()
    except ValidationError as exc:
        problems = "; ".join(
            f"{prefix}{str(err['loc'][0]).upper()}"
            + "".join(f"[{part}]" for part in err["loc"][1:])
            # A validator's own message, without pydantic's "Value error, " in front.
            + f": {err['ctx']['error'] if err['type'] == 'value_error' else err['msg']}"
            for err in exc.errors(include_url=False)
        )
        raise click.ClickException(f"invalid setting {problems}") from exc
    except Exception as exc:  # e.g. a JSON list variable that is not JSON
        raise click.ClickException(f"invalid {prefix}* setting: {exc}") from exc


def _settings() -> CommonSettings:
    return _load(CommonSettings)


def _store_url(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Refuse a store URL nothing can open now, not after a SQLite file is named after it."""
    from services.projections.settings import parse_store_url

    if value is not None:
        try:
            parse_store_url(value)
        except ValueError as exc:
            raise click.ClickException(f"{param.opts[0]}: {exc}") from exc
    return value


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mmbus")
def cli() -> None:
    """mmbus: WhatsApp marketing messages over Apache Kafka, provably."""


# --------------------------------------------------------------------- kafka
@cli.group()
def kafka() -> None:
    """Local Apache Kafka (KRaft) on 127.0.0.1 without Docker: one broker or a cluster."""


_name = click.option("--name", default="default", show_default=True, help="Instance name.")
_version = click.option(
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
@_version
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
@_version
def kafka_fetch(kafka_version: str) -> None:
    """Download the broker jars from Maven Central into the cache (once)."""
    try:
        path = fetch_distribution(kafka_version)
    except DistributionError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"kafka {kafka_version} jars in {path}")


# -------------------------------------------------------------------- topics
@cli.group()
def topics() -> None:
    """The project's topics (names, keys, partitions, retention)."""


@topics.command("list")
def topics_list() -> None:
    """Print the topic catalogue as configured by MMBUS_* settings."""
    from services.common.kafka_admin import project_topics

    for spec in project_topics(_settings()):
        click.echo(
            f"{spec.name:32} key={spec.key:26} partitions={spec.partitions} "
            f"carries={','.join(spec.carries)}"
        )


@topics.command("create")
def topics_create() -> None:
    """Create missing topics on MMBUS_KAFKA_BOOTSTRAP_SERVERS; check the existing ones."""
    from services.common.kafka_admin import ensure_project_topics

    settings = _settings()
    result = _run(ensure_project_topics(settings), kafka=settings)
    click.echo(f"created {len(result.created)} topics, {len(result.existing)} already there")


# ------------------------------------------------------------------- schemas
@cli.group()
def schemas() -> None:
    """The language-neutral contract: JSON Schemas and AsyncAPI documents."""


@schemas.command("export")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("schemas"),
    show_default=True,
    help="Where schemas/ lives.",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if the files differ.")
def schemas_export(directory: Path, check: bool) -> None:
    """Generate schemas/ from the Python models (or check it is up to date)."""
    from services.schema_export import drift, export

    if check:
        problems = drift(directory)
        if problems:
            for problem in problems:
                click.echo(problem, err=True)
            raise click.ClickException(
                f"{len(problems)} schema file(s) out of date; run `mmbus schemas export`"
            )
        click.echo(f"{directory} matches the models")
        return
    changed = export(directory)
    click.echo(f"{len(changed)} file(s) written in {directory}")


# ----------------------------------------------------------------- simulator
@cli.command("simulator")
@click.option("--host", default=None, help="Listen address (MMBUS_SIMULATOR_HOST, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (MMBUS_SIMULATOR_PORT, 8090).")
@click.option(
    "--seed",
    "seed_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="YAML/JSON world (MMBUS_SIMULATOR_SEED_FILE; default: the demo world).",
)
@click.option("--webhook-url", default=None, help="Where to POST webhooks (ingest).")
def simulator(
    host: str | None, port: int | None, seed_file: Path | None, webhook_url: str | None
) -> None:
    """A stateful stand-in for the Graph API and 360dialog, with signed webhooks."""
    from services.simulator.server import make_server
    from services.simulator.settings import SimulatorSettings
    from services.simulator.world import load_world

    base = _load(SimulatorSettings)
    overrides = {
        k: v
        for k, v in {
            "host": host,
            "port": port,
            "seed_file": seed_file,
            "webhook_url": webhook_url,
        }.items()
        if v is not None
    }
    settings = base.model_copy(update=overrides)
    seed = settings.seed_file or Path(__file__).parent / "simulator" / "demo_world.yaml"
    try:
        world = load_world(seed)
    except Exception as exc:
        raise click.ClickException(f"cannot load the world from {seed}: {exc}") from exc
    configure_logging("INFO", "auto")
    click.echo(
        f"simulator on http://{settings.host}:{settings.port} (world: {seed}; "
        f"webhooks: {settings.webhook_url or 'off'})"
    )
    make_server(settings, world).run()


# -------------------------------------------------------------------- sender
@cli.command("sender")
def sender() -> None:
    """Consume send commands, call Meta or 360dialog, publish send events (MMBUS_* settings)."""
    from services.sender.main import run_sender
    from services.sender.settings import SenderSettings

    settings = _load(SenderSettings)
    _serve(settings, lambda stop: run_sender(settings, stop))


# -------------------------------------------------------------------- ingest
@cli.command("ingest")
@click.option("--host", default=None, help="Listen address (MMBUS_INGEST_HOST).")
@click.option("--port", type=int, default=None, help="Port (MMBUS_INGEST_PORT).")
@click.option("--no-normalizer", is_flag=True, help="Only receive; run no normalizer here.")
def ingest(host: str | None, port: int | None, no_normalizer: bool) -> None:
    """Receive Meta's webhooks (signed, stored before 200) and normalise them into events."""
    from services.ingest.main import run_ingest
    from services.ingest.settings import IngestSettings

    settings = _load(IngestSettings)
    overrides = {
        k: v for k, v in {"ingest_host": host, "ingest_port": port}.items() if v is not None
    }
    settings = settings.model_copy(update=overrides)
    _serve(settings, lambda stop: run_ingest(settings, stop, normalizer=not no_normalizer))


# ---------------------------------------------------------------- projector
@cli.command("projector")
@click.option(
    "--store", default=None, callback=_store_url, help="Store URL (MMBUS_PROJECTOR_STORE)."
)
@click.option("--host", default=None, help="Query API address (MMBUS_PROJECTOR_HTTP_HOST).")
@click.option("--port", type=int, default=None, help="Query API port (MMBUS_PROJECTOR_HTTP_PORT).")
def projector(store: str | None, host: str | None, port: int | None) -> None:
    """Fold the event streams into projections and serve the query API."""
    from services.projections.main import run_projector
    from services.projections.settings import ProjectorSettings
    from services.projections.store import StoreError

    settings = _load(ProjectorSettings)
    overrides = {
        k: v
        for k, v in {
            "projector_store": store,
            "projector_http_host": host,
            "projector_http_port": port,
        }.items()
        if v is not None
    }
    settings = settings.model_copy(update=overrides)
    try:
        _serve(settings, lambda stop: run_projector(settings, stop))
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc


@cli.command("replay")
@click.option(
    "--store",
    default=None,
    callback=_store_url,
    help="A fresh store to rebuild into (sqlite:///path, a path, or postgresql://...); "
    "omit to rebuild in memory only.",
)
@click.option(
    "--projection",
    "projections",
    multiple=True,
    help="Projection to rebuild (repeatable): delivery, onboarding, suppression, templates. "
    "Default: all.",
)
@click.option(
    "--until",
    default=None,
    help="Stop at the log as it stood at this time (ISO 8601, UTC if no offset).",
)
@click.option(
    "--offsets-of",
    default=None,
    callback=_store_url,
    help="Store URL of a live projector: replay exactly up to its stored offsets.",
)
@click.option(
    "--projector-name",
    default="mmbus-projector",
    show_default=True,
    help="Whose offsets to read with --offsets-of.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Share the partitions among this many processes and join their partial states.",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the plan and the workers' partial states go (shared by every host).",
)
@click.option(
    "--plan",
    "plan_only",
    is_flag=True,
    help="Only fix the bounds and split the partitions into --dir/plan.json for --workers.",
)
@click.option(
    "--shard",
    type=int,
    default=None,
    help="Be worker N of the plan in --dir: fold its partitions into --dir/part-N.jsonl.",
)
@click.option(
    "--join",
    "join_parts",
    is_flag=True,
    help="Join the partial states in --dir, write --store and print the report.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the audit report as JSON.")
def replay_cmd(
    store: str | None,
    projections: tuple[str, ...],
    until: str | None,
    offsets_of: str | None,
    projector_name: str,
    workers: int,
    directory: Path | None,
    plan_only: bool,
    shard: int | None,
    join_parts: bool,
    as_json: bool,
) -> None:
    """Rebuild projections from the log for an audit and print the report with digests.

    Across hosts: --plan on one host, --shard N on each worker (sharing --dir and
    the Kafka cluster), then --join.
    """
    from services.projections.plan import PlanError
    from services.projections.projection import choose
    from services.projections.store import StoreError

    settings = _settings()
    configure_logging("WARNING", settings.log_format)
    steps = sum((plan_only, shard is not None, join_parts))
    if steps > 1:
        raise click.UsageError("choose one of --plan, --shard and --join")
    if steps and directory is None:
        raise click.UsageError("--plan, --shard and --join need --dir")
    try:
        specs = choose(projections)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--projection") from exc
    until_at = _until(until)
    bar_state: dict[str, Any] = {}

    def progress(done: int, total: int) -> None:
        bar = bar_state.get("bar")
        if bar is None and total and not as_json:
            bar = click.progressbar(length=total, label="replaying", file=sys.stderr)
            bar.__enter__()
            bar_state["bar"], bar_state["done"] = bar, 0
        if bar is not None:
            bar.update(min(done, total) - bar_state["done"])
            bar_state["done"] = min(done, total)

    bounds = (offsets_of, projector_name) if offsets_of else None
    try:
        if plan_only or shard is not None or join_parts:
            assert directory is not None
            report = _replay_step(
                settings,
                specs,
                directory,
                plan_only,
                shard,
                workers,
                until_at,
                bounds,
                store,
                progress,
            )
        else:
            from services.projections.replay import replay

            report = _run(
                replay(
                    settings,
                    specs,
                    store_url=store,
                    until=until_at,
                    offsets_of=bounds,
                    progress=progress,
                    workers=workers,
                    directory=directory,
                ),
                kafka=settings,
            ).as_dict()
    except (StoreError, PlanError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        if "bar" in bar_state:
            bar_state["bar"].__exit__(None, None, None)
    if report is None:
        return
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    _print_report(report)


def _until(until: str | None) -> datetime | None:
    from datetime import UTC, datetime

    if not until:
        return None
    try:
        at = datetime.fromisoformat(until)
    except ValueError as exc:
        raise click.BadParameter(
            "use ISO 8601, e.g. 2026-11-21T10:00:00Z", param_hint="--until"
        ) from exc
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _replay_step(
    settings: CommonSettings,
    specs: Any,
    directory: Path,
    plan_only: bool,
    shard: int | None,
    workers: int,
    until: datetime | None,
    bounds: tuple[str, str] | None,
    store_url: str | None,
    progress: Any,
) -> dict[str, Any] | None:
    """One step of a replay split across hosts: the plan, one worker, or the join."""
    from contextlib import nullcontext

    from services.projections import replay as steps
    from services.projections.partial import read_plan, write_plan
    from services.projections.store import Store, StoreError

    if plan_only:
        plan = _run(
            steps.plan_replay(settings, specs, workers=workers, until=until, offsets_of=bounds),
            kafka=settings,
        )
        path = write_plan(directory, plan)
        click.echo(f"plan {plan.id}: {len(plan.spans)} partitions, {workers} worker(s): {path}")
        for n in range(workers):
            click.echo(f"  worker {n}: mmbus replay --dir {directory} --shard {n}")
        click.echo(f"then: mmbus replay --dir {directory} --join [--store URL]")
        return None
    plan = read_plan(directory)
    if shard is not None:
        _run(steps.run_shard(settings, plan, shard, directory, progress=progress), kafka=settings)
        click.echo(f"worker {shard} of plan {plan.id}: wrote {directory}/part-{shard}.jsonl")
        return None
    with Store(store_url) if store_url else nullcontext() as store:
        if store is not None and not store.is_empty():
            raise StoreError(
                f"{store_url} already holds projections; a replay needs a fresh store "
                "(a new file or database)"
            )
        parts = steps.read_parts(directory, plan, range(len(plan.shards)))
        return steps.complete(plan, parts, store, name="mmbus-replay").as_dict()


def _print_report(report: dict[str, Any]) -> None:
    click.echo(f"projections: {', '.join(report['projections'])}")
    if report["until"]:
        click.echo(f"until: {report['until']}")
    click.echo(f"records read: {report['records_read']}")
    for title, key in (
        ("events by type", "events_by_type"),
        ("rows by kind", "rows_by_kind"),
        ("messages by state", "messages_by_state"),
        ("anomalies", "anomalies"),
    ):
        click.echo(f"{title}:")
        if not report[key]:
            click.echo("  (none)")
        for name, count in report[key].items():
            click.echo(f"  {name:<40} {count:>10}")
    click.echo("digests:")
    for name, digest in report["digests"].items():
        click.echo(f"  {name:<12} {digest}")


# ------------------------------------------------------------------ send-csv
@cli.command("send-csv")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--campaign", default=None, help="Campaign id for rows without one.")
@click.option(
    "--skip-invalid", is_flag=True, help="Publish the valid rows even if some are invalid."
)
def send_csv(path: Path, campaign: str | None, skip_invalid: bool) -> None:
    """Publish one send command per CSV row.

    Re-running the file within the sender's idempotency window (7 days) sends nothing twice.
    """
    from mmbus.publisher import SendCommandPublisher
    from services.campaign_csv import CsvError, read_commands

    settings = _settings()
    configure_logging("WARNING", settings.log_format)
    try:
        commands, errors = read_commands(path, campaign=campaign)
    except CsvError as exc:
        raise click.ClickException(str(exc)) from exc
    for error in errors:
        for problem in error.problems:  # one line each: file:line: problem, as compilers do
            click.echo(f"{path}: line {error.line}: {problem}", err=True)
    if errors and not skip_invalid:
        raise click.ClickException(
            f"{len(errors)} invalid row(s); fix them or pass --skip-invalid. Nothing was published."
        )

    async def publish() -> int:
        async with SendCommandPublisher.from_settings(settings) as publisher:
            with click.progressbar(
                length=len(commands), label="publishing", file=sys.stderr
            ) as bar:
                for start in range(0, len(commands), 500):
                    chunk = commands[start : start + 500]
                    await publisher.publish_many(chunk)
                    bar.update(len(chunk))
        return len(commands)

    published = _run(publish(), kafka=settings)
    click.echo(
        f"published {published} command(s) to {settings.topic_prefix}send.commands"
        + (f"; skipped {len(errors)} invalid row(s)" if errors else "")
    )


# ----------------------------------------------------------------------- run
@cli.command("run")
@_version
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Campaign file (default: demo/campaign.csv).",
)
@click.option("--campaign", default="spring-2026", show_default=True, help="Campaign id.")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Logs and the projection store (default: $MMBUS_HOME/demo).",
)
@click.option("--exit-when-settled", is_flag=True, help="Stop once the campaign has settled.")
def run(
    kafka_version: str,
    csv_path: Path | None,
    campaign: str,
    workdir: Path | None,
    exit_when_settled: bool,
) -> None:
    """The main job: broker, simulator, ingest, sender and projector, and a campaign through them.

    Publishes the campaign CSV (re-running it sends nothing twice), prints the
    funnel, the route split and the onboarding table as events arrive, and
    leaves the query API up until Ctrl-C.
    """
    import httpx

    from mmbus.publisher import SendCommandPublisher
    from services.campaign_csv import CsvError, read_commands
    from services.common.kafka_admin import ensure_project_topics
    from services.demo import DEMO_CSV, DemoError, DemoStack
    from services.localkafka.paths import mmbus_home

    settings = _settings()
    configure_logging("WARNING", settings.log_format)
    csv_path = csv_path or DEMO_CSV
    try:
        commands, errors = read_commands(csv_path, campaign=campaign)
    except CsvError as exc:
        raise click.ClickException(str(exc)) from exc
    if errors:
        raise click.ClickException(
            "; ".join(str(e) for e in errors[:5]) + f" ({len(errors)} invalid row(s))"
        )
    if "MMBUS_KAFKA_BOOTSTRAP_SERVERS" not in os.environ:
        click.echo(
            f"starting the local Kafka {kafka_version} broker (first run fetches the jars"
            f" from Maven Central into {libs_dir(kafka_version).parent})..."
        )
        try:
            result = broker.up("default", version=kafka_version)
        except BrokerError as exc:
            raise click.ClickException(str(exc)) from exc
        bootstrap = result.instance.bootstrap_servers
        settings = settings.model_copy(update={"kafka_bootstrap_servers": bootstrap})
        how = "reused" if result.reused else f"started in {result.seconds:.1f}s"
        click.echo(f"broker ready on {bootstrap} ({how})")
    else:
        _run(_reach(settings))  # before saying so: an unreachable cluster is the one line
        click.echo(f"using the Kafka cluster at {settings.kafka_bootstrap_servers}")
    _run(ensure_project_topics(settings))
    stack = DemoStack(settings, workdir or mmbus_home() / "demo")
    click.echo("starting simulator, ingest, sender and projector...")
    try:
        with stack:
            click.echo(
                f"simulator {stack.simulator_url} | query API {stack.query_url} | "
                f"logs {stack.workdir}"
            )
            click.echo(f"console: open {stack.query_url}/#/campaigns/{campaign} in a browser")

            async def publish() -> None:
                async with SendCommandPublisher.from_settings(settings) as publisher:
                    await publisher.publish_many(commands)

            _run(publish())
            click.echo(f"published {len(commands)} commands of campaign {campaign} ({csv_path})")
            final = stack.settle(campaign, len(commands), on_change=_show_funnel)
            with httpx.Client(timeout=5) as client:
                wabas = client.get(f"{stack.query_url}/v1/wabas").json()["items"]
            _show_settled(final, wabas)
            click.echo(f"try: curl {stack.query_url}/v1/campaigns/{campaign}/funnel")
            if exit_when_settled:
                return
            click.echo(
                f"the console ({stack.query_url}/) and the query API stay up; "
                "Ctrl-C stops everything."
            )
            while True:
                stack.check_alive()
                time.sleep(1)
    except KeyboardInterrupt:
        click.echo("stopping...")
    except DemoError as exc:
        raise click.ClickException(str(exc)) from exc


def _show_funnel(report: dict[str, Any]) -> None:
    f = report["funnel"]
    stages = ("requested", "accepted", "sent", "delivered", "read", "clicked")
    line = " > ".join(f"{name} {f.get(name, 0)}" for name in stages)
    other = ", ".join(
        f"{name} {f[name]}"
        for name in ("failed", "suppressed", "rejected", "indeterminate", "fell_back")
        if f.get(name)
    )
    click.echo(f"funnel: {line}" + (f" | {other}" if other else ""))


def _show_settled(report: dict[str, Any], wabas: list[dict[str, Any]]) -> None:
    click.echo("campaign settled.")
    click.echo("route split:")
    for route, counts in report["by_route"].items():
        click.echo(
            f"  {route:<20} requested {counts.get('requested', 0):>5}  "
            f"accepted {counts.get('accepted', 0):>5}  delivered {counts.get('delivered', 0):>5}  "
            f"read {counts.get('read', 0):>5}"
        )
    billing = ", ".join(f"{k} {v}" for k, v in report["billable_by_category"].items()) or "none"
    click.echo(f"billable by category: {billing}")
    click.echo("onboarding:")
    for waba in wabas:
        click.echo(
            f"  WABA {waba['waba_id']:<18} {waba['status']:<13} (Meta: {waba['meta_status']}, "
            f"via {waba['via']}) numbers {', '.join(waba['phone_numbers']) or '-'}"
        )


def _run(coro: Coroutine[Any, Any, T], *, kafka: KafkaConnection | None = None) -> T:
    """Run ``coro``; with ``kafka``, only once the cluster answers."""

    async def reached() -> T:
        if kafka is not None:
            try:
                await _reach(kafka)
            except BaseException:
                coro.close()  # never started: spares a "was never awaited" warning
                raise
        return await coro

    try:
        return asyncio.run(reached())
    except click.ClickException:
        raise
    except Exception as exc:
        raise click.ClickException(_describe(exc)) from exc


def _serve(kafka: KafkaConnection, main: Main) -> None:
    """Run a service once the cluster answers; the check waits as long as a client's start()."""
    from services.common.lifecycle import run_service

    _run(_reach(kafka))
    run_service(main)


async def _reach(kafka: KafkaConnection) -> None:
    """Bootstrap once before any producer or consumer exists.

    An unreachable cluster then fails here, in one line, rather than in a client's
    start(), which leaves that client unclosed ("Unclosed AIOKafkaProducer") and
    aiokafka's own log line beside the error.
    """
    from aiokafka import AIOKafkaClient
    from aiokafka.errors import KafkaConnectionError

    refusals = _Refusals()
    aiokafka_log = logging.getLogger("aiokafka")
    aiokafka_log.addFilter(refusals)
    client = AIOKafkaClient(client_id="mmbus-cli", **kafka.kafka_client_options())
    try:
        await client.bootstrap()
    except KafkaConnectionError as exc:
        reasons = {reason for _, reason in refusals.reasons}
        # One reason shared by every server is said once; otherwise per server.
        why = "; ".join(
            reasons if len(reasons) == 1 else (f"{s}: {r}" for s, r in refusals.reasons)
        )
        raise click.ClickException(
            f"cannot reach Kafka at {kafka.kafka_bootstrap_servers}"
            + (f" ({why})" if why else "")
            + ": start the local broker with 'mmbus kafka up'"
            " (or set MMBUS_KAFKA_BOOTSTRAP_SERVERS)"
        ) from exc
    finally:
        aiokafka_log.removeFilter(refusals)
        await client.close()


class _Refusals(logging.Filter):
    """aiokafka's bootstrap failures, one per server, kept for the error line instead of logged."""

    def __init__(self) -> None:
        super().__init__()
        self.reasons: list[tuple[str, str]] = []

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # Any other line, or a format this code does not know, goes through as it is.
        if record.msg != 'Unable connect to "%s:%s": %s' or not isinstance(args, tuple):
            return True
        host, port, error = args
        if isinstance(error, OSError) and error.errno:
            # "Connection refused" where asyncio says "Connect call failed ('127.0.0.1', 1)".
            reason = os.strerror(error.errno) if error.errno > 0 else error.strerror or str(error)
        else:
            reason = str(error) or type(error).__name__
        self.reasons.append((f"{host}:{port}", reason))
        return False


def _describe(exc: BaseException) -> str:
    # aiokafka's errors already start with their class name.
    text = str(exc)
    name = type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}"


def main() -> None:
    """Entry point: usage errors and failures print one clear line, never a traceback."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except Exception as exc:
        if os.environ.get("MMBUS_DEBUG"):
            raise
        click.echo(f"error: {_describe(exc)} (set MMBUS_DEBUG=1 for a traceback)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
