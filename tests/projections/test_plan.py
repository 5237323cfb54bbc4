"""The replay plan: how partitions are shared among workers (pure, table-tested)."""

from __future__ import annotations

import pytest

from services.projections.plan import PlanError, ReplayPlan, Span, share, split, weight

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


def test_routed_statuses_weigh_their_reading_and_their_folding_goes_with_the_sends() -> None:
    """Passed on to the worker of their send side (forward.py), statuses cost their
    readers a quarter, and the rest is counted with the send events, in proportion."""
    spans = [
        Span("p.send.events", 0, 0, 300),
        Span("p.send.events", 1, 0, 100),
        Span("p.message.status", 0, 0, 200),
        Span("p.message.status", 1, 0, 200),
    ]
    # Not routed, the spans weigh 300, 100, 200, 200; routed 525 (300 + 3/4 of the 300
    # of folding statuses), 175 (100 + 1/4 of it), 50, 50.
    assert share(spans, "p.", 2) == ((0, 1), (2, 3))
    assert share(spans, "p.", 2, routed=True) == ((1, 2, 3), (0,))
    assert share(spans, "p.", 3) == ((3,), (0,), (1, 2))
    assert share(spans, "p.", 3, routed=True) == ((2, 3), (1,), (0,))


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
