"""structlog, configured once per process.

JSON lines when stdout is not a terminal (what log shippers want), a readable
console otherwise. Two processors run on every line, ours and the libraries'
(aiokafka, uvicorn, httpx go through the same chain): secrets are redacted and
phone numbers masked, so neither reaches a log file however it got there.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, Literal

import orjson
import structlog

REDACTED = "[REDACTED]"

# Keys whose values are credentials, whatever their nesting.
_SECRET_KEY = re.compile(
    r"(token|secret|password|passwd|authorization|api[-_]?key|signature|cookie|credential)",
    re.IGNORECASE,
)
# Credentials embedded in free text: query strings, headers echoed in messages.
_SECRET_IN_TEXT = [
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + REDACTED),
    (
        re.compile(
            r"(?i)\b((?:hub\.)?verify_token|access_token|api_key|app_secret|d360-api-key)"
            r"([=:]\s*)[^&\s\"',;]+"
        ),
        r"\1\2" + REDACTED,
    ),
    (re.compile(r"(?i)\bsha256=[0-9a-f]{16,}"), "sha256=" + REDACTED),
]
# Keys that hold a person's phone number (Meta's and ours). Business identifiers
# such as phone_number_id and waba_id are not personal and stay readable.
_PHONE_KEYS = frozenset(
    {
        "to",
        "from",
        "wa_id",
        "recipient_id",
        "recipient",
        "phone",
        "phone_number",
        "msisdn",
        "input",
        "user_wa_id",
        "display_phone_number_user",
    }
)
# A phone number in free text: E.164 with its plus sign.
_PHONE_IN_TEXT = re.compile(r"\+\d[\d ()-]{6,18}\d")


def mask_phone(value: str) -> str:
    """Keep the first two and last two digits: enough to tell numbers apart in a log."""
    digits = re.sub(r"\D", "", value)
    if len(digits) <= 4:
        return "*" * len(digits)
    return digits[:2] + "*" * (len(digits) - 4) + digits[-2:]


def _scrub_text(text: str) -> str:
    for pattern, replacement in _SECRET_IN_TEXT:
        text = pattern.sub(replacement, text)
    return _PHONE_IN_TEXT.sub(lambda m: "+" + mask_phone(m.group(0)), text)


def _scrub(key: str | None, value: Any) -> Any:
    if key is not None and _SECRET_KEY.search(key) and value is not None:
        return REDACTED
    if isinstance(value, Mapping):
        return {k: _scrub(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(key, v) for v in value]
    if key is not None and key.lower() in _PHONE_KEYS and isinstance(value, str | int):
        return mask_phone(str(value))
    if isinstance(value, str):
        return _scrub_text(value)
    return value


def scrub_event(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: redact secrets and mask phone numbers in every field."""
    for key in list(event_dict):
        if key in {"timestamp", "level", "logger"}:
            continue
        event_dict[key] = _scrub(None if key == "event" else key, event_dict[key])
    return event_dict


_configured = False


def configure_logging(
    level: str = "INFO",
    fmt: Literal["auto", "json", "console"] = "auto",
    *,
    stream: Any = None,
    force: bool = False,
) -> None:
    """Configure structlog and the standard library's logging once per process."""
    global _configured
    if _configured and not force:
        return
    out = stream if stream is not None else sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        scrub_event,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=lambda obj, **_: orjson.dumps(obj).decode())
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Libraries log at their own level; mmbus's level must not unmute their chatter.
    for noisy in ("aiokafka", "kafka", "httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    _configured = True


def get_logger(name: str | None = None) -> Any:
    return structlog.stdlib.get_logger(name)
