"""Composition root of the projector: settings in, store and consumer built, query API served."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from prometheus_client import ProcessCollector

from services.common.kafka_admin import ensure_project_topics
from services.common.logging import configure_logging, get_logger
from services.common.serving import EmbeddedServer
from services.common.tracing import configure_tracing
from services.projections.api import query_app
from services.projections.projection import Projection, choose
from services.projections.projector import Projector
from services.projections.settings import ProjectorSettings
from services.projections.store import Store

log = get_logger("mmbus.projector")


async def run_projector(settings: ProjectorSettings, stop: asyncio.Event) -> None:
    configure_logging(settings.log_level, settings.log_format)
    tracing = configure_tracing("mmbus-projector")  # None unless OTEL_* asks for it
    await ensure_project_topics(settings)
    projection = Projection(choose(settings.projector_projections))
    store = await asyncio.to_thread(Store(settings.projector_store).open)
    projector = Projector(
        settings,
        projection,
        store,
        name=settings.projector_name,
        batch_records=settings.projector_batch_records,
        flush_interval_ms=settings.projector_flush_interval_ms,
    )
    ProcessCollector(registry=projector.metrics.registry)  # process_*: CPU, memory, files
    loaded = await asyncio.to_thread(projector.load_state)
    log.info("projector state loaded", rows=loaded, offsets=len(projector.offsets))

    def status() -> dict[str, Any]:
        return {
            "ready": projector.ready.is_set(),
            "lag": projector.lag(),
            "read": projector.read,
            "failed": None if projector.fatal is None else type(projector.fatal).__name__,
            "anomalies": dict(projector.anomalies),
        }

    server = EmbeddedServer(
        uvicorn.Config(
            query_app(store, ready=status, registry=projector.metrics.registry),
            host=settings.projector_http_host,
            port=settings.projector_http_port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
    )
    http = asyncio.create_task(server.serve(), name="projector-http")
    try:
        await projector.run(stop)
    finally:
        server.should_exit = True
        await asyncio.gather(http, return_exceptions=True)
        await asyncio.to_thread(store.close)
        if tracing is not None:
            tracing.shutdown()  # the last spans leave before the process does
        log.info("projector stopped", read=projector.read)
