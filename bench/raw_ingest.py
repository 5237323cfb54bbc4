"""The ingest baseline: a bare ASGI endpoint that writes the body to Kafka and answers 200."""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn
from aiokafka import AIOKafkaProducer

producer: AIOKafkaProducer | None = None


def make_app(bootstrap: str, topic: str) -> Any:
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
            await (await producer.send(topic, body))
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"EVENT_RECEIVED"})

    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    args = parser.parse_args()
    uvicorn.run(
        make_app(args.bootstrap, args.topic),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
