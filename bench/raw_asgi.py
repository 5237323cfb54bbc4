"""The raw baseline: a bare ASGI endpoint answering a send like Meta, with nothing behind it."""

from __future__ import annotations

import argparse
import itertools
from typing import Any

import orjson
import uvicorn

_ids = itertools.count()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    body = orjson.dumps(
        {
            "messaging_product": "whatsapp",
            "contacts": [{"input": "447911123456", "wa_id": "447911123456"}],
            "messages": [{"id": f"wamid.RAW{next(_ids):012d}", "message_status": "accepted"}],
        }
    )
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
