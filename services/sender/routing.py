"""The sender's decision for one command: a pure function over immutable values.

``route(command, waba, template, recipient, policy, now)`` says what to do and
why: send (endpoint, body), suppress (with the rule), reject, hold, or look
something up first. It reads no clock (``now`` is passed in), no Kafka, no HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

from mmbus.contracts.callback import callback_data
from mmbus.contracts.commands import ProductPolicy, SendTemplateData
from mmbus.contracts.phone import region_of
from mmbus.contracts.regions import MARKETING_BLOCKED_REGIONS, SANCTIONED_REGIONS
from mmbus.contracts.send_events import Decision, Endpoint, SuppressionRule
from mmbus.folds import RecipientState, TemplateState, WabaState

TEMPLATE_SYNC_AFTER_APPROVAL = timedelta(minutes=10)
TEMPLATE_DORMANT_AFTER = timedelta(days=7)

SyncGuard = Literal["hold", "warn", "ignore"]


@dataclass(frozen=True)
class RoutingPolicy:
    template_sync_guard: SyncGuard = "warn"
    # The longest a command is held for a template sync before it is sent anyway.
    hold_max: timedelta = TEMPLATE_SYNC_AFTER_APPROVAL


@dataclass(frozen=True)
class Send:
    endpoint: Endpoint
    body: dict[str, Any]
    decision: Decision


@dataclass(frozen=True)
class Suppress:
    rule: SuppressionRule
    detail: str
    decision: Decision


@dataclass(frozen=True)
class Reject:
    reason: str
    detail: str
    decision: Decision


@dataclass(frozen=True)
class Hold:
    """Not yet: retry the decision at ``until`` (template sync window)."""

    until: datetime
    detail: str
    decision: Decision


@dataclass(frozen=True)
class LookUp:
    """The log does not know enough; ask the Graph API once, record it, decide again."""

    what: Literal["waba_onboarding", "template_category"]


Outcome = Send | Suppress | Reject | Hold | LookUp


@lru_cache(maxsize=4096)
def _decision(
    endpoint: Endpoint | None,
    product_policy: ProductPolicy | None,
    category: str | None,
    onboarding_status: str | None,
    reasons: tuple[str, ...],
) -> Decision:
    # The commands of a campaign share a handful of decisions, and a Decision is
    # frozen: one validated instance each, not one per command (about 2 µs).
    return Decision(
        endpoint=endpoint,
        product_policy=product_policy,
        category=category,
        onboarding_status=onboarding_status,
        reasons=reasons,
    )


def request_body(command: SendTemplateData, endpoint: Endpoint) -> dict[str, Any]:
    template: dict[str, Any] = {
        "name": command.template.name,
        "language": {"code": command.template.language.code},
    }
    if command.template.language.policy:
        template["language"]["policy"] = command.template.language.policy
    if command.template.components:
        template["components"] = list(command.template.components)
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": command.to,
        "type": "template",
        "template": template,
        "biz_opaque_callback_data": callback_data(command.command_id, command.callback_data),
    }
    if endpoint == "marketing_messages":
        body["product_policy"] = command.product_policy
        if command.message_activity_sharing is not None:
            body["message_activity_sharing"] = command.message_activity_sharing
        if command.bid_multiplier is not None:
            body["bid_spec"] = {"per_message_bid_multiplier": command.bid_multiplier}
        if command.ttl_seconds is not None:
            body["message_send_ttl_seconds"] = command.ttl_seconds
    return body


def route(
    command: SendTemplateData,
    waba: WabaState | None,
    template: TemplateState | None,
    recipient: RecipientState | None,
    policy: RoutingPolicy,
    now: datetime,
    held_since: datetime | None = None,
) -> Outcome:
    """The decision for one command. ``held_since``: when this command began waiting for
    a template sync (None if it has not been held); a hold ends at the sync window's end
    or after ``policy.hold_max``, whichever is first, and then the command goes."""
    reasons: list[str] = []

    def decision(endpoint: Endpoint | None, category: str | None) -> Decision:
        return _decision(
            endpoint,
            command.product_policy if endpoint == "marketing_messages" else None,
            category,
            waba.onboarding_status if waba else None,
            tuple(reasons),
        )

    if command.not_after is not None and now > command.not_after:
        reasons.append(f"deadline {command.not_after.isoformat()} passed")
        return Suppress(
            "deadline_passed",
            f"not_after {command.not_after.isoformat()} is past",
            decision(None, None),
        )
    region = region_of(command.to)
    if region in SANCTIONED_REGIONS:
        reasons.append(f"recipient region {region} is sanctioned")
        return Suppress(
            "sanctioned_region", f"recipient region {region}: no sends at all", decision(None, None)
        )

    category = command.template.category or (template.category if template else None)
    if category is None:
        return LookUp("template_category")
    reasons.append(
        f"template category {category} from "
        + ("the command" if command.template.category else "the template stream")
    )
    marketing = category == "MARKETING"

    if marketing and recipient is not None and recipient.stopped_marketing:
        reasons.append(f"recipient stopped marketing (event {recipient.because})")
        return Suppress(
            "user_stopped_marketing",
            "the user stopped marketing messages (131050)",
            decision(None, category),
        )
    if marketing and region in MARKETING_BLOCKED_REGIONS:
        reasons.append(f"recipient region {region}")
        return Suppress(
            "us_recipient_marketing",
            f"marketing to {region} recipients is blocked (131049)",
            decision(None, category),
        )

    endpoint: Endpoint
    if command.route == "marketing_messages":
        if not marketing:
            reasons.append("route marketing_messages requested for a non-marketing template")
            return Reject(
                "not_marketing",
                f"only MARKETING templates go to /marketing_messages; "
                f"{command.template.name} is {category}",
                decision(None, category),
            )
        endpoint = "marketing_messages"
        reasons.append("route marketing_messages requested")
    elif command.route == "cloud_api":
        endpoint = "messages"
        reasons.append("route cloud_api requested")
    else:
        endpoint = "marketing_messages" if marketing else "messages"
        reasons.append(f"route auto: {'MARKETING' if marketing else category} -> /{endpoint}")

    if endpoint == "messages" and command.bid_multiplier is not None:
        reasons.append("bid_multiplier needs bid_spec, which only MM API takes (131061)")
        return Reject(
            "bid_spec_needs_mm_api",
            "bid_multiplier is sent as bid_spec, which Cloud API /messages rejects (131061)",
            decision(endpoint, category),
        )

    if marketing:
        if waba is None or waba.onboarding_status is None:
            return LookUp("waba_onboarding")
        onboarded = waba.onboarded
        reasons.append(
            "WABA onboarded" if onboarded else f"WABA not onboarded ({waba.onboarding_status})"
        )
        cloud_path = endpoint == "messages" or (
            not onboarded and command.product_policy == "CLOUD_API_FALLBACK"
        )
        if cloud_path and waba.disable_marketing_on_cloud_api:
            reasons.append("marketing disabled on Cloud API for this WABA (131063)")
            return Reject(
                "marketing_disabled_on_cloud_api",
                "the WABA disabled marketing on Cloud API and this send would use it (131063)",
                decision(endpoint, category),
            )
        if endpoint == "marketing_messages" and not onboarded:
            reasons.append(
                "STRICT: Meta rejects until the WABA is onboarded"
                if command.product_policy == "STRICT"
                else "CLOUD_API_FALLBACK: Meta sends through Cloud API (priced marketing)"
            )
        guard = _template_sync(template, held_since or now)
        if guard is not None and policy.template_sync_guard != "ignore":
            until, why = guard
            reasons.append(why)
            if policy.template_sync_guard == "hold":
                until = min(until, (held_since or now) + policy.hold_max)
                if now < until:
                    return Hold(until, why, decision(endpoint, category))
                reasons.append(f"held for the sync until {until.isoformat()}; sending")

    return Send(endpoint, request_body(command, endpoint), decision(endpoint, category))


def _template_sync(template: TemplateState | None, now: datetime) -> tuple[datetime, str] | None:
    """New (< 10 min since approval) or dormant (> 7 days unused) templates need a sync.

    ``now`` is when the command first met the guard, so a held command's window
    does not move while it waits."""
    if template is None:
        return None
    if (
        template.approved_at is not None
        and now - template.approved_at < TEMPLATE_SYNC_AFTER_APPROVAL
    ):
        return (
            template.approved_at + TEMPLATE_SYNC_AFTER_APPROVAL,
            "template approved under 10 minutes ago: not yet synced for optimisation",
        )
    if template.last_used_at is not None and now - template.last_used_at > TEMPLATE_DORMANT_AFTER:
        return (
            now + TEMPLATE_SYNC_AFTER_APPROVAL,
            "template dormant for 7 days: first use triggers a sync",
        )
    return None
