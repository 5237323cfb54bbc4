"""Settings shared by every mmbus process, read from ``MMBUS_*`` environment variables.

Each service extends :class:`CommonSettings` with its own fields; the one prefix
keeps every knob discoverable (``env | grep MMBUS_``). The README lists them all
and a test keeps that list complete.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "MMBUS_"


class CommonSettings(BaseSettings):
    # "none" in a variable sets an optional setting to None (e.g. no idempotency limit).
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
    partitions: int = Field(
        default=6,
        ge=1,
        le=10_000,
        description="Partitions of each project topic when the admin helper creates it.",
    )
    replication_factor: int = Field(
        default=1, ge=1, le=32, description="Replication factor of created topics."
    )
    retention_ms: int = Field(
        default=-1,
        ge=-1,
        description="retention.ms of created event topics; -1 keeps the log for audits.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Minimum level of mmbus's own log lines."
    )
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto",
        description="auto: console on a terminal, JSON lines otherwise.",
    )

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
        """Connection options plus the cached default partitioner, for producers."""
        from services.common.partitioner import partition_for

        return {**self.kafka_client_options(), "partitioner": partition_for}
