"""Sender settings: the common ``MMBUS_*`` ones plus ``MMBUS_SENDER_*``-named fields."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from services.common.settings import CommonSettings


class SenderSettings(CommonSettings):
    sender_group_id: str = Field(default="mmbus-sender", description="Consumer group of senders.")
    meta_base_url: str = Field(
        default="https://graph.facebook.com",
        description="Graph API base URL (the simulator's in tests).",
    )
    meta_graph_version: str = Field(default="v23.0", description="Graph API version in the path.")
    meta_access_token: SecretStr = Field(
        default=SecretStr(""), description="System-user access token (never logged)."
    )
    d360_base_url: str = Field(
        default="https://waba-v2.360dialog.io", description="360dialog base URL."
    )
    d360_api_keys: dict[str, SecretStr] = Field(
        default_factory=dict, description="JSON: phone number id -> D360-API-KEY (never logged)."
    )
    sender_rate_per_s: float = Field(
        default=80.0, gt=0, le=1000, description="Messages per second per business number."
    )
    sender_rate_overrides: dict[str, float] = Field(
        default_factory=dict, description="JSON: phone number id -> messages per second (<= 1000)."
    )
    sender_rate_safety: float = Field(
        default=0.92,
        gt=0,
        le=1,
        description=(
            "Fraction of the limit used. Calls reach the API with varying delay (a new "
            "connection costs ~160 ms here), which compresses a second at the API's end; "
            "8 % headroom absorbs it."
        ),
    )
    sender_max_in_flight: int = Field(
        default=2000, ge=1, description="Commands in progress at once."
    )
    sender_max_attempts: int = Field(
        default=8, ge=1, le=100, description="HTTP attempts per command."
    )
    sender_backoff_base_s: float = Field(
        default=0.2, gt=0, description="First retry waits up to this."
    )
    sender_backoff_cap_s: float = Field(default=10.0, gt=0, description="Longest retry wait.")
    sender_pair_window_s: float = Field(
        default=6.0, ge=0, description="One message per user per window per number (131056)."
    )
    sender_http_client: Literal["aiohttp", "httpx"] = Field(
        default="aiohttp",
        description=(
            "aiohttp: HTTP/1.1 keep-alive pool, about a fifth of httpx's CPU per call. "
            "httpx: HTTP/2 where the server offers it."
        ),
    )
    # A call holds its connection from before its attempt record is written (an attempt
    # never waits for a connection after it is durable), so a connection is busy for
    # the attempt's acknowledgement as well as the call. At 256, that cap bound the
    # sender at about 1,800 sends/s in `make bench-sender` where the raw loop, whose
    # calls hold a connection for the call alone, did 2,700 on the same pool.
    sender_http_connections: int = Field(
        default=512,
        ge=1,
        description=(
            "Calls in progress at most, each from before its attempt record to its answer; "
            "also the connections to the API held open at most."
        ),
    )
    sender_connect_timeout_s: float = Field(default=5.0, gt=0)
    sender_read_timeout_s: float = Field(
        default=20.0, gt=0, description="After this the send is ambiguous: send.indeterminate."
    )
    sender_indeterminate_policy: Literal["do_not_resend", "resend"] = Field(
        default="do_not_resend",
        description="A command with an attempt and no result after a restart: report, or resend.",
    )
    sender_template_sync_guard: Literal["hold", "warn", "ignore"] = Field(
        default="warn", description="New (10 min) or dormant (7 days) marketing templates."
    )
    sender_hold_max_s: float = Field(default=900.0, ge=0, description="Longest template-sync hold.")
    sender_commit_interval_s: float = Field(default=0.2, gt=0)
    sender_fetch_max_wait_ms: int = Field(
        default=20,
        ge=0,
        le=5000,
        description=(
            "How long the broker may hold a command fetch that finds nothing new; a partition "
            "emptied meanwhile is refetched only after it (see services/sender/clients.py)."
        ),
    )
    sender_idempotency_window_s: float | None = Field(
        default=7 * 86_400.0,
        ge=0,
        description=(
            "A command id seen within this many seconds is never sent again. The ledger "
            "is rebuilt from this window (and the commit's checkpoint), not the whole "
            "log; 'none' for no limit (every rebuild reads the whole send-event log)."
        ),
    )
    sender_drain_timeout_s: float = Field(
        default=20.0,
        gt=0,
        description=(
            "On revocation or shutdown, how long commands in progress may finish; "
            "then a command in an API call finishes the call and writes its answer, "
            "the rest stop, and the partition's next owner takes them over."
        ),
    )
    sender_session_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description=(
            "How long the group waits for a sender's heartbeat before it evicts it; "
            "the broker accepts 6 to 1800 s by default (group.min/max.session.timeout.ms)."
        ),
    )
    sender_rebalance_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description=(
            "How long the group waits for a sender to rejoin (its drain included). "
            "Must exceed the drain plus one API call (connect and read timeouts): a "
            "sender evicted mid-drain would work on beside the partition's next owner."
        ),
    )
    sender_http_port: int = Field(
        default=9101, ge=0, le=65535, description="Metrics, health and readiness (0: a free port)."
    )
    sender_http_host: str = Field(default="127.0.0.1")

    @model_validator(mode="after")
    def _drain_fits_the_rebalance(self) -> SenderSettings:
        # A command in its API call when the drain runs out finishes the call first
        # (services/sender/stopping.py): connect and read timeouts add to the drain.
        longest = (
            self.sender_drain_timeout_s + self.sender_connect_timeout_s + self.sender_read_timeout_s
        )
        if longest + 5 > self.sender_rebalance_timeout_s:
            raise ValueError(
                "MMBUS_SENDER_REBALANCE_TIMEOUT_S must exceed MMBUS_SENDER_DRAIN_TIMEOUT_S + "
                "MMBUS_SENDER_CONNECT_TIMEOUT_S + MMBUS_SENDER_READ_TIMEOUT_S by 5 s, or the "
                "group evicts a sender while it drains (now "
                f"{self.sender_drain_timeout_s} + {self.sender_connect_timeout_s} + "
                f"{self.sender_read_timeout_s} s against {self.sender_rebalance_timeout_s} s)"
            )
        return self
