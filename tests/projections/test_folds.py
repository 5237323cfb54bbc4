"""Table tests of every projection fold, and order independence of the whole state."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmbus.contracts.envelope import Message
from mmbus.folds import evolve_recipient, evolve_template, evolve_waba
from services.projections.delivery import (
    MessageState,
    Pricing,
    contribution,
    evolve_message,
    fact,
    file_fact,
)
from services.projections.message import state_with
from services.projections.onboarding import (
    evolve_number,
    evolve_portfolio,
    onboarding_view,
)
from services.projections.projection import Projection, choose
from tests.projections.events import (
    USER,
    WABA,
    accepted,
    account_event,
    at,
    attempted,
    cid,
    click,
    command,
    failed,
    indeterminate,
    observed,
    preference,
    status,
    suppressed,
    template_category,
    template_category_observed,
    template_status,
    terms_signed,
)


def fold_message(events: list[Message]) -> MessageState:
    state: MessageState | None = None
    for event in events:
        state = evolve_message(state, event)
    assert state is not None
    return state


# ------------------------------------------------------------- delivery fold
DELIVERY_CASES = [
    # (name, events, state, times reached, error code)
    (
        "accepted then statuses in order",
        [
            command(1),
            attempted(1),
            accepted(1),
            status(1, "sent", 3),
            status(1, "delivered", 4),
            status(1, "read", 5),
        ],
        "read",
        {"requested", "accepted", "sent", "delivered", "read"},
        None,
    ),
    (
        "read without delivered",
        [command(1), accepted(1), status(1, "sent", 3), status(1, "read", 5)],
        "read",
        {"requested", "accepted", "sent", "read"},
        None,
    ),
    (
        "out of order: read before delivered and sent",
        [status(1, "read", 5), status(1, "delivered", 4), accepted(1), status(1, "sent", 3)],
        "read",
        {"accepted", "sent", "delivered", "read"},
        None,
    ),
    (
        "late delivered after read does not move it back",
        [accepted(1), status(1, "read", 5), status(1, "delivered", 9)],
        "read",
        {"accepted", "read", "delivered"},
        None,
    ),
    (
        "duplicate status counted once",
        [accepted(1), status(1, "delivered", 4), status(1, "delivered", 4)],
        "delivered",
        {"accepted", "delivered"},
        None,
    ),
    (
        "failed is terminal, a later status does not revive it",
        [
            accepted(1),
            status(1, "sent", 3),
            status(1, "failed", 4, errors=({"code": 131049, "title": "ecosystem"},)),
            status(1, "delivered", 6),
        ],
        "failed",
        {"accepted", "sent", "failed", "delivered"},
        131049,
    ),
    (
        "send failed at the API",
        [command(1), attempted(1), failed(1, code=131026)],
        "failed",
        {"requested", "failed"},
        131026,
    ),
    (
        "suppressed before sending",
        [command(1), suppressed(1)],
        "suppressed",
        {"requested", "suppressed"},
        None,
    ),
    (
        "indeterminate, later settled by a status",
        [command(1), attempted(1), indeterminate(1), status(1, "delivered", 8)],
        "delivered",
        {"requested", "indeterminate", "delivered"},
        None,
    ),
    ("a command nobody acted on yet", [command(1)], "requested", {"requested"}, None),
]


@pytest.mark.parametrize(
    ("events", "state", "reached", "code"),
    [c[1:] for c in DELIVERY_CASES],
    ids=[c[0] for c in DELIVERY_CASES],
)
def test_delivery_fold(
    events: list[Message], state: str, reached: set[str], code: int | None
) -> None:
    m = fold_message(events)
    assert m.state == state
    assert {name for name, _ in m.times} == reached
    assert m.error_code == code
    assert len(m.history) == len({e.id for e in events})


def test_fallback_is_marketing_pricing_on_the_mm_api_route() -> None:
    lite = fold_message([accepted(1), status(1, "delivered", 4)])
    fell = fold_message([accepted(2), status(2, "delivered", 4, pricing="marketing")])
    assert (lite.fell_back, fell.fell_back) == (False, True)
    assert lite.pricing is not None
    assert lite.pricing.category == "marketing_lite"


def test_contribution_counts_each_stage_reached() -> None:
    m = fold_message([command(1), accepted(1), status(1, "read", 5)])
    part = contribution(m)
    assert part is not None
    key, counts = part
    assert (key.campaign_id, key.template_name, key.route, key.day) == (
        "spring",
        "spring_sale",
        "marketing_messages",
        "2026-11-20",
    )
    assert counts == {
        "requested": 1,
        "accepted": 1,
        "sent": 1,
        "delivered": 1,
        "read": 1,
        "billable.marketing_lite": 1,
    }


# ------------------------------------------------------- the adapter's joins
def test_status_for_an_unknown_wamid_is_kept_and_joined_when_the_send_arrives() -> None:
    p = Projection(choose(["delivery"]))
    p.apply(status(None, "delivered", 4, wamid="wamid.1"))
    assert set(p.entities["message"]) == {"w:wamid.1"}, "kept under its wamid"
    p.apply(accepted(1))
    assert set(p.entities["message"]) == {cid(1)}, "merged into the command's message"
    m = p.entities["message"][cid(1)]
    assert m.state == "delivered"
    assert m.wamid == "wamid.1"
    p.apply(status(None, "read", 6, wamid="wamid.1"))
    assert p.entities["message"][cid(1)].state == "read", "later wamid-only statuses find it"
    p.settle()  # aggregates follow the messages once per batch
    (agg,) = p.entities["aggregate"].values()
    assert agg.counts["read"] == 1
    assert agg.counts["accepted"] == 1


def test_clicks_count_once_per_webhook_and_join_campaigns_by_token() -> None:
    p = Projection(choose(["delivery"]))
    p.apply(command(1, labels={"tracking_token": "tok-spring"}))
    for event in (click("tok-spring", 1), click("tok-spring", 1), click("tok-spring", 2)):
        p.apply(event)
    (count,) = p.entities["click_count"].values()
    assert count.clicks == 2
    assert p.entities["token"]["tok-spring"].campaign_id == "spring"


def test_derived_rows_computed_once_equal_the_live_increments() -> None:
    """A replay derives click counts and aggregates once from the final entities
    (count_all, aggregate_all); a live projector moves them per batch: same rows."""
    events: list[Message] = []
    for n in range(1, 9):
        events += [command(n, n * 40_000, labels={"tracking_token": f"tok|{n % 3}"})]
        events.append(accepted(n, n * 40_000 + 2))
        events += [status(n, "delivered", n * 40_000 + 5), click(f"tok|{n % 3}", n, n * 50_000)]
        events.append(click(f"tok|{n % 3}", n + 100, n * 30_000))  # another day, some
    live, replayed = Projection(choose(None)), Projection(choose(None), incremental=False)
    for event in events:
        live.apply(event)
        replayed.apply(event)
    live.forget_dirty()
    replayed.settle()
    for kind in ("click_count", "aggregate"):
        assert live.entities[kind] == replayed.entities[kind]
        assert len(live.entities[kind]) > 1
    assert live.digest() == replayed.digest()


def _contribution_as_specified(m: MessageState) -> dict[str, int] | None:
    """The counts rule spelt out field by field (the first form of ``contribution``)."""
    first = m.requested_at or min((when for _, when in m.times), default=None)
    if first is None:
        return None
    reached = {name for name, _ in m.times}
    counts = {
        "requested": int(m.requested_at is not None),
        "accepted": int(m.outcome == "accepted"),
        "sent": int(bool(reached & {"sent", "delivered", "read"})),
        "delivered": int(bool(reached & {"delivered", "read"})),
        "read": int("read" in reached),
        "failed": int(m.state == "failed"),
        "suppressed": int(m.outcome == "suppressed"),
        "rejected": int(m.outcome == "rejected"),
        "indeterminate": int(m.outcome == "indeterminate" and m.status is None),
        "fell_back": int(m.fell_back),
    }
    if m.pricing is not None and m.pricing.billable:
        counts[f"billable.{m.pricing.category or 'unknown'}"] = 1
    return {name: n for name, n in counts.items() if n}


_OUTCOMES = (None, "accepted", "rejected", "suppressed", "indeterminate", "failed")
_STATUSES = (None, "sent", "delivered", "read", "failed")
_REACHED = ((), ("sent",), ("delivered", "sent"), ("delivered", "read", "sent"), ("failed",))
_PRICINGS = (
    None,
    Pricing("marketing", True, None, None),
    Pricing("marketing_lite", False, None, None),
    Pricing(None, True, None, None),
)


@given(
    st.sampled_from(_OUTCOMES),
    st.sampled_from(_STATUSES),
    st.sampled_from(_REACHED),
    st.sampled_from(_PRICINGS),
    st.sampled_from((None, "marketing_messages", "messages")),
    st.booleans(),
)
@settings(max_examples=400, deadline=None)
def test_contribution_counts_as_specified(
    outcome: str | None,
    status_: str | None,
    reached: tuple[str, ...],
    pricing: Pricing | None,
    endpoint: str | None,
    requested: bool,
) -> None:
    m = state_with(
        key="m",
        outcome=outcome,
        status=status_,
        times=tuple((name, at(i + 3)) for i, name in enumerate(reached)),
        pricing=pricing,
        endpoint=endpoint,
        requested_at=at(1) if requested else None,
    )
    part = contribution(m)
    expected = _contribution_as_specified(m)
    assert (part[1] if part is not None else None) == expected
    if part is not None and expected is not None:
        assert list(part[1]) == list(expected)  # the same order, too


# ------------------------------------------------------------ onboarding
def test_portfolio_signature_covers_wabas_and_numbers_seen_later() -> None:
    business, other_waba = "1029384756473829", "999000111222333"
    portfolio = evolve_portfolio(None, terms_signed(WABA, business, 10))
    assert portfolio is not None
    assert portfolio.terms_signed_at == at(10)
    # A WABA of the same business, known only from a later account event.
    later = evolve_waba(None, account_event(other_waba, "VERIFIED_ACCOUNT", 50, business))
    view = onboarding_view(other_waba, later, portfolio)
    assert (view.status, view.via, view.since) == ("onboarded", "portfolio", at(10))
    # A number first seen after the signature inherits its WABA's state.
    number = evolve_number(None, accepted(1, when=99))
    assert number is not None
    assert number.waba_id == WABA


ONBOARDING_CASES = [
    ("nothing known", [], "unknown", None),
    ("lookup says eligible", [observed(WABA, "ELIGIBLE", 1)], "eligible", "ELIGIBLE"),
    (
        "lookup says not eligible",
        [observed(WABA, "NOT_ELIGIBLE", 1)],
        "not_eligible",
        "NOT_ELIGIBLE",
    ),
    ("terms signed", [terms_signed(WABA, "1", 1)], "onboarded", "ONBOARDED"),
    (
        "a later stale lookup does not undo onboarding",
        [terms_signed(WABA, "1", 1), observed(WABA, "ELIGIBLE", 2)],
        "onboarded",
        "ONBOARDED",
    ),
    (
        "an unknown account_update kind changes nothing",
        [observed(WABA, "ELIGIBLE", 1), account_event(WABA, "SOMETHING_NEW", 2)],
        "eligible",
        "ELIGIBLE",
    ),
]


@pytest.mark.parametrize(
    ("events", "coarse", "meta"),
    [c[1:] for c in ONBOARDING_CASES],
    ids=[c[0] for c in ONBOARDING_CASES],
)
def test_onboarding(events: list[Message], coarse: str, meta: str | None) -> None:
    waba = None
    portfolio = None
    for event in events:
        waba = evolve_waba(waba, event)
        portfolio = evolve_portfolio(portfolio, event)
    view = onboarding_view(WABA, waba, portfolio)
    assert (view.status, view.meta_status) == (coarse, meta)


# --------------------------------------------------- suppression and templates
SUPPRESSION_CASES = [
    ("stop", [preference(USER, "stop", 1)], True),
    ("stop then resume", [preference(USER, "stop", 1), preference(USER, "resume", 2)], False),
    (
        "resume seen before an older stop: the newer wins",
        [preference(USER, "resume", 2), preference(USER, "stop", 1)],
        False,
    ),
    (
        "131050 failure stops marketing",
        [status(1, "failed", 3, errors=({"code": 131050, "title": "stopped"},))],
        True,
    ),
    (
        "a resume after the 131050 failure",
        [
            status(1, "failed", 3, errors=({"code": 131050, "title": "stopped"},)),
            preference(USER, "resume", 4),
        ],
        False,
    ),
    ("other failures do not", [status(1, "failed", 3, errors=({"code": 131026},))], None),
]


@pytest.mark.parametrize(
    ("events", "stopped"), [c[1:] for c in SUPPRESSION_CASES], ids=[c[0] for c in SUPPRESSION_CASES]
)
def test_suppression(events: list[Message], stopped: bool | None) -> None:
    state = None
    for event in events:
        state = evolve_recipient(state, event)
    assert (state.stopped_marketing if state else None) == stopped


def test_templates_fold_category_status_approval_and_last_use() -> None:
    state = None
    for event in (
        template_status("spring_sale", "APPROVED", 1),
        template_category("spring_sale", "MARKETING", 2),
        accepted(1, when=30),
        accepted(2, when=20),
    ):
        state = evolve_template(state, event)
    assert state is not None
    assert (state.status, state.category, state.approved_at, state.last_used_at) == (
        "APPROVED",
        "MARKETING",
        at(1),
        at(30),
    )


@pytest.mark.parametrize(
    ("events", "category"),
    [
        ([template_category_observed("spring_sale", "MARKETING", 1)], "MARKETING"),
        (
            [
                template_category_observed("spring_sale", "MARKETING", 1),
                template_category("spring_sale", "UTILITY", 2),
            ],
            "UTILITY",
        ),
        (
            [
                template_category("spring_sale", "UTILITY", 1),
                template_category_observed("spring_sale", "MARKETING", 2),
            ],
            "MARKETING",
        ),
    ],
    ids=["looked up", "then changed by a webhook", "webhook, then looked up again"],
)
def test_a_looked_up_category_is_a_fact_like_a_webhook(
    events: list[Message], category: str
) -> None:
    state = None
    for event in events:
        state = evolve_template(state, event)
    assert state is not None
    assert state.category == category


# ------------------------------------------------------ order independence
def campaign_log() -> list[Message]:
    events: list[Message] = [terms_signed(WABA, "1029384756473829", 0), preference(USER, "stop", 1)]
    for n in range(1, 7):
        events += [command(n, labels={"tracking_token": "tok"}), attempted(n), accepted(n)]
        events += [
            status(n, "sent", 3),
            status(n, "delivered", 4),
            status(n, "delivered", 4, copy=1),
        ]
        events += [status(None, "read", 5, wamid=f"wamid.{n}")]
    events += [command(7), suppressed(7), command(8), attempted(8), failed(8)]
    events += [status(None, "delivered", 4, wamid="wamid.unknown")]
    events += [click("tok", 1), click("tok", 1), preference(USER, "resume", 9)]
    events += [status(9, "failed", 3, errors=({"code": 131050},), recipient="4917000000")]
    return events


def digest_of(events: list[Message]) -> str:
    p = Projection(choose(None))
    for event in events:
        p.apply(event)
    return p.digest()


@settings(max_examples=60, deadline=None)
@given(st.randoms(use_true_random=False))
def test_any_interleaving_gives_the_same_state(rng: random.Random) -> None:
    """The streams reach a projector in any interleaving: the digest must not care."""
    events = campaign_log()
    shuffled = list(events)
    rng.shuffle(shuffled)
    assert digest_of(shuffled) == digest_of(events)


def test_the_digest_changes_when_the_state_does() -> None:
    events = campaign_log()
    assert digest_of(events) != digest_of(events[:-1])


def test_file_fact_joins_and_absorbs_without_changing_anything() -> None:
    orphan = fact(status(None, "delivered", 4, wamid="wamid.1"))
    assert orphan is not None
    known = {"w:wamid.1": orphan}
    accepted_fact = fact(accepted(1))
    assert accepted_fact is not None
    no_links: dict[str, str] = {}
    filed = file_fact(accepted_fact, accepted(1).id, known.get, no_links.get)
    assert filed is not None
    assert (filed.key, filed.absorbed, filed.state.state) == (cid(1), "w:wamid.1", "delivered")
    assert known == {"w:wamid.1": orphan}, "a decision, not a change"
    # Later statuses naming only the wamid are filed under the command via the link.
    read = status(None, "read", 6, wamid="wamid.1")
    read_fact = fact(read)
    assert read_fact is not None
    linked = file_fact(read_fact, read.id, {cid(1): filed.state}.get, {"wamid.1": cid(1)}.get)
    assert linked is not None
    assert (linked.key, linked.state.state) == (cid(1), "read")
    # The same event again changes nothing.
    again = file_fact(read_fact, read.id, {cid(1): linked.state}.get, {"wamid.1": cid(1)}.get)
    assert again is None
