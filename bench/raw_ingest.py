"""The ingest baseline: a bare ASGI endpoint that writes the body to Kafka and answers 200.

``--same-record`` makes the write the same kind of record ingest writes: keyed
by a WABA id and carrying eight CloudEvents headers (fixed values: computing
them is ingest's work, not the baseline's). Without it, the value alone.
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn
from aiokafka import AIOKafkaProducer

producer: AIOKafkaProducer | None = None


KEY = b"102290129340398"
HEADERS = [
    ("ce_specversion", b"1.0"),
    ("ce_id", b"e01cdfdc-2e60-52e1-8e30-9dd0395f2908"),
    ("ce_type", b"webhook.received"),
    ("ce_source", b"mmbus/ingest"),
    ("ce_subject", b"102290129340398"),
    ("ce_time", b"2026-11-22T01:07:39.859966Z"),
    ("ce_schemaversion", b"1"),
    ("content-type", b"application/json"),
]


def make_app(bootstrap: str, topic: str, same_record: bool = False) -> Any:
    key = KEY if same_record else None
    headers = HEADERS if same_record else None

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        global producer
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    producer = AIOKafkaProducer(
                        bootstrap_servers=bootstrap,
                        acks="all",
                        enable_idempotence=True,
                        linger_ms=2,
                    )
                    await producer.start()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    if producer is not None:
                        await producer.stop()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        status = 200
        if scope["method"] == "POST":
            assert producer is not None
            await (await producer.send(topic, body, key=key, headers=headers))
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"EVENT_RECEIVED"})

    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--same-record", action="store_true")
    args = parser.parse_args()
    uvicorn.run(
        make_app(args.bootstrap, args.topic, args.same_record),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
