"""The replay plan: how partitions are shared among workers (pure, table-tested)."""

from __future__ import annotations

import pytest

from services.projections.plan import (
    PlanError,
    ReplayPlan,
    Span,
    claim_order,
    share,
    split,
    weight,
)

SPLIT_CASES = [
    ("one worker takes everything", [5, 3, 0], 1, ((0, 1, 2),)),
    ("largest first to the least loaded", [40, 20, 10, 10, 10, 10], 2, ((0, 4), (1, 2, 3, 5))),
    ("the lightest share is worker 0's", [10, 1], 2, ((1,), (0,))),
    ("more workers than partitions", [7], 3, ((), (), (0,))),
    ("ties go to the lower index", [1, 1, 1, 1], 2, ((0, 2), (1, 3))),
]


@pytest.mark.parametrize(
    ("sizes", "workers", "shards"), [c[1:] for c in SPLIT_CASES], ids=[c[0] for c in SPLIT_CASES]
)
def test_split(sizes: list[int], workers: int, shards: tuple[tuple[int, ...], ...]) -> None:
    assert split(sizes, workers) == shards
    assert sorted(i for shard in shards for i in shard) == list(range(len(sizes)))


def test_no_workers_is_refused() -> None:
    with pytest.raises(PlanError):
        split([1], 0)


@pytest.mark.parametrize(
    ("topic", "records", "weighed"),
    [
        ("p.send.commands", 10, 9.0),
        ("p.send.events", 10, 10.0),
        ("p.marketing.clicks", 4, 3.0),
        ("p.message.status", 0, 0.0),
    ],
)
def test_records_weigh_what_reading_them_costs(topic: str, records: int, weighed: float) -> None:
    assert weight(topic, "p.", records) == weighed


def test_workers_on_one_host_claim_the_send_side_first_then_statuses_heaviest_first() -> None:
    spans = [
        Span("p.message.status", 0, 0, 50),
        Span("p.send.events", 0, 0, 300),
        Span("p.send.commands", 0, 0, 100),
        Span("p.send.events", 1, 0, 100),
        Span("p.marketing.clicks", 0, 0, 500),
        Span("p.message.status", 1, 0, 200),
    ]
    sends, statuses = claim_order(spans, "p.")
    # Units weigh 390 (events and commands of partition 0), 100, and 375 (clicks).
    assert sends == [[1, 2], [4], [3]]
    assert statuses == [[5], [0]]


def test_a_plan_survives_its_file_format() -> None:
    plan = ReplayPlan(
        id="p1",
        projections=("delivery", "onboarding"),
        until_ms=1_700_000_000_000,
        spans=(Span("t.a", 0, 0, 10), Span("t.b", 1, 5, 5)),
        shards=((1,), (0,)),
    )
    assert ReplayPlan.from_dict(plan.as_dict()) == plan
    assert plan.shard(1) == (Span("t.a", 0, 0, 10),)
    assert [s.size for s in plan.spans] == [10, 0]
    with pytest.raises(PlanError):
        plan.shard(2)
    with pytest.raises(PlanError):
        ReplayPlan.from_dict({**plan.as_dict(), "format": "something else"})


def test_a_partition_of_the_streams_keyed_alike_goes_to_one_worker() -> None:
    """send.commands[p] and send.events[p] hold the same senders' records: one worker
    folds both, so a message's send side is never split; other partitions share out."""
    spans = [
        *(Span("p.send.commands", n, 0, 10 * (n + 1)) for n in range(3)),
        *(Span("p.send.events", n, 0, 20 * (n + 1)) for n in range(3)),
        *(Span("p.message.status", n, 0, 40) for n in range(3)),
    ]
    for workers in (1, 2, 3, 4):
        shards = share(spans, "p.", workers)
        assert sorted(i for shard in shards for i in shard) == list(range(len(spans)))
        for n in range(3):
            (holder,) = [w for w, shard in enumerate(shards) if n in shard]
            assert 3 + n in shards[holder]  # the events of the same partition
    # Units weigh 29, 58, 87 (commands 0.9 each) and 40 each: largest first, lightest share first.
    assert share(spans, "p.", 2) == ((1, 4, 6, 8), (0, 2, 3, 5, 7))
