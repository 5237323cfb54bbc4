"""What the sender's spans say: attributes of the outcome, of the HTTP call, of its answer.

The spans themselves are opened in :mod:`services.sender.handler`; these helpers
keep the OpenTelemetry semantic conventions in one place.
"""

from __future__ import annotations

from opentelemetry import trace

from mmbus.contracts.commands import SendTemplateData
from services.sender.outcomes import Delivered, Fail, Result, Retry, Unknown
from services.sender.routing import Send


def outcome(event_type: str, *, reason: str | None = None) -> None:
    """The command's result on its span (the current one is its process span or a child)."""
    span = trace.get_current_span()
    span.set_attribute("mmbus.outcome", event_type)
    if reason is not None:
        span.set_attribute("mmbus.reason", reason)


def http_attributes(data: SendTemplateData, plan: Send) -> dict[str, str]:
    # HTTP client semantic conventions; the URL names the endpoint, never the token.
    return {
        "http.request.method": "POST",
        "server.address": data.provider,
        "url.template": f"/{{phone_number_id}}/{plan.endpoint}",
        "mmbus.endpoint": plan.endpoint,
    }


def record_answer(span: trace.Span, result: Result) -> None:
    status = result.http_status if isinstance(result, Delivered) else None
    if isinstance(result, Retry | Fail):
        status = result.error.http_status
        if result.error.code is not None:
            span.set_attribute("mmbus.error_code", result.error.code)
        span.set_status(trace.StatusCode.ERROR)
    if status is not None:
        span.set_attribute("http.response.status_code", status)
    if isinstance(result, Unknown):
        span.set_attribute("error.type", result.cause)
        span.set_status(trace.StatusCode.ERROR)
