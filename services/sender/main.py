"""Composition root of the sender: settings in, clients built, everything started and stopped."""

from __future__ import annotations

import asyncio

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.common.kafka_admin import ensure_project_topics
from services.common.logging import configure_logging, get_logger
from services.common.serving import EmbeddedServer
from services.common.tracing import configure_tracing
from services.sender.graph import GraphClient
from services.sender.runner import Sender
from services.sender.runtime import tune_gc
from services.sender.settings import SenderSettings

log = get_logger("mmbus.sender")


def http_app(sender: Sender) -> Starlette:
    async def metrics(_: Request) -> Response:
        return Response(generate_latest(sender.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def health(_: Request) -> Response:
        ok = sender.fatal is None
        return JSONResponse({"status": "ok" if ok else "failed"}, status_code=200 if ok else 503)

    async def ready(_: Request) -> Response:
        body = {
            "ready": sender.ready,
            "knowledge_caught_up": sender.knowledge_ready.is_set(),
            "consuming": sender.consuming.is_set(),
        }
        return JSONResponse(body, status_code=200 if sender.ready else 503)

    return Starlette(
        routes=[Route("/metrics", metrics), Route("/health", health), Route("/ready", ready)]
    )


async def run_sender(settings: SenderSettings, stop: asyncio.Event) -> None:
    configure_logging(settings.log_level, settings.log_format)
    tracing = configure_tracing("mmbus-sender")
    await ensure_project_topics(settings)
    graph = GraphClient(settings)
    sender = Sender(settings, graph)
    server = EmbeddedServer(
        uvicorn.Config(
            http_app(sender),
            host=settings.sender_http_host,
            port=settings.sender_http_port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
    )
    http = asyncio.create_task(server.serve(), name="sender-http")
    tune_gc()
    log.info(
        "sender starting",
        commands=sender.commands_topic,
        group=settings.sender_group_id,
        rate_per_s=settings.sender_rate_per_s,
    )
    try:
        await sender.run(stop)
    finally:
        server.should_exit = True
        await asyncio.gather(http, return_exceptions=True)
        await graph.aclose()
        if tracing is not None:
            tracing.shutdown()  # the last spans leave before the process does
        log.info("sender stopped")
