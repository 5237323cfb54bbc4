"""``mmbus send-csv`` and ``mmbus run``: publish a campaign, run the demo."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from services.common.logging import configure_logging
from services.localkafka import BrokerError, broker
from services.localkafka.distribution import libs_dir

if TYPE_CHECKING:
    pass

from services.cli.kafka_commands import kafka_version_option
from services.cli.support import (
    common_settings,
    reach,
    run_once,
)


@click.command("send-csv")
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

    settings = common_settings()
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

    published = run_once(publish(), kafka=settings)
    click.echo(
        f"published {published} command(s) to {settings.topic_prefix}send.commands"
        + (f"; skipped {len(errors)} invalid row(s)" if errors else "")
    )


# ----------------------------------------------------------------------- run
@click.command("run")
@kafka_version_option
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

    settings = common_settings()
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
        run_once(reach(settings))  # before saying so: an unreachable cluster is the one line
        click.echo(f"using the Kafka cluster at {settings.kafka_bootstrap_servers}")
    run_once(ensure_project_topics(settings))
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

            run_once(publish())
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
