"""FastStream for mmbus consumers: subscribers that receive typed, upcast events.

    from faststream import FastStream
    from mmbus import KafkaConnection, Stream
    from mmbus.consumer import EventConsumer
    from mmbus.contracts.webhook_events import MessageStatus

    connection = KafkaConnection()
    events = EventConsumer(connection, name="delivery-dashboard")

    @events.subscriber(Stream.MESSAGE_STATUS)
    async def on_status(event: MessageStatus) -> None:
        ...

    app = FastStream(events.broker)

What a subscriber gets:

- **the newest version of the event**, whatever version was written: records
  are decoded by :func:`mmbus.contracts.codec.decode`, which upcasts old
  versions on read (the log is never rewritten);
- **only the types it asked for**: the parameter's annotation (one model, or a
  union of models) is the filter. A stream may carry several types (the account
  stream has ``account.updated`` and ``account.onboarding_observed``); records
  of other types are acknowledged and passed over, not treated as errors;
- **a dead letter instead of a stuck partition**: a record that cannot be
  decoded (not JSON, an unknown type, a newer version than this build knows, a
  message that fails validation) is written to the dead-letter stream with the
  reason and its bytes (:func:`mmbus.dead_letters.dead_letter`), acknowledged
  once the dead letter is durable, and the consumer goes on;
- **at least once**: no auto-commit; the offset is committed after the handler
  returns (FastStream's ``AckPolicy.NACK_ON_ERROR``). A handler that raises
  has its record delivered again (the consumer seeks back to it), and a process
  that dies before the commit reads it again on restart. Events derived from a
  webhook carry deterministic ids, so a handler de-duplicates by ``event.id``.

FastStream's ``TestKafkaBroker`` works with these subscribers unchanged, so a
consumer is tested in memory and against a real broker with the same code.
"""

from __future__ import annotations

import inspect
import ssl
import types
import typing
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from faststream import AckPolicy
from faststream.exceptions import AckMessage
from faststream.kafka import KafkaBroker
from faststream.message import StreamMessage
from faststream.security import (
    BaseSecurity,
    SASLPlaintext,
    SASLScram256,
    SASLScram512,
)

from mmbus.connection import KafkaConnection
from mmbus.contracts.catalogue import LATEST
from mmbus.contracts.codec import DecodeFailure, decode, encode
from mmbus.contracts.envelope import Message
from mmbus.contracts.topics import Stream
from mmbus.dead_letters import dead_letter

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


def security_of(connection: KafkaConnection) -> BaseSecurity | None:
    """FastStream's security object for the connection's protocol and SASL settings."""
    protocol = connection.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl.create_default_context() if protocol.endswith("SSL") else None
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    username = connection.kafka_sasl_username or ""
    password = (
        connection.kafka_sasl_password.get_secret_value() if connection.kafka_sasl_password else ""
    )
    sasl: dict[str, type[SASLPlaintext | SASLScram256 | SASLScram512]] = {
        "PLAIN": SASLPlaintext,
        "SCRAM-SHA-256": SASLScram256,
        "SCRAM-SHA-512": SASLScram512,
    }
    mechanism = connection.kafka_sasl_mechanism
    if mechanism is None:
        raise ValueError(f"{protocol} needs MMBUS_KAFKA_SASL_MECHANISM (PLAIN or SCRAM-SHA-*)")
    return sasl[mechanism](username, password, ssl_context=context, use_ssl=protocol == "SASL_SSL")


def kafka_broker(connection: KafkaConnection, **options: Any) -> KafkaBroker:
    """A FastStream ``KafkaBroker`` for the connection, producing like every mmbus producer.

    Idempotent with ``acks=all`` (a dead letter or a derived event is durable
    before the record it came from is committed) and the Java client's
    partitioner (co-partitioning with records written by other clients).
    """
    defaults: dict[str, Any] = {
        "acks": "all",
        "enable_idempotence": True,
        "partitioner": connection.kafka_producer_options()["partitioner"],
        "security": security_of(connection),
        "client_id": "mmbus-consumer",
    }
    return KafkaBroker(connection.bootstrap_servers, **{**defaults, **options})


def wanted_types(handler: Callable[..., Any]) -> tuple[type[Message], ...]:
    """The event models a handler's first parameter accepts (a model or a union of models)."""
    parameters = list(inspect.signature(handler).parameters.values())
    if not parameters:
        raise TypeError(f"{handler.__qualname__} takes no event parameter")
    hints = typing.get_type_hints(handler)
    annotation = hints.get(parameters[0].name, Any)
    members = (
        typing.get_args(annotation)
        if typing.get_origin(annotation) in (typing.Union, types.UnionType)
        else (annotation,)
    )
    models = tuple(m for m in members if isinstance(m, type) and issubclass(m, Message))
    if not models or len(models) != len(members):
        raise TypeError(
            f"{handler.__qualname__}: annotate its first parameter with mmbus event models "
            f"(e.g. MessageStatus or AccountUpdated | AccountOnboardingObserved), "
            f"not {annotation!r}"
        )
    newest = {LATEST[m.model_fields["type"].default] for m in models}
    if newest != set(models):
        raise TypeError(
            f"{handler.__qualname__}: subscribe to the newest version of each type "
            f"(older ones are upcast on read): {sorted(t.__name__ for t in newest)}"
        )
    return models


class EventConsumer:
    """Registers FastStream subscribers that receive mmbus events (see the module's docstring)."""

    def __init__(
        self,
        connection: KafkaConnection,
        *,
        name: str,
        broker: KafkaBroker | None = None,
    ) -> None:
        self.connection = connection
        self.name = name
        self.broker = broker or kafka_broker(connection, client_id=name)
        self.dead_letter_topic = connection.topic(Stream.DEAD_LETTERS)

    def subscriber(
        self,
        *streams: Stream,
        group_id: str | None = None,
        auto_offset_reset: typing.Literal["earliest", "latest"] = "earliest",
        **options: Any,
    ) -> Callable[[Handler], Handler]:
        """Subscribe a handler to mmbus streams; the group defaults to the consumer's name.

        A new group starts at the beginning of the log (``earliest``): a
        projection is a fold over all of it. ``options`` go to FastStream's
        ``KafkaBroker.subscriber``.
        """
        topics = [self.connection.topic(s) for s in streams]
        if not topics:
            raise TypeError("name at least one stream to subscribe to")
        group = group_id or self.name

        def register(handler: Handler) -> Handler:
            wanted = wanted_types(handler)
            subscriber = self.broker.subscriber(
                *topics,
                group_id=group,
                auto_offset_reset=auto_offset_reset,
                ack_policy=AckPolicy.NACK_ON_ERROR,
                decoder=self._decoder(wanted, group),
                **options,
            )
            subscriber(handler)
            return handler

        return register

    def _decoder(
        self, wanted: tuple[type[Message], ...], group: str
    ) -> Callable[[StreamMessage[Any]], Awaitable[Message]]:
        async def decode_event(message: StreamMessage[Any]) -> Message:
            record = message.raw_message
            decoded = decode(record.value, record.headers)
            if isinstance(decoded, DecodeFailure):
                await self._dead_letter(record, decoded, group)
                raise AckMessage  # the dead letter is durable: the record is done
            if not isinstance(decoded, wanted):
                raise AckMessage  # another type on a shared stream: not this handler's
            return decoded

        return decode_event

    async def _dead_letter(self, record: Any, failure: DecodeFailure, group: str) -> None:
        event = dead_letter(record, failure, consumer=group, source=f"mmbus/consumer/{self.name}")
        encoded = encode(event)
        await self.broker.publish(
            encoded.value,
            self.dead_letter_topic,
            key=encoded.key,
            headers={name: value.decode() for name, value in encoded.headers},
            correlation_id=event.id,
        )
