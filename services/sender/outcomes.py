"""What an API answer means for a send: accepted, retry, give up, or unknown.

Pure functions over what came back (status, body) or what went wrong (the kind
of transport error); the HTTP adapter turns httpx's exceptions into ``Transport``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal

from mmbus.contracts.send_events import ApiError, IndeterminateCause

# From the design brief: transient failures worth retrying.
RETRYABLE_CODES = frozenset({1, 2, 4, 80007, 130429, 131000, 131016, 131056, 131057, 133004})
THROTTLE_CODE = 130429
PAIR_LIMIT_CODE = 131056


@dataclass(frozen=True)
class Transport:
    """A transport failure. ``sent``: the request may have reached the server."""

    kind: str
    sent: bool


@dataclass(frozen=True)
class Delivered:
    wamid: str
    wa_id: str | None
    message_status: str | None
    http_status: int


@dataclass(frozen=True)
class Retry:
    error: ApiError
    throttled: bool = False
    pair_limited: bool = False


@dataclass(frozen=True)
class Fail:
    error: ApiError


@dataclass(frozen=True)
class Unknown:
    """The API may or may not have the message: never resent blindly."""

    detail: str
    cause: IndeterminateCause = "read_timeout_after_send"


Result = Delivered | Retry | Fail | Unknown


def _api_error(status: int, body: Any) -> ApiError:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return ApiError(http_status=status, message=f"HTTP {status} without a Graph error body")
    details = (
        error.get("error_data", {}).get("details")
        if isinstance(error.get("error_data"), dict)
        else None
    )
    code = error.get("code")
    return ApiError(
        code=code if isinstance(code, int) else None,
        title=error.get("error_user_title") or error.get("type"),
        message=error.get("message"),
        details=details,
        http_status=status,
        fbtrace_id=error.get("fbtrace_id"),
    )


def classify(answer: int | Transport, body: Any = None) -> Result:
    """``answer`` is the HTTP status (with its parsed JSON ``body``) or a transport failure."""
    if isinstance(answer, Transport):
        if answer.sent:
            cause: IndeterminateCause = (
                "read_timeout_after_send"
                if answer.kind == "ReadTimeout"
                else "connection_lost_after_send"
            )
            return Unknown(f"{answer.kind} after the request was sent", cause)
        return Retry(ApiError(message=f"{answer.kind} before the request was sent"))
    status = answer
    if status == 200:
        try:
            message = body["messages"][0]
            contact = (body.get("contacts") or [{}])[0]
            return Delivered(
                wamid=message["id"],
                wa_id=contact.get("wa_id"),
                message_status=message.get("message_status"),
                http_status=status,
            )
        except (KeyError, IndexError, TypeError):
            return Unknown(
                f"HTTP 200 without a message id: {str(body)[:200]}", "answer_without_message_id"
            )
    error = _api_error(status, body)
    if error.code in RETRYABLE_CODES:
        return Retry(
            error, throttled=error.code == THROTTLE_CODE, pair_limited=error.code == PAIR_LIMIT_CODE
        )
    if status >= 500 and (error.code is None or status in {502, 503, 504}):
        return Retry(error)
    return Fail(error)


def backoff_s(attempt: int, *, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Capped exponential backoff with full jitter (attempt 1 is the first retry)."""
    return rng.uniform(0, min(cap_s, base_s * 2 ** (attempt - 1)))


def pair_wait_s(attempt: int, window_s: float) -> float:
    """131056: wait out the pair window, longer each time."""
    return window_s * attempt


IndeterminatePolicy = Literal["do_not_resend", "resend"]
