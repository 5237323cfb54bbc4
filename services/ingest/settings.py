"""Ingest settings: the common ``MMBUS_*`` ones plus ``MMBUS_INGEST_*``."""

from __future__ import annotations

from pydantic import Field, SecretStr

from services.common.settings import CommonSettings


class IngestSettings(CommonSettings):
    ingest_host: str = Field(default="127.0.0.1", description="Address the receiver listens on.")
    ingest_port: int = Field(default=8080, ge=0, le=65535, description="Port (0: a free one).")
    ingest_app_secrets: list[SecretStr] = Field(
        default_factory=list,
        description="JSON list of app secrets; any one verifies X-Hub-Signature-256 (rotation).",
    )
    ingest_verify_token: SecretStr = Field(
        default=SecretStr(""), description="hub.verify_token expected by the GET challenge."
    )
    ingest_provider_secret: SecretStr | None = Field(
        default=None,
        description="X-Mmbus-Provider-Secret for /webhooks/360dialog; unset: that path is off.",
    )
    ingest_max_body_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, description="Larger bodies get 413."
    )
    ingest_publish_timeout_s: float = Field(
        default=5.0, gt=0, description="Longest wait for Kafka before answering 503."
    )
    normalizer_group_id: str = Field(
        default="mmbus-normalizer", description="Consumer group of the normalizer."
    )
    normalizer_output_prefix: str | None = Field(
        default=None,
        description="Topic prefix of the typed events (default: MMBUS_TOPIC_PREFIX); "
        "a fresh one replays the raw stream into new topics.",
    )
    normalizer_trace_links: int = Field(
        default=100_000,
        ge=0,
        description="With tracing on: how many sends (command ids, wamids, tracking tokens) "
        "the normalizer remembers to link statuses and clicks to their send's trace.",
    )
    normalizer_trace_lookback_s: float = Field(
        default=3600.0,
        ge=0,
        description="With tracing on: how far back the normalizer reads the send streams "
        "at start to learn those traces.",
    )
