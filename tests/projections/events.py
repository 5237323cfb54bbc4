"""Builders of the events the projections fold, with only what a test cares about."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from mmbus.contracts.callback import callback_data
from mmbus.contracts.commands import SendTemplate
from mmbus.contracts.envelope import derive_id
from mmbus.contracts.send_events import (
    ApiError,
    Decision,
    SendAccepted,
    SendAcceptedData,
    SendAttempted,
    SendAttemptedData,
    SendFailed,
    SendFailedData,
    SendIndeterminate,
    SendIndeterminateData,
    SendSuppressed,
    SendSuppressedData,
)
from mmbus.contracts.webhook_events import (
    AccountOnboardingObserved,
    AccountOnboardingObservedData,
    AccountUpdated,
    AccountUpdatedData,
    MarketingLinkClicked,
    MarketingLinkClickedData,
    MessageStatus,
    MessageStatusData,
    TemplateCategoryChanged,
    TemplateCategoryChangedData,
    TemplateCategoryObserved,
    TemplateCategoryObservedData,
    TemplateStatusChanged,
    TemplateStatusChangedData,
    UserMarketingPreferenceChanged,
    UserMarketingPreferenceChangedData,
    WabaInfo,
)
from mmbus.publisher import send_template

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
WABA = "102290129340398"
NUMBER = "106540352242922"
USER = "447911123456"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def cid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def _ref(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "command_id": cid(n),
        "waba_id": WABA,
        "phone_number_id": NUMBER,
        "to": USER,
        "campaign_id": extra.pop("campaign_id", "spring"),
        "template_name": extra.pop("template_name", "spring_sale"),
        "template_language": "en_US",
        **extra,
    }


def _env(t: str, when: float, subject: str, key: str) -> dict[str, Any]:
    return {
        "id": derive_id(t, {"k": key}),
        "time": at(when),
        "source": "test",
        "subject": subject,
    }


DECISION = Decision(endpoint="marketing_messages", category="MARKETING")


def command(
    n: int, when: float = 0, *, waba: str = WABA, number: str = NUMBER, **options: Any
) -> SendTemplate:
    return send_template(
        command_id=cid(n),
        waba_id=waba,
        phone_number_id=number,
        to=f"+{USER}",
        template_name=options.pop("template_name", "spring_sale"),
        language="en_US",
        source="test",
        campaign_id=options.pop("campaign_id", "spring"),
        time=at(when),
        **options,
    )


def attempted(n: int, when: float = 1, *, waba: str = WABA, number: str = NUMBER) -> SendAttempted:
    return SendAttempted(
        **_env("send.attempted", when, cid(n), f"att{n}"),
        data=SendAttemptedData(
            **_ref(n, waba_id=waba, phone_number_id=number), attempt=1, decision=DECISION
        ),
    )


def accepted(
    n: int,
    when: float = 2,
    wamid: str | None = None,
    *,
    waba: str = WABA,
    number: str = NUMBER,
) -> SendAccepted:
    return SendAccepted(
        **_env("send.accepted", when, cid(n), f"acc{n}"),
        data=SendAcceptedData(
            **_ref(n, waba_id=waba, phone_number_id=number),
            attempt=1,
            decision=DECISION,
            wamid=wamid or f"wamid.{n}",
            http_status=200,
        ),
    )


def failed(
    n: int, when: float = 2, code: int = 131026, *, waba: str = WABA, number: str = NUMBER
) -> SendFailed:
    return SendFailed(
        **_env("send.failed", when, cid(n), f"fail{n}"),
        data=SendFailedData(
            **_ref(n, waba_id=waba, phone_number_id=number),
            attempt=1,
            decision=DECISION,
            error=ApiError(code=code, title="Message undeliverable"),
            retryable=False,
        ),
    )


def suppressed(n: int, when: float = 1) -> SendSuppressed:
    return SendSuppressed(
        **_env("send.suppressed", when, cid(n), f"sup{n}"),
        data=SendSuppressedData(
            **_ref(n), rule="us_recipient_marketing", detail="US", decision=DECISION
        ),
    )


def indeterminate(n: int, when: float = 3) -> SendIndeterminate:
    return SendIndeterminate(
        **_env("send.indeterminate", when, cid(n), f"ind{n}"),
        data=SendIndeterminateData(
            **_ref(n),
            attempt=1,
            decision=DECISION,
            cause="read_timeout_after_send",
            detail="timed out",
        ),
    )


def status(
    n: int | None,
    value: str,
    when: float,
    *,
    wamid: str | None = None,
    pricing: str | None = "marketing_lite",
    errors: tuple[dict[str, Any], ...] = (),
    copy: int = 0,
    recipient: str = USER,
    waba: str = WABA,
    number: str = NUMBER,
) -> MessageStatus:
    w = wamid or f"wamid.{n}"
    data: dict[str, Any] = {
        "wamid": w,
        "status": value,
        "timestamp": at(when),
        "waba_id": waba,
        "phone_number_id": number,
        "recipient_id": recipient,
        "errors": errors,
        "biz_opaque_callback_data": callback_data(cid(n), None) if n is not None else None,
    }
    if pricing:
        data["pricing"] = {"billable": True, "pricing_model": "PMP", "category": pricing}
    return MessageStatus(
        **_env("message.status", when, w, f"{w}:{value}:{copy}"),
        data=MessageStatusData.model_validate(data),
    )


def click(
    token: str, n: int, when: float = 10, *, waba: str = WABA, number: str = NUMBER
) -> MarketingLinkClicked:
    return MarketingLinkClicked(
        **_env("marketing.link_clicked", when, number, f"click{n}"),
        data=MarketingLinkClickedData(
            waba_id=waba,
            phone_number_id=number,
            timestamp=at(when),
            tracking_token=token,
            click_id=f"ck{n}",
            click_component="CTA",
        ),
    )


def terms_signed(waba: str, business: str, when: float, n: int = 0) -> AccountUpdated:
    return AccountUpdated(
        **_env("account.updated", when, waba, f"terms{waba}{n}"),
        data=AccountUpdatedData(
            waba_id=waba,
            event="MM_LITE_TERMS_SIGNED",
            waba_info=WabaInfo(waba_id=waba, owner_business_id=business),
        ),
    )


def account_event(
    waba: str, event: str, when: float, business: str | None = None
) -> AccountUpdated:
    return AccountUpdated(
        **_env("account.updated", when, waba, f"acct{waba}{event}"),
        data=AccountUpdatedData(waba_id=waba, event=event, owner_business_id=business),
    )


def observed(waba: str, value: str, when: float) -> AccountOnboardingObserved:
    return AccountOnboardingObserved(
        **_env("account.onboarding_observed", when, waba, f"obs{waba}{value}{when}"),
        data=AccountOnboardingObservedData(
            waba_id=waba, marketing_messages_onboarding_status=value
        ),
    )


def preference(user: str, value: str, when: float) -> UserMarketingPreferenceChanged:
    return UserMarketingPreferenceChanged(
        **_env("user.marketing_preference_changed", when, user, f"pref{user}{value}{when}"),
        data=UserMarketingPreferenceChangedData(
            user_id=user, preference=value, timestamp=at(when), waba_id=WABA
        ),
    )


def template_status(
    name: str, value: str, when: float, *, waba: str = WABA
) -> TemplateStatusChanged:
    # The default WABA keeps the id (and so the golden log) as it always was.
    key = f"tpl{name}{value}{when}" if waba == WABA else f"tpl{waba}{name}{value}{when}"
    return TemplateStatusChanged(
        **_env("template.status_changed", when, name, key),
        data=TemplateStatusChangedData(waba_id=waba, name=name, event=value),
    )


def template_category(name: str, value: str, when: float) -> TemplateCategoryChanged:
    return TemplateCategoryChanged(
        **_env("template.category_changed", when, name, f"cat{name}{value}{when}"),
        data=TemplateCategoryChangedData(waba_id=WABA, name=name, new_category=value),
    )


def template_category_observed(name: str, value: str, when: float) -> TemplateCategoryObserved:
    return TemplateCategoryObserved(
        **_env("template.category_observed", when, name, f"obscat{name}{value}{when}"),
        data=TemplateCategoryObservedData(
            waba_id=WABA, name=name, language="en_US", category=value
        ),
    )
