"""How a producer or consumer reaches the cluster: the connection settings of the library.

A team that publishes commands or builds its own projection needs the bootstrap
servers, the security settings and the topic prefix, nothing of the services'
knobs. They are read from the same ``MMBUS_*`` variables the services read, so a
deployment configures one cluster once:

    connection = KafkaConnection()                      # from MMBUS_* variables
    connection = KafkaConnection(kafka_bootstrap_servers="broker1:9092", topic_prefix="acme.")
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from mmbus.contracts.topics import Stream, topic_name
from mmbus.partitioner import partition_for

ENV_PREFIX = "MMBUS_"


class KafkaConnection(BaseSettings):
    # "none" in a variable sets an optional setting to None (e.g. no SASL mechanism).
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="ignore", env_parse_none_str="none"
    )

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        description="Comma-separated Kafka bootstrap servers.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="Security protocol to the brokers."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, description="SASL mechanism when the protocol is SASL_*."
    )
    kafka_sasl_username: str | None = Field(default=None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(
        default=None, description="SASL password (never logged)."
    )
    topic_prefix: str = Field(
        default="mmbus.",
        description="Prefix of every topic name, so several deployments share a cluster.",
    )

    def topic(self, stream: Stream) -> str:
        """The full name of one of the project's streams under this prefix."""
        return topic_name(stream, self.topic_prefix)

    @property
    def bootstrap_servers(self) -> list[str]:
        """The bootstrap servers one by one: FastStream takes a single string as one host."""
        return [s.strip() for s in self.kafka_bootstrap_servers.split(",") if s.strip()]

    def kafka_client_options(self) -> dict[str, object]:
        """Connection options for any aiokafka client, from these settings."""
        options: dict[str, object] = {
            "bootstrap_servers": self.kafka_bootstrap_servers,
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            options["sasl_mechanism"] = self.kafka_sasl_mechanism
            options["sasl_plain_username"] = self.kafka_sasl_username
            options["sasl_plain_password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
            )
        return options

    def kafka_producer_options(self) -> dict[str, object]:
        """Connection options plus the Java client's partitioner (hash cached), for producers.

        Co-partitioning (a command and its results on the same partition number)
        relies on every producer placing a key where the Java client would.
        """
        return {**self.kafka_client_options(), "partitioner": partition_for}
