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

from mmbus.connection import KafkaConnection
from mmbus.contracts.codec import DecodeFailure, KafkaRecord, decode, encode
from mmbus.contracts.topics import Stream
from mmbus.publisher import SendCommandPublisher, send_template

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
