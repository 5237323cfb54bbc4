"""Simulator settings: ``MMBUS_SIMULATOR_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class SimulatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MMBUS_SIMULATOR_", frozen=True, extra="ignore")

    host: str = Field(default="127.0.0.1", description="Address the simulator listens on.")
    port: int = Field(default=8090, ge=0, le=65535, description="Port (0 picks a free one).")
    seed_file: Path | None = Field(default=None, description="YAML/JSON world to start with.")
    webhook_url: str | None = Field(
        default=None, description="Where Meta webhooks are POSTed (ingest); none: not sent."
    )
    d360_webhook_url: str | None = Field(
        default=None, description="Where webhooks of 360dialog sends go; default webhook_url."
    )
    app_secret: SecretStr = Field(
        default=SecretStr("sim-app-secret"), description="Signs X-Hub-Signature-256."
    )
    d360_webhook_secret: SecretStr | None = Field(
        default=None, description="Sent as X-Mmbus-Provider-Secret on 360dialog webhooks."
    )
    random_seed: int = Field(
        default=7, description="Seed of every random choice (repeatable runs)."
    )
    max_recorded_calls: int = Field(default=1_000_000, ge=0)
