"""Composition root of ingest: the receiver (uvicorn) and the normalizer in one process."""

from __future__ import annotations

import asyncio

import uvicorn
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry, Gauge, ProcessCollector

from mmbus.contracts.sizes import record_bound
from services.common.kafka_admin import ensure_project_topics
from services.common.logging import configure_logging, get_logger
from services.common.serving import EmbeddedServer
from services.common.tracing import configure_tracing
from services.ingest.capacity import check_capacity
from services.ingest.normalizer import Normalizer
from services.ingest.receiver import create_receiver
from services.ingest.settings import IngestSettings

log = get_logger("mmbus.ingest")


async def run_ingest(
    settings: IngestSettings, stop: asyncio.Event, *, normalizer: bool = True
) -> None:
    configure_logging(settings.log_level, settings.log_format)
    tracing = configure_tracing("mmbus-ingest")  # None unless OTEL_* asks for it
    if not settings.ingest_app_secrets:
        log.warning("no MMBUS_INGEST_APP_SECRETS: every Meta webhook will be refused with 401")
    await ensure_project_topics(settings)
    if normalizer and settings.normalizer_output_prefix:
        await ensure_project_topics(settings, settings.normalizer_output_prefix)
    # Before any webhook is taken: a topic that cannot hold what the limit allows
    # would refuse those webhooks one by one.
    await check_capacity(settings, normalizer=normalizer)

    async def start_producer() -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            # One WABA's webhooks share a partition, and an idempotent producer has one
            # request in flight per partition: 16 KB batches (the default) held ~16 webhooks.
            max_batch_size=1024 * 1024,
            # aiokafka checks each record against this before sending (1 MiB by default,
            # which refused bodies of about half that): the largest record the limit allows.
            max_request_size=record_bound(settings.ingest_max_body_bytes),
            client_id="mmbus-ingest",
            **settings.kafka_producer_options(),
        )
        await producer.start()
        return producer

    registry = CollectorRegistry()
    ProcessCollector(registry=registry)  # process_*: CPU, memory, open files
    receiver = create_receiver(settings, await start_producer(), registry, start_producer)
    normalizer_part = Normalizer(settings)
    Gauge(
        "mmbus_ingest_normalizer_lag_records",
        "Raw records not yet normalised (as of the last batch).",
        registry=registry,
    ).set_function(lambda: normalizer_part.lag)
    server = EmbeddedServer(
        uvicorn.Config(
            receiver,
            host=settings.ingest_host,
            port=settings.ingest_port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
    )
    tasks = [asyncio.create_task(server.serve(), name="ingest-http")]
    if normalizer:
        tasks.append(asyncio.create_task(normalizer_part.run(stop), name="normalizer"))
    log.info("ingest listening", host=settings.ingest_host, port=settings.ingest_port)
    stopping = asyncio.create_task(stop.wait())
    try:
        # A part that dies must not leave the rest running as if all were well.
        done, _ = await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            error = None if task is stopping else task.exception()
            if error is not None:
                log.error("ingest part failed; stopping", part=task.get_name(), error=repr(error))
                raise error
    finally:
        # Stop taking requests, let in-flight ones get their Kafka answer, then flush.
        stop.set()
        stopping.cancel()
        server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
        await receiver.storage.close()
        if tracing is not None:
            tracing.shutdown()  # the last spans leave before the process does
        log.info("ingest stopped")
