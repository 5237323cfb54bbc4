"""``mmbus topics`` and ``mmbus schemas``: the catalogue and the contract."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    pass

from services.cli.support import (
    common_settings,
    run_once,
)


@click.group()
def topics() -> None:
    """The project's topics (names, keys, partitions, retention)."""


@topics.command("list")
def topics_list() -> None:
    """Print the topic catalogue as configured by MMBUS_* settings."""
    from services.common.kafka_admin import project_topics

    for spec in project_topics(common_settings()):
        click.echo(
            f"{spec.name:32} key={spec.key:26} partitions={spec.partitions} "
            f"carries={','.join(spec.carries)}"
        )


@topics.command("create")
def topics_create() -> None:
    """Create missing topics on MMBUS_KAFKA_BOOTSTRAP_SERVERS; check the existing ones."""
    from services.common.kafka_admin import ensure_project_topics

    settings = common_settings()
    result = run_once(ensure_project_topics(settings), kafka=settings)
    click.echo(f"created {len(result.created)} topics, {len(result.existing)} already there")


# ------------------------------------------------------------------- schemas
@click.group()
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
