"""mmbus: the library other teams import to publish send commands and consume mmbus's events.

    from mmbus import KafkaConnection, SendCommandPublisher, send_template, decode

- :mod:`mmbus.contracts`: the command and event models, the codec, the topic catalogue,
  the phone and region rules;
- :mod:`mmbus.publisher`: :func:`send_template` and :class:`SendCommandPublisher`;
- :mod:`mmbus.connection`: :class:`KafkaConnection` (bootstrap servers, security, prefix);
- :mod:`mmbus.consumer`: the FastStream toolkit (typed, upcast events; dead letters);
- :mod:`mmbus.folds`: the pure folds the sender decides with and the projections audit.

It installs with light dependencies (pydantic, orjson, aiokafka, phonenumbers,
FastStream); the services come with the ``services`` extra.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mmbus.connection import KafkaConnection
    from mmbus.contracts.codec import DecodeFailure, KafkaRecord, decode, encode
    from mmbus.contracts.topics import Stream
    from mmbus.publisher import SendCommandPublisher, send_template

# Loaded on first use, so importing one module of the library (the codec, the folds)
# does not start importing the Kafka client: the sender's handler stays free of it.
_EXPORTS = {
    "KafkaConnection": "mmbus.connection",
    "DecodeFailure": "mmbus.contracts.codec",
    "KafkaRecord": "mmbus.contracts.codec",
    "decode": "mmbus.contracts.codec",
    "encode": "mmbus.contracts.codec",
    "Stream": "mmbus.contracts.topics",
    "SendCommandPublisher": "mmbus.publisher",
    "send_template": "mmbus.publisher",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mmbus' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "DecodeFailure",
    "KafkaConnection",
    "KafkaRecord",
    "SendCommandPublisher",
    "Stream",
    "decode",
    "encode",
    "send_template",
]
