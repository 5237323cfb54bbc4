"""Projector settings: the common ``MMBUS_*`` ones plus ``MMBUS_PROJECTOR_*``."""

from __future__ import annotations

from pydantic import Field

from services.common.settings import CommonSettings


class ProjectorSettings(CommonSettings):
    projector_store: str = Field(
        default="sqlite:///mmbus-projections.db",
        description="Where projections live: sqlite:///<absolute path>, a file path, "
        "or a postgresql:// DSN.",
    )
    projector_name: str = Field(
        default="mmbus-projector",
        description="Names this projector's offsets in the store (several may share one).",
    )
    projector_projections: list[str] = Field(
        default_factory=lambda: ["delivery", "onboarding", "suppression", "templates"],
        description="JSON list of the projections to maintain.",
    )
    projector_http_host: str = Field(
        default="127.0.0.1", description="Address of the query API, /metrics, /health, /ready."
    )
    projector_http_port: int = Field(
        default=8092, ge=0, le=65535, description="Port of the query API (0: a free one)."
    )
    projector_batch_records: int = Field(
        default=5000, ge=1, description="Most records folded before one store transaction."
    )
    projector_flush_interval_ms: int = Field(
        default=200, ge=1, description="Longest wait for records before a store transaction."
    )
