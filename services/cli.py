"""``mmbus``: one console script that starts every part of the system."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from services.common.logging import configure_logging
from services.common.settings import CommonSettings
from services.localkafka import DEFAULT_KAFKA_VERSION, BrokerError, broker
from services.localkafka.distribution import DistributionError, fetch_distribution, libs_dir


def _settings() -> CommonSettings:
    try:
        return CommonSettings()
    except Exception as exc:  # pydantic's ValidationError names the variable and the problem
        raise click.ClickException(f"invalid MMBUS_* setting: {exc}") from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mmbus")
def cli() -> None:
    """mmbus: WhatsApp marketing messages over Apache Kafka, provably."""


# --------------------------------------------------------------------- kafka
@cli.group()
def kafka() -> None:
    """A local single-node Apache Kafka broker (KRaft) on 127.0.0.1, without Docker."""


_name = click.option("--name", default="default", show_default=True, help="Instance name.")
_version = click.option(
    "--version",
    "kafka_version",
    default=lambda: os.environ.get("MMBUS_KAFKA_VERSION", DEFAULT_KAFKA_VERSION),
    show_default=f"$MMBUS_KAFKA_VERSION or {DEFAULT_KAFKA_VERSION}",
    help="Apache Kafka version (org.apache.kafka:kafka_2.13 on Maven Central).",
)


@kafka.command("up")
@_name
@_version
@click.option("--port", type=click.IntRange(1, 65535), help="Broker port (default 9092).")
@click.option("--free-ports", is_flag=True, help="Pick free ports on first start.")
@click.option("--heap", default="1g", show_default=True, help="JVM maximum heap.")
@click.option("--json", "as_json", is_flag=True, help="Print the instance as JSON.")
def kafka_up(
    name: str, kafka_version: str, port: int | None, free_ports: bool, heap: str, as_json: bool
) -> None:
    """Start the broker, or reuse it when it already runs; wait until it answers."""
    try:
        result = broker.up(name, version=kafka_version, port=port, free_ports=free_ports, heap=heap)
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


@kafka.command("down")
@_name
@click.option("--all", "all_", is_flag=True, help="Every instance this tool started.")
@click.option("--purge", is_flag=True, help="Also delete the instance's data and logs.")
@click.option("--kill", is_flag=True, help="SIGKILL instead of a clean shutdown.")
def kafka_down(name: str, all_: bool, purge: bool, kill: bool) -> None:
    """Stop a broker this tool started (never anyone else's)."""
    names = broker.instance_names() if all_ else [name]
    try:
        for each in names:
            stopped = broker.down(each, purge=purge, kill=kill)
            click.echo(
                f"kafka '{each}': {'stopped' if stopped else 'was not running'}"
                + (" (data purged)" if purge else "")
            )
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from exc


@kafka.command("status")
@_name
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def kafka_status(name: str, as_json: bool) -> None:
    """Say whether the broker runs and answers; exit 1 when it does not."""
    try:
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

    result = _run(ensure_project_topics(_settings()))
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
    from services.contracts.schemas import drift, export

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

    try:
        base = SimulatorSettings()
    except Exception as exc:
        raise click.ClickException(f"invalid MMBUS_SIMULATOR_* setting: {exc}") from exc
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
    from services.common.lifecycle import run_until_stopped
    from services.sender.main import run_sender
    from services.sender.settings import SenderSettings

    try:
        settings = SenderSettings()
    except Exception as exc:
        raise click.ClickException(f"invalid MMBUS_* setting: {exc}") from exc
    asyncio.run(run_until_stopped(lambda stop: run_sender(settings, stop)))


# -------------------------------------------------------------------- ingest
@cli.command("ingest")
@click.option("--host", default=None, help="Listen address (MMBUS_INGEST_HOST).")
@click.option("--port", type=int, default=None, help="Port (MMBUS_INGEST_PORT).")
@click.option("--no-normalizer", is_flag=True, help="Only receive; run no normalizer here.")
def ingest(host: str | None, port: int | None, no_normalizer: bool) -> None:
    """Receive Meta's webhooks (signed, stored before 200) and normalise them into events."""
    from services.common.lifecycle import run_until_stopped
    from services.ingest.main import run_ingest
    from services.ingest.settings import IngestSettings

    try:
        settings = IngestSettings()
    except Exception as exc:
        raise click.ClickException(f"invalid MMBUS_* setting: {exc}") from exc
    overrides = {
        k: v for k, v in {"ingest_host": host, "ingest_port": port}.items() if v is not None
    }
    settings = settings.model_copy(update=overrides)
    asyncio.run(
        run_until_stopped(lambda stop: run_ingest(settings, stop, normalizer=not no_normalizer))
    )


# ----------------------------------------------------------------------- run
@cli.command("run")
@_version
def run(kafka_version: str) -> None:
    """The main job: start the local broker, create the topics and show them working.

    Later issues add the simulator, ingest, sender and projector to this job.
    """
    from services.selfcheck import self_check

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
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
        click.echo(f"using the Kafka cluster at {settings.kafka_bootstrap_servers}")
    check = _run(self_check(settings))
    click.echo(
        f"topics: {len(check.topics.created)} created, {len(check.topics.existing)} "
        f"already there (prefix {settings.topic_prefix!r})"
    )
    click.echo(
        f"round trip: produced (acks=all, idempotent) and consumed a record in "
        f"{check.round_trip_ms:.0f} ms"
    )
    click.echo("ready. Stop the broker with: .venv/bin/mmbus kafka down")


def _run(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except click.ClickException:
        raise
    except Exception as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc


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
        click.echo(
            f"error: {type(exc).__name__}: {exc} (set MMBUS_DEBUG=1 for a traceback)", err=True
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
