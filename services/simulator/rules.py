"""What the Graph API would answer to a send, as a pure function.

Two phases, both pure: ``route(world, call)`` checks everything that depends on
the world alone; ``admit(candidate, bucket, last_sent, now, window)`` applies the
throughput and pair limits to the values the adapter keeps per number and per
user. No I/O, no clock, no randomness: the adapter passes ``now`` and any dice.
Error codes, messages and HTTP statuses follow Meta's documentation (seeds/).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from mmbus.contracts.phone import region_of
from mmbus.contracts.regions import MARKETING_BLOCKED_REGIONS, SANCTIONED_REGIONS
from services.simulator.limits import Bucket, pair_allows
from services.simulator.world import Template, World

Endpoint = Literal["messages", "marketing_messages"]
Route = Literal["marketing_messages", "cloud_api", "cloud_api_fallback"]


@dataclass(frozen=True)
class SendCall:
    endpoint: Endpoint
    provider: Literal["meta", "360dialog"]
    phone_number_id: str | None
    credential: str | None
    body: Any


@dataclass(frozen=True)
class GraphError:
    http_status: int
    code: int
    message: str
    details: str | None = None
    type: str = "OAuthException"
    subcode: int | None = None


@dataclass(frozen=True)
class LaterFailure:
    """A failure Meta reports asynchronously, by a `failed` status webhook."""

    code: int
    title: str
    details: str


@dataclass(frozen=True)
class Accepted:
    phone_number_id: str
    waba_id: str
    to: str
    template: Template
    route: Route
    pricing_category: str
    activity_sharing: bool
    later_failure: LaterFailure | None
    callback_data: str | None


@dataclass(frozen=True)
class Candidate:
    """A send the world allows, before throughput and pair limits."""

    accepted: Accepted
    throughput_per_s: int


Outcome = Accepted | GraphError


def _error(http: int, code: int, message: str, details: str | None = None, **kw: Any) -> GraphError:
    return GraphError(http, code, f"(#{code}) {message}", details, **kw)


def _template_fields(body: Any) -> tuple[str, str, str] | GraphError:
    if not isinstance(body, dict):
        return _error(400, 100, "Invalid parameter", "The request body must be a JSON object")
    if body.get("messaging_product") != "whatsapp":
        return _error(400, 100, "Invalid parameter", "messaging_product must be 'whatsapp'")
    if body.get("type", "template") != "template":
        return _error(400, 100, "Invalid parameter", "only template messages are simulated")
    to = body.get("to")
    template = body.get("template")
    if not isinstance(to, str) or not to:
        return _error(400, 100, "Invalid parameter", "Parameter 'to' is required")
    if not isinstance(template, dict) or not isinstance(template.get("name"), str):
        return _error(400, 100, "Invalid parameter", "Parameter 'template.name' is required")
    language = template.get("language")
    if not isinstance(language, dict) or not isinstance(language.get("code"), str):
        return _error(
            400, 100, "Invalid parameter", "Parameter 'template.language.code' is required"
        )
    return re.sub(r"\D", "", to), template["name"], language["code"]


def _later_failure(to: str, category: str, stopped: frozenset[str]) -> LaterFailure | None:
    region = region_of(to)
    if region in SANCTIONED_REGIONS:
        return LaterFailure(
            131026, "Message undeliverable", f"recipient region {region} is sanctioned"
        )
    if category != "MARKETING":
        return None
    if region in MARKETING_BLOCKED_REGIONS:
        return LaterFailure(
            131049,
            "This message was not delivered to maintain healthy ecosystem engagement.",
            "Marketing messages cannot be delivered to US recipients",
        )
    if to in stopped:
        return LaterFailure(
            131050,
            "Unable to deliver the message. This recipient has chosen to stop receiving "
            "marketing messages on WhatsApp from your business.",
            "The user stopped marketing messages",
        )
    return None


def route(world: World, call: SendCall) -> Candidate | GraphError:
    """Everything Meta checks before throughput: auth, number, body, template, route."""
    number_id = call.phone_number_id
    # Authentication first: Meta answers 401 before looking at anything else.
    if call.provider == "360dialog":
        number_id = world.d360_api_keys.get(call.credential or "")
        if number_id is None:
            return _error(401, 190, "Invalid D360-API-KEY")
    elif call.credential not in world.access_tokens:
        return _error(401, 190, "Invalid OAuth access token - Cannot parse access token")
    number = world.number(number_id or "")
    if number is None:
        return _error(
            400,
            100,
            f"Unsupported post request. Object with ID '{number_id}' does not exist",
            subcode=33,
            type="GraphMethodException",
        )
    waba = world.waba(number.waba_id)
    if waba is None:
        return _error(500, 1, "An unknown error occurred", f"number {number.id} has no WABA")
    fields = _template_fields(call.body)
    if isinstance(fields, GraphError):
        return fields
    to, name, language = fields
    template = world.template(waba.id, name, language)
    if template is None or template.status != "APPROVED":
        state = "does not exist" if template is None else f"is {template.status}"
        return _error(
            404,
            132001,
            "Template name does not exist in the translation",
            f"template name ({name}) {state} in {language}",
        )
    body: dict[str, Any] = call.body
    marketing = template.category == "MARKETING"
    chosen: Route
    if call.endpoint == "marketing_messages":
        if not marketing:
            return _error(
                400,
                100,
                "Invalid parameter",
                f"Only MARKETING templates can be sent through /marketing_messages; "
                f"{name} is {template.category}",
            )
        if waba.onboarding_status == "ONBOARDED":
            chosen = "marketing_messages"
        elif body.get("product_policy", "CLOUD_API_FALLBACK") == "STRICT":
            return _error(
                400,
                100,
                "You need to sign the testing legal agreement before sending out messages.",
                "The WABA has not completed Marketing Messages API onboarding and "
                "product_policy is STRICT",
            )
        elif waba.disable_marketing_messages_on_cloud_api:
            return _disabled_on_cloud_api()
        else:
            chosen = "cloud_api_fallback"
    else:
        if marketing and template.bid_spec is not None:
            return _error(
                400,
                131061,
                "Marketing templates containing bid_spec are not supported by the Cloud API.",
                "Send to the /marketing_messages endpoint instead.",
            )
        if marketing and waba.disable_marketing_messages_on_cloud_api:
            return _disabled_on_cloud_api()
        chosen = "cloud_api"
    sharing = body.get("message_activity_sharing")
    return Candidate(
        accepted=Accepted(
            phone_number_id=number.id,
            waba_id=waba.id,
            to=to,
            template=template,
            route=chosen,
            pricing_category="marketing_lite"
            if chosen == "marketing_messages"
            else template.category.lower(),
            activity_sharing=bool(sharing) if sharing is not None else True,
            later_failure=_later_failure(to, template.category, world.stopped_marketing),
            callback_data=body.get("biz_opaque_callback_data"),
        ),
        throughput_per_s=number.throughput_per_s,
    )


def admit(
    candidate: Candidate,
    bucket: Bucket | None,
    last_sent: float | None,
    now: float,
    pair_window_s: float,
) -> tuple[Outcome, Bucket]:
    """Throughput (130429) then pair limit (131056); returns the number's new bucket."""
    rate = float(candidate.throughput_per_s)
    allowed, bucket = (bucket or Bucket.full(rate, now)).take(now, rate)
    if not allowed:
        return (
            _error(
                400,
                130429,
                "Rate limit hit",
                f"Cloud API message throughput ({candidate.throughput_per_s}/s) has been reached.",
            ),
            bucket,
        )
    if not pair_allows(last_sent, now, pair_window_s):
        return (
            _error(
                400,
                131056,
                "(Business Account, Consumer Account) pair rate limit hit",
                "Too many messages sent from this phone number to the same phone number "
                "in a short period of time",
            ),
            bucket,
        )
    return candidate.accepted, bucket


def _disabled_on_cloud_api() -> GraphError:
    return _error(
        400,
        131063,
        "Marketing templates disabled for Cloud API",
        "Your template is categorized as Marketing, but marketing templates are currently "
        "disabled for your Cloud API configuration. To send this template, use the Marketing "
        "Messages API for WhatsApp or enable marketing templates on Cloud API by turning off "
        "disable_marketing_messages_on_cloud_api.",
    )
