"""Settings shared by every mmbus process, read from ``MMBUS_*`` environment variables.

Each service extends :class:`CommonSettings` with its own fields; the one prefix
keeps every knob discoverable (``env | grep MMBUS_``). The README lists them all
and a test keeps that list complete.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mmbus.connection import ENV_PREFIX, KafkaConnection

__all__ = ["ENV_PREFIX", "CommonSettings"]


class CommonSettings(KafkaConnection):
    """The library's connection settings plus what every service shares."""

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
