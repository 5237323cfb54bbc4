"""Projector settings: the common ``MMBUS_*`` ones plus ``MMBUS_PROJECTOR_*``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator

from services.common.settings import CommonSettings

STORE_FORMS = "sqlite:///<absolute path>, a file path, or a postgresql:// DSN"
# A URL scheme (RFC 3986) before the first colon; a bare file path has none.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
# libpq's keyword form ("host=db dbname=mmbus") would otherwise name a SQLite file.
_KEYWORD_DSN = re.compile(r"^\s*[A-Za-z_]+\s*=")
# user:password@ in any URL, whether or not it parses (an unparsable one is in errors too).
_PASSWORD = re.compile(r"(://[^:/@]*:)[^@/]*@")


@dataclass(frozen=True)
class StoreLocation:
    kind: Literal["sqlite", "postgresql"]
    # The SQLite file (or ":memory:"), or the DSN handed to psycopg as written.
    target: str


def parse_store_url(url: str) -> StoreLocation:
    """Where a store URL points; ValueError, naming the accepted forms, for anything else.

    ``sqlite:///`` is followed by the path as SQLAlchemy reads it: ``sqlite:////var/x.db``
    is absolute, ``sqlite:///x.db`` relative to the working directory.
    """
    if not url.strip():
        raise ValueError(f"the store URL is empty; use {STORE_FORMS}")
    if _KEYWORD_DSN.match(url):
        raise ValueError(f"write PostgreSQL as a postgresql:// URL; use {STORE_FORMS}")
    scheme = _SCHEME.match(url)
    if scheme is None:
        return StoreLocation("sqlite", url)
    name = scheme.group(1)
    if name in ("postgresql", "postgres"):
        if url.startswith(f"{name}://"):
            return StoreLocation("postgresql", url)
        raise ValueError(f"a PostgreSQL DSN starts with {name}://; use {STORE_FORMS}")
    if name != "sqlite":
        raise ValueError(f"unknown store scheme {name!r}; use {STORE_FORMS}")
    if not url.startswith("sqlite:///"):
        raise ValueError(f"a sqlite URL is sqlite:/// and the file's path; use {STORE_FORMS}")
    path = url.removeprefix("sqlite:///")
    if not path or "?" in path:
        raise ValueError(f"a sqlite URL needs a file path and takes no options; use {STORE_FORMS}")
    return StoreLocation("sqlite", path)


def safe_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return _PASSWORD.sub(r"\1***@", url)


class ProjectorSettings(CommonSettings):
    projector_store: str = Field(
        default="sqlite:///mmbus-projections.db",
        description=f"Where projections live: {STORE_FORMS}.",
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

    @field_validator("projector_store")
    @classmethod
    def _store(cls, value: str) -> str:
        parse_store_url(value)  # refused here, before a SQLite file is named after a typo
        return value
