"""What the Graph API would answer to a send, as a pure function.

``evaluate(world, limits, call, now)`` returns the outcome and the new limits.
No I/O, no clock, no randomness: the adapter passes ``now`` and draws any dice.
Error codes, messages and HTTP statuses follow Meta's documentation (seeds/).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from services.contracts.phone import region_of
from services.contracts.regions import MARKETING_BLOCKED_REGIONS, SANCTIONED_REGIONS
from services.simulator.limits import Limits
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


def evaluate(world: World, limits: Limits, call: SendCall, now: float) -> tuple[Outcome, Limits]:
    # Authentication first: Meta answers 401 before looking at anything else.
    number_id = call.phone_number_id
    if call.provider == "360dialog":
        number_id = world.d360_api_keys.get(call.credential or "")
        if number_id is None:
            return _error(401, 190, "Invalid D360-API-KEY", type="OAuthException"), limits
    elif call.credential not in world.access_tokens:
        return (
            _error(401, 190, "Invalid OAuth access token - Cannot parse access token"),
            limits,
        )
    number = world.number(number_id or "")
    if number is None:
        return (
            _error(
                400,
                100,
                f"Unsupported post request. Object with ID '{number_id}' does not exist",
                subcode=33,
                type="GraphMethodException",
            ),
            limits,
        )
    waba = world.waba(number.waba_id)
    assert waba is not None, "seed validation guarantees every number has its WABA"
    fields = _template_fields(call.body)
    if isinstance(fields, GraphError):
        return fields, limits
    to, name, language = fields
    template = world.template(waba.id, name, language)
    if template is None or template.status != "APPROVED":
        state = "does not exist" if template is None else f"is {template.status}"
        return (
            _error(
                404,
                132001,
                "Template name does not exist in the translation",
                f"template name ({name}) {state} in {language}",
            ),
            limits,
        )
    body: dict[str, Any] = call.body
    marketing = template.category == "MARKETING"
    route: Route
    if call.endpoint == "marketing_messages":
        if not marketing:
            return (
                _error(
                    400,
                    100,
                    "Invalid parameter",
                    f"Only MARKETING templates can be sent through /marketing_messages; "
                    f"{name} is {template.category}",
                ),
                limits,
            )
        if waba.onboarding_status == "ONBOARDED":
            route = "marketing_messages"
        elif body.get("product_policy", "CLOUD_API_FALLBACK") == "STRICT":
            return (
                _error(
                    400,
                    100,
                    "You need to sign the testing legal agreement before sending out messages.",
                    "The WABA has not completed Marketing Messages API onboarding and "
                    "product_policy is STRICT",
                ),
                limits,
            )
        elif waba.disable_marketing_messages_on_cloud_api:
            return _disabled_on_cloud_api(), limits
        else:
            route = "cloud_api_fallback"
    else:
        if marketing and template.bid_spec is not None:
            return (
                _error(
                    400,
                    131061,
                    "Marketing templates containing bid_spec are not supported by the Cloud API.",
                    "Send to the /marketing_messages endpoint instead.",
                ),
                limits,
            )
        if marketing and waba.disable_marketing_messages_on_cloud_api:
            return _disabled_on_cloud_api(), limits
        route = "cloud_api"

    allowed, limits = limits.take_token(number.id, now, float(number.throughput_per_s))
    if not allowed:
        return (
            _error(
                400,
                130429,
                "Rate limit hit",
                f"Cloud API message throughput ({number.throughput_per_s}/s) has been reached.",
            ),
            limits,
        )
    if not limits.pair_allows(number.id, to, now, world.pair_limit_s):
        return (
            _error(
                400,
                131056,
                "(Business Account, Consumer Account) pair rate limit hit",
                "Too many messages sent from this phone number to the same phone number "
                "in a short period of time",
            ),
            limits,
        )
    limits = limits.sent_to(number.id, to, now)
    pricing = "marketing_lite" if route == "marketing_messages" else template.category.lower()
    sharing = body.get("message_activity_sharing")
    return (
        Accepted(
            phone_number_id=number.id,
            waba_id=waba.id,
            to=to,
            template=template,
            route=route,
            pricing_category=pricing,
            activity_sharing=bool(sharing) if sharing is not None else True,
            later_failure=_later_failure(to, template.category, world.stopped_marketing),
            callback_data=body.get("biz_opaque_callback_data"),
        ),
        limits,
    )


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
