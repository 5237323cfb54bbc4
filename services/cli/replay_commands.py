"""``mmbus replay``: rebuild the projections for an audit, on one host or several."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from services.common.logging import configure_logging
from services.common.settings import CommonSettings

if TYPE_CHECKING:
    from datetime import datetime


from services.cli.support import (
    common_settings,
    run_once,
    store_url_option,
)


@click.command("replay")
@click.option(
    "--store",
    default=None,
    callback=store_url_option,
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
    callback=store_url_option,
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

    settings = common_settings()
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

            report = run_once(
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
    from services.projections.shard import state_out_of_gc
    from services.projections.store import Store, StoreError

    if plan_only:
        plan = run_once(
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
        shard_run = steps.run_shard(settings, plan, shard, directory, progress=progress)
        run_once(shard_run, kafka=settings)
        click.echo(f"worker {shard} of plan {plan.id}: wrote {directory}/part-{shard}.jsonl")
        return None
    with Store(store_url) if store_url else nullcontext() as store:
        if store is not None and not store.is_empty():
            raise StoreError(
                f"{store_url} already holds projections; a replay needs a fresh store "
                "(a new file or database)"
            )
        with state_out_of_gc():  # left once the state is dropped: see its docstring
            report = steps.complete(
                plan,
                steps.read_parts(directory, plan, range(len(plan.shards))),
                store,
                name="mmbus-replay",
            )
        return report.as_dict()


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
