"""``mmbus``: one console script that starts every part of the system.

Each family of commands lives in its own module; this one assembles them and is
the entry point (usage errors and failures print one clear line).
"""

from __future__ import annotations

import os
import sys

import click

from services.cli.admin_commands import schemas, topics
from services.cli.campaign_commands import run, send_csv
from services.cli.kafka_commands import kafka
from services.cli.replay_commands import replay_cmd
from services.cli.service_commands import ingest, projector, sender, simulator
from services.cli.support import describe


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mmbus")
def cli() -> None:
    """mmbus: WhatsApp marketing messages over Apache Kafka, provably."""


# --------------------------------------------------------------------- kafka


for _command in (kafka, topics, schemas, simulator, sender, ingest, projector, replay_cmd):
    cli.add_command(_command)
cli.add_command(send_csv)
cli.add_command(run)


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
        click.echo(f"error: {describe(exc)} (set MMBUS_DEBUG=1 for a traceback)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
