"""normalize(raw) by table, over realistic payloads; ids are deterministic; nothing raises."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmbus.contracts.codec import decode, encode
from mmbus.contracts.envelope import Message
from mmbus.contracts.webhook_events import WebhookReceived
from services.ingest.normalize import normalize
from services.simulator import webhooks

WABA, NUMBER, USER, BIZ = "102290129340398", "106540352242922", "447911123456", "1029384756473829"
WAMID = "wamid.HBgMNDQ3OTExMTIzNDU2FQIAERgSQzYzNTVDNjhBMjA1OERGREUA"
RECEIVED = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)


def raw(body: Any) -> WebhookReceived:
    text = body if isinstance(body, str) else json.dumps(body)
    return WebhookReceived.model_validate(
        {
            "id": "raw-1",
            "time": RECEIVED,
            "source": "mmbus/ingest",
            "subject": WABA,
            "data": {
                "received_at": RECEIVED,
                "path": "/webhooks/meta",
                "body": text,
                "signature": "valid",
            },
        }
    )


def status(name: str, **kw: Any) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "waba_id": WABA,
        "phone_number_id": NUMBER,
        "display_phone_number": "15550001111",
        "wamid": WAMID,
        "status": name,
        "timestamp": 1772442910,
        "recipient_id": USER,
        "pricing_category": "marketing_lite",
    }
    return webhooks.status(**{**defaults, **kw})


def only(events: list[Message]) -> Message:
    assert len(events) == 1, [e.type for e in events]
    return events[0]


def test_sent_status_with_mm_api_pricing_and_callback() -> None:
    event = only(
        normalize(
            raw(status("sent", callback_data="mmbus:6f1c1a52-1d5a-4bb8-8f7c-1c9b3e0e9d11:crm"))
        )
    )
    assert event.type == "message.status"
    d = event.data
    assert (d.wamid, d.status, d.waba_id, d.phone_number_id, d.recipient_id) == (
        WAMID,
        "sent",
        WABA,
        NUMBER,
        USER,
    )
    assert d.pricing.category == "marketing_lite"
    assert d.pricing.pricing_model == "PMP"
    assert d.conversation.origin.type == "marketing_lite"
    assert d.biz_opaque_callback_data.startswith("mmbus:")
    assert event.correlation_id == "6f1c1a52-1d5a-4bb8-8f7c-1c9b3e0e9d11"
    assert event.time == datetime.fromtimestamp(1772442910, UTC), "event time, not receive time"
    assert event.causation_id == "raw-1"


def test_status_without_pricing_or_conversation() -> None:
    event = only(normalize(raw(status("read", pricing_category=None))))
    assert event.data.status == "read"
    assert event.data.pricing is None
    assert event.data.conversation is None


def test_read_without_a_prior_delivered_is_kept() -> None:
    assert only(normalize(raw(status("read")))).data.status == "read"


@pytest.mark.parametrize(
    ("code", "details"), [(131049, "US recipients"), (131050, "stopped marketing")]
)
def test_failed_statuses_keep_code_and_details(code: int, details: str) -> None:
    event = only(normalize(raw(status("failed", error=(code, "title", f"because of {details}")))))
    (error,) = event.data.errors
    assert error.code == code
    assert details in error.error_data.details


def test_timestamps_as_strings_or_integers_give_the_same_event() -> None:
    as_int = status("delivered")
    as_str = orjson.loads(orjson.dumps(as_int))
    as_str["entry"][0]["changes"][0]["value"]["statuses"][0]["timestamp"] = "1772442910"
    as_int["entry"][0]["changes"][0]["value"]["statuses"][0]["timestamp"] = 1772442910
    a, b = only(normalize(raw(as_int))), only(normalize(raw(as_str)))
    assert a.id == b.id
    assert a.data.timestamp == b.data.timestamp


def test_newer_user_id_and_unknown_status_fields_are_kept() -> None:
    body = status("delivered")
    item = body["entry"][0]["changes"][0]["value"]["statuses"][0]
    item.update(
        {
            "recipient_user_id": "US.13491208655302741918",
            "recipient_logical_id": "7",
            "new_flag": True,
        }
    )
    d = only(normalize(raw(body))).data
    assert d.recipient_user_id == "US.13491208655302741918"
    dumped = d.model_dump()
    assert dumped["recipient_logical_id"] == "7"
    assert dumped["new_flag"] is True


def test_click_with_undocumented_fields() -> None:
    body = webhooks.link_click(
        waba_id=WABA,
        phone_number_id=NUMBER,
        display_phone_number="15550001111",
        timestamp=1772446882,
        tracking_token="tt-1",
        click_id="ck-1",
    )
    action = body["entry"][0]["changes"][0]["value"]["user_actions"][0]
    action["marketing_messages_link_click_data"]["user_agent"] = "Mozilla/5.0 (iPhone)"
    action["device_class"] = "mobile"
    event = only(normalize(raw(body)))
    assert event.type == "marketing.link_clicked"
    d = event.data
    assert (d.tracking_token, d.click_id, d.click_component, d.phone_number_id) == (
        "tt-1",
        "ck-1",
        "CTA",
        NUMBER,
    )
    assert d.action_data["user_agent"] == "Mozilla/5.0 (iPhone)"
    assert d.model_dump()["device_class"] == "mobile"


def test_terms_signed_account_update() -> None:
    event = only(
        normalize(raw(webhooks.terms_signed(business_id=BIZ, waba_id=WABA, timestamp=1772400000)))
    )
    assert event.type == "account.updated"
    assert (event.data.waba_id, event.data.event, event.data.owner_business_id) == (
        WABA,
        "MM_LITE_TERMS_SIGNED",
        BIZ,
    )


@pytest.mark.parametrize(
    "value",
    [
        {"event": "ONBOARDING_COMPLETED", "waba_info": {"waba_id": WABA, "ad_account_id": "act_1"}},
        {"event": "SOMETHING_NOBODY_HAS_SEEN", "detail": {"x": 1}},
    ],
)
def test_other_account_updates_are_kept(value: dict[str, Any]) -> None:
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": WABA,
                "time": 1772400000,
                "changes": [{"field": "account_update", "value": value}],
            }
        ],
    }
    event = only(normalize(raw(body)))
    assert event.type == "account.updated"
    assert event.data.event == value["event"]
    assert event.data.waba_id == WABA
    assert event.data.value == value


def test_user_preferences_stop() -> None:
    body = webhooks.user_preference(
        waba_id=WABA,
        phone_number_id=NUMBER,
        display_phone_number="15550001111",
        wa_id=USER,
        stop=True,
        timestamp=1772450000,
    )
    event = only(normalize(raw(body)))
    assert event.type == "user.marketing_preference_changed"
    assert (event.data.user_id, event.data.preference, event.data.category) == (
        USER,
        "stop",
        "marketing_messages",
    )


@pytest.mark.parametrize(
    ("field", "value", "type_", "check"),
    [
        (
            "message_template_status_update",
            {
                "event": "APPROVED",
                "message_template_id": 9001,
                "message_template_name": "spring_sale",
                "message_template_language": "en_US",
                "reason": "NONE",
            },
            "template.status_changed",
            ("event", "APPROVED"),
        ),
        (
            "template_category_update",
            {
                "message_template_id": 9001,
                "message_template_name": "spring_sale",
                "message_template_language": "en_US",
                "previous_category": "UTILITY",
                "new_category": "MARKETING",
            },
            "template.category_changed",
            ("new_category", "MARKETING"),
        ),
        (
            "message_template_quality_update",
            {
                "message_template_id": 9001,
                "message_template_name": "spring_sale",
                "message_template_language": "en_US",
                "previous_quality_score": "GREEN",
                "new_quality_score": "YELLOW",
            },
            "template.quality_changed",
            ("new_quality_score", "YELLOW"),
        ),
    ],
)
def test_template_updates(
    field: str, value: dict[str, Any], type_: str, check: tuple[str, str]
) -> None:
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA, "time": 1772400000, "changes": [{"field": field, "value": value}]}],
    }
    event = only(normalize(raw(body)))
    assert event.type == type_
    assert getattr(event.data, check[0]) == check[1]
    assert (event.data.name, event.data.template_id, event.data.waba_id) == (
        "spring_sale",
        "9001",
        WABA,
    )


def test_inbound_message() -> None:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": NUMBER},
        "contacts": [{"profile": {"name": "Ada"}, "wa_id": USER}],
        "messages": [
            {
                "from": USER,
                "id": "wamid.IN1",
                "timestamp": "1772454600",
                "type": "text",
                "text": {"body": "STOP"},
            }
        ],
    }
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA, "changes": [{"field": "messages", "value": value}]}],
    }
    event = only(normalize(raw(body)))
    assert event.type == "message.received"
    assert (event.data.from_, event.data.message_type, event.data.message["text"]["body"]) == (
        USER,
        "text",
        "STOP",
    )
    assert event.data.contact["profile"]["name"] == "Ada"


def test_batch_with_several_entries_and_changes() -> None:
    a, b = status("sent"), status("delivered", wamid="wamid.OTHER")
    clicks = webhooks.link_click(
        waba_id=WABA,
        phone_number_id=NUMBER,
        display_phone_number="1",
        timestamp=1,
        tracking_token="t",
        click_id="c",
    )
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": WABA,
                "changes": [a["entry"][0]["changes"][0], clicks["entry"][0]["changes"][0]],
            },
            {
                "id": "999",
                "changes": [
                    b["entry"][0]["changes"][0],
                    {
                        "field": "business_capability_update",
                        "value": {"max_daily_conversation_per_phone": 1000},
                    },
                ],
            },
        ],
    }
    events = normalize(raw(body))
    assert [e.type for e in events] == [
        "message.status",
        "marketing.link_clicked",
        "message.status",
        "webhook.unrecognized",
    ]
    assert events[2].data.waba_id == "999"
    assert events[3].data.field == "business_capability_update"
    assert events[3].data.value == {"max_daily_conversation_per_phone": 1000}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json at all", "not a JSON object"),
        ([1, 2], "not a JSON object"),
        ({"object": "page"}, "no entry list"),
        (
            {
                "object": "whatsapp_business_account",
                "entry": [
                    {
                        "id": WABA,
                        "changes": [
                            {"field": "messages", "value": {"statuses": [{"status": "sent"}]}}
                        ],
                    }
                ],
            },
            "does not fit",
        ),
        (
            {
                "object": "whatsapp_business_account",
                "entry": [
                    {
                        "id": WABA,
                        "changes": [
                            {"field": "messages", "value": {"messaging_product": "whatsapp"}}
                        ],
                    }
                ],
            },
            "nothing known",
        ),
    ],
)
def test_what_does_not_fit_is_kept_as_unrecognized(body: Any, reason: str) -> None:
    event = only(normalize(raw(body)))
    assert event.type == "webhook.unrecognized"
    assert reason in event.data.reason


def test_a_duplicate_webhook_yields_the_same_ids() -> None:
    body = status("delivered", callback_data="mmbus:x")
    first = [e.id for e in normalize(raw(body))]
    again = [e.id for e in normalize(raw(orjson.loads(orjson.dumps(body))))]
    assert first == again
    other = [e.id for e in normalize(raw(status("read")))]
    assert first != other


def test_every_event_round_trips_through_the_codec() -> None:
    body = status("sent")
    for event in normalize(raw(body)):
        record = encode(event)
        assert decode(record.value, record.headers) == event


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
fields = st.sampled_from(
    [
        "messages",
        "account_update",
        "user_preferences",
        "message_template_status_update",
        "template_category_update",
        "message_template_components_update",
        "smb_message_echoes",
        "calls",
        "other",
    ]
)
shaped = st.builds(
    lambda field, value, entry_id: {
        "object": "whatsapp_business_account",
        "entry": [{"id": entry_id, "changes": [{"field": field, "value": value}]}],
    },
    fields,
    st.dictionaries(
        st.sampled_from(
            [
                "statuses",
                "user_actions",
                "messages",
                "metadata",
                "event",
                "waba_info",
                "user_preferences",
                "contacts",
                "errors",
                "message_echoes",
            ]
        ),
        json_values,
        max_size=4,
    ),
    st.none() | st.text(max_size=8) | st.integers(),
)


@settings(max_examples=400, deadline=None)
@given(shaped | json_values)
def test_normalize_never_raises_and_never_drops(body: Any) -> None:
    events = normalize(raw(body))
    assert events, "every webhook yields at least one event"
    for event in events:
        record = encode(event)
        assert decode(record.value, record.headers) == event
