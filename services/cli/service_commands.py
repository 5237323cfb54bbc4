"""``mmbus simulator|sender|ingest|projector``: start one long-running part."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from services.common.logging import configure_logging

if TYPE_CHECKING:
    pass

from services.cli.support import (
    load_settings,
    serve,
    store_url_option,
)


@click.command("simulator")
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

    base = load_settings(SimulatorSettings)
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
    seed = settings.seed_file or Path(__file__).parents[1] / "simulator" / "demo_world.yaml"
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
@click.command("sender")
def sender() -> None:
    """Consume send commands, call Meta or 360dialog, publish send events (MMBUS_* settings)."""
    from services.sender.main import run_sender
    from services.sender.settings import SenderSettings

    settings = load_settings(SenderSettings)
    serve(settings, lambda stop: run_sender(settings, stop))


# -------------------------------------------------------------------- ingest
@click.command("ingest")
@click.option("--host", default=None, help="Listen address (MMBUS_INGEST_HOST).")
@click.option("--port", type=int, default=None, help="Port (MMBUS_INGEST_PORT).")
@click.option("--no-normalizer", is_flag=True, help="Only receive; run no normalizer here.")
def ingest(host: str | None, port: int | None, no_normalizer: bool) -> None:
    """Receive Meta's webhooks (signed, stored before 200) and normalise them into events."""
    from services.ingest.main import run_ingest
    from services.ingest.settings import IngestSettings

    settings = load_settings(IngestSettings)
    overrides = {
        k: v for k, v in {"ingest_host": host, "ingest_port": port}.items() if v is not None
    }
    settings = settings.model_copy(update=overrides)
    serve(settings, lambda stop: run_ingest(settings, stop, normalizer=not no_normalizer))


# ---------------------------------------------------------------- projector
@click.command("projector")
@click.option(
    "--store", default=None, callback=store_url_option, help="Store URL (MMBUS_PROJECTOR_STORE)."
)
@click.option("--host", default=None, help="Query API address (MMBUS_PROJECTOR_HTTP_HOST).")
@click.option("--port", type=int, default=None, help="Query API port (MMBUS_PROJECTOR_HTTP_PORT).")
def projector(store: str | None, host: str | None, port: int | None) -> None:
    """Fold the event streams into projections and serve the query API."""
    from services.projections.main import run_projector
    from services.projections.settings import ProjectorSettings
    from services.projections.store import StoreError

    settings = load_settings(ProjectorSettings)
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
        serve(settings, lambda stop: run_projector(settings, stop))
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
