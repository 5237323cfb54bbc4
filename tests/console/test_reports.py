"""The console's read models (pure functions): by tables, and against the golden log's funnel."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from services.projections.delivery import Aggregate, MessageState
from services.projections.onboarding import NumberState, OnboardingView, PortfolioState
from services.projections.reports import (
    billing,
    bucket_seconds,
    campaign_summaries,
    error_report,
    number_rows,
    portfolio_rows,
    resolution,
    timeline,
)
from services.projections.views import funnel, rates
from tests.projections.events import at
from tests.projections.test_golden_log import fold_golden


@pytest.mark.parametrize(
    ("stages", "expected"),
    [
        ({}, {"accepted": None, "delivered": None, "read": None, "clicked": None, "failed": None}),
        (
            {"requested": 10, "accepted": 5, "delivered": 4, "read": 2, "clicked": 1, "failed": 1},
            {"accepted": 0.5, "delivered": 0.8, "read": 0.5, "clicked": 0.25, "failed": 0.1},
        ),
        (
            {"requested": 3, "accepted": 1},
            {"accepted": 0.3333, "delivered": 0.0, "read": None, "clicked": None, "failed": 0.0},
        ),
    ],
)
def test_rates_are_shares_of_the_stage_before(
    stages: dict[str, int], expected: dict[str, float | None]
) -> None:
    assert rates(stages) == expected


@pytest.mark.parametrize(
    ("span_s", "width"),
    [
        (0, 1),
        (59, 1),
        (60, 5),
        (299, 5),
        (300, 10),
        (3599, 60),
        (3600, 300),
        (59 * 86400, 86400),
        (60 * 86400, 2 * 86400),
        (120 * 86400, 3 * 86400),
    ],
)
def test_a_timeline_keeps_to_sixty_points_or_fewer(span_s: int, width: int) -> None:
    assert bucket_seconds(timedelta(seconds=span_s)) == width
    assert span_s / width < 60


def _message(key: str, **fields: Any) -> MessageState:
    return MessageState(key=key, command_id=key, **fields)


UNCLEAR = (("indeterminate", at(3)),)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (_message("a", outcome="accepted", times=(("accepted", at(2)),)), None),
        (_message("b", outcome="indeterminate", times=UNCLEAR), "open"),
        (
            _message("c", outcome="indeterminate", status="delivered", times=UNCLEAR),
            "status_webhook",
        ),
        (_message("d", outcome="accepted", times=UNCLEAR), "later_attempt"),
    ],
)
def test_what_settled_an_indeterminate_send(message: MessageState, expected: str | None) -> None:
    assert resolution(message) == expected


def test_a_timeline_counts_a_read_without_delivered_as_delivered_when_read() -> None:
    messages = [
        _message("a", times=(("delivered", at(1)), ("read", at(3)))),
        _message("b", times=(("read", at(2)),)),
        _message("c", times=(("sent", at(1)),)),
    ]
    report = timeline("spring", messages, [at(4)])
    assert report["bucket_seconds"] == 1
    assert [(p["delivered"], p["read"], p["clicked"]) for p in report["points"]] == [
        (1, 0, 0),
        (1, 1, 0),
        (0, 1, 0),
        (0, 0, 1),
    ]
    assert report["points"][0]["start"] == at(1)
    assert timeline("spring", [], [])["points"] == []


def test_billing_splits_routes_and_adds_up_categories() -> None:
    rows = [
        Aggregate("c", "t", "marketing_messages", "2026-11-20", {"requested": 3, "fell_back": 1}),
        Aggregate("c", "t", "marketing_messages", "2026-11-21", {"billable.marketing_lite": 2}),
        Aggregate("c", "t", "marketing_messages", "2026-11-21", {"billable.marketing": 1}),
        Aggregate("c", "u", "messages", "2026-11-20", {"requested": 1, "billable.utility": 1}),
    ]
    report = billing("c", rows)
    assert [(r["route"], r["api"], r["requested"], r["billable"]) for r in report["routes"]] == [
        ("marketing_messages", "MM API", 3, 3),
        ("messages", "Cloud API", 1, 1),
    ]
    assert report["routes"][0]["billable_by_category"] == {"marketing": 1, "marketing_lite": 2}
    assert report["billable_by_category"] == {"marketing": 1, "marketing_lite": 2, "utility": 1}
    assert (report["billable"], report["fell_back"]) == (4, 1)


def test_errors_group_by_code_rule_and_reason_most_first() -> None:
    messages = [
        _message("f1", outcome="failed", error_code=131026, error_title="Undeliverable"),
        _message("f2", status="failed", error_code=131026, error_title="Undeliverable"),
        _message("f3", status="failed", error_code=131049, error_title="Ecosystem"),
        _message("s1", outcome="suppressed", outcome_detail="user_stopped_marketing"),
        _message("r1", outcome="rejected", outcome_detail="invalid_message"),
        _message("i1", outcome="indeterminate", times=UNCLEAR),
    ]
    report = error_report(None, messages)
    assert [(f["code"], f["count"], f["examples"]) for f in report["failures"]] == [
        (131026, 2, ["f1", "f2"]),
        (131049, 1, ["f3"]),
    ]
    assert [(s["rule"], s["count"]) for s in report["suppressions"]] == [
        ("user_stopped_marketing", 1)
    ]
    assert [(r["reason"], r["count"]) for r in report["rejections"]] == [("invalid_message", 1)]
    assert [(u["key"], u["reconciled"]) for u in report["indeterminate"]] == [("i1", False)]


def test_numbers_inherit_their_wabas_status_and_portfolios_list_their_wabas() -> None:
    view = OnboardingView("w1", "onboarded", "ONBOARDED", at(0), "ev1", "waba", "b1")
    numbers = [NumberState("n2", "w2", at(5), "ev3"), NumberState("n1", "w1", at(4), "ev2")]
    rows = number_rows(numbers, {"w1": view})
    assert [(r["phone_number_id"], r["status"], r["since"]) for r in rows] == [
        ("n1", "onboarded", at(0)),
        ("n2", "unknown", None),
    ]
    portfolios = portfolio_rows([PortfolioState("b0")], [view])
    assert [(p["business_id"], p["wabas"]) for p in portfolios] == [("b0", []), ("b1", ["w1"])]


def test_on_the_golden_log_every_console_figure_adds_up_to_the_funnel() -> None:
    projection = fold_golden()
    projection.settle()
    aggregates = list(projection.entities["aggregate"].values())
    clicks = list(projection.entities["click_count"].values())
    messages = list(projection.entities["message"].values())
    campaign_of = {k: t.campaign_id for k, t in projection.entities["token"].items()}
    spring = [a for a in aggregates if a.campaign_id == "spring"]
    report = funnel("spring", spring, clicks)
    stages = report["funnel"]

    (summary,) = campaign_summaries(aggregates, clicks, campaign_of)
    assert (summary["campaign_id"], summary["funnel"]) == ("spring", stages)
    assert billing("spring", spring)["billable_by_category"] == report["billable_by_category"]
    clicked = [c.time for c in projection.entities["click"].values()]
    points = timeline("spring", [m for m in messages if m.campaign_id == "spring"], clicked)
    for series in ("delivered", "read", "clicked"):
        assert sum(p[series] for p in points["points"]) == stages[series]
    errors = error_report("spring", [m for m in messages if m.campaign_id == "spring"])
    assert sum(f["count"] for f in errors["failures"]) == stages["failed"]
    assert sum(s["count"] for s in errors["suppressions"]) == stages["suppressed"]
    still_open = [u for u in errors["indeterminate"] if not u["reconciled"]]
    assert len(still_open) == stages["indeterminate"]
